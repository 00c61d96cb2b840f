//! OpenPubkey wire format.

pub mod gq;
