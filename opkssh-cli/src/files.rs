//! Writing files so that nothing is lost: every write goes to a temporary file in the target's
//! folder, created with its final mode (a private key is never readable by others, not even
//! for an instant), flushed to disk, then renamed over the target.

use opk_core::jws::SigningKey;
use opk_core::sshcert::{CertComment, CertError, OpksshCertificate, private_key_to_openssh};
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

/// Mode of a private key file, as Go and OpenSSH require.
pub const PRIVATE_KEY_MODE: u32 = 0o600;
/// Mode of a certificate (`-cert.pub`) file.
pub const CERTIFICATE_MODE: u32 = 0o644;

/// Why a file could not be written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The target has no parent folder or file name.
    #[error("{0}: not a file path")]
    NotAFilePath(PathBuf),
    /// An I/O step failed.
    #[error("{path}: {source}")]
    Io {
        /// The file being written.
        path: PathBuf,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
    /// The key could not be encoded.
    #[error("encoding the private key: {0}")]
    Key(#[from] CertError),
}

/// Replaces `path` with `contents` atomically, the new file having exactly `mode`.
///
/// A crash at any point leaves either the old file or the new one, never a mix. The temporary
/// file is created with `O_EXCL` and `mode` from the start, and its mode is set again after
/// creation because the umask may have narrowed it.
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
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(WriteError::NotAFilePath(path.to_owned()));
    };
    let parent = if parent.as_os_str().is_empty() {
        Path::new(".")
    } else {
        parent
    };
    let io_error = |source| WriteError::Io {
        path: path.to_owned(),
        source,
    };
    let mut attempt = 0_u32;
    let (temporary, mut file) = loop {
        let mut temporary_name = std::ffi::OsString::from(".");
        temporary_name.push(name);
        temporary_name.push(format!(".tmp{}.{attempt}", std::process::id()));
        let temporary = parent.join(temporary_name);
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&temporary)
        {
            Ok(file) => break (temporary, file),
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists && attempt < 100 => {
                attempt += 1
            }
            Err(error) => return Err(io_error(error)),
        }
    };
    let result = (|| {
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::fchown(&file, Some(uid), Some(gid))?;
        }
        file.set_permissions(std::fs::Permissions::from_mode(mode))?;
        file.write_all(contents)?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)?;
        // Make the rename itself durable.
        File::open(parent)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    result.map_err(io_error)
}

/// Writes an SSH identity: the private key at `key_path` (0600, comment `openpubkey cert`) and
/// the certificate at `<key_path>-cert.pub` (0644) with the given comment (wire-format.md §6.3).
/// The certificate is written last so a reader never sees a certificate without its key.
///
/// # Errors
/// [`WriteError`].
pub fn write_identity(
    key_path: &Path,
    key: &SigningKey,
    certificate: &OpksshCertificate,
    comment: CertComment<'_>,
) -> Result<PathBuf, WriteError> {
    let pem = private_key_to_openssh(key)?;
    write_atomic(key_path, pem.as_bytes(), PRIVATE_KEY_MODE)?;
    let mut certificate_path = key_path.as_os_str().to_owned();
    certificate_path.push("-cert.pub");
    let certificate_path = PathBuf::from(certificate_path);
    write_atomic(
        &certificate_path,
        certificate.to_line(comment).as_bytes(),
        CERTIFICATE_MODE,
    )?;
    Ok(certificate_path)
}
