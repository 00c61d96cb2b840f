//! The folders opkssh uses: the user's home (keys, `~/.opk/config.yml`) and the server's
//! configuration, cache and log. On Windows the server's files live under `%ProgramData%\opk`,
//! where the Go tool keeps them, and the home is `%USERPROFILE%`.

use crate::System;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

/// The server's configuration folder on Unix.
pub const UNIX_CONFIG_DIR: &str = "/etc/opk";
/// The verifier's discovery and key cache on Unix.
pub const UNIX_CACHE_DIR: &str = "/var/cache/opkssh";
/// The verify log on Unix.
pub const UNIX_LOG_FILE: &str = "/var/log/opkssh.log";
/// `%ProgramData%` when the variable is not set.
pub const WINDOWS_PROGRAM_DATA: &str = r"C:\ProgramData";

/// The server's configuration folder on `system`, given `%ProgramData%` (ignored on Unix):
/// `/etc/opk`, or `%ProgramData%\opk`.
pub fn config_dir_for(system: System, program_data: Option<&OsStr>) -> PathBuf {
    match system {
        System::Unix => PathBuf::from(UNIX_CONFIG_DIR),
        System::Windows => {
            let base = program_data
                .filter(|base| !base.is_empty())
                .unwrap_or(OsStr::new(WINDOWS_PROGRAM_DATA));
            Path::new(base).join("opk")
        }
    }
}

/// The verifier's cache on `system`: `/var/cache/opkssh`, or `%ProgramData%\opk\cache`.
pub fn cache_dir_for(system: System, program_data: Option<&OsStr>) -> PathBuf {
    match system {
        System::Unix => PathBuf::from(UNIX_CACHE_DIR),
        System::Windows => config_dir_for(system, program_data).join("cache"),
    }
}

/// The verify log on `system`: `/var/log/opkssh.log`, or `%ProgramData%\opk\logs\opkssh.log`.
pub fn log_file_for(system: System, program_data: Option<&OsStr>) -> PathBuf {
    match system {
        System::Unix => PathBuf::from(UNIX_LOG_FILE),
        System::Windows => config_dir_for(system, program_data)
            .join("logs")
            .join("opkssh.log"),
    }
}

fn program_data() -> Option<std::ffi::OsString> {
    match System::CURRENT {
        System::Windows => std::env::var_os("ProgramData"),
        System::Unix => None,
    }
}

/// [`config_dir_for`] on this system.
pub fn config_dir() -> PathBuf {
    config_dir_for(System::CURRENT, program_data().as_deref())
}

/// [`cache_dir_for`] on this system.
pub fn cache_dir() -> PathBuf {
    cache_dir_for(System::CURRENT, program_data().as_deref())
}

/// [`log_file_for`] on this system.
pub fn log_file() -> PathBuf {
    log_file_for(System::CURRENT, program_data().as_deref())
}

/// The user's home folder (`$HOME`, or the user database; `%USERPROFILE%` on Windows), if
/// known and not empty.
pub fn home_dir() -> Option<PathBuf> {
    std::env::home_dir().filter(|home| !home.as_os_str().is_empty())
}

/// The client config in `home`: `~/.opk/config.yml` on every system, as Go.
pub fn client_config_path(home: &Path) -> PathBuf {
    home.join(".opk").join("config.yml")
}

/// The bytes of an absolute `path` as ssh's configuration reads it on `system`: as they are
/// on Unix; on Windows with `/` for `\`, which Win32-OpenSSH reads alike and which no ssh
/// escaping can turn into something else.
pub fn path_for_ssh_config(system: System, path: &OsStr) -> Vec<u8> {
    let bytes = path.as_encoded_bytes();
    match system {
        System::Unix => bytes.to_vec(),
        System::Windows => bytes
            .iter()
            .map(|&byte| if byte == b'\\' { b'/' } else { byte })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_paths_reach_ssh_with_forward_slashes() {
        let path = OsStr::new(r"C:\Users\alice\.ssh\id_ecdsa");
        assert_eq!(
            path_for_ssh_config(System::Windows, path),
            b"C:/Users/alice/.ssh/id_ecdsa"
        );
        assert_eq!(
            path_for_ssh_config(System::Unix, OsStr::new("/home/a\\b")),
            b"/home/a\\b"
        );
    }

    #[test]
    fn server_folders_follow_each_system() {
        assert_eq!(
            config_dir_for(System::Unix, Some(OsStr::new("D:\\Data"))),
            Path::new("/etc/opk")
        );
        assert_eq!(cache_dir_for(System::Unix, None), Path::new(UNIX_CACHE_DIR));
        assert_eq!(log_file_for(System::Unix, None), Path::new(UNIX_LOG_FILE));
        let windows = config_dir_for(System::Windows, Some(OsStr::new("D:\\Data")));
        assert_eq!(windows, Path::new("D:\\Data").join("opk"));
        assert_eq!(
            config_dir_for(System::Windows, Some(OsStr::new(""))),
            Path::new(WINDOWS_PROGRAM_DATA).join("opk")
        );
        assert_eq!(
            cache_dir_for(System::Windows, None),
            Path::new(WINDOWS_PROGRAM_DATA).join("opk").join("cache")
        );
    }
}
