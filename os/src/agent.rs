//! The ssh-agent's transport: a Unix socket named by `$SSH_AUTH_SOCK`, or on Windows the named
//! pipe of Win32-OpenSSH's agent (opened as a file, read and write).

use crate::System;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The variable that names the agent's socket.
pub const AUTH_SOCK_ENV: &str = "SSH_AUTH_SOCK";

/// Where Win32-OpenSSH's agent listens when `$SSH_AUTH_SOCK` is not set.
pub const WINDOWS_AGENT_PIPE: &str = r"\\.\pipe\openssh-ssh-agent";

/// Where the agent is on `system`, given `$SSH_AUTH_SOCK`: that path when set and not empty,
/// else Win32-OpenSSH's pipe on Windows, else none.
pub fn agent_path(system: System, auth_sock: Option<&std::ffi::OsStr>) -> Option<PathBuf> {
    match auth_sock {
        Some(path) if !path.is_empty() => Some(PathBuf::from(path)),
        _ => match system {
            System::Windows => Some(PathBuf::from(WINDOWS_AGENT_PIPE)),
            System::Unix => None,
        },
    }
}

/// [`agent_path`] for this system and environment.
pub fn default_agent_path() -> Option<PathBuf> {
    agent_path(System::CURRENT, std::env::var_os(AUTH_SOCK_ENV).as_deref())
}

/// The variable that makes opkssh follow another system's agent rules: `windows` or `unix`. A
/// test seam (CONTRIBUTING.md), so that Windows' rules run against OpenSSH's `ssh-agent` on
/// Linux; it changes only [`lifetime_supported`]'s answer, nothing else about the system.
pub const RULES_ENV: &str = "OPKSSH_AGENT_RULES";

/// A [`RULES_ENV`] value that names no system.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{RULES_ENV} must be windows or unix, not {0:?}")]
pub struct UnknownRules(pub String);

/// The system whose agent rules apply, given [`RULES_ENV`]'s value: this one when it is unset
/// or empty.
///
/// # Errors
/// [`UnknownRules`] for anything but `windows` or `unix`.
pub fn rules(value: Option<&std::ffi::OsStr>) -> Result<System, UnknownRules> {
    match value.map(|value| value.to_str()) {
        None => Ok(System::CURRENT),
        Some(Some("")) => Ok(System::CURRENT),
        Some(Some("windows")) => Ok(System::Windows),
        Some(Some("unix")) => Ok(System::Unix),
        Some(other) => Err(UnknownRules(
            other.map_or_else(|| "<not UTF-8>".to_owned(), str::to_owned),
        )),
    }
}

/// [`rules`] for this process's environment.
///
/// # Errors
/// [`UnknownRules`].
pub fn rules_from_env() -> Result<System, UnknownRules> {
    rules(std::env::var_os(RULES_ENV).as_deref())
}

/// Whether an identity may be added with a lifetime on `system`. Win32-OpenSSH's agent refuses
/// `SSH_AGENT_CONSTRAIN_LIFETIME` (PowerShell/Win32-OpenSSH#1056), so there identities go in
/// without one and opkssh removes them itself.
pub fn lifetime_supported(system: System) -> bool {
    match system {
        System::Unix => true,
        System::Windows => false,
    }
}

/// The lifetime to ask the agent for on `system`: `requested`, or none where the agent refuses
/// lifetimes.
pub fn lifetime_for(system: System, requested: Option<u32>) -> Option<u32> {
    requested.filter(|_| lifetime_supported(system))
}

/// A connection to an agent.
#[derive(Debug)]
pub struct AgentStream {
    #[cfg(unix)]
    inner: std::os::unix::net::UnixStream,
    #[cfg(windows)]
    inner: std::fs::File,
}

impl AgentStream {
    /// Connects to the agent at `path`; on Unix reads and writes then time out after `timeout`
    /// (a named pipe opened as a file has no timeouts).
    ///
    /// # Errors
    /// The agent cannot be reached.
    pub fn connect(path: &Path, timeout: Duration) -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            let inner = std::os::unix::net::UnixStream::connect(path)?;
            inner.set_read_timeout(Some(timeout))?;
            inner.set_write_timeout(Some(timeout))?;
            Ok(Self { inner })
        }
        #[cfg(windows)]
        {
            let _ = timeout;
            let inner = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(path)?;
            Ok(Self { inner })
        }
    }

    /// Changes the read timeout (Unix; nothing on Windows).
    ///
    /// # Errors
    /// The socket refused it.
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> std::io::Result<()> {
        #[cfg(unix)]
        {
            self.inner.set_read_timeout(timeout)
        }
        #[cfg(windows)]
        {
            let _ = timeout;
            Ok(())
        }
    }
}

impl Read for AgentStream {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        self.inner.read(buffer)
    }
}

impl Write for AgentStream {
    fn write(&mut self, buffer: &[u8]) -> std::io::Result<usize> {
        self.inner.write(buffer)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn the_agent_is_found_where_each_system_puts_it() {
        let set = Some(OsStr::new("/tmp/agent.sock"));
        for system in [System::Unix, System::Windows] {
            assert_eq!(
                agent_path(system, set),
                Some(PathBuf::from("/tmp/agent.sock"))
            );
        }
        assert_eq!(agent_path(System::Unix, None), None);
        assert_eq!(agent_path(System::Unix, Some(OsStr::new(""))), None);
        assert_eq!(
            agent_path(System::Windows, Some(OsStr::new(""))),
            Some(PathBuf::from(WINDOWS_AGENT_PIPE))
        );
    }

    #[test]
    fn the_rules_are_this_systems_unless_the_test_seam_names_one() {
        assert_eq!(rules(None), Ok(System::CURRENT));
        assert_eq!(rules(Some(OsStr::new(""))), Ok(System::CURRENT));
        assert_eq!(rules(Some(OsStr::new("windows"))), Ok(System::Windows));
        assert_eq!(rules(Some(OsStr::new("unix"))), Ok(System::Unix));
        for wrong in ["Windows", "win", "macos", " windows"] {
            let error = rules(Some(OsStr::new(wrong))).unwrap_err();
            assert_eq!(error, UnknownRules(wrong.to_owned()));
            assert!(error.to_string().contains("OPKSSH_AGENT_RULES"), "{error}");
        }
    }

    #[test]
    fn windows_adds_identities_without_a_lifetime() {
        assert_eq!(lifetime_for(System::Unix, Some(3600)), Some(3600));
        assert_eq!(lifetime_for(System::Windows, Some(3600)), None);
        assert_eq!(lifetime_for(System::Unix, None), None);
    }
}
