//! The `chain_authorized_keys_command` line `install-server` writes into `/etc/opk/config.yml`
//! for the `AuthorizedKeysCommand` it replaces in sshd, and `uninstall-server` takes out.
//!
//! The line goes at the end of the file after a marker comment, and the rest of the file is
//! kept byte for byte (a missing final line feed is added). The marker is how uninstalling (or
//! a later run with another command, or `--no-chain`) tells opkssh's line from one the
//! administrator wrote, which is never changed: a different value there is an error.

use std::fmt;

/// The key `opkssh verify` reads.
pub(crate) const KEY: &str = "chain_authorized_keys_command";
/// The comment above the line opkssh wrote.
pub(crate) const MARK: &str = "# opkssh install-server kept the AuthorizedKeysCommand it replaced in sshd here; opkssh uninstall-server removes the next line";

/// Why the line cannot be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainError {
    /// The file is not YAML that `opkssh verify` reads (the parser's message).
    Yaml(String),
    /// The administrator set the key to another command.
    Taken {
        /// Its value.
        existing: String,
    },
    /// The file with the line added would not read back as the same configuration plus the
    /// line (a flow mapping, several documents…).
    NotAppendable,
}

impl fmt::Display for ChainError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Yaml(message) => write!(formatter, "does not parse: {message}"),
            Self::Taken { existing } => {
                write!(formatter, "{KEY} is already set, to {existing:?}")
            }
            Self::NotAppendable => write!(
                formatter,
                "a {KEY} line added at its end would not read back as written"
            ),
        }
    }
}

/// Only the key, from a configuration whose other keys are ignored.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
struct ChainKey {
    chain_authorized_keys_command: Option<String>,
}

/// The key's value in `text`, as verify will read it.
fn read_key(text: &str) -> Result<Option<String>, ChainError> {
    if !meaningful(text) {
        return Ok(None);
    }
    let parsed: Option<ChainKey> = serde_saphyr::from_str(text)
        .map_err(|error| ChainError::Yaml(first_line(&error.to_string())))?;
    Ok(parsed.and_then(|key| key.chain_authorized_keys_command))
}

fn first_line(message: &str) -> String {
    message.lines().next().unwrap_or_default().to_owned()
}

/// The text without the marked line opkssh wrote (and its marker).
pub(crate) fn without_chain(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut lines = text.split_inclusive('\n').peekable();
    let mut changed = false;
    while let Some(line) = lines.next() {
        if line.trim_end() == MARK
            && lines
                .peek()
                .is_some_and(|next| next.starts_with(&format!("{KEY}:")))
        {
            lines.next();
            changed = true;
            continue;
        }
        out.push_str(line);
    }
    if changed { out } else { text.to_owned() }
}

/// A YAML double-quoted scalar holding `value` exactly.
fn quoted(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for character in value.chars() {
        match character {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            control if control.is_control() => {
                out.push_str(&format!("\\u{:04X}", u32::from(control)));
            }
            other => out.push(other),
        }
    }
    out.push('"');
    out
}

/// The text with opkssh's line set to `command`, or taken out for `None`; an existing line the
/// administrator wrote is kept when it says the same, and refused when it says otherwise.
///
/// # Errors
/// [`ChainError`].
pub(crate) fn with_chain(text: &str, command: Option<&str>) -> Result<String, ChainError> {
    let base = without_chain(text);
    let Some(command) = command else {
        return Ok(base);
    };
    match read_key(&base)? {
        Some(existing) if existing == command => return Ok(base),
        Some(existing) => return Err(ChainError::Taken { existing }),
        None => {}
    }
    let mut out = base.clone();
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(MARK);
    out.push('\n');
    out.push_str(&format!("{KEY}: {}\n", quoted(command)));
    // What verify reads must be the old configuration and this line, nothing else: every key
    // compared (not only those this build of opkssh knows), and the file still one verify
    // accepts.
    let path = std::path::Path::new("config.yml");
    if let Err(error) = policy::ServerConfig::parse(&base, path) {
        return Err(ChainError::Yaml(error.to_string()));
    }
    let mut after = mapping(&out).map_err(|_| ChainError::NotAppendable)?;
    let added = after.remove(KEY);
    if policy::ServerConfig::parse(&out, path).is_err()
        || added != Some(serde_json::Value::String(command.to_owned()))
        || mapping(&base)? != after
    {
        return Err(ChainError::NotAppendable);
    }
    Ok(out)
}

/// The top-level mapping of a YAML document (empty for nothing but comments).
fn mapping(text: &str) -> Result<serde_json::Map<String, serde_json::Value>, ChainError> {
    if !meaningful(text) {
        return Ok(serde_json::Map::new());
    }
    let value: Option<serde_json::Value> = serde_saphyr::from_str(text)
        .map_err(|error| ChainError::Yaml(first_line(&error.to_string())))?;
    match value {
        None | Some(serde_json::Value::Null) => Ok(serde_json::Map::new()),
        Some(serde_json::Value::Object(map)) => Ok(map),
        Some(_) => Err(ChainError::Yaml("not a mapping of keys to values".into())),
    }
}

/// As the server configuration: nothing but comments is an empty configuration.
fn meaningful(text: &str) -> bool {
    text.lines()
        .any(|line| !line.trim().is_empty() && !line.trim_start().starts_with('#'))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const EIC: &str = "/opt/aws/bin/eic_run_authorized_keys %u %f";

    #[test]
    fn the_line_is_appended_and_taken_out_byte_for_byte() {
        for original in [
            "",
            "# nothing yet\n",
            "deny_users:\n  - root\nenv_vars:\n  HTTPS_PROXY: http://proxy:3128\n",
            "description: |\n  a block scalar\n  to the end\n",
        ] {
            let added = with_chain(original, Some(EIC)).unwrap();
            assert_eq!(
                added,
                format!("{original}{MARK}\n{KEY}: \"{EIC}\"\n"),
                "{original:?}"
            );
            assert_eq!(read_key(&added).unwrap().as_deref(), Some(EIC));
            assert_eq!(with_chain(&added, Some(EIC)).unwrap(), added);
            assert_eq!(without_chain(&added), original);
            assert_eq!(with_chain(&added, None).unwrap(), original);
        }
        // No final line feed: the one byte not restored.
        let added = with_chain("deny_users: [root]", Some(EIC)).unwrap();
        assert_eq!(without_chain(&added), "deny_users: [root]\n");
    }

    #[test]
    fn quotes_and_backslashes_survive() {
        let command = r#"/opt/keys "a b" \x %u"#;
        let added = with_chain("", Some(command)).unwrap();
        assert_eq!(read_key(&added).unwrap().as_deref(), Some(command));
    }

    #[test]
    fn the_administrators_line_is_kept_or_refused() {
        let theirs = format!("{KEY}: {EIC}\n");
        assert_eq!(with_chain(&theirs, Some(EIC)).unwrap(), theirs);
        assert_eq!(with_chain(&theirs, None).unwrap(), theirs);
        assert_eq!(
            with_chain(&theirs, Some("/usr/bin/sss_ssh_authorizedkeys %u")),
            Err(ChainError::Taken {
                existing: EIC.into()
            })
        );
        // opkssh's own line follows the command sshd had.
        let ours = with_chain("", Some(EIC)).unwrap();
        let moved = with_chain(&ours, Some("/usr/bin/sss_ssh_authorizedkeys %u")).unwrap();
        assert_eq!(
            read_key(&moved).unwrap().as_deref(),
            Some("/usr/bin/sss_ssh_authorizedkeys %u")
        );
    }

    #[test]
    fn files_it_cannot_extend_are_refused() {
        assert!(matches!(
            with_chain("deny_users: [root\n", Some(EIC)),
            Err(ChainError::Yaml(_))
        ));
        for closed in [
            "{deny_users: [root]}\n",
            "deny_users: [root]\n...\n",
            "- a list\n",
        ] {
            assert!(
                matches!(
                    with_chain(closed, Some(EIC)),
                    Err(ChainError::NotAppendable | ChainError::Yaml(_))
                ),
                "{closed:?}"
            );
        }
        // Keys this build does not know are compared too, and kept.
        let future = "some_future_key:\n  nested: [1, 2]\n";
        let added = with_chain(future, Some(EIC)).unwrap();
        assert_eq!(without_chain(&added), future);
    }
}
