//! File mode and ownership rules (behaviour.md §3.7), checked on the open file's metadata
//! (`fstat`), never by running `stat`, so the checked file is the file that is read.

use crate::error::{FileError, FileErrorKind, Location};
use std::fs::{File, Metadata};
use std::io::Read;
use std::path::Path;

/// The group that may read system files (sshd's `AuthorizedKeysCommandUser`).
pub const OPKSSH_GROUP: &str = "opksshuser";

/// Who must own a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// Not checked.
    Any,
    /// uid 0.
    Root,
    /// This uid (a home file's user).
    Uid(u32),
}

/// Which group must own a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupOwner {
    /// Not checked.
    Any,
    /// The group of this name.
    Named(&'static str),
}

/// What a file must look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Requirement {
    /// Allowed permission bits (`mode & 0o7777`), any of them.
    pub modes: &'static [u32],
    /// Owner.
    pub owner: Owner,
    /// Group.
    pub group: GroupOwner,
    /// Refuse a symlink as the last path component.
    pub no_symlink: bool,
    /// Must be a directory (otherwise a regular file).
    pub directory: bool,
    /// The most bytes [`read_checked`] reads before refusing the file.
    pub max_size: u64,
}

impl Requirement {
    /// `/etc/opk/auth_id` and `/etc/opk/providers` as `verify`, `add` and `audit` load them:
    /// mode exactly 0640, and (stricter than Go, which checks the mode only) owned by root,
    /// since a non-root owner could grant themselves any account.
    pub const SYSTEM_FILE: Self = Self {
        modes: &[0o640],
        owner: Owner::Root,
        group: GroupOwner::Any,
        no_symlink: false,
        directory: false,
        max_size: MAX_FILE_SIZE,
    };
    /// What `permissions` and `audit` want for system files: 0640 root:opksshuser.
    pub const SYSTEM_FILE_STRICT: Self = Self {
        group: GroupOwner::Named(OPKSSH_GROUP),
        ..Self::SYSTEM_FILE
    };
    /// `/etc/opk/config.yml`: 0640 root:opksshuser.
    pub const CONFIG_FILE: Self = Self::SYSTEM_FILE_STRICT;
    /// `/etc/opk/policy.d`: 0700, 0750 or 0755, owned by root.
    pub const PLUGIN_DIR: Self = Self {
        modes: &[0o700, 0o750, 0o755],
        owner: Owner::Root,
        group: GroupOwner::Any,
        no_symlink: false,
        directory: true,
        max_size: MAX_FILE_SIZE,
    };
    /// `policy.d/*.yml`: 0640, owned by root.
    pub const PLUGIN_FILE: Self = Self {
        modes: &[0o640],
        owner: Owner::Root,
        group: GroupOwner::Any,
        no_symlink: false,
        directory: false,
        max_size: MAX_FILE_SIZE,
    };
    /// A plugin's command: 0555 or 0755, owned by root.
    pub const PLUGIN_COMMAND: Self = Self {
        modes: &[0o555, 0o755],
        owner: Owner::Root,
        group: GroupOwner::Any,
        no_symlink: false,
        directory: false,
        max_size: MAX_FILE_SIZE,
    };

    /// `/etc/opk/auth_id` as `verify` reads it: [`Self::SYSTEM_FILE`], up to
    /// [`DEFAULT_MAX_POLICY_SIZE`] (`max_policy_size` in `config.yml` changes it).
    pub const AUTH_ID_FILE: Self = Self::SYSTEM_FILE.with_max_size(DEFAULT_MAX_POLICY_SIZE);

    /// `~/.opk/auth_id`: 0600, owned by the user, not a symlink, up to
    /// [`DEFAULT_MAX_POLICY_SIZE`].
    pub const fn home_file(uid: u32) -> Self {
        Self {
            modes: &[0o600],
            owner: Owner::Uid(uid),
            group: GroupOwner::Any,
            no_symlink: true,
            directory: false,
            max_size: DEFAULT_MAX_POLICY_SIZE,
        }
    }

    /// The same rule with another size limit.
    #[must_use]
    pub const fn with_max_size(self, max_size: u64) -> Self {
        Self { max_size, ..self }
    }
}

pub use crate::error::PermError;

/// `name (uid N)` or `uid N` when the user database has no name.
pub fn user_name(uid: u32) -> String {
    crate::error::user_name(uid)
}

/// A group's name, or `gid N`.
pub fn group_name(gid: u32) -> String {
    crate::error::group_name(gid)
}

/// The effective uid of this process (`u32::MAX`, nobody's, where there are no uids).
pub fn effective_uid() -> u32 {
    opk_os::account::effective_uid().unwrap_or(u32::MAX)
}

/// The uid of a user name.
pub fn user_id(name: &str) -> Option<u32> {
    opk_os::account::user_id(name)
}

/// The gid of a group name.
pub fn group_id(name: &str) -> Option<u32> {
    opk_os::account::group_id(name)
}

/// Checks metadata against a requirement (the symlink rule is checked at open time).
///
/// # Errors
/// The first rule the file breaks: type, owner, group, then mode.
pub fn check(metadata: &Metadata, requirement: &Requirement) -> Result<(), PermError> {
    let right_type = if requirement.directory {
        metadata.is_dir()
    } else {
        metadata.is_file()
    };
    if !right_type {
        return Err(PermError::WrongType);
    }
    // Where owners and modes cannot be read, no rule about them is met.
    let attributes = opk_os::file::attributes(metadata).map_err(PermError::Unsupported)?;
    let expected_uid = match requirement.owner {
        Owner::Any => None,
        Owner::Root => Some(0),
        Owner::Uid(uid) => Some(uid),
    };
    if let Some(expected) = expected_uid
        && attributes.uid != expected
    {
        return Err(PermError::Owner {
            expected,
            got: attributes.uid,
        });
    }
    if let GroupOwner::Named(name) = requirement.group {
        let Some(gid) = group_id(name) else {
            return Err(PermError::NoSuchGroup(name));
        };
        if attributes.gid != gid {
            return Err(PermError::Group {
                expected: name,
                got: attributes.gid,
            });
        }
    }
    let mode = attributes.mode;
    if !requirement.modes.contains(&mode) {
        return Err(PermError::Mode {
            expected: requirement.modes,
            got: mode,
        });
    }
    Ok(())
}

/// Checks a path (following symlinks unless the requirement forbids them).
///
/// # Errors
/// [`FileErrorKind::Io`] if it cannot be inspected, [`FileErrorKind::Permissions`] if it
/// breaks a rule.
pub fn check_path(path: &Path, requirement: &Requirement) -> Result<(), FileError> {
    let location = Location::file(path);
    if requirement.no_symlink {
        let link = std::fs::symlink_metadata(path)
            .map_err(|error| FileError::new(location.clone(), FileErrorKind::io(&error)))?;
        if link.file_type().is_symlink() {
            return Err(FileError::new(
                location,
                FileErrorKind::Permissions(PermError::Symlink),
            ));
        }
    }
    let metadata = std::fs::metadata(path)
        .map_err(|error| FileError::new(location.clone(), FileErrorKind::io(&error)))?;
    check(&metadata, requirement)
        .map_err(|error| FileError::new(location, FileErrorKind::Permissions(error)))
}

/// Why a command may not be run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandError {
    /// Its path is not absolute.
    NotAbsolute,
    /// It cannot be inspected, or breaks [`Requirement::PLUGIN_COMMAND`].
    File(FileError),
}

/// The rule for a command verify runs (a policy plugin's, or the chained
/// `AuthorizedKeysCommand`): an absolute path to a regular file owned by root, mode 0555 or
/// 0755, so that nobody but root can change what runs (Go's rule for plugin commands).
///
/// # Errors
/// [`CommandError`] naming the rule broken.
pub fn check_command(program: &Path) -> Result<(), CommandError> {
    if !program.is_absolute() {
        return Err(CommandError::NotAbsolute);
    }
    check_path(program, &Requirement::PLUGIN_COMMAND).map_err(CommandError::File)
}

/// The most a providers, config or plugin file may hold.
pub const MAX_FILE_SIZE: u64 = 4 * 1024 * 1024;

/// The most an `auth_id` file may hold unless `config.yml` says otherwise: room for about
/// 1.4 million rows. A bound remains so that a runaway file cannot exhaust memory, but it is
/// far above any real fleet's policy (Go has none; ours was 4 MiB, about 90,000 rows).
pub const DEFAULT_MAX_POLICY_SIZE: u64 = 64 * 1024 * 1024;

/// Opens a regular file for reading (with `O_NOFOLLOW` if symlinks are refused) and returns
/// it with its metadata, without checking anything else.
///
/// The open never blocks: with `O_NONBLOCK`, a FIFO or a device in the file's place opens at
/// once and is refused here by its type, where a plain open would wait for a writer forever,
/// holding sshd's login slot (or, under `sudo readhome`, a root process nobody can kill).
/// On a regular file `O_NONBLOCK` changes nothing.
///
/// # Errors
/// [`FileErrorKind::Permissions`] with [`PermError::Symlink`] for a refused symlink or
/// [`PermError::WrongType`] for anything but a regular file, [`FileErrorKind::Io`] otherwise.
pub fn open(path: &Path, no_symlink: bool) -> Result<(File, Metadata), FileError> {
    let location = Location::file(path);
    let (file, metadata) =
        opk_os::file::open_for_reading(path, no_symlink).map_err(|error| match error {
            opk_os::file::OpenError::Symlink => FileError::new(
                location.clone(),
                FileErrorKind::Permissions(PermError::Symlink),
            ),
            opk_os::file::OpenError::Io(error) => {
                FileError::new(location.clone(), FileErrorKind::io(&error))
            }
        })?;
    if !metadata.is_file() {
        return Err(FileError::new(
            location,
            FileErrorKind::Permissions(PermError::WrongType),
        ));
    }
    Ok((file, metadata))
}

/// Reads an open file, refusing more than `max_size` bytes.
///
/// # Errors
/// Read failures, or a file that is too large.
pub fn read_limited(mut file: File, path: &Path, max_size: u64) -> Result<Vec<u8>, FileError> {
    let location = Location::file(path);
    let mut content = Vec::new();
    file.by_ref()
        .take(max_size.saturating_add(1))
        .read_to_end(&mut content)
        .map_err(|error| FileError::new(location.clone(), FileErrorKind::io(&error)))?;
    if u64::try_from(content.len()).unwrap_or(u64::MAX) > max_size {
        return Err(FileError::new(
            location,
            FileErrorKind::Invalid(format!("file is larger than {max_size} bytes")),
        ));
    }
    Ok(content)
}

/// Opens a file (with `O_NOFOLLOW` if symlinks are refused), checks the open file's metadata
/// and reads it through the same handle.
///
/// # Errors
/// Open or read failures ([`FileErrorKind::Io`], with `ErrorKind::PermissionDenied` when the
/// process may not read it), broken rules, or a file over the requirement's `max_size`.
pub fn read_checked(path: &Path, requirement: &Requirement) -> Result<Vec<u8>, FileError> {
    read_limited(open_checked(path, requirement)?, path, requirement.max_size)
}

/// [`read_checked`] without the read, for a caller that streams the file (and enforces
/// `max_size` itself).
///
/// # Errors
/// As [`read_checked`], but for the size.
pub fn open_checked(path: &Path, requirement: &Requirement) -> Result<File, FileError> {
    let (file, metadata) = open(path, requirement.no_symlink)?;
    check(&metadata, requirement)
        .map_err(|error| FileError::new(Location::file(path), FileErrorKind::Permissions(error)))?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn file_with_mode(dir: &Path, name: &str, mode: u32) -> std::path::PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, b"x y z\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn modes_are_exact() {
        let dir = tempfile::tempdir().unwrap();
        let good = file_with_mode(dir.path(), "good", 0o640);
        assert_eq!(
            read_checked(&good, &Requirement::SYSTEM_FILE).unwrap(),
            b"x y z\n"
        );
        for mode in [0o600, 0o644, 0o660, 0o4640] {
            let path = file_with_mode(dir.path(), &format!("m{mode:o}"), mode);
            let error = read_checked(&path, &Requirement::SYSTEM_FILE).unwrap_err();
            assert!(
                matches!(
                    error.kind,
                    FileErrorKind::Permissions(PermError::Mode { .. })
                ),
                "{mode:o}: {error}"
            );
        }
    }

    #[test]
    fn owner_is_checked_by_number() {
        let dir = tempfile::tempdir().unwrap();
        let path = file_with_mode(dir.path(), "f", 0o640);
        std::os::unix::fs::chown(&path, Some(65534), None).unwrap();
        let error = read_checked(&path, &Requirement::SYSTEM_FILE).unwrap_err();
        assert_eq!(
            error.kind,
            FileErrorKind::Permissions(PermError::Owner {
                expected: 0,
                got: 65534
            })
        );
        let home = file_with_mode(dir.path(), "h", 0o600);
        std::os::unix::fs::chown(&home, Some(65534), None).unwrap();
        assert!(read_checked(&home, &Requirement::home_file(65534)).is_ok());
        assert!(read_checked(&home, &Requirement::home_file(0)).is_err());
    }

    #[test]
    fn symlinks_refused_for_home_files() {
        let dir = tempfile::tempdir().unwrap();
        let target = file_with_mode(dir.path(), "target", 0o600);
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let error = read_checked(&link, &Requirement::home_file(0)).unwrap_err();
        assert_eq!(error.kind, FileErrorKind::Permissions(PermError::Symlink));
        let error = check_path(&link, &Requirement::home_file(0)).unwrap_err();
        assert_eq!(error.kind, FileErrorKind::Permissions(PermError::Symlink));
    }

    #[test]
    fn fifos_and_devices_are_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo")
            .args(["-m", "640"])
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        // No writer ever comes: a blocking open would hang this test.
        for requirement in [Requirement::SYSTEM_FILE, Requirement::home_file(0)] {
            let error = read_checked(&fifo, &requirement).unwrap_err();
            assert_eq!(error.kind, FileErrorKind::Permissions(PermError::WrongType));
        }
        let error = read_checked(Path::new("/dev/zero"), &Requirement::SYSTEM_FILE).unwrap_err();
        assert_eq!(error.kind, FileErrorKind::Permissions(PermError::WrongType));
    }

    #[test]
    fn directories_and_types() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o750)).unwrap();
        assert!(check_path(dir.path(), &Requirement::PLUGIN_DIR).is_ok());
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(check_path(dir.path(), &Requirement::PLUGIN_DIR).is_err());
        assert_eq!(
            check_path(dir.path(), &Requirement::SYSTEM_FILE)
                .unwrap_err()
                .kind,
            FileErrorKind::Permissions(PermError::WrongType)
        );
    }

    #[test]
    fn missing_group_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = file_with_mode(dir.path(), "f", 0o640);
        let requirement = Requirement {
            group: GroupOwner::Named("no-such-group-opk"),
            ..Requirement::SYSTEM_FILE
        };
        assert_eq!(
            check_path(&path, &requirement).unwrap_err().kind,
            FileErrorKind::Permissions(PermError::NoSuchGroup("no-such-group-opk"))
        );
    }
}
