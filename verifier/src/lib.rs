//! The opkssh AuthorizedKeysCommand pipeline: sshd's `%u %k %t` in, one `cert-authority` line
//! or a denial out. This crate owns the network (bounded, cached) and the log; the protocol is
//! `opk-core` and the decision is `policy`.

#![forbid(unsafe_code)]
#![deny(unused_must_use)]
#![warn(missing_docs)]

mod decide;
pub mod fuzzing;
pub mod jwks_cache;
pub mod log;
pub mod openssh;
pub mod pipeline;

pub use decide::{
    Attempt, Chain, ChainMode, GO_ALLOW, GO_DENY, GO_PROVIDERS, ServerFiles, Verdict, decide,
};

// Shared with the login side (`opk-client`), so they live below both; the paths stay.
pub use opk_net::{deadline, http};
