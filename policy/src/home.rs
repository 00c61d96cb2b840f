//! The home policy `~/.opk/auth_id` (behaviour.md §2.5 and §4.4; Go: commands/readhome.go,
//! policy/multipolicyloader*.go).
//!
//! `verify` runs as the unprivileged `opksshuser`, which usually cannot read users' homes, so
//! after a direct read fails it runs `sudo -n <its own path> readhome <user>`, which the
//! installed sudoers rule allows. [`read_home`] is what `readhome` does as root.

use crate::error::FileErrorKind;
use crate::perms::{self, PermError, Requirement};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How `sudo readhome` may take before the home policy is given up.
pub const SUDO_TIMEOUT: Duration = Duration::from_secs(5);

/// How long `readhome` itself may run: it runs as root, where the `verify` that started it
/// cannot kill it, so it must end on its own even if a read of the home hangs (a dead NFS
/// server, say).
pub const READHOME_DEADLINE: Duration = SUDO_TIMEOUT;

/// Why `readhome` refused or failed. The texts follow Go's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadHomeError {
    /// The name is not `^[a-z0-9_\-.]+$`.
    #[error("{0} is not a valid linux username")]
    InvalidUsername(String),
    /// No such account.
    #[error("failed to find user {0}")]
    NoSuchUser(String),
    /// The account has no home directory.
    #[error("user {0} does not have a home directory")]
    NoHome(String),
    /// The policy file is a symlink.
    #[error("home policy file {0} is a symlink, symlink are unsafe in this context")]
    Symlink(String),
    /// Open or read failed.
    #[error("failed to open {path}, {message}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        message: String,
    },
    /// Owned by someone else.
    #[error(
        "unsafe file permissions on {path} expected file owner {expected} (UID {expected_uid}) got {got} (UID {got_uid})"
    )]
    Owner {
        /// The file.
        path: String,
        /// The user.
        expected: String,
        /// Their uid.
        expected_uid: u32,
        /// The owner's name.
        got: String,
        /// The owner's uid.
        got_uid: u32,
    },
    /// Not mode 0600 (or not a regular file, or too large).
    #[error("unsafe file permissions for {path}: {message}")]
    Mode {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
}

/// Whether a name passes readhome's check (lower case only, as on Unix in Go).
pub fn valid_username(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-' | '.'))
}

/// An account from the user database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// Login name.
    pub name: String,
    /// uid.
    pub uid: u32,
    /// gid.
    pub gid: u32,
    /// Home directory.
    pub home: PathBuf,
}

/// Looks an account up by name.
pub fn lookup(name: &str) -> Option<Account> {
    match opk_os::account::user_by_name(name) {
        Ok(Some(user)) => Some(Account {
            name: user.name,
            uid: user.uid,
            gid: user.gid,
            home: user.home,
        }),
        _ => None,
    }
}

/// `<home>/.opk/auth_id`.
pub fn policy_path(account: &Account) -> PathBuf {
    account.home.join(".opk").join("auth_id")
}

/// `readhome`: the raw bytes of `username`'s home policy, after checking the name, that the
/// file is not a symlink, is owned by that user (whose uid maps back to the same name) and
/// has mode 0600, all on the open file.
///
/// # Errors
/// [`ReadHomeError`].
pub fn read_home(username: &str) -> Result<Vec<u8>, ReadHomeError> {
    if !valid_username(username) {
        return Err(ReadHomeError::InvalidUsername(username.to_owned()));
    }
    let account = lookup(username).ok_or_else(|| ReadHomeError::NoSuchUser(username.to_owned()))?;
    if account.home.as_os_str().is_empty() {
        return Err(ReadHomeError::NoHome(username.to_owned()));
    }
    let path = policy_path(&account);
    let shown = path.display().to_string();
    let (file, metadata) = perms::open(&path, true).map_err(|error| match error.kind {
        FileErrorKind::Permissions(PermError::Symlink) => ReadHomeError::Symlink(shown.clone()),
        other => ReadHomeError::Io {
            path: shown.clone(),
            message: other.to_string(),
        },
    })?;
    // Owner first, on the open file, and the uid must map back to the same name.
    let owner_uid = opk_os::file::attributes(&metadata)
        .map_err(|unsupported| ReadHomeError::Io {
            path: shown.clone(),
            message: unsupported.to_string(),
        })?
        .uid;
    let owner_name = perms::user_name(owner_uid);
    if owner_uid != account.uid || owner_name != username {
        return Err(ReadHomeError::Owner {
            path: shown,
            expected: username.to_owned(),
            expected_uid: account.uid,
            got: owner_name,
            got_uid: owner_uid,
        });
    }
    perms::check(&metadata, &Requirement::home_file(account.uid)).map_err(|error| {
        ReadHomeError::Mode {
            path: shown.clone(),
            message: error.to_string(),
        }
    })?;
    perms::read_limited(file, &path, perms::DEFAULT_MAX_POLICY_SIZE).map_err(|error| {
        ReadHomeError::Io {
            path: shown,
            message: error.kind.to_string(),
        }
    })
}

/// How `verify` may read a home policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HomeAccess {
    /// Do not use home policies.
    Skip,
    /// Read the file directly only.
    Direct,
    /// Read directly; if that fails, run `<sudo> -n <program> readhome <user>` and use its
    /// stdout (not stderr, unlike Go, so sudo's warnings never become rows).
    DirectThenSudo {
        /// The sudo binary.
        sudo: PathBuf,
        /// The opkssh binary, as the sudoers rule names it (`/usr/local/bin/opkssh`).
        program: PathBuf,
    },
}

impl HomeAccess {
    /// Direct read, then the system's sudo (`/usr/bin/sudo`, `/bin/sudo` or
    /// `/usr/local/bin/sudo`, else `sudo` from `PATH`) running `program readhome`. `verify`
    /// passes its own path (`std::env::current_exe`), as Go does.
    pub fn sudo(program: impl Into<PathBuf>) -> Self {
        let sudo = ["/usr/bin/sudo", "/bin/sudo", "/usr/local/bin/sudo"]
            .iter()
            .map(Path::new)
            .find(|candidate| candidate.is_file())
            .unwrap_or(Path::new("sudo"))
            .to_path_buf();
        Self::DirectThenSudo {
            sudo,
            program: program.into(),
        }
    }
}

/// Loads the home policy of `principal`, keeping only its rows.
///
/// # Errors
/// A one-line reason (for a warning; the system policy still applies).
pub fn load(principal: &str, access: &HomeAccess) -> Result<(PathBuf, crate::AuthIdFile), String> {
    load_with_limit(principal, access, perms::DEFAULT_MAX_POLICY_SIZE)
}

/// [`load`] reading at most `max_size` bytes directly (`max_policy_size`; `readhome` keeps
/// the default), and parsing only the rows for `principal`.
///
/// # Errors
/// As [`load`].
pub fn load_with_limit(
    principal: &str,
    access: &HomeAccess,
    max_size: u64,
) -> Result<(PathBuf, crate::AuthIdFile), String> {
    if matches!(access, HomeAccess::Skip) {
        return Err("home policy disabled".to_owned());
    }
    let account = lookup(principal)
        .ok_or_else(|| format!("error getting user policy path for user {principal}: failed to lookup username {principal}"))?;
    if account.home.as_os_str().is_empty() {
        return Err(format!("user {principal} does not have a home directory"));
    }
    let path = policy_path(&account);
    let requirement = Requirement::home_file(account.uid).with_max_size(max_size);
    let direct = perms::open_checked(&path, &requirement)
        .and_then(|file| crate::AuthIdFile::read_for(file, &path, principal, max_size));
    let content = match direct {
        Ok(file) => return Ok((path, file.for_principal(principal))),
        Err(direct) => match access {
            // A file that is missing, a symlink or not a regular file (a FIFO) is what root
            // would find too: no root process is started for it.
            HomeAccess::DirectThenSudo { sudo, program }
                if !matches!(
                    direct.kind,
                    FileErrorKind::Io(std::io::ErrorKind::NotFound, _)
                        | FileErrorKind::Permissions(PermError::Symlink | PermError::WrongType)
                ) =>
            {
                read_with_sudo(sudo, program, principal).map_err(|error| {
                    format!(
                        "failed to read user policy file {}: {error} (direct read: {})",
                        path.display(),
                        direct.kind
                    )
                })?
            }
            HomeAccess::DirectThenSudo { .. } | HomeAccess::Direct | HomeAccess::Skip => {
                return Err(format!(
                    "failed to read user policy file {}: {}",
                    path.display(),
                    direct.kind
                ));
            }
        },
    };
    Ok((
        path.clone(),
        crate::AuthIdFile::parse_for(&content, &path, principal).for_principal(principal),
    ))
}

fn read_with_sudo(sudo: &Path, program: &Path, principal: &str) -> Result<Vec<u8>, String> {
    let args = [
        "-n".to_owned(),
        program.display().to_string(),
        "readhome".to_owned(),
        principal.to_owned(),
    ];
    let finished = crate::plugin::execute(
        sudo,
        &args,
        crate::plugin::Environment::Inherited(&BTreeMap::new()),
        SUDO_TIMEOUT,
        crate::plugin::Output::StdoutOnly,
    )
    .map_err(|error| {
        format!(
            "error running sudo -n {} readhome {principal}: {error}",
            program.display()
        )
    })?;
    if !finished.status.success() {
        return Err(format!(
            "sudo -n {} readhome {principal} failed",
            program.display()
        ));
    }
    Ok(finished.output)
}
