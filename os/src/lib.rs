//! What differs between operating systems, in one place: the rest of opkssh calls these
//! functions and never asks which system it runs on.
//!
//! - [`atomic_file`]: replacing a file so that a crash leaves the old or the new one;
//! - [`file`](mod@file): owners and modes of files, opens that neither follow a symlink nor block;
//! - [`private_file`]: private keys only their user can read (a mode on Unix, an ACL set with
//!   `icacls` on Windows), checked as `ssh` checks them;
//! - [`acl`]: Windows owners and ACLs as SDDL, and the rules on them for private keys and for
//!   the server's files (pure, tested on every system);
//! - [`account`]: users and groups;
//! - [`dirs`]: the home, configuration, cache and log folders;
//! - [`agent`]: the connection to the ssh-agent;
//! - [`process`]: running ssh in this process's place, process groups and signals, background
//!   services and desktop notifications;
//! - [`signal`]: the signals a long-running process answers (`opkssh agent`);
//! - [`time`]: the log's timestamps.
//!
//! On Unix everything works as opkssh always did. On Windows, what the server side needs and
//! this crate cannot do yet (owners and modes of files, user accounts) fails with
//! [`Unsupported`], so a check that cannot be made denies. The rules that differ by system are
//! pure functions of [`System`] so that they are tested on any machine.

#![forbid(unsafe_code)]
#![deny(unused_must_use)]
#![warn(missing_docs)]

pub mod account;
pub mod acl;
pub mod agent;
pub mod atomic_file;
pub mod dirs;
pub mod file;
pub mod private_file;
pub mod process;
pub mod signal;
pub mod time;

/// The kinds of system opkssh tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum System {
    /// Linux, macOS and the BSDs.
    Unix,
    /// Windows, with Win32-OpenSSH.
    Windows,
}

impl System {
    /// The system this program was built for.
    #[cfg(unix)]
    pub const CURRENT: Self = Self::Unix;
    /// The system this program was built for.
    #[cfg(windows)]
    pub const CURRENT: Self = Self::Windows;

    /// The character that separates a path's components when the system writes it (Windows
    /// also reads `/`).
    pub fn path_separator(self) -> char {
        match self {
            Self::Unix => '/',
            Self::Windows => '\\',
        }
    }
}

/// What this system cannot do (yet); `what` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{what} are not supported on this system yet")]
pub struct Unsupported {
    /// What is missing, plural: "file owners and modes".
    pub what: &'static str,
}

impl From<Unsupported> for std::io::Error {
    fn from(unsupported: Unsupported) -> Self {
        std::io::Error::new(std::io::ErrorKind::Unsupported, unsupported)
    }
}

/// An OS string from bytes: any bytes on Unix; on Windows only UTF-8 (`None` otherwise).
pub fn os_string_from_bytes(bytes: Vec<u8>) -> Option<std::ffi::OsString> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStringExt as _;
        Some(std::ffi::OsString::from_vec(bytes))
    }
    #[cfg(windows)]
    {
        String::from_utf8(bytes).ok().map(std::ffi::OsString::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_systems_separator_is_the_standard_librarys() {
        assert_eq!(System::CURRENT.path_separator(), std::path::MAIN_SEPARATOR);
        assert_eq!(System::Windows.path_separator(), '\\');
        assert_eq!(System::Unix.path_separator(), '/');
    }
}
