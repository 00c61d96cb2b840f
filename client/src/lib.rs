//! The user side of opkssh: log in with an OpenID provider and come out with an SSH key and
//! an opkssh certificate, placed where `ssh` finds it or added to the ssh-agent.
//!
//! The login is a state machine (authorization request → callback → ID token checked → PK
//! token → certificate) over the loopback callback listener ([`callback`]), the device flow
//! ([`device`]) or a CI runner's identity ([`ci`]). The client config and provider resolution
//! are [`client_config`]; key placement and file writing [`placement`] and [`files`]; the
//! ssh-agent client and the eviction of stale opkssh certificates [`agent`] and
//! [`agent_certificates`]; refreshing a session [`login::refresh`].
//!
//! Nothing here prints: whatever a person must see or do (open this URL, enter this code, a
//! log line) goes through [`Progress`], which the `opkssh` command implements.
//!
//! The network calls are bounded by `opk-net` (the same client `opkssh verify` uses); this crate
//! never depends on the verifier.

#![forbid(unsafe_code)]
#![deny(unused_must_use)]

pub mod agent;
pub mod agent_certificates;
pub mod callback;
pub mod ci;
pub mod client_config;
#[cfg(feature = "demo-op")]
pub mod demo_op;
pub mod device;
pub mod files;
pub mod httpd;
pub mod login;
pub mod placement;
