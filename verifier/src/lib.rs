//! The opkssh AuthorizedKeysCommand pipeline.
