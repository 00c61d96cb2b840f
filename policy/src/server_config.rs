//! `/etc/opk/config.yml` (behaviour.md §3.5; Go: commands/config/server_config.go).

use crate::error::{FileError, FileErrorKind, Location};
use std::collections::BTreeMap;
use std::path::Path;

/// The server configuration. Unknown keys are ignored, as in Go.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(default)]
pub struct ServerConfig {
    /// Set in verify's environment before any network access or plugin run.
    pub env_vars: BTreeMap<String, String>,
    /// Principals refused outright (compared ignoring case).
    pub deny_users: Vec<String>,
    /// Emails refused outright (compared ignoring case).
    pub deny_emails: Vec<String>,
}

impl ServerConfig {
    /// Parses the YAML. An empty document (or only comments) is an empty config, as in Go.
    ///
    /// # Errors
    /// [`FileErrorKind::Yaml`] with the parser's message (which names line and column), or
    /// [`FileErrorKind::Invalid`] for an environment variable name Go's `os.Setenv` rejects.
    pub fn parse(content: &str, path: &Path) -> Result<Self, FileError> {
        let meaningful = content
            .lines()
            .any(|line| !line.trim().is_empty() && !line.trim_start().starts_with('#'));
        if !meaningful {
            return Ok(Self::default());
        }
        let config: Option<Self> = serde_saphyr::from_str(content).map_err(|error| {
            FileError::new(
                Location::file(path),
                FileErrorKind::Yaml(crate::error::first_line(&error.to_string())),
            )
        })?;
        let config = config.unwrap_or_default();
        for name in config.env_vars.keys() {
            if name.is_empty() || name.contains('=') || name.contains('\0') {
                return Err(FileError::new(
                    Location::file(path),
                    FileErrorKind::Invalid(format!("invalid environment variable name {name:?}")),
                ));
            }
        }
        if config.env_vars.values().any(|value| value.contains('\0')) {
            return Err(FileError::new(
                Location::file(path),
                FileErrorKind::Invalid("environment variable value contains NUL".into()),
            ));
        }
        Ok(config)
    }

    /// The deny lists.
    pub fn deny_lists(&self) -> DenyLists {
        DenyLists {
            emails: self.deny_emails.clone(),
            users: self.deny_users.clone(),
        }
    }
}

/// `deny_emails` and `deny_users`, evaluated before anything else.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DenyLists {
    /// Refused emails (case-insensitive).
    pub emails: Vec<String>,
    /// Refused principals (case-insensitive).
    pub users: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ServerConfig, FileError> {
        ServerConfig::parse(text, Path::new("/etc/opk/config.yml"))
    }

    #[test]
    fn parses_go_config() {
        let config = parse(
            "env_vars:\n  HTTPS_PROXY: http://proxy:3128\n  NO_PROXY: localhost\ndeny_emails:\n  - bad@example.com\ndeny_users:\n  - root\nunknown: 1\n",
        )
        .unwrap();
        assert_eq!(
            config.env_vars.get("HTTPS_PROXY").map(String::as_str),
            Some("http://proxy:3128")
        );
        assert_eq!(config.deny_emails, ["bad@example.com"]);
        assert_eq!(config.deny_users, ["root"]);
    }

    #[test]
    fn empty_is_default() {
        assert_eq!(parse("").unwrap(), ServerConfig::default());
        assert_eq!(parse("# comment\n\n").unwrap(), ServerConfig::default());
        assert_eq!(parse("---\n").unwrap(), ServerConfig::default());
    }

    #[test]
    fn bad_yaml_is_an_error() {
        let error = parse("deny_users: [root\n").unwrap_err();
        assert!(matches!(error.kind, FileErrorKind::Yaml(_)), "{error}");
        assert!(parse("deny_users: root\n").is_err());
        assert!(parse("env_vars:\n  'A=B': x\n").is_err());
    }
}
