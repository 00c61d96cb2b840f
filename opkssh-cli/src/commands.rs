//! One module per subcommand.

pub(crate) mod add;
pub(crate) mod agent;
pub(crate) mod audit;
pub(crate) mod check;
pub(crate) mod client;
pub(crate) mod demo;
pub(crate) mod docs;
pub(crate) mod explain;
pub(crate) mod inspect;
pub(crate) mod install_server;
pub(crate) mod login;
pub(crate) mod logout;
pub(crate) mod permissions;
pub(crate) mod readhome;
pub(crate) mod ssh;
pub(crate) mod verify;
