//! Arguments several commands share.

/// The `--config-dir` flag every server command takes.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ConfigDirArg {
    /// Directory holding providers, auth_id, config.yml and policy.d.
    #[arg(long = "config-dir", value_name = "DIR", default_value_os_t = opk_os::dirs::config_dir())]
    pub(crate) config_dir: std::path::PathBuf,
}

impl ConfigDirArg {
    pub(crate) fn dir(&self) -> policy::ConfigDir {
        policy::ConfigDir::new(&self.config_dir)
    }
}
