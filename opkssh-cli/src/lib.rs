//! Building blocks of the `opkssh` command that are shared between subcommands and tested on
//! their own: how files are written, where keys go, the client config, the login flow with its
//! loopback listener, the ssh-agent client, and the demo's OpenID provider.

#![forbid(unsafe_code)]

pub mod agent;
pub mod agent_certificates;
pub mod callback;
pub mod ci;
pub mod client_config;
pub mod demo_op;
pub mod device;
pub mod files;
pub mod httpd;
pub mod install;
pub mod login;
pub mod placement;
