//! The user side of opkssh: log in with an OpenID provider and come out with an SSH key and
//! an opkssh certificate, placed where `ssh` finds it or added to the ssh-agent.
//!
//! The login is a state machine (authorization request → callback → ID token checked → PK
//! token → certificate) over the loopback callback listener ([`callback`]), the device flow
//! ([`device`]) or a CI runner's identity ([`ci`]). The client config and provider resolution
//! are [`client_config`]; key placement and file writing [`placement`] and [`files`]; the
//! ssh-agent client and the eviction of stale opkssh certificates [`agent`] and
//! [`agent_certificates`]; a user key that only the ssh-agent holds (`--agent-key`)
//! [`agent_key`]; the agent that `opkssh agent` runs [`agent_server`] and the life of its
//! certificate [`agent_session`]; refreshing a session [`login::refresh`].
//!
//! Nothing here prints: whatever a person must see or do (open this URL, enter this code, a
//! log line) goes through [`Progress`], which the `opkssh` command implements.
//!
//! # Log in from another program
//! ```no_run
//! use opk_client::client_config::ProviderKind;
//! use opk_client::{BrowserProvider, Flow, certificate, http_client_from_env, log_in};
//! use opk_core::sshcert::{CertComment, UserKeyType, generate_user_key};
//! use std::time::Duration;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let provider = ProviderKind::Browser(BrowserProvider {
//!     issuer: "https://issuer.example".into(),
//!     client_id: "my-client".into(),
//!     client_secret: None,
//!     scopes: "openid profile email".into(),
//!     prompt: "consent".into(),
//!     access_type: "offline".into(),
//!     redirect_uris: vec!["http://localhost:3000/login-callback".into()],
//!     remote_redirect_uri: None,
//! });
//! let http = http_client_from_env();
//! let key = generate_user_key(UserKeyType::Ecdsa)?;
//! // The browser step: here the URL is shown; `opkssh login` opens a browser.
//! let mut show = |url: &str| eprintln!("log in at {url}");
//! let flow = Flow::Browser { timeout: Duration::from_secs(300) };
//! let identity = log_in(&provider, key, flow, &http, &mut show)?;
//! let certificate = certificate(&identity.key, &identity.pk_token, None, None)?;
//! // The key and its certificate, ready for ssh or an agent.
//! let line = certificate.to_line(CertComment::None);
//! # let _ = (identity.key, line);
//! # Ok(())
//! # }
//! ```
//!
//! The network calls are bounded by `opk-net` (the same client `opkssh verify` uses); this crate
//! never depends on the verifier.

#![forbid(unsafe_code)]
#![deny(unused_must_use)]

pub mod agent;
pub mod agent_certificates;
pub mod agent_key;
pub mod agent_server;
pub mod agent_session;
pub mod callback;
pub mod check;
pub mod chooser;
pub mod ci;
pub mod client_config;
#[cfg(feature = "demo-op")]
pub mod demo_op;
pub mod device;
pub mod duration;
pub mod files;
mod flow;
pub mod httpd;
pub mod login;
pub mod placement;

pub use flow::{
    Flow, Identity, Progress, audience_string, certificate, http_client_from_env, identity_string,
    issuer_of, log_in, pretty_id_token,
};
pub use login::{BrowserProvider, LoginError, Session};
