//! Writing files so that nothing is lost: every write goes through [`opk_os::atomic_file`] (a
//! temporary file in the target's folder, created with its final mode so a private key is never
//! readable by others, flushed to disk, then renamed over the target).

use opk_core::jws::SigningKey;
use opk_core::sshcert::{CertComment, CertError, OpksshCertificate, private_key_to_openssh};
use opk_os::atomic_file::{self, AtomicWriteError, FileMode};
use opk_os::private_file::Privacy;
use std::path::{Path, PathBuf};

/// Mode of a private key file, as Go and OpenSSH require.
pub const PRIVATE_KEY_MODE: u32 = 0o600;
/// Mode of a certificate (`-cert.pub`) file.
pub const CERTIFICATE_MODE: u32 = 0o644;

/// Why a file could not be written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// A step of the atomic replacement failed (the error names the file and the step).
    #[error(transparent)]
    Write(#[from] AtomicWriteError),
    /// The key could not be encoded.
    #[error("encoding the private key: {0}")]
    Key(#[from] CertError),
}

impl WriteError {
    /// The file this error names, if it names one.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Self::Write(error) => Some(&error.path),
            Self::Key(_) => None,
        }
    }
}

/// Replaces `path` with `contents` atomically, the new file having exactly `mode`
/// ([`opk_os::atomic_file`]: the old file or the new one survives a crash, never a mix).
///
/// # Errors
/// [`WriteError`] naming the file.
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<(), WriteError> {
    write_atomic_owned(path, contents, mode, None)
}

/// Like [`write_atomic`], and the new file also has the owner `(uid, gid)` before it is renamed
/// over the target, so it never appears with another owner (needs root to give files away).
///
/// # Errors
/// [`WriteError`] naming the file.
pub fn write_atomic_owned(
    path: &Path,
    contents: &[u8],
    mode: u32,
    owner: Option<(u32, u32)>,
) -> Result<(), WriteError> {
    Ok(atomic_file::replace(
        path,
        contents,
        FileMode { mode, owner },
    )?)
}

/// The certificate file that goes with the key file `key_path`: `<key_path>-cert.pub`, where
/// `ssh` looks for it.
pub fn certificate_path(key_path: &Path) -> PathBuf {
    let mut path = key_path.as_os_str().to_owned();
    path.push("-cert.pub");
    PathBuf::from(path)
}

/// Writes only the certificate of `key_path`, at `<key_path>-cert.pub` (0644), for a key that
/// has no file because an ssh-agent holds it (`--agent-key`): `ssh` uses it with
/// `CertificateFile` and signs with the agent's key.
///
/// # Errors
/// [`WriteError`] naming the file.
pub fn write_certificate(
    key_path: &Path,
    certificate: &OpksshCertificate,
    comment: CertComment<'_>,
) -> Result<PathBuf, WriteError> {
    let path = certificate_path(key_path);
    write_atomic(
        &path,
        certificate.to_line(comment).as_bytes(),
        CERTIFICATE_MODE,
    )?;
    Ok(path)
}

/// What [`write_identity`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// The certificate file.
    pub certificate: PathBuf,
    /// Whether the private key is known to be private: always on Unix (its mode); on Windows,
    /// whether its ACL of the user and SYSTEM could be set and read back
    /// ([`opk_os::private_file`]). A key that others can still use is never written.
    pub key_privacy: Privacy,
}

/// Writes an SSH identity: the private key at `key_path` (0600, comment `openpubkey cert`; on
/// Windows an ACL of the user and SYSTEM only, as `ssh.exe` wants) and the certificate at
/// `<key_path>-cert.pub` (0644) with the given comment (wire-format.md §6.3).
///
/// Both files are written and flushed before either is renamed into place, key first, so a
/// reader never sees a certificate without its key and the two renames are all that separates
/// the old pair from the new one. A crash exactly between them leaves the new key beside the
/// old certificate: `ssh` ignores a certificate that does not match its key. The next login
/// replaces both: under `-i` and in the identity directory by name, and on a default name in
/// `~/.ssh` because the key file carries opkssh's comment ([`crate::placement`]), which a key
/// the user generated into that name does not.
///
/// # Errors
/// [`WriteError`], also when the key's ACL still lets others in after opkssh set it.
pub fn write_identity(
    key_path: &Path,
    key: &SigningKey,
    certificate: &OpksshCertificate,
    comment: CertComment<'_>,
) -> Result<Written, WriteError> {
    let pem = private_key_to_openssh(key)?;
    let certificate_path = certificate_path(key_path);
    let new_key = atomic_file::prepare(key_path, pem.as_bytes(), FileMode::mode(PRIVATE_KEY_MODE))?;
    let key_privacy = new_key.privacy().cloned().unwrap_or(Privacy::Private);
    let new_certificate = atomic_file::prepare(
        &certificate_path,
        certificate.to_line(comment).as_bytes(),
        FileMode::mode(CERTIFICATE_MODE),
    )?;
    new_key.commit()?;
    new_certificate.commit()?;
    atomic_file::sync_folder(key_path);
    Ok(Written {
        certificate: certificate_path,
        key_privacy,
    })
}
