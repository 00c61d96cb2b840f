//! Arguments several commands share.

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
