//! The network calls both sides of opkssh make, bounded the same way: an HTTP client with no
//! redirects, https only (plain http only to loopback test issuers), a size cap on every body,
//! and one [`deadline::Deadline`] that every request's timeout is cut to.
//!
//! It sits below `verifier` (discovery, JWKS and userinfo fetches during `opkssh verify`) and
//! `opk-client` (the login's discovery, token and device calls), so neither depends on the
//! other.

#![forbid(unsafe_code)]
#![deny(unused_must_use)]
#![warn(missing_docs)]

pub mod deadline;
pub mod http;
pub mod proxy;
