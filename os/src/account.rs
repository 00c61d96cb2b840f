//! Users and groups from the system's databases (through NSS on Unix, as sshd sees them).
//! Windows accounts are SIDs, not uids: every lookup there fails with [`LookupError`] or
//! finds nothing, so a rule that needs an account denies.

use std::path::PathBuf;

/// A user account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Login name.
    pub name: String,
    /// uid.
    pub uid: u32,
    /// Primary gid.
    pub gid: u32,
    /// Home folder.
    pub home: PathBuf,
    /// The comment (GECOS) field, when it is UTF-8.
    pub comment: Option<String>,
}

/// A group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// Name.
    pub name: String,
    /// gid.
    pub gid: u32,
    /// Supplementary members, by name.
    pub members: Vec<String>,
}

/// The user database could not be read (not: the account does not exist).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct LookupError(String);

#[cfg(unix)]
mod unix {
    use super::{Group, LookupError, User};

    fn error(errno: nix::errno::Errno) -> LookupError {
        LookupError(errno.to_string())
    }

    fn user(user: nix::unistd::User) -> User {
        User {
            name: user.name,
            uid: user.uid.as_raw(),
            gid: user.gid.as_raw(),
            home: user.dir,
            comment: user.gecos.into_string().ok(),
        }
    }

    fn group(group: nix::unistd::Group) -> Group {
        Group {
            name: group.name,
            gid: group.gid.as_raw(),
            members: group.mem,
        }
    }

    pub(super) fn user_by_name(name: &str) -> Result<Option<User>, LookupError> {
        nix::unistd::User::from_name(name)
            .map(|found| found.map(user))
            .map_err(error)
    }

    pub(super) fn user_by_uid(uid: u32) -> Result<Option<User>, LookupError> {
        nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
            .map(|found| found.map(user))
            .map_err(error)
    }

    pub(super) fn group_by_name(name: &str) -> Result<Option<Group>, LookupError> {
        nix::unistd::Group::from_name(name)
            .map(|found| found.map(group))
            .map_err(error)
    }

    pub(super) fn group_by_gid(gid: u32) -> Result<Option<Group>, LookupError> {
        nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(gid))
            .map(|found| found.map(group))
            .map_err(error)
    }

    pub(super) fn effective_uid() -> Option<u32> {
        Some(nix::unistd::geteuid().as_raw())
    }

    pub(super) fn real_uid() -> Option<u32> {
        Some(nix::unistd::getuid().as_raw())
    }
}

#[cfg(windows)]
mod windows {
    use super::{Group, LookupError, User};

    fn unsupported() -> LookupError {
        LookupError(
            crate::Unsupported {
                what: "user and group lookups",
            }
            .to_string(),
        )
    }

    pub(super) fn user_by_name(_: &str) -> Result<Option<User>, LookupError> {
        Err(unsupported())
    }

    pub(super) fn user_by_uid(_: u32) -> Result<Option<User>, LookupError> {
        Err(unsupported())
    }

    pub(super) fn group_by_name(_: &str) -> Result<Option<Group>, LookupError> {
        Err(unsupported())
    }

    pub(super) fn group_by_gid(_: u32) -> Result<Option<Group>, LookupError> {
        Err(unsupported())
    }

    pub(super) fn effective_uid() -> Option<u32> {
        None
    }

    pub(super) fn real_uid() -> Option<u32> {
        None
    }
}

#[cfg(unix)]
use unix as system;
#[cfg(windows)]
use windows as system;

/// The user called `name`: `Ok(None)` if there is none.
///
/// # Errors
/// [`LookupError`] when the database cannot be read (or on Windows).
pub fn user_by_name(name: &str) -> Result<Option<User>, LookupError> {
    system::user_by_name(name)
}

/// The user with `uid`.
///
/// # Errors
/// As [`user_by_name`].
pub fn user_by_uid(uid: u32) -> Result<Option<User>, LookupError> {
    system::user_by_uid(uid)
}

/// The group called `name`.
///
/// # Errors
/// As [`user_by_name`].
pub fn group_by_name(name: &str) -> Result<Option<Group>, LookupError> {
    system::group_by_name(name)
}

/// The group with `gid`.
///
/// # Errors
/// As [`user_by_name`].
pub fn group_by_gid(gid: u32) -> Result<Option<Group>, LookupError> {
    system::group_by_gid(gid)
}

/// The effective uid of this process; `None` where there are no uids (Windows).
pub fn effective_uid() -> Option<u32> {
    system::effective_uid()
}

/// The real uid of this process; `None` where there are no uids.
pub fn real_uid() -> Option<u32> {
    system::real_uid()
}

/// Whether this process runs as root (never on Windows, where administrators are not uid 0).
pub fn is_root() -> bool {
    effective_uid() == Some(0)
}

/// A user's uid by name, `None` if unknown or unreadable.
pub fn user_id(name: &str) -> Option<u32> {
    user_by_name(name).ok().flatten().map(|user| user.uid)
}

/// A group's gid by name, `None` if unknown or unreadable.
pub fn group_id(name: &str) -> Option<u32> {
    group_by_name(name).ok().flatten().map(|group| group.gid)
}

/// A user's name by uid, `None` if unknown or unreadable.
pub fn user_name(uid: u32) -> Option<String> {
    user_by_uid(uid).ok().flatten().map(|user| user.name)
}

/// A group's name by gid, `None` if unknown or unreadable.
pub fn group_name(gid: u32) -> Option<String> {
    group_by_gid(gid).ok().flatten().map(|group| group.name)
}

#[cfg(all(test, unix))]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn root_is_uid_0_both_ways() {
        assert_eq!(user_id("root"), Some(0));
        assert_eq!(user_name(0).as_deref(), Some("root"));
        assert_eq!(user_by_name("no-such-user-opk").unwrap(), None);
    }
}
