//! The folders opkssh uses: the user's home (keys, `~/.opk/config.yml`) and the server's
//! configuration, cache and log. On Windows the server's files live under `%ProgramData%\opk`,
//! where the Go tool keeps them ([`ServerFile`]), and the home is `%USERPROFILE%`.

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

/// `base` and then `parts`, joined with `\` whatever system this runs on, so that the Windows
/// layout reads as Windows writes it in tests on Linux too.
fn windows_join(base: &OsStr, parts: &[&str]) -> PathBuf {
    let mut path = base.to_owned();
    let bytes = path.as_encoded_bytes();
    if !bytes.ends_with(b"\\") && !bytes.ends_with(b"/") {
        path.push("\\");
    }
    path.push(parts.join("\\"));
    PathBuf::from(path)
}

fn windows_program_data(program_data: Option<&OsStr>) -> &OsStr {
    program_data
        .filter(|base| !base.is_empty())
        .unwrap_or(OsStr::new(WINDOWS_PROGRAM_DATA))
}

/// The server's configuration folder on `system`, given `%ProgramData%` (ignored on Unix):
/// `/etc/opk`, or `%ProgramData%\opk`.
pub fn config_dir_for(system: System, program_data: Option<&OsStr>) -> PathBuf {
    match system {
        System::Unix => PathBuf::from(UNIX_CONFIG_DIR),
        System::Windows => windows_join(windows_program_data(program_data), &["opk"]),
    }
}

/// The verifier's cache on `system`: `/var/cache/opkssh`, or `%ProgramData%\opk\cache`.
pub fn cache_dir_for(system: System, program_data: Option<&OsStr>) -> PathBuf {
    match system {
        System::Unix => PathBuf::from(UNIX_CACHE_DIR),
        System::Windows => windows_join(windows_program_data(program_data), &["opk", "cache"]),
    }
}

/// The verify log on `system`: `/var/log/opkssh.log`, or `%ProgramData%\opk\logs\opkssh.log`.
pub fn log_file_for(system: System, program_data: Option<&OsStr>) -> PathBuf {
    match system {
        System::Unix => PathBuf::from(UNIX_LOG_FILE),
        System::Windows => windows_join(
            windows_program_data(program_data),
            &["opk", "logs", "opkssh.log"],
        ),
    }
}

/// What the server reads from its configuration folder, where Go keeps the same names. Only
/// administrators may change any of them: on Unix owned by root and not writable by others
/// (`policy`'s rules), on Windows owned by Administrators or SYSTEM and writable by no one else
/// ([`crate::acl::rules::server_file`]). The cache and the log are written by verify itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerFile {
    /// The folder itself: whoever may add files to it may add a missing one.
    ConfigDir,
    /// `providers`: the trusted OpenID providers.
    Providers,
    /// `auth_id`: who may log in as whom.
    AuthId,
    /// `config.yml`: the server's options.
    Config,
    /// `policy.d`: the policy plugins' folder (each `*.yml` in it under the same rule).
    PolicyDir,
}

impl ServerFile {
    /// Every one, the folder first.
    pub const ALL: [Self; 5] = [
        Self::ConfigDir,
        Self::Providers,
        Self::AuthId,
        Self::Config,
        Self::PolicyDir,
    ];

    /// Its name in the configuration folder (`None` for the folder itself).
    pub fn name(self) -> Option<&'static str> {
        match self {
            Self::ConfigDir => None,
            Self::Providers => Some("providers"),
            Self::AuthId => Some("auth_id"),
            Self::Config => Some("config.yml"),
            Self::PolicyDir => Some("policy.d"),
        }
    }

    /// Its path on `system` given `%ProgramData%` (ignored on Unix): `/etc/opk/auth_id`, or
    /// `%ProgramData%\opk\auth_id`.
    pub fn path_for(self, system: System, program_data: Option<&OsStr>) -> PathBuf {
        let dir = config_dir_for(system, program_data);
        match (self.name(), system) {
            (None, _) => dir,
            (Some(name), System::Unix) => dir.join(name),
            (Some(name), System::Windows) => windows_join(dir.as_os_str(), &[name]),
        }
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
        assert_eq!(
            config_dir_for(System::Windows, Some(OsStr::new("D:\\Data"))),
            Path::new("D:\\Data\\opk")
        );
        assert_eq!(
            config_dir_for(System::Windows, Some(OsStr::new("D:\\"))),
            Path::new("D:\\opk")
        );
        assert_eq!(
            config_dir_for(System::Windows, Some(OsStr::new(""))),
            Path::new(r"C:\ProgramData\opk")
        );
        assert_eq!(
            cache_dir_for(System::Windows, None),
            Path::new(r"C:\ProgramData\opk\cache")
        );
        assert_eq!(
            log_file_for(System::Windows, None),
            Path::new(r"C:\ProgramData\opk\logs\opkssh.log")
        );
    }

    #[test]
    fn the_server_files_are_where_go_keeps_them() {
        let layout = |system, program_data: Option<&str>| -> Vec<PathBuf> {
            ServerFile::ALL
                .iter()
                .map(|file| file.path_for(system, program_data.map(OsStr::new)))
                .collect()
        };
        assert_eq!(
            layout(System::Windows, None),
            [
                r"C:\ProgramData\opk",
                r"C:\ProgramData\opk\providers",
                r"C:\ProgramData\opk\auth_id",
                r"C:\ProgramData\opk\config.yml",
                r"C:\ProgramData\opk\policy.d",
            ]
            .map(PathBuf::from)
        );
        assert_eq!(
            layout(System::Windows, Some(r"E:\Shared Data"))[2],
            Path::new(r"E:\Shared Data\opk\auth_id")
        );
        assert_eq!(
            layout(System::Unix, Some(r"E:\Shared Data")),
            [
                "/etc/opk",
                "/etc/opk/providers",
                "/etc/opk/auth_id",
                "/etc/opk/config.yml",
                "/etc/opk/policy.d",
            ]
            .map(PathBuf::from)
        );
    }
}
