//! The ssh-agent's transport: a Unix socket named by `$SSH_AUTH_SOCK`, or on Windows the named
//! pipe of Win32-OpenSSH's agent (opened as a file, read and write).
//!
//! The listening side, for `opkssh agent`, is [`AgentListener`]: on Unix a socket that only its
//! owner can reach (mode 0600 in a folder of mode 0700 that the user owns, checked before
//! binding), at [`default_listen_path`] unless told otherwise; on Windows a named pipe whose
//! access list lets in only its owner and SYSTEM, refusing remote clients and refusing to
//! join a pipe someone else created first under the same name.

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

/// The folder under `$XDG_RUNTIME_DIR` that holds `opkssh agent`'s sockets.
pub const LISTEN_DIR_NAME: &str = "opkssh-agent";

/// Where `opkssh agent` listens unless told otherwise, creating the folder when needed:
/// `$XDG_RUNTIME_DIR/opkssh-agent/agent.<pid>.sock` (the folder made 0700) when
/// `$XDG_RUNTIME_DIR` is a folder, else `agent.<pid>.sock` in a fresh private (0700) folder
/// `opkssh-agent-<unique>` under the temporary folder, as `ssh-agent` does under `/tmp`. On
/// Windows the named pipe `\\.\pipe\opkssh-agent.<pid>`.
///
/// # Errors
/// The folder cannot be made.
pub fn default_listen_path() -> std::io::Result<PathBuf> {
    #[cfg(unix)]
    {
        let socket_name = format!("agent.{}.sock", std::process::id());
        let runtime = std::env::var_os("XDG_RUNTIME_DIR")
            .filter(|dir| !dir.is_empty())
            .map(PathBuf::from)
            .filter(|dir| dir.is_absolute() && dir.is_dir());
        if let Some(runtime) = runtime {
            let dir = runtime.join(LISTEN_DIR_NAME);
            match crate::file::dir_builder(0o700).create(&dir) {
                Ok(()) => {}
                Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(error) => return Err(error),
            }
            return Ok(dir.join(socket_name));
        }
        Ok(unix::private_temp_dir()?.join(socket_name))
    }
    #[cfg(windows)]
    {
        Ok(PathBuf::from(format!(
            r"{}opkssh-agent.{}",
            windows::PIPE_PREFIX,
            std::process::id()
        )))
    }
}

/// A listening agent socket, for `opkssh agent`. Dropping it removes the socket file, if it is
/// still the one it bound.
#[derive(Debug)]
pub struct AgentListener {
    #[cfg(unix)]
    inner: std::os::unix::net::UnixListener,
    #[cfg(unix)]
    path: PathBuf,
    /// The socket file's device and inode, so that drop removes only our own socket.
    #[cfg(unix)]
    file_id: (u64, u64),
    #[cfg(windows)]
    inner: interprocess::os::windows::named_pipe::PipeListener<
        interprocess::os::windows::named_pipe::pipe_mode::Bytes,
        interprocess::os::windows::named_pipe::pipe_mode::Bytes,
    >,
    #[cfg(windows)]
    path: PathBuf,
}

impl AgentListener {
    /// Binds at `path`. The parent folder must be a real folder (not a symlink) owned by this
    /// user with no access for group or others (0700); the socket is made 0600. A socket left
    /// at `path` by an agent that is gone (nothing answers on it) is removed first; a live one,
    /// or anything that is not a socket, is left alone and refused.
    ///
    /// # Errors
    /// On Windows `path` is a pipe name, `\\.\pipe\<name>`; the pipe is created with an
    /// access list for its owner and SYSTEM only, refuses remote clients, and must be the
    /// first of its name.
    ///
    /// # Errors
    /// `PermissionDenied` for a folder of the wrong owner or mode, `AddrInUse` for a live
    /// socket (or an existing pipe), `AlreadyExists` for another kind of file at `path`,
    /// `InvalidInput` for a path without a parent (or not a pipe name), other I/O errors from
    /// binding.
    pub fn bind(path: &Path) -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            unix::bind(path)
        }
        #[cfg(windows)]
        {
            windows::bind(path)
        }
    }

    /// Waits for the next client.
    ///
    /// # Errors
    /// What `accept` returns (a client that hung up at once, too many open files, ...).
    pub fn accept(&self) -> std::io::Result<AgentStream> {
        #[cfg(unix)]
        {
            let (inner, _) = self.inner.accept()?;
            Ok(AgentStream { inner })
        }
        #[cfg(windows)]
        {
            let inner = self.inner.accept()?;
            Ok(AgentStream {
                inner: windows::Pipe::Server(inner),
            })
        }
    }

    /// Where it listens.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for AgentListener {
    fn drop(&mut self) {
        #[cfg(unix)]
        unix::remove_if_ours(&self.path, self.file_id);
    }
}

#[cfg(unix)]
mod unix {
    use super::AgentListener;
    use std::io::{Error, ErrorKind};
    use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};
    use std::os::unix::net::{UnixListener, UnixStream};
    use std::path::{Path, PathBuf};

    pub(super) fn bind(path: &Path) -> std::io::Result<AgentListener> {
        let parent = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            // A bare file name: the current folder.
            Some(_) => Path::new("."),
            None => {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    format!("{} cannot be a socket path", path.display()),
                ));
            }
        };
        check_private_dir(parent)?;
        remove_stale_socket(path)?;
        let inner = UnixListener::bind(path).map_err(|error| {
            Error::new(
                error.kind(),
                format!("cannot listen at {}: {error}", path.display()),
            )
        })?;
        // The folder is already closed to others, so the moment between bind and chmod is
        // not an opening; 0600 keeps the socket private if it is ever moved.
        crate::file::set_mode(path, 0o600)?;
        let metadata = std::fs::symlink_metadata(path)?;
        Ok(AgentListener {
            inner,
            path: path.to_owned(),
            file_id: (metadata.dev(), metadata.ino()),
        })
    }

    /// The folder must be ours and closed to everyone else: the socket's mode alone is not
    /// honoured by every system, the folder's is.
    fn check_private_dir(dir: &Path) -> std::io::Result<()> {
        let metadata = std::fs::symlink_metadata(dir).map_err(|error| {
            Error::new(
                error.kind(),
                format!("the agent's socket folder {}: {error}", dir.display()),
            )
        })?;
        if metadata.file_type().is_symlink() {
            return Err(Error::new(
                ErrorKind::PermissionDenied,
                format!(
                    "the agent's socket folder {} is a symlink; give the real folder",
                    dir.display()
                ),
            ));
        }
        if !metadata.is_dir() {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "the agent's socket folder {} is not a folder",
                    dir.display()
                ),
            ));
        }
        let me = nix::unistd::geteuid().as_raw();
        if metadata.uid() != me {
            return Err(Error::new(
                ErrorKind::PermissionDenied,
                format!(
                    "the agent's socket folder {} belongs to uid {}, not to this user (uid {me})",
                    dir.display(),
                    metadata.uid()
                ),
            ));
        }
        let mode = metadata.mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(Error::new(
                ErrorKind::PermissionDenied,
                format!(
                    "the agent's socket folder {} has mode {mode:04o}, open to others; it must be 0700 (chmod 700 {})",
                    dir.display(),
                    dir.display()
                ),
            ));
        }
        Ok(())
    }

    /// Removes a socket at `path` that nothing answers on; refuses a live one or a file of
    /// another kind.
    fn remove_stale_socket(path: &Path) -> std::io::Result<()> {
        let metadata = match std::fs::symlink_metadata(path) {
            Ok(metadata) => metadata,
            Err(error) if error.kind() == ErrorKind::NotFound => return Ok(()),
            Err(error) => return Err(error),
        };
        if !metadata.file_type().is_socket() {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                format!(
                    "{} exists and is not a socket; it was left alone",
                    path.display()
                ),
            ));
        }
        match UnixStream::connect(path) {
            Ok(_) => Err(Error::new(
                ErrorKind::AddrInUse,
                format!("an agent is already listening at {}", path.display()),
            )),
            Err(error)
                if matches!(
                    error.kind(),
                    ErrorKind::ConnectionRefused | ErrorKind::NotFound
                ) =>
            {
                match std::fs::remove_file(path) {
                    Ok(()) => Ok(()),
                    Err(error) if error.kind() == ErrorKind::NotFound => Ok(()),
                    Err(error) => Err(error),
                }
            }
            Err(error) => Err(Error::new(
                error.kind(),
                format!(
                    "cannot tell whether the socket at {} is in use: {error}",
                    path.display()
                ),
            )),
        }
    }

    pub(super) fn remove_if_ours(path: &Path, file_id: (u64, u64)) {
        if let Ok(metadata) = std::fs::symlink_metadata(path)
            && metadata.file_type().is_socket()
            && (metadata.dev(), metadata.ino()) == file_id
        {
            let _ = std::fs::remove_file(path);
        }
    }

    /// A fresh folder of mode 0700 under the temporary folder; `mkdir` fails on a name that
    /// exists, so nobody else's folder is ever taken.
    pub(super) fn private_temp_dir() -> std::io::Result<PathBuf> {
        let base = std::env::temp_dir();
        let pid = std::process::id();
        let mut last = None;
        for attempt in 0_u32..16 {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |since| since.subsec_nanos());
            let dir = base.join(format!("opkssh-agent-{pid}-{nanos:x}{attempt:x}"));
            match crate::file::dir_builder(0o700).create(&dir) {
                Ok(()) => {
                    // The umask may have taken bits away, never added any; say 0700 anyway.
                    crate::file::set_mode(&dir, 0o700)?;
                    return Ok(dir);
                }
                Err(error) if error.kind() == ErrorKind::AlreadyExists => last = Some(error),
                Err(error) => return Err(error),
            }
        }
        Err(last.unwrap_or_else(|| Error::from(ErrorKind::AlreadyExists)))
    }
}

#[cfg(windows)]
mod windows {
    use super::AgentListener;
    use interprocess::os::windows::named_pipe::{PipeListenerOptions, PipeStream, pipe_mode};
    use interprocess::os::windows::security_descriptor::SecurityDescriptor;
    use std::io::{Error, ErrorKind, Read, Write};
    use std::path::Path;

    /// Where named pipes live.
    pub(super) const PIPE_PREFIX: &str = r"\\.\pipe\";

    /// The pipe's access list (SDDL): protected from inheritance, full access for SYSTEM and
    /// for the pipe's owner (the user who started the agent), nobody else.
    const PIPE_ACCESS: &str = "D:P(A;;GA;;;SY)(A;;GA;;;OW)";

    pub(super) fn bind(path: &Path) -> std::io::Result<AgentListener> {
        let name = path.to_str().unwrap_or_default();
        let is_pipe = name
            .get(..PIPE_PREFIX.len())
            .is_some_and(|prefix| prefix.eq_ignore_ascii_case(PIPE_PREFIX))
            && name.len() > PIPE_PREFIX.len();
        if !is_pipe {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "{} is not a named pipe; on Windows the agent listens on {PIPE_PREFIX}<name>",
                    path.display()
                ),
            ));
        }
        let access = widestring::U16CString::from_str(PIPE_ACCESS)
            .map_err(|error| Error::new(ErrorKind::InvalidInput, error))?;
        let descriptor = SecurityDescriptor::deserialize(&access)?;
        let inner = PipeListenerOptions::new()
            .path(path)
            .security_descriptor(Some(descriptor))
            .accept_remote(false)
            .create_duplex::<pipe_mode::Bytes>()
            .map_err(|error| match error.kind() {
                // The first instance is created with FILE_FLAG_FIRST_PIPE_INSTANCE: a pipe of
                // that name already exists, maybe someone else's.
                ErrorKind::PermissionDenied | ErrorKind::AlreadyExists => Error::new(
                    ErrorKind::AddrInUse,
                    format!("a named pipe {} already exists", path.display()),
                ),
                _ => Error::new(
                    error.kind(),
                    format!("cannot listen at {}: {error}", path.display()),
                ),
            })?;
        Ok(AgentListener {
            inner,
            path: path.to_owned(),
        })
    }

    /// Either end of a named pipe: a client opened as a file, or a server instance.
    #[derive(Debug)]
    pub(super) enum Pipe {
        Client(std::fs::File),
        Server(PipeStream<pipe_mode::Bytes, pipe_mode::Bytes>),
    }

    impl Read for Pipe {
        fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
            match self {
                Self::Client(file) => file.read(buffer),
                Self::Server(stream) => stream.read(buffer),
            }
        }
    }

    impl Write for Pipe {
        fn write(&mut self, buffer: &[u8]) -> std::io::Result<usize> {
            match self {
                Self::Client(file) => file.write(buffer),
                Self::Server(stream) => stream.write(buffer),
            }
        }

        fn flush(&mut self) -> std::io::Result<()> {
            match self {
                Self::Client(file) => file.flush(),
                Self::Server(stream) => stream.flush(),
            }
        }
    }
}

/// A connection to an agent.
#[derive(Debug)]
pub struct AgentStream {
    #[cfg(unix)]
    inner: std::os::unix::net::UnixStream,
    #[cfg(windows)]
    inner: windows::Pipe,
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
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(path)?;
            Ok(Self {
                inner: windows::Pipe::Client(file),
            })
        }
    }

    /// Changes the read timeout (Unix; nothing on Windows, where a named pipe read has no
    /// timeout and a stalled peer holds its connection until it goes).
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

    /// Changes the write timeout (Unix; nothing on Windows).
    ///
    /// # Errors
    /// The socket refused it.
    pub fn set_write_timeout(&self, timeout: Option<Duration>) -> std::io::Result<()> {
        #[cfg(unix)]
        {
            self.inner.set_write_timeout(timeout)
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

    #[cfg(unix)]
    mod listener {
        use super::super::*;
        use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};

        fn private_dir() -> tempfile::TempDir {
            let dir = tempfile::tempdir().unwrap();
            crate::file::set_mode(dir.path(), 0o700).unwrap();
            dir
        }

        #[test]
        fn binds_0600_in_a_private_folder_and_accepts() {
            let dir = private_dir();
            let path = dir.path().join("agent.sock");
            let listener = AgentListener::bind(&path).unwrap();
            assert_eq!(listener.path(), path);
            let mode = std::fs::symlink_metadata(&path).unwrap().mode() & 0o777;
            assert_eq!(mode, 0o600);
            let client = std::thread::spawn({
                let path = path.clone();
                move || {
                    let mut stream = AgentStream::connect(&path, Duration::from_secs(5)).unwrap();
                    stream.write_all(b"ping").unwrap();
                    let mut answer = [0; 4];
                    stream.read_exact(&mut answer).unwrap();
                    answer
                }
            });
            let mut served = listener.accept().unwrap();
            let mut request = [0; 4];
            served.read_exact(&mut request).unwrap();
            assert_eq!(&request, b"ping");
            served.write_all(b"pong").unwrap();
            assert_eq!(&client.join().unwrap(), b"pong");
            drop(listener);
            assert!(!path.exists(), "the socket is removed on drop");
        }

        #[test]
        fn refuses_a_folder_open_to_others() {
            for mode in [0o755, 0o710, 0o701, 0o770] {
                let dir = private_dir();
                std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(mode))
                    .unwrap();
                let error = AgentListener::bind(&dir.path().join("s")).unwrap_err();
                assert_eq!(error.kind(), std::io::ErrorKind::PermissionDenied);
                assert!(error.to_string().contains("must be 0700"), "{error}");
                assert!(!dir.path().join("s").exists());
            }
        }

        #[test]
        fn refuses_a_folder_of_another_user() {
            // /tmp is root's and world-writable; / is root's: as root, the mode check speaks,
            // as another user the owner check; both refuse.
            let error = AgentListener::bind(Path::new("/agent-test-never-made.sock")).unwrap_err();
            assert_eq!(
                error.kind(),
                std::io::ErrorKind::PermissionDenied,
                "{error}"
            );
        }

        #[test]
        fn refuses_a_symlinked_folder() {
            let dir = private_dir();
            let real = dir.path().join("real");
            crate::file::dir_builder(0o700).create(&real).unwrap();
            let link = dir.path().join("link");
            std::os::unix::fs::symlink(&real, &link).unwrap();
            let error = AgentListener::bind(&link.join("s")).unwrap_err();
            assert!(error.to_string().contains("symlink"), "{error}");
        }

        #[test]
        fn a_stale_socket_is_replaced_a_live_one_is_not() {
            let dir = private_dir();
            let path = dir.path().join("agent.sock");
            // Stale: bound, then its listener gone without removing the file.
            drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
            assert!(path.exists());
            let listener = AgentListener::bind(&path).unwrap();
            // Live: someone answers.
            let error = AgentListener::bind(&path).unwrap_err();
            assert_eq!(error.kind(), std::io::ErrorKind::AddrInUse, "{error}");
            assert!(error.to_string().contains("already listening"), "{error}");
            // The failed bind did not take the live socket away.
            assert!(AgentStream::connect(&path, Duration::from_secs(1)).is_ok());
            drop(listener);
        }

        #[test]
        fn a_file_that_is_not_a_socket_is_left_alone() {
            let dir = private_dir();
            let path = dir.path().join("agent.sock");
            std::fs::write(&path, b"precious").unwrap();
            let error = AgentListener::bind(&path).unwrap_err();
            assert_eq!(error.kind(), std::io::ErrorKind::AlreadyExists, "{error}");
            assert_eq!(std::fs::read(&path).unwrap(), b"precious");
        }

        #[test]
        fn drop_leaves_a_socket_that_replaced_ours() {
            let dir = private_dir();
            let path = dir.path().join("agent.sock");
            let listener = AgentListener::bind(&path).unwrap();
            std::fs::remove_file(&path).unwrap();
            let other = std::os::unix::net::UnixListener::bind(&path).unwrap();
            drop(listener);
            assert!(path.exists(), "another agent's socket stays");
            drop(other);
        }

        #[test]
        fn the_default_path_is_in_a_private_folder() {
            // Whatever this machine's environment, the folder is ours and closed to others,
            // and binding there works.
            let path = default_listen_path().unwrap();
            let parent = path.parent().unwrap();
            let metadata = std::fs::metadata(parent).unwrap();
            assert_eq!(metadata.mode() & 0o077, 0, "{}", parent.display());
            assert_eq!(metadata.uid(), nix::unistd::geteuid().as_raw());
            assert!(
                path.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .contains(&std::process::id().to_string())
            );
            let listener = AgentListener::bind(&path).unwrap();
            drop(listener);
            if !parent.ends_with(LISTEN_DIR_NAME) {
                let _ = std::fs::remove_dir(parent);
            }
        }

        #[test]
        fn the_temp_folder_is_fresh_and_private() {
            let first = unix::private_temp_dir().unwrap();
            let second = unix::private_temp_dir().unwrap();
            assert_ne!(first, second);
            for dir in [first, second] {
                let metadata = std::fs::symlink_metadata(&dir).unwrap();
                assert!(metadata.is_dir());
                assert_eq!(metadata.mode() & 0o777, 0o700);
                std::fs::remove_dir(&dir).unwrap();
            }
        }
    }

    #[cfg(windows)]
    #[test]
    fn a_named_pipe_listens_once_per_name() {
        let path = default_listen_path().unwrap();
        let listener = AgentListener::bind(&path).unwrap();
        assert_eq!(listener.path(), path);
        let client = std::thread::spawn({
            let path = path.clone();
            move || {
                let mut stream = AgentStream::connect(&path, Duration::from_secs(5)).unwrap();
                stream.write_all(b"ping").unwrap();
                let mut answer = [0; 4];
                stream.read_exact(&mut answer).unwrap();
                answer
            }
        });
        let mut served = listener.accept().unwrap();
        let mut request = [0; 4];
        served.read_exact(&mut request).unwrap();
        served.write_all(b"pong").unwrap();
        assert_eq!(&request, b"ping");
        assert_eq!(&client.join().unwrap(), b"pong");
        // A second server of the same name is refused (first-instance flag). Wine 8 does not
        // enforce that flag, so under Wine (where its prefix variable is seen) it is not asked.
        if std::env::var_os("WINEPREFIX").is_none() {
            let error = AgentListener::bind(&path).unwrap_err();
            assert_eq!(error.kind(), std::io::ErrorKind::AddrInUse, "{error}");
        }
        let error = AgentListener::bind(Path::new(r"C:\agent.sock")).unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput, "{error}");
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
