//! Owners and modes of files, and opens that neither follow a symlink nor wait.
//!
//! Unix answers with `fstat`'s owner, group and permission bits, read from the open file. Windows
//! keeps owners and access in ACLs, which this crate does not read yet: [`attributes`] then
//! fails with [`Unsupported`], so a rule about them is never taken as met, and setting a mode
//! changes nothing (a file made in the user's profile inherits the profile's ACL).

use crate::Unsupported;
use std::fs::{DirBuilder, File, Metadata, OpenOptions};
use std::path::Path;

#[cfg(unix)]
use std::os::unix::fs::{
    DirBuilderExt as _, MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _,
};
#[cfg(windows)]
use std::os::windows::fs::OpenOptionsExt as _;

/// `FILE_FLAG_OPEN_REPARSE_POINT`: a symlink is opened as itself, not followed.
#[cfg(windows)]
const OPEN_REPARSE_POINT: u32 = 0x0020_0000;

#[cfg(windows)]
const NO_OWNERS: Unsupported = Unsupported {
    what: "file owners and modes",
};

/// A file's owner, group and permission bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attributes {
    /// Permission bits with the set-id and sticky bits (`mode & 0o7777`).
    pub mode: u32,
    /// The owner's uid.
    pub uid: u32,
    /// The group's gid.
    pub gid: u32,
}

/// The owner, group and mode in `metadata`.
///
/// # Errors
/// [`Unsupported`] where files have no Unix owner and mode (Windows).
pub fn attributes(metadata: &Metadata) -> Result<Attributes, Unsupported> {
    #[cfg(unix)]
    {
        Ok(Attributes {
            mode: metadata.mode() & 0o7777,
            uid: metadata.uid(),
            gid: metadata.gid(),
        })
    }
    #[cfg(windows)]
    {
        let _ = metadata;
        Err(NO_OWNERS)
    }
}

/// A text that changes when the file is replaced or modified: on Unix `<inode> <size>
/// <mtime>.<nanoseconds>`, elsewhere `<size> <modified time since the epoch, in ns>`.
pub fn change_stamp(metadata: &Metadata) -> String {
    #[cfg(unix)]
    {
        format!(
            "{} {} {}.{}",
            metadata.ino(),
            metadata.size(),
            metadata.mtime(),
            metadata.mtime_nsec()
        )
    }
    #[cfg(windows)]
    {
        let modified = metadata
            .modified()
            .ok()
            .and_then(|time| time.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |since| since.as_nanos());
        format!("{} {modified}", metadata.len())
    }
}

/// What an open must not do, beyond std's options.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Guards {
    /// Do not follow a symlink as the last component: on Unix the open fails
    /// ([`is_symlink_refusal`]); on Windows the link itself is opened, and its metadata says so.
    pub no_follow: bool,
    /// Do not wait: a FIFO or a device in a file's place opens at once (and is then refused by
    /// its type) instead of waiting for a writer forever. Nothing to do on Windows.
    pub non_blocking: bool,
    /// The permission bits of a file the open creates (Unix; the umask applies).
    pub create_mode: Option<u32>,
}

impl Guards {
    /// Refuses symlinks and never waits: how opkssh opens a file it checks before reading.
    pub const CAREFUL: Self = Self {
        no_follow: true,
        non_blocking: true,
        create_mode: None,
    };

    /// `OpenOptions` with these guards; the caller adds read, write, append, create….
    pub fn options(self) -> OpenOptions {
        let mut options = OpenOptions::new();
        #[cfg(unix)]
        {
            let mut flags = 0;
            if self.no_follow {
                flags |= libc::O_NOFOLLOW;
            }
            if self.non_blocking {
                flags |= libc::O_NONBLOCK;
            }
            options.custom_flags(flags);
            if let Some(mode) = self.create_mode {
                options.mode(mode);
            }
        }
        #[cfg(windows)]
        if self.no_follow {
            options.custom_flags(OPEN_REPARSE_POINT);
        }
        options
    }
}

/// Whether an open with [`Guards::no_follow`] failed because the path is a symlink.
pub fn is_symlink_refusal(error: &std::io::Error) -> bool {
    #[cfg(unix)]
    {
        error.raw_os_error() == Some(libc::ELOOP)
    }
    #[cfg(windows)]
    {
        let _ = error;
        false
    }
}

/// Why [`open_for_reading`] failed.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The last component is a symlink, and `no_follow` was asked.
    #[error("is a symlink")]
    Symlink,
    /// The open or the `fstat` failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Opens `path` for reading without waiting (and without following a symlink if `no_follow`),
/// with the open file's metadata. The caller checks the type: a FIFO or a device opens here.
///
/// # Errors
/// [`OpenError`].
pub fn open_for_reading(path: &Path, no_follow: bool) -> Result<(File, Metadata), OpenError> {
    let guards = Guards {
        no_follow,
        ..Guards::CAREFUL
    };
    let file = guards.options().read(true).open(path).map_err(|error| {
        if no_follow && is_symlink_refusal(&error) {
            OpenError::Symlink
        } else {
            OpenError::Io(error)
        }
    })?;
    let metadata = file.metadata()?;
    if no_follow && metadata.file_type().is_symlink() {
        return Err(OpenError::Symlink);
    }
    Ok((file, metadata))
}

/// Gives an open file its owner (if any), then exactly `mode`: `chown` clears set-id bits, and
/// the umask may have narrowed the mode at creation.
///
/// # Errors
/// I/O errors; on Windows, `ErrorKind::Unsupported` when an owner is asked (the mode is left
/// to the folder's inherited ACL).
pub fn set_owner_and_mode(
    file: &File,
    owner: Option<(u32, u32)>,
    mode: u32,
) -> std::io::Result<()> {
    if let Some(owner) = owner {
        set_file_owner(file, owner)?;
    }
    set_file_mode(file, mode)
}

/// Gives an open file the owner and group `(uid, gid)`.
///
/// # Errors
/// I/O errors; `ErrorKind::Unsupported` on Windows.
pub fn set_file_owner(file: &File, (uid, gid): (u32, u32)) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        std::os::unix::fs::fchown(file, Some(uid), Some(gid))
    }
    #[cfg(windows)]
    {
        let _ = (file, uid, gid);
        Err(NO_OWNERS.into())
    }
}

/// Gives an open file exactly `mode`, whatever the umask. Nothing on Windows, where the file
/// keeps the ACL it inherited.
///
/// # Errors
/// I/O errors.
pub fn set_file_mode(file: &File, mode: u32) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        file.set_permissions(std::fs::Permissions::from_mode(mode))
    }
    #[cfg(windows)]
    {
        let _ = (file, mode);
        Ok(())
    }
}

/// Gives the file at `path` exactly `mode` (following a symlink). Nothing on Windows.
///
/// # Errors
/// I/O errors.
pub fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
    }
    #[cfg(windows)]
    {
        let _ = (path, mode);
        Ok(())
    }
}

/// Changes the owner and group of the file at `path` (`None` keeps one).
///
/// # Errors
/// I/O errors; `ErrorKind::Unsupported` on Windows.
pub fn set_owner(path: &Path, uid: Option<u32>, gid: Option<u32>) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        std::os::unix::fs::chown(path, uid, gid)
    }
    #[cfg(windows)]
    {
        let _ = (path, uid, gid);
        Err(NO_OWNERS.into())
    }
}

/// A `DirBuilder` whose new folders get `mode` (Unix; the umask applies).
pub fn dir_builder(mode: u32) -> DirBuilder {
    #[cfg(unix)]
    {
        let mut builder = DirBuilder::new();
        builder.mode(mode);
        builder
    }
    #[cfg(windows)]
    {
        let _ = mode;
        DirBuilder::new()
    }
}

/// Whether `path` itself (not what a symlink there points to) is a Unix socket. Always
/// `false` on Windows.
pub fn is_socket(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt as _;
        std::fs::symlink_metadata(path).is_ok_and(|metadata| metadata.file_type().is_socket())
    }
    #[cfg(windows)]
    {
        let _ = path;
        false
    }
}

#[cfg(all(test, unix))]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn a_symlink_is_refused_only_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        std::fs::write(&target, "x").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(matches!(
            open_for_reading(&link, true),
            Err(OpenError::Symlink)
        ));
        let (_, metadata) = open_for_reading(&link, false).unwrap();
        assert!(metadata.is_file());
    }

    #[test]
    fn a_fifo_opens_at_once_and_shows_its_type() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        // No writer ever comes: a blocking open would hang this test.
        let (_, metadata) = open_for_reading(&fifo, true).unwrap();
        assert!(!metadata.is_file());
    }

    #[test]
    fn modes_are_set_exactly_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let file = File::create(&path).unwrap();
        set_owner_and_mode(&file, None, 0o640).unwrap();
        let attributes = attributes(&std::fs::metadata(&path).unwrap()).unwrap();
        assert_eq!(attributes.mode, 0o640);
        assert_eq!(Some(attributes.uid), crate::account::effective_uid());
    }
}
