//! OpenPubkey wire format.
