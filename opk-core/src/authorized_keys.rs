//! `authorized_keys` lines as sshd reads them (sshd(8) "AUTHORIZED_KEYS FILE FORMAT";
//! openssh-portable `auth2-pubkeyfile.c`, `auth-options.c`), and a key's fingerprint as sshd
//! hands it to an `AuthorizedKeysCommand` as `%f`.
//!
//! `verify` passes on what a chained `AuthorizedKeysCommand` prints only line by line, and only
//! lines that parse here: `[options] <key type> <base64> [comment]`, where the options are
//! ones sshd knows, written as sshd parses them, and the base64 decodes to a public key blob of
//! the named type. Stricter than sshd, never looser: sshd skips a line it cannot read and
//! refuses one with an unknown option, so a line dropped here is one sshd would not have used,
//! except for lines sshd reads and this does not:
//! - certificate key types (`*-cert-v01@openssh.com`) and XMSS keys, which nobody puts in an
//!   `authorized_keys` line (a CA key is a plain key with `cert-authority`);
//! - control characters anywhere (sshd would keep a `\r` in a comment);
//! - base64 that is not canonical and padded (OpenSSH writes nothing else).

use crate::b64;
use ssh_key::public::KeyData;

/// The key types a line may name: the plain public key types of OpenSSH.
pub const KEY_TYPES: [&str; 8] = [
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
    "ssh-rsa",
    "ssh-dss",
];

/// Options that take no value; each but `restrict` and `cert-authority` also as `no-<name>`
/// (openssh-portable `auth-options.c` `opt_flag`).
const FLAG_OPTIONS: [&str; 7] = [
    "port-forwarding",
    "agent-forwarding",
    "x11-forwarding",
    "touch-required",
    "verify-required",
    "pty",
    "user-rc",
];
/// Flags with no `no-` form.
const PLAIN_FLAG_OPTIONS: [&str; 2] = ["restrict", "cert-authority"];
/// Options written `name="value"`.
const VALUE_OPTIONS: [&str; 8] = [
    "command",
    "principals",
    "from",
    "expiry-time",
    "environment",
    "permitopen",
    "permitlisten",
    "tunnel",
];

/// What a line holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line<'a> {
    /// Empty or only blanks.
    Blank,
    /// A `#` comment.
    Comment,
    /// A key.
    Key(KeyLine<'a>),
}

/// A key line, its parts as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyLine<'a> {
    /// The options before the key, if any (`from="10.0.0.1",no-pty`).
    pub options: Option<&'a str>,
    /// The key type (`ssh-ed25519`).
    pub key_type: &'a str,
    /// The base64 key blob.
    pub key_base64: &'a str,
    /// What follows the key, blanks trimmed; empty when nothing does.
    pub comment: &'a str,
    /// The whole line without its leading and trailing blanks: what is passed on.
    pub text: &'a str,
}

/// Why a line is not a well-formed `authorized_keys` line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    /// A control character (other than tab), e.g. a NUL or a carriage return.
    #[error("control character U+{:04X}", u32::from(*.0))]
    ControlCharacter(char),
    /// A quote in the options is not closed.
    #[error("unterminated quote in the options")]
    UnterminatedQuote,
    /// An option sshd does not know, or written in a way sshd does not read (a line that does
    /// not start with a key type starts with options).
    #[error("{0:?} is neither a key type nor an option sshd knows")]
    InvalidOption(String),
    /// Options, then no key.
    #[error("no key after the options")]
    MissingKey,
    /// A word in the key type's place that is not a key type this accepts.
    #[error("unknown key type {0:?}")]
    UnknownKeyType(String),
    /// The type is not followed by base64.
    #[error("no base64 key after the key type")]
    MissingBase64,
    /// The base64 does not decode.
    #[error("key is not base64: {0}")]
    Base64(b64::B64Error),
    /// The blob is not a public key of its type.
    #[error("key blob is not a valid {key_type} key: {reason}")]
    Blob {
        /// The key type of the line.
        key_type: String,
        /// What is wrong with the blob.
        reason: String,
    },
}

/// Parses one line (without its newline) as sshd reads a line of `authorized_keys`.
///
/// # Errors
/// The first thing that makes the line unusable.
pub fn parse_line(line: &str) -> Result<Line<'_>, LineError> {
    if let Some(control) = line.chars().find(|c| c.is_control() && *c != '\t') {
        return Err(LineError::ControlCharacter(control));
    }
    let text = line.trim_matches(is_blank);
    if text.is_empty() {
        return Ok(Line::Blank);
    }
    if text.starts_with('#') {
        return Ok(Line::Comment);
    }
    let (first, _) = split_word(text);
    let (options, rest) = if KEY_TYPES.contains(&first) {
        (None, text)
    } else {
        let (options, rest) = split_options(text)?;
        check_options(options)?;
        let rest = rest.trim_start_matches(is_blank);
        if rest.is_empty() {
            return Err(LineError::MissingKey);
        }
        (Some(options), rest)
    };
    let (key_type, rest) = split_word(rest);
    if !KEY_TYPES.contains(&key_type) {
        return Err(LineError::UnknownKeyType(key_type.to_owned()));
    }
    let (key_base64, comment) = split_word(rest.trim_start_matches(is_blank));
    if key_base64.is_empty() {
        return Err(LineError::MissingBase64);
    }
    let blob = b64::decode_std(key_base64).map_err(LineError::Base64)?;
    check_blob(key_type, &blob)?;
    Ok(Line::Key(KeyLine {
        options,
        key_type,
        key_base64,
        comment: comment.trim_matches(is_blank),
        text,
    }))
}

fn is_blank(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// The first word (up to a blank) and the rest, which starts at that blank.
fn split_word(text: &str) -> (&str, &str) {
    text.split_at(text.find(is_blank).unwrap_or(text.len()))
}

/// The options (up to the first blank outside quotes, `\"` escaping a quote) and the rest
/// (openssh-portable `sshkey_advance_past_options`).
fn split_options(text: &str) -> Result<(&str, &str), LineError> {
    let mut quoted = false;
    let mut chars = text.char_indices();
    while let Some((index, c)) = chars.next() {
        match c {
            // `\"` is an escaped quote; anything else after `\` is read as it is.
            '\\' if text
                .get(index..)
                .is_some_and(|tail| tail.starts_with("\\\"")) =>
            {
                chars.next();
            }
            '"' => quoted = !quoted,
            ' ' | '\t' if !quoted => return Ok(text.split_at(index)),
            _ => {}
        }
    }
    if quoted {
        return Err(LineError::UnterminatedQuote);
    }
    Ok((text, ""))
}

/// Each comma-separated option must be one sshd knows: a flag alone, or `name="value"`
/// (openssh-portable `auth-options.c` `sshauthopt_parse`, names ignoring ASCII case).
fn check_options(options: &str) -> Result<(), LineError> {
    let mut rest = options;
    loop {
        // For messages: the option as written, up to the next comma.
        let invalid =
            || LineError::InvalidOption(rest.split(',').next().unwrap_or(rest).to_owned());
        let name_end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
            .unwrap_or(rest.len());
        let (name, after) = rest.split_at(name_end);
        let lower = name.to_ascii_lowercase();
        let after = if VALUE_OPTIONS.contains(&lower.as_str()) {
            let Some(value) = after.strip_prefix("=\"") else {
                return Err(invalid());
            };
            let end = closing_quote(value).ok_or(LineError::UnterminatedQuote)?;
            value.get(end.saturating_add(1)..).unwrap_or_default()
        } else {
            let flag = lower.strip_prefix("no-").unwrap_or(&lower);
            let known = FLAG_OPTIONS.contains(&flag)
                || (PLAIN_FLAG_OPTIONS.contains(&lower.as_str()) && flag == lower);
            if !known {
                return Err(invalid());
            }
            after
        };
        if after.is_empty() {
            return Ok(());
        }
        // Anything but a comma after an option, or a comma with nothing after it (an empty
        // option), is refused by sshd too.
        match after.strip_prefix(',') {
            Some(next) if !next.is_empty() => rest = next,
            Some(_) => return Err(LineError::InvalidOption(String::new())),
            None => return Err(invalid()),
        }
    }
}

/// The byte index of the quote that ends a value (`\"` is an escaped quote).
fn closing_quote(value: &str) -> Option<usize> {
    let mut chars = value.char_indices();
    while let Some((index, c)) = chars.next() {
        match c {
            '\\' if value
                .get(index..)
                .is_some_and(|tail| tail.starts_with("\\\"")) =>
            {
                chars.next();
            }
            '"' => return Some(index),
            _ => {}
        }
    }
    None
}

/// The blob must start with the key type and be a whole public key of it, nothing after.
fn check_blob(key_type: &str, blob: &[u8]) -> Result<(), LineError> {
    let error = |reason: String| LineError::Blob {
        key_type: key_type.to_owned(),
        reason,
    };
    let named = blob_type(blob).ok_or_else(|| error("no key type in the blob".to_owned()))?;
    if named != key_type.as_bytes() {
        return Err(error(format!(
            "the blob is a {} key",
            String::from_utf8_lossy(named)
        )));
    }
    ssh_key::PublicKey::from_bytes(blob)
        .map(|_| ())
        .map_err(|problem| error(problem.to_string()))
}

/// The first SSH string of a blob: its key type.
fn blob_type(blob: &[u8]) -> Option<&[u8]> {
    let (length, rest) = blob.split_first_chunk::<4>()?;
    let length = usize::try_from(u32::from_be_bytes(*length)).ok()?;
    rest.get(..length)
}

/// Why a key has no fingerprint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FingerprintError {
    /// The base64 does not decode.
    #[error("key is not base64: {0}")]
    Base64(b64::B64Error),
    /// The blob is not a key of any known type.
    #[error("key blob does not parse: {0}")]
    Blob(String),
    /// The blob is a key of another type than the one given.
    #[error("key blob is a {blob} key, not {given}")]
    TypeMismatch {
        /// The type given (`%t`).
        given: String,
        /// The type in the blob.
        blob: String,
    },
}

/// The SHA-256 fingerprint of a key given as sshd gives it (`%t`, `%k`), as sshd passes `%f`
/// and `ssh-keygen -l` prints it: `SHA256:` and the unpadded base64 of the SHA-256 of the
/// plain key blob. For a certificate that is the certificate's key (openssh-portable
/// `sshkey_fingerprint_raw` serializes with `force_plain`).
///
/// # Errors
/// The key does not decode, or is not of type `key_type`.
pub fn fingerprint(key_type: &str, key_base64: &str) -> Result<String, FingerprintError> {
    let blob = b64::decode_std(key_base64).map_err(FingerprintError::Base64)?;
    let named = blob_type(&blob).unwrap_or_default();
    if named != key_type.as_bytes() {
        return Err(FingerprintError::TypeMismatch {
            given: key_type.to_owned(),
            blob: String::from_utf8_lossy(named).into_owned(),
        });
    }
    let key = ssh_key::PublicKey::from_bytes(&blob)
        .map_err(|error| FingerprintError::Blob(error.to_string()))?;
    let plain = match key.key_data() {
        KeyData::Certificate(certificate) => certificate.public_key(),
        other => other,
    };
    Ok(plain.fingerprint(ssh_key::HashAlg::Sha256).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED25519: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIMkzVf8SLAY02MgRfPk/PzkTXb+QHsAc1HS8LqQ6kLMs";

    fn key(line: &str) -> KeyLine<'_> {
        match parse_line(line) {
            Ok(Line::Key(key)) => key,
            other => panic!("{line}: {other:?}"),
        }
    }

    #[test]
    fn plain_lines() {
        let line = format!("ssh-ed25519 {ED25519} alice@host");
        let parsed = key(&line);
        assert_eq!(parsed.options, None);
        assert_eq!(parsed.key_type, "ssh-ed25519");
        assert_eq!(parsed.key_base64, ED25519);
        assert_eq!(parsed.comment, "alice@host");
        let line = format!(" \tssh-ed25519\t{ED25519}  two words \t");
        let parsed = key(&line);
        assert_eq!(parsed.comment, "two words");
        assert_eq!(parsed.text, format!("ssh-ed25519\t{ED25519}  two words"));
        assert_eq!(key(&format!("ssh-ed25519 {ED25519}")).comment, "");
        assert_eq!(parse_line(""), Ok(Line::Blank));
        assert_eq!(parse_line(" \t "), Ok(Line::Blank));
        assert_eq!(parse_line("  # ssh-ed25519 x"), Ok(Line::Comment));
    }

    #[test]
    fn options_as_sshd_reads_them() {
        for options in [
            "no-pty",
            "NO-PTY",
            "restrict,pty",
            "cert-authority",
            r#"from="10.0.0.1,192.168.0.0/16""#,
            r#"command="echo \"a b\", c",no-agent-forwarding"#,
            r#"environment="A=B",expiry-time="20300101",principals="alice,bob""#,
            r#"permitopen="host:22",permitlisten="1234",tunnel="1",no-touch-required,verify-required"#,
        ] {
            let line = format!("{options} ssh-ed25519 {ED25519} c");
            let parsed = key(&line);
            assert_eq!(parsed.options, Some(options), "{line}");
            assert_eq!(parsed.key_type, "ssh-ed25519");
        }
        for (options, error) in [
            ("bogus", LineError::InvalidOption("bogus".into())),
            (
                "no-restrict",
                LineError::InvalidOption("no-restrict".into()),
            ),
            (
                "no-cert-authority",
                LineError::InvalidOption("no-cert-authority".into()),
            ),
            ("pty=\"x\"", LineError::InvalidOption("pty=\"x\"".into())),
            ("command=x", LineError::InvalidOption("command=x".into())),
            ("command", LineError::InvalidOption("command".into())),
            ("pty,", LineError::InvalidOption(String::new())),
            ("pty,,no-pty", LineError::InvalidOption(String::new())),
            (
                "command=\"x\"y",
                LineError::InvalidOption("command=\"x\"y".into()),
            ),
            ("command=\"unterminated", LineError::UnterminatedQuote),
        ] {
            let line = format!("{options} ssh-ed25519 {ED25519}");
            assert_eq!(parse_line(&line), Err(error), "{line}");
        }
        assert_eq!(parse_line("no-pty"), Err(LineError::MissingKey));
        assert_eq!(
            parse_line("no-pty ssh-foo AAAA"),
            Err(LineError::UnknownKeyType("ssh-foo".into()))
        );
    }

    #[test]
    fn malformed_lines_are_refused() {
        assert_eq!(
            parse_line("hello world"),
            Err(LineError::InvalidOption("hello".into()))
        );
        assert_eq!(parse_line("ssh-ed25519"), Err(LineError::MissingBase64));
        assert!(matches!(
            parse_line("ssh-ed25519 AAAA%"),
            Err(LineError::Base64(_))
        ));
        // A length no encoder writes.
        assert!(matches!(
            parse_line(&format!(
                "ssh-ed25519 {}",
                ED25519.get(..ED25519.len() - 2).unwrap()
            )),
            Err(LineError::Base64(_))
        ));
        assert_eq!(
            parse_line(&format!("ssh-ed25519 {ED25519}\r")),
            Err(LineError::ControlCharacter('\r'))
        );
        assert_eq!(
            parse_line(&format!("ssh-ed25519 {ED25519} a\0b")),
            Err(LineError::ControlCharacter('\0'))
        );
        // An ed25519 blob named as another type.
        assert!(matches!(
            parse_line(&format!("ssh-rsa {ED25519}")),
            Err(LineError::Blob { .. })
        ));
        // A blob one byte short, and one with a byte after the key.
        let blob = b64::decode_std(ED25519).unwrap();
        let short = b64::encode_std(blob.get(..blob.len() - 1).unwrap());
        assert!(matches!(
            parse_line(&format!("ssh-ed25519 {short}")),
            Err(LineError::Blob { .. })
        ));
        let mut long = blob.clone();
        long.push(0);
        assert!(matches!(
            parse_line(&format!("ssh-ed25519 {}", b64::encode_std(&long))),
            Err(LineError::Blob { .. })
        ));
        // A certificate type is not accepted in a line.
        assert!(matches!(
            parse_line(&format!("ssh-ed25519-cert-v01@openssh.com {ED25519}")),
            Err(LineError::InvalidOption(_))
        ));
    }

    #[test]
    fn fingerprint_of_a_plain_key() {
        // `ssh-keygen -lf` on this key printed
        // `256 SHA256:f1o3WD+sDhTbyiZqbjt3o214+w6bFJrQTQygCwZrsnE t (ED25519)`; the tests crate
        // compares with ssh-keygen run live, for every key type and a certificate.
        assert_eq!(
            fingerprint("ssh-ed25519", ED25519).unwrap(),
            "SHA256:f1o3WD+sDhTbyiZqbjt3o214+w6bFJrQTQygCwZrsnE"
        );
        assert!(matches!(
            super::fingerprint("ssh-rsa", ED25519),
            Err(FingerprintError::TypeMismatch { .. })
        ));
        assert!(matches!(
            super::fingerprint("ssh-ed25519", "AAAA%"),
            Err(FingerprintError::Base64(_))
        ));
    }
}
