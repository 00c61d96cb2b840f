//! Shared helpers for the cross-crate tests: locating the Go vectors.
