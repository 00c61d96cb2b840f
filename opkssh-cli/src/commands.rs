//! One module per subcommand.

pub(crate) mod add;
pub(crate) mod audit;
pub(crate) mod chooser;
pub(crate) mod client;
pub(crate) mod demo;
pub(crate) mod demo_sshd;
pub(crate) mod device;
pub(crate) mod docs;
pub(crate) mod explain;
pub(crate) mod inspect;
pub(crate) mod install_server;
pub(crate) mod login;
pub(crate) mod logout;
pub(crate) mod permissions;
pub(crate) mod readhome;
pub(crate) mod verify;

use std::fmt;

/// A policy command's failure: printed by `main` as `Error: <message>`, exit 1. The lead's
/// `CliError` can wrap it (`#[error("{0}")] Policy(#[from] CommandError)`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CommandError(pub(crate) String);

impl fmt::Display for CommandError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

impl std::error::Error for CommandError {}

impl CommandError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

/// The `--config-dir` flag every server command takes.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ConfigDirArg {
    /// Directory holding providers, auth_id, config.yml and policy.d.
    #[arg(long = "config-dir", value_name = "DIR", default_value = policy::DEFAULT_CONFIG_DIR)]
    pub(crate) config_dir: std::path::PathBuf,
}

impl ConfigDirArg {
    pub(crate) fn dir(&self) -> policy::ConfigDir {
        policy::ConfigDir::new(&self.config_dir)
    }
}
