//! Where `opkssh login` writes the key pair and what `opkssh logout` may remove (behaviour.md
//! §2.2.7, §2.2.9, §2.3; wire-format.md §6.3): `-i <path>`, the `~/.ssh/opkssh` identity
//! directory, or the first usable default name in `~/.ssh`. A file holding a key that opkssh
//! did not write is never overwritten or removed.

use crate::files::{WriteError, Written, write_atomic, write_identity};
use opk_core::jws::SigningKey;
use opk_core::sshcert::{
    CertComment, OpksshCertificate, PRIVATE_KEY_COMMENT, UserKeyFile, UserKeyType,
};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The comment of a certificate opkssh wrote in `~/.ssh` or at `-i`.
pub const DEFAULT_CERT_COMMENT: &str = "openpubkey";
/// The include line `--configure` adds to `~/.ssh/config`.
pub const INCLUDE_LINE: &str = "Include ~/.ssh/opkssh/config";

/// Why the keys could not be placed or removed.
#[derive(Debug, thiserror::Error)]
pub enum PlacementError {
    /// Every default name holds a key opkssh did not write: each skipped key file and why.
    #[error(
        "no default ssh key file free for openpubkey ({}); opkssh never overwrites a key it did \
         not write: log in with -i <path> to write elsewhere",
        skipped_list(.0)
    )]
    NoFreeName(Vec<Skipped>),
    /// Writing failed.
    #[error(transparent)]
    Write(#[from] WriteError),
    /// Another I/O failure.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
    /// A logout check failed.
    #[error("{0}")]
    NotOurs(String),
    /// The key's path cannot be written into `~/.ssh/opkssh/config`.
    #[error(transparent)]
    Unquotable(#[from] UnquotablePath),
}

/// A path no ssh_config(5) quoting carries through every ssh version.
#[derive(Debug, thiserror::Error)]
#[error(
    "ssh cannot be given the path \"{}\": it contains {what}; move the key to a plain path \
     or link one to it",
    path.display()
)]
pub struct UnquotablePath {
    /// The path.
    pub path: PathBuf,
    /// What in it ssh would split or expand.
    pub what: &'static str,
}

impl PlacementError {
    /// The files this error's message names, for showing it ([`opk_core::escape::line_naming`]):
    /// each skipped key, the file that failed. A certificate's path is its key's with
    /// `-cert.pub` added, so the key's covers it. A [`Self::NotOurs`] names the key that was
    /// checked, which the caller knows.
    pub fn paths(&self) -> Vec<&Path> {
        match self {
            Self::NoFreeName(skipped) => skipped
                .iter()
                .map(|skipped| skipped.key_path.as_path())
                .collect(),
            Self::Write(error) => error.path().into_iter().collect(),
            Self::Io { path, .. } => vec![path],
            Self::NotOurs(_) => Vec::new(),
            Self::Unquotable(error) => vec![&error.path],
        }
    }
}

/// `path` as one argument of an ssh configuration line (`IdentityFile`, `-o CertificateFile=`),
/// which ssh splits at spaces unless quoted and in which it expands `%` tokens, `${VAR}` and a
/// leading `~` (ssh_config(5)): absolute, with `/` for `\` on Windows (which Win32-OpenSSH
/// reads alike), in double quotes, `%` doubled.
///
/// # Errors
/// [`UnquotablePath`] for what no quoting carries through every ssh version: `"`, `\`, `${`,
/// control characters.
pub fn ssh_config_path(path: &Path) -> Result<OsString, UnquotablePath> {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    let bytes = opk_os::dirs::path_for_ssh_config(opk_os::System::CURRENT, absolute.as_os_str());
    let unusable = if bytes.iter().any(u8::is_ascii_control) {
        Some("a control character")
    } else if bytes.contains(&b'"') {
        Some("a double quote")
    } else if bytes.contains(&b'\\') {
        Some("a backslash")
    } else if bytes.windows(2).any(|pair| pair == b"${") {
        Some("`${`")
    } else {
        None
    };
    let refused = |what| UnquotablePath {
        path: absolute.clone(),
        what,
    };
    if let Some(what) = unusable {
        return Err(refused(what));
    }
    let mut quoted = Vec::with_capacity(bytes.len().saturating_add(2));
    quoted.push(b'"');
    for byte in bytes {
        if byte == b'%' {
            quoted.push(b'%');
        }
        quoted.push(byte);
    }
    quoted.push(b'"');
    opk_os::os_string_from_bytes(quoted).ok_or_else(|| refused("bytes this system cannot name"))
}

/// The `IdentityFile` line for `key_path` as opkssh writes it (quoted, [`ssh_config_path`]),
/// and as Go's opkssh and earlier versions wrote it (the path as it is).
fn identity_file_lines(key_path: &Path) -> Result<(Vec<u8>, String), UnquotablePath> {
    let quoted = ssh_config_path(key_path)?;
    let mut line = b"IdentityFile ".to_vec();
    line.extend_from_slice(quoted.as_encoded_bytes());
    let absolute = std::path::absolute(key_path).unwrap_or_else(|_| key_path.to_owned());
    Ok((line, format!("IdentityFile {}", absolute.display())))
}

/// A default key name that holds a key opkssh did not write, and why it counts as the user's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The private key file.
    pub key_path: PathBuf,
    /// The check that failed.
    pub reason: String,
}

fn skipped_list(skipped: &[Skipped]) -> String {
    skipped
        .iter()
        .map(|skipped| format!("{}: {}", skipped.key_path.display(), skipped.reason))
        .collect::<Vec<_>>()
        .join("; ")
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PlacementError + '_ {
    move |source| PlacementError::Io {
        path: path.to_owned(),
        source,
    }
}

/// `<key>-cert.pub`.
pub fn cert_path(key_path: &Path) -> PathBuf {
    let mut name = key_path.as_os_str().to_owned();
    name.push("-cert.pub");
    PathBuf::from(name)
}

/// The default key names for a key type, in the order tried.
pub fn default_names(kind: UserKeyType) -> [&'static str; 2] {
    match kind {
        UserKeyType::Ecdsa => ["id_ecdsa", "id_ecdsa_sk"],
        UserKeyType::Ed25519 => ["id_ed25519", "id_ed25519_sk"],
    }
}

/// The first usable default name in `ssh_dir` (§2.2.7): a name with no private key, or one
/// whose certificate parses with the comment `openpubkey` *and* is the certificate of that
/// private key. A key without such a certificate is skipped and never touched: a stale
/// `openpubkey` certificate beside a key the user generated since (`ssh-keygen` into the same
/// name) does not make the key opkssh's.
///
/// # Errors
/// [`PlacementError::NoFreeName`] naming every skipped key and why.
pub fn choose_default(ssh_dir: &Path, kind: UserKeyType) -> Result<PathBuf, PlacementError> {
    let mut skipped = Vec::new();
    for name in default_names(kind) {
        let key_path = ssh_dir.join(name);
        if std::fs::symlink_metadata(&key_path).is_err() {
            return Ok(key_path);
        }
        match check_default_pair(&key_path) {
            Ok(()) => return Ok(key_path),
            Err(reason) => skipped.push(Skipped { key_path, reason }),
        }
    }
    Err(PlacementError::NoFreeName(skipped))
}

/// Whether an existing default name may be overwritten: its certificate's comment is exactly
/// `openpubkey` and the private key is that certificate's key (the check logout makes, with
/// Go's exact comment for the default names), or the private key file is one opkssh wrote
/// (its own comment is `openpubkey cert`, wire-format.md §6.3) beside an `openpubkey`
/// certificate: what a login killed between its two renames leaves ([`write_identity`]).
/// `ssh-keygen` writes `user@host` there unless told otherwise, so a key the user generated
/// into the name stays theirs.
///
/// # Errors
/// Why not, in words.
fn check_default_pair(key_path: &Path) -> Result<(), String> {
    let mismatch = match check_pair_with(key_path, |comment| comment == DEFAULT_CERT_COMMENT) {
        Ok(()) => return Ok(()),
        Err(mismatch) => mismatch,
    };
    if certificate_comment(key_path).as_deref() == Some(DEFAULT_CERT_COMMENT)
        && key_file_written_by_opkssh(key_path)
    {
        return Ok(());
    }
    Err(mismatch)
}

/// The comment of the certificate beside `key_path`, if it parses.
fn certificate_comment(key_path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(cert_path(key_path)).ok()?;
    let certificate = OpksshCertificate::from_line(&text).ok()?;
    Some(certificate.comment().to_owned())
}

/// Whether the private key file at `key_path` carries the comment opkssh writes into its keys.
fn key_file_written_by_opkssh(key_path: &Path) -> bool {
    std::fs::read_to_string(key_path)
        .ok()
        .and_then(|pem| UserKeyFile::from_openssh(&pem).ok())
        .is_some_and(|key| key.comment() == PRIVATE_KEY_COMMENT.as_bytes())
}

/// The identity-directory file name for an issuer and audience (§2.2.9): the issuer without
/// `https://`, `-`, the first 20 bytes of the audience, every run of characters outside
/// `[A-Za-z0-9_.-]` replaced by `_`.
pub fn identity_dir_name(issuer: &str, audience: &str) -> String {
    let issuer = issuer.strip_prefix("https://").unwrap_or(issuer);
    let audience_bytes = audience.as_bytes();
    let cut = audience_bytes.get(..20).unwrap_or(audience_bytes);
    let raw = format!("{issuer}-{}", String::from_utf8_lossy(cut));
    let mut out = String::with_capacity(raw.len());
    let mut in_run = false;
    for character in raw.chars() {
        if character.is_ascii_alphanumeric() || matches!(character, '_' | '.' | '-') {
            out.push(character);
            in_run = false;
        } else if !in_run {
            out.push('_');
            in_run = true;
        }
    }
    out
}

/// The user's home directory (`%USERPROFILE%` on Windows).
pub fn home_dir() -> Option<PathBuf> {
    opk_os::dirs::home_dir()
}

/// `~/.ssh/opkssh`.
pub fn identity_dir(home: &Path) -> PathBuf {
    home.join(".ssh").join("opkssh")
}

/// Whether identity-directory mode is on: `~/.ssh/config` includes it and
/// `~/.ssh/opkssh/config` exists.
pub fn identity_dir_active(home: &Path) -> bool {
    let includes = std::fs::read_to_string(home.join(".ssh").join("config"))
        .is_ok_and(|text| text.contains(INCLUDE_LINE));
    includes && identity_dir(home).join("config").is_file()
}

/// `opkssh login --configure` (§2.2.9): creates `~/.ssh/opkssh/` (0700) and its empty
/// `config` (0600), and prepends the include line to `~/.ssh/config` (0600) once.
///
/// # Errors
/// I/O failure.
pub fn configure_identity_dir(home: &Path) -> Result<(), PlacementError> {
    let ssh = home.join(".ssh");
    create_dir(&ssh, 0o700)?;
    let dir = identity_dir(home);
    create_dir(&dir, 0o700)?;
    let config = dir.join("config");
    if !config.exists() {
        write_atomic(&config, b"", 0o600)?;
    }
    let ssh_config = ssh.join("config");
    let existing = match std::fs::read_to_string(&ssh_config) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(error) => return Err(io(&ssh_config)(error)),
    };
    if !existing.contains(INCLUDE_LINE) {
        let mode = std::fs::metadata(&ssh_config)
            .ok()
            .and_then(|metadata| opk_os::file::attributes(&metadata).ok())
            .map_or(0o600, |attributes| attributes.mode);
        write_atomic(
            &ssh_config,
            format!("{INCLUDE_LINE}\n\n{existing}").as_bytes(),
            mode,
        )?;
    }
    Ok(())
}

fn create_dir(path: &Path, mode: u32) -> Result<(), PlacementError> {
    if path.is_dir() {
        return Ok(());
    }
    std::fs::create_dir_all(path).map_err(io(path))?;
    opk_os::file::set_mode(path, mode).map_err(io(path))
}

/// Where a login's files go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// `-i <path>`: written unconditionally, comment `openpubkey`.
    Explicit(PathBuf),
    /// `~/.ssh/opkssh/<name>`, comment `openpubkey: <iss> <aud>`, listed in its config.
    IdentityDir(PathBuf),
    /// A default name in `~/.ssh`.
    Default(PathBuf),
}

impl Destination {
    /// The private key path.
    pub fn key_path(&self) -> &Path {
        match self {
            Self::Explicit(path) | Self::IdentityDir(path) | Self::Default(path) => path,
        }
    }
}

/// Chooses the destination (§2.2.7): `-i` › identity directory › default names.
///
/// # Errors
/// No free default name.
pub fn choose(
    explicit: Option<&Path>,
    home: &Path,
    kind: UserKeyType,
    issuer: &str,
    audience: &str,
) -> Result<Destination, PlacementError> {
    if let Some(path) = explicit {
        return Ok(Destination::Explicit(path.to_owned()));
    }
    if identity_dir_active(home) {
        return Ok(Destination::IdentityDir(
            identity_dir(home).join(identity_dir_name(issuer, audience)),
        ));
    }
    let ssh = home.join(".ssh");
    create_dir(&ssh, 0o700)?;
    choose_default(&ssh, kind).map(Destination::Default)
}

/// Writes the key and certificate to `destination` (atomically, Go's modes and comments; on
/// Windows the key's ACL is the user's and SYSTEM's, [`Written::key_privacy`] saying whether
/// that could be checked). For the default names the choice is re-checked just before writing,
/// so a key the user put there in the meantime is still not overwritten.
///
/// # Errors
/// I/O failure, a key ACL that still lets others in, or the name is no longer ours.
pub fn write(
    destination: &Destination,
    key: &SigningKey,
    certificate: &OpksshCertificate,
    issuer: &str,
    audience: &str,
) -> Result<Written, PlacementError> {
    match destination {
        Destination::Explicit(path) => Ok(write_identity(
            path,
            key,
            certificate,
            CertComment::Default,
        )?),
        Destination::Default(path) => {
            if std::fs::symlink_metadata(path).is_ok()
                && let Err(reason) = check_default_pair(path)
            {
                return Err(PlacementError::NoFreeName(vec![Skipped {
                    key_path: path.clone(),
                    reason,
                }]));
            }
            Ok(write_identity(
                path,
                key,
                certificate,
                CertComment::Default,
            )?)
        }
        Destination::IdentityDir(path) => {
            let written = write_identity(
                path,
                key,
                certificate,
                CertComment::IdentityDir { issuer, audience },
            )?;
            if let Some(dir) = path.parent() {
                add_identity_file(&dir.join("config"), path)?;
            }
            Ok(written)
        }
    }
}

fn add_identity_file(config: &Path, key_path: &Path) -> Result<(), PlacementError> {
    let existing = std::fs::read_to_string(config).unwrap_or_default();
    let (line, legacy) = identity_file_lines(key_path)?;
    let present = existing
        .lines()
        .any(|written| written.as_bytes() == line.as_slice() || written == legacy);
    if present {
        return Ok(());
    }
    write_atomic(
        config,
        &[&line, b"\n".as_slice(), existing.as_bytes()].concat(),
        0o600,
    )?;
    Ok(())
}

/// Checks that `key_path` and its certificate are a pair opkssh wrote (§2.3): the certificate
/// parses with a comment starting `openpubkey`, and the private key parses and is the
/// certificate's key.
///
/// # Errors
/// [`PlacementError::NotOurs`] saying which check failed.
pub fn check_pair(key_path: &Path) -> Result<(), PlacementError> {
    check_pair_with(key_path, |comment| {
        comment.starts_with(DEFAULT_CERT_COMMENT)
    })
    .map_err(PlacementError::NotOurs)
}

/// The pair checks of [`check_pair`], with the rule for the certificate's comment.
fn check_pair_with(key_path: &Path, comment_is_ours: impl Fn(&str) -> bool) -> Result<(), String> {
    let cert = cert_path(key_path);
    let text = std::fs::read_to_string(&cert).map_err(|error| {
        format!(
            "could not read certificate file {}: {error}",
            cert.display()
        )
    })?;
    let certificate = OpksshCertificate::from_line(&text)
        .map_err(|error| format!("could not parse certificate {}: {error}", cert.display()))?;
    if !comment_is_ours(certificate.comment()) {
        return Err(format!("{} was not generated by opkssh", cert.display()));
    }
    let pem = std::fs::read_to_string(key_path)
        .map_err(|error| format!("could not read private key {}: {error}", key_path.display()))?;
    let key = UserKeyFile::from_openssh(&pem).map_err(|error| {
        format!(
            "could not parse private key {}: {error}",
            key_path.display()
        )
    })?;
    if !certificate.matches_upk(&key.key().public_key()) {
        return Err(format!(
            "private key {} does not match certificate {}",
            key_path.display(),
            cert.display()
        ));
    }
    Ok(())
}

/// Removes a checked pair: the private key first, then the certificate (§2.3).
///
/// # Errors
/// I/O failure.
pub fn remove_pair(key_path: &Path) -> Result<PathBuf, PlacementError> {
    std::fs::remove_file(key_path).map_err(io(key_path))?;
    let cert = cert_path(key_path);
    std::fs::remove_file(&cert).map_err(io(&cert))?;
    Ok(cert)
}

/// Removes `key_path`'s `IdentityFile` line from the identity directory's config: as opkssh
/// writes it, quoted, or as Go's opkssh and earlier versions wrote it.
///
/// # Errors
/// I/O failure.
pub fn remove_identity_file(config: &Path, key_path: &Path) -> Result<(), PlacementError> {
    let Ok(existing) = std::fs::read_to_string(config) else {
        return Ok(());
    };
    let legacy = format!("IdentityFile {}", key_path.display());
    let quoted = identity_file_lines(key_path).ok().map(|(line, _)| line);
    let kept: Vec<&str> = existing
        .split_inclusive('\n')
        .filter(|line| {
            let line = line.trim_end_matches(['\n', '\r']);
            line != legacy && quoted.as_deref() != Some(line.as_bytes())
        })
        .collect();
    if kept.concat() != existing {
        write_atomic(config, kept.concat().as_bytes(), 0o600)?;
    }
    Ok(())
}

/// The candidates `logout` checks without `-i`: the four default names, then every file in
/// `~/.ssh/opkssh/` except `config` and `*-cert.pub`.
pub fn logout_candidates(home: &Path) -> Vec<(PathBuf, bool)> {
    let ssh = home.join(".ssh");
    let mut found: Vec<(PathBuf, bool)> =
        ["id_ecdsa", "id_ecdsa_sk", "id_ed25519", "id_ed25519_sk"]
            .iter()
            .map(|name| ssh.join(name))
            .filter(|path| path.is_file())
            .map(|path| (path, false))
            .collect();
    if let Ok(entries) = std::fs::read_dir(identity_dir(home)) {
        let mut names: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|path| {
                path.is_file()
                    && path.file_name().is_some_and(|name| {
                        let name = name.to_string_lossy();
                        name != "config" && !name.ends_with("-cert.pub")
                    })
            })
            .collect();
        names.sort();
        found.extend(names.into_iter().map(|path| (path, true)));
    }
    found
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use super::*;

    #[test]
    fn identity_file_lines_are_quoted_with_percent_doubled() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config");
        let key = dir.path().join("John Smith").join("id_50%");
        add_identity_file(&config, &key).unwrap();
        add_identity_file(&config, &key).unwrap();
        let written = std::fs::read_to_string(&config).unwrap();
        assert_eq!(
            written,
            format!(
                "IdentityFile \"{}/John Smith/id_50%%\"\n",
                dir.path().display()
            )
        );
        remove_identity_file(&config, &key).unwrap();
        assert_eq!(std::fs::read_to_string(&config).unwrap(), "");
    }

    #[test]
    fn an_unquoted_identity_file_line_from_go_is_still_removed() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config");
        let key = dir.path().join("id");
        std::fs::write(
            &config,
            format!("IdentityFile {}\nIdentityFile /other\n", key.display()),
        )
        .unwrap();
        add_identity_file(&config, &key).unwrap();
        assert_eq!(std::fs::read_to_string(&config).unwrap().lines().count(), 2);
        remove_identity_file(&config, &key).unwrap();
        assert_eq!(
            std::fs::read_to_string(&config).unwrap(),
            "IdentityFile /other\n"
        );
    }

    #[test]
    fn a_path_ssh_would_split_or_expand_is_refused() {
        for (path, what) in [
            ("/home/a\nHost *", "a control character"),
            ("/home/a\"b", "a double quote"),
            ("/home/a\\b", "a backslash"),
            ("/home/${HOME}/id", "`${`"),
        ] {
            let error = ssh_config_path(Path::new(path)).unwrap_err();
            assert_eq!(error.what, what, "{path:?}");
            let dir = tempfile::tempdir().unwrap();
            let config = dir.path().join("config");
            assert!(matches!(
                add_identity_file(&config, Path::new(path)),
                Err(PlacementError::Unquotable(_))
            ));
            assert!(!config.exists(), "{path:?}");
        }
    }

    /// The real ssh reads the line back as the path: `ssh -G` prints the configuration it
    /// parsed (`%` tokens not yet expanded, so `%%` stays doubled).
    #[cfg(unix)]
    #[test]
    fn ssh_reads_the_quoted_identity_file_back_as_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config");
        let key = dir.path().join("Program Files").join("it's id");
        add_identity_file(&config, &key).unwrap();
        let output = std::process::Command::new("ssh")
            .arg("-G")
            .arg("-F")
            .arg(&config)
            .arg("example.invalid")
            .output()
            .expect("ssh (OpenSSH's client) must be installed for this test");
        assert!(output.status.success(), "{output:?}");
        let stdout = String::from_utf8(output.stdout).unwrap();
        let identity_files: Vec<&str> = stdout
            .lines()
            .filter_map(|line| line.strip_prefix("identityfile "))
            .collect();
        assert_eq!(identity_files, [key.to_str().unwrap()], "{stdout}");
    }
}
