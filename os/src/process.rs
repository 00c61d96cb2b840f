//! Processes: running a program in this process's place, process groups for plugins that must
//! not outlive their deadline, signals, starting a background service, and desktop
//! notifications.

use std::process::{Command, ExitCode, Stdio};

#[cfg(unix)]
use std::os::unix::process::CommandExt as _;
#[cfg(windows)]
use std::os::windows::process::CommandExt as _;

/// `CREATE_NEW_PROCESS_GROUP`.
#[cfg(windows)]
const CREATE_NEW_PROCESS_GROUP: u32 = 0x0000_0200;

/// Runs `command` in place of this process, so that its exit status is this process's.
///
/// On Unix the program replaces this process (`exec`) and this returns only with the error that
/// prevented it. Windows has no `exec`: the program runs as a child, with this process's console
/// and streams, and its exit code is returned for this process to exit with.
///
/// # Errors
/// The program could not be started (or, on Windows, waited for).
pub fn run_in_place(command: &mut Command) -> std::io::Result<ExitCode> {
    #[cfg(unix)]
    {
        Err(command.exec())
    }
    #[cfg(windows)]
    {
        let status = command.status()?;
        Ok(exit_code(status.code()))
    }
}

/// The exit code for a child's `code` (`None`: killed by a signal): 0-255 as is, anything else
/// (a Windows NTSTATUS, a signal) a failure.
pub fn exit_code(code: Option<i32>) -> ExitCode {
    match code.and_then(|code| u8::try_from(code).ok()) {
        Some(code) => ExitCode::from(code),
        None => ExitCode::FAILURE,
    }
}

/// This process's stderr, for a child's stdout (so that a child's output does not mix with
/// ours on stdout).
///
/// # Errors
/// The handle could not be duplicated.
pub fn stderr_for_child() -> std::io::Result<Stdio> {
    #[cfg(unix)]
    {
        use std::os::fd::AsFd as _;
        Ok(Stdio::from(std::io::stderr().as_fd().try_clone_to_owned()?))
    }
    #[cfg(windows)]
    {
        use std::os::windows::io::AsHandle as _;
        Ok(Stdio::from(
            std::io::stderr().as_handle().try_clone_to_owned()?,
        ))
    }
}

/// Starts `command` in a process group of its own, so that [`signal_group`] reaches whatever
/// it starts.
pub fn own_process_group(command: &mut Command) -> &mut Command {
    #[cfg(unix)]
    {
        command.process_group(0)
    }
    #[cfg(windows)]
    {
        command.creation_flags(CREATE_NEW_PROCESS_GROUP)
    }
}

/// `DETACHED_PROCESS`: no console.
#[cfg(windows)]
const DETACHED_PROCESS: u32 = 0x0000_0008;

/// Prepares `command` to outlive this process as a background service: standard input and
/// output are the null device, and it runs in a process group of its own, so the terminal's
/// Ctrl-C and hang-up (sent to the foreground group, and by the shell to its jobs) do not reach
/// it; on Windows it also has no console. Standard error is left to the caller.
pub fn detached(command: &mut Command) -> &mut Command {
    command.stdin(Stdio::null()).stdout(Stdio::null());
    #[cfg(unix)]
    {
        command.process_group(0)
    }
    #[cfg(windows)]
    {
        command.creation_flags(DETACHED_PROCESS | CREATE_NEW_PROCESS_GROUP)
    }
}

/// Keeps this process's memory out of core files and, on Linux, out of reach of debuggers
/// running as the same user (not dumpable: no `ptrace` attach, `/proc/PID/mem` closed), as
/// OpenSSH's ssh-agent does for the keys it holds. Nothing on Windows.
///
/// # Errors
/// The limit could not be set.
pub fn keep_memory_private() -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use nix::sys::resource::{Resource, setrlimit};
        setrlimit(Resource::RLIMIT_CORE, 0, 0).map_err(std::io::Error::from)?;
        #[cfg(target_os = "linux")]
        nix::sys::prctl::set_dumpable(false).map_err(std::io::Error::from)?;
        Ok(())
    }
    #[cfg(windows)]
    {
        Ok(())
    }
}

/// Shows a desktop notification, best effort: through `notify-send` where it is on the `PATH`
/// (Linux and the BSDs), `osascript` on macOS; Windows has no program for it. Returns whether
/// the program started; it is waited for in the background. The texts are passed as
/// arguments, never parsed as a script.
pub fn notify_desktop(title: &str, body: &str) -> bool {
    let mut command = notification_command(title, body);
    let Some(command) = command.as_mut() else {
        return false;
    };
    let started = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    match started {
        Ok(mut child) => {
            // Reaped off the caller's thread: a notification daemon may be slow to answer.
            std::thread::spawn(move || child.wait());
            true
        }
        Err(_) => false,
    }
}

fn notification_command(title: &str, body: &str) -> Option<Command> {
    #[cfg(target_os = "macos")]
    {
        let mut command = Command::new("osascript");
        command
            .args(["-e", "on run argv"])
            .args([
                "-e",
                "display notification (item 2 of argv) with title (item 1 of argv)",
            ])
            .args(["-e", "end run", "--", title, body]);
        Some(command)
    }
    #[cfg(all(unix, not(target_os = "macos")))]
    {
        let mut command = Command::new("notify-send");
        command.args(["--app-name=opkssh", "--", title, body]);
        Some(command)
    }
    #[cfg(windows)]
    {
        let _ = (title, body);
        None
    }
}

/// How to stop a process group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// Ask (SIGTERM): `sudo` passes it on to the command it runs as root.
    Ask,
    /// Force (SIGKILL).
    Force,
}

/// Signals the process group led by the child `leader` (started with [`own_process_group`],
/// and not yet reaped, so its id still names the group). Best effort; on Windows nothing is
/// sent and the caller's `Child::kill` stops the child alone.
pub fn signal_group(leader: u32, stop: Stop) {
    #[cfg(unix)]
    if let Ok(group) = i32::try_from(leader) {
        let signal = match stop {
            Stop::Ask => nix::sys::signal::Signal::SIGTERM,
            Stop::Force => nix::sys::signal::Signal::SIGKILL,
        };
        let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(group), signal);
    }
    #[cfg(windows)]
    let _ = (leader, stop);
}

/// Whether no process `pid` exists any more. `false` when unsure (it exists, this process may
/// not signal it, or, on Windows, it cannot be asked).
pub fn is_gone(pid: u32) -> bool {
    #[cfg(unix)]
    {
        let Some(pid) = i32::try_from(pid).ok().filter(|pid| *pid > 0) else {
            return false;
        };
        matches!(
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
            Err(nix::errno::Errno::ESRCH)
        )
    }
    #[cfg(windows)]
    {
        let _ = pid;
        false
    }
}

/// Sends SIGHUP to `pid` (sshd re-reads its configuration on it).
///
/// # Errors
/// The signal could not be sent; `ErrorKind::Unsupported` on Windows.
pub fn hang_up(pid: i32) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGHUP,
        )
        .map_err(std::io::Error::from)
    }
    #[cfg(windows)]
    {
        let _ = pid;
        Err(crate::Unsupported { what: "signals" }.into())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn exit_codes_pass_through_and_the_rest_fail() {
        assert_eq!(exit_code(Some(0)), ExitCode::SUCCESS);
        assert_eq!(exit_code(Some(255)), ExitCode::from(255));
        assert_eq!(exit_code(Some(-1073741510)), ExitCode::FAILURE);
        assert_eq!(exit_code(None), ExitCode::FAILURE);
    }

    #[cfg(unix)]
    #[test]
    fn a_reaped_child_is_gone_and_this_process_is_not() {
        let mut child = Command::new("true").spawn().unwrap();
        child.wait().unwrap();
        assert!(is_gone(child.id()));
        assert!(!is_gone(std::process::id()));
    }
}
