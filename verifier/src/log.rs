//! The verify log: one timestamped line per event in `/var/log/opkssh.log` (Go's format,
//! `YYYY/MM/DD HH:MM:SS message`), never stdout. If the file cannot be written, lines go to
//! stderr and verify still decides.

use opk_os::time::timestamp;
use std::fs::File;
use std::io::Write as _;
use std::path::Path;
use std::time::SystemTime;

/// Verbosity, `--log-level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Only failures of the configuration and the decision.
    Error,
    /// Also warnings (insecure cache, stale keys, unverified email).
    Warn,
    /// Also the decision of every verify (default).
    Info,
    /// Also each step.
    Debug,
}

impl std::str::FromStr for Level {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.to_ascii_lowercase().as_str() {
            "error" => Ok(Self::Error),
            "warn" | "warning" => Ok(Self::Warn),
            "info" => Ok(Self::Info),
            "debug" => Ok(Self::Debug),
            other => Err(format!(
                "unknown log level `{other}` (error, warn, info, debug)"
            )),
        }
    }
}

/// Where log lines go.
#[derive(Debug)]
pub struct Log {
    file: Option<File>,
    level: Level,
}

impl Log {
    /// Opens `path` for appending, creating it 0660 if missing (the installer makes it
    /// root:opksshuser). On failure, says so on stderr once and logs to stderr.
    pub fn open(path: &Path, level: Level) -> Self {
        let existed = std::fs::symlink_metadata(path).is_ok();
        let file = opk_os::file::Guards {
            create_mode: Some(0o660),
            ..opk_os::file::Guards::default()
        }
        .options()
        .append(true)
        .create(true)
        .open(path);
        match file {
            Ok(file) => Self {
                file: Some(file).inspect(|file| {
                    if !existed {
                        give_to_opksshuser(file);
                    }
                }),
                level,
            },
            Err(error) => {
                eprintln!(
                    "Error opening log file {}: {error}; create it with `touch {0} && chown root:opksshuser {0} && chmod 660 {0}`",
                    path.display()
                );
                Self { file: None, level }
            }
        }
    }

    /// A log that writes to stderr only.
    pub fn stderr(level: Level) -> Self {
        Self { file: None, level }
    }

    /// Writes one line at `level`. The message is escaped here, the one place log lines are
    /// written, by [`opk_core::escape::line`]: a claim's newline, carriage return or terminal
    /// escape can neither start a forged line nor redraw the screen of whoever reads the log.
    pub fn write(&mut self, level: Level, message: &str) {
        if level > self.level {
            return;
        }
        let line = format!(
            "{} {}\n",
            timestamp(SystemTime::now()),
            opk_core::escape::line(message)
        );
        let written = self
            .file
            .as_mut()
            .is_some_and(|file| file.write_all(line.as_bytes()).is_ok());
        if !written {
            eprint!("{line}");
        }
    }
}

/// A log file verify creates as root belongs to root:opksshuser, 0660, as the installer makes
/// it, so later verifies running as opksshuser can append.
fn give_to_opksshuser(file: &File) {
    if !opk_os::account::is_root() {
        return;
    }
    if let Some(gid) = opk_os::account::group_id("opksshuser") {
        let _ = opk_os::file::set_file_owner(file, (0, gid));
        let _ = opk_os::file::set_file_mode(file, 0o660);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_appended_one_per_event() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("opkssh.log");
        let mut log = Log::open(&path, Level::Info);
        log.write(Level::Info, "first\nsecond");
        log.write(Level::Debug, "hidden");
        let text = std::fs::read_to_string(&path)?;
        assert_eq!(text.lines().count(), 1);
        assert!(text.ends_with(" first\\nsecond\n"));
        Ok(())
    }

    #[test]
    fn controls_from_outside_are_escaped() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("opkssh.log");
        let mut log = Log::open(&path, Level::Info);
        log.write(
            Level::Info,
            "deny identity=e\u{1b}[2K\u{1b}[1G2026/01/01 allow\r\u{9b}8m\u{2028}",
        );
        let text = std::fs::read_to_string(&path)?;
        assert_eq!(text.lines().count(), 1);
        assert!(
            text.ends_with(
                " deny identity=e\\x1b[2K\\x1b[1G2026/01/01 allow\\r\\u{9b}8m\\u{2028}\n"
            ),
            "{text}"
        );
        Ok(())
    }
}
