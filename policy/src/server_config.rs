//! `/etc/opk/config.yml` (behaviour.md §3.5; Go: commands/config/server_config.go).

use crate::error::{FileError, FileErrorKind, Location};
use std::collections::BTreeMap;
use std::path::Path;

/// The server configuration. Unknown keys are ignored, as in Go. Serializable so the
/// documentation tests can list the keys the code reads.
#[derive(Clone, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(default)]
pub struct ServerConfig {
    /// Set in verify's environment before any network access or plugin run.
    pub env_vars: BTreeMap<String, String>,
    /// Principals refused outright (compared ignoring case).
    pub deny_users: Vec<String>,
    /// Emails refused outright (compared ignoring case).
    pub deny_emails: Vec<String>,
    /// How long cached discovery documents and JWKS are used without asking the provider, as
    /// a duration such as `1h` or `30m` (default 1 h). Not in Go, which has no cache.
    pub jwks_cache_max_age: Option<String>,
    /// How old a cached JWKS may be and still be used while the provider is unreachable
    /// (default `24h`; `0` fails closed). Not in Go.
    pub jwks_cache_stale_limit: Option<String>,
    /// The largest `auth_id` file (system or home) verify reads, as bytes or with a unit
    /// (`64MiB`, `200MB`); default 64 MiB. A larger file is not used, and the log names the
    /// file and the limit. Not in Go, which reads any size.
    pub max_policy_size: Option<String>,
    /// Another `AuthorizedKeysCommand` (EC2 Instance Connect, SSSD, ...) that verify runs when
    /// opkssh does not let a key in, passing on the well-formed `authorized_keys` lines it
    /// prints ([`crate::chain`]). Not in Go. A problem with it is reported when it would run,
    /// never here: a bad command must not stop opkssh logins.
    pub chain_authorized_keys_command: Option<String>,
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Self {
            env_vars,
            deny_users,
            deny_emails,
            jwks_cache_max_age,
            jwks_cache_stale_limit,
            max_policy_size,
            chain_authorized_keys_command,
        } = self;
        f.debug_struct("ServerConfig")
            .field("env_vars", &VariableNames(env_vars))
            .field("deny_users", deny_users)
            .field("deny_emails", deny_emails)
            .field("jwks_cache_max_age", jwks_cache_max_age)
            .field("jwks_cache_stale_limit", jwks_cache_stale_limit)
            .field("max_policy_size", max_policy_size)
            .field(
                "chain_authorized_keys_command",
                chain_authorized_keys_command,
            )
            .finish()
    }
}

/// `env_vars` as `Debug` shows them: the names only, since a value such as a proxy URL can
/// hold a password.
pub(crate) struct VariableNames<'a>(pub(crate) &'a BTreeMap<String, String>);

impl std::fmt::Debug for VariableNames<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

/// Parses a size: a number of bytes, or with a unit `K`/`KB` (1000), `KiB` (1024), `M`/`MB`,
/// `MiB`, `G`/`GB`, `GiB`.
///
/// # Errors
/// Anything else, or zero, as a message.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let invalid = || format!("invalid size {text:?} (use e.g. 67108864, 64MiB or 200MB)");
    let text = text.trim();
    let split = text
        .find(|character: char| !character.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| invalid())?;
    let multiplier: u64 = match unit.trim() {
        "" | "B" => 1,
        "K" | "KB" | "k" | "kB" => 1000,
        "KiB" => 1 << 10,
        "M" | "MB" => 1_000_000,
        "MiB" => 1 << 20,
        "G" | "GB" => 1_000_000_000,
        "GiB" => 1 << 30,
        _ => return Err(invalid()),
    };
    number
        .checked_mul(multiplier)
        .filter(|size| *size > 0)
        .ok_or_else(invalid)
}

/// Parses a duration the way an admin writes it: `90s`, `30m`, `1h`, `2h30m`, `1d`, or `0`.
///
/// # Errors
/// Anything else, as a message.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let invalid = || format!("invalid duration {text:?} (use e.g. 90s, 30m, 1h, 1d or 0)");
    if text.trim() == "0" {
        return Ok(std::time::Duration::ZERO);
    }
    let mut total: u64 = 0;
    let mut digits = String::new();
    for character in text.trim().chars() {
        if character.is_ascii_digit() {
            digits.push(character);
            continue;
        }
        let unit: u64 = match character {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(invalid()),
        };
        let value: u64 = digits.parse().map_err(|_| invalid())?;
        total = value
            .checked_mul(unit)
            .and_then(|part| total.checked_add(part))
            .ok_or_else(invalid)?;
        digits.clear();
    }
    if !digits.is_empty() || text.trim().is_empty() {
        return Err(invalid());
    }
    Ok(std::time::Duration::from_secs(total))
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
        for (key, value) in [
            ("jwks_cache_max_age", &config.jwks_cache_max_age),
            ("jwks_cache_stale_limit", &config.jwks_cache_stale_limit),
        ] {
            if let Some(value) = value {
                parse_duration(value).map_err(|message| {
                    FileError::new(
                        Location::file(path),
                        FileErrorKind::Invalid(format!("{key}: {message}")),
                    )
                })?;
            }
        }
        if let Some(size) = &config.max_policy_size {
            parse_size(size).map_err(|message| {
                FileError::new(
                    Location::file(path),
                    FileErrorKind::Invalid(format!("max_policy_size: {message}")),
                )
            })?;
        }
        if config.env_vars.values().any(|value| value.contains('\0')) {
            return Err(FileError::new(
                Location::file(path),
                FileErrorKind::Invalid("environment variable value contains NUL".into()),
            ));
        }
        Ok(config)
    }

    /// `max_policy_size` in bytes, or the default ([`crate::perms::DEFAULT_MAX_POLICY_SIZE`]).
    /// [`ServerConfig::parse`] has refused a value that does not parse.
    pub fn max_policy_size(&self) -> u64 {
        self.max_policy_size
            .as_deref()
            .and_then(|text| parse_size(text).ok())
            .unwrap_or(crate::perms::DEFAULT_MAX_POLICY_SIZE)
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

    #[test]
    fn durations() {
        use std::time::Duration;
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("2h30m"), Ok(Duration::from_secs(9000)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86_400)));
        for bad in ["", "1", "h", "1w", "-1h", "1.5h", "99999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        let config = parse("jwks_cache_max_age: 10m\njwks_cache_stale_limit: 0\n").unwrap();
        assert_eq!(config.jwks_cache_max_age.as_deref(), Some("10m"));
        assert!(parse("jwks_cache_stale_limit: soon\n").is_err());
    }

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

    #[test]
    fn debug_shows_env_var_names_not_values() {
        let config =
            parse("env_vars:\n  HTTPS_PROXY: http://proxyuser:S3cretPassw0rd@proxy:3128\n")
                .unwrap();
        let shown = format!("{config:?}");
        assert!(shown.contains("HTTPS_PROXY"), "{shown}");
        assert!(!shown.contains("S3cret"), "{shown}");
        let enforcer =
            crate::Enforcer::new(crate::ConfigDir::new("/etc/opk")).with_env_vars(config.env_vars);
        let shown = format!("{enforcer:?}");
        assert!(shown.contains("HTTPS_PROXY"), "{shown}");
        assert!(!shown.contains("S3cret"), "{shown}");
    }
}
