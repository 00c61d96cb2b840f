//! The verify log: one timestamped line per event in `/var/log/opkssh.log` (Go's format,
//! `YYYY/MM/DD HH:MM:SS message`), never stdout. If the file cannot be written, lines go to
//! stderr and verify still decides.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

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
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o660)
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
    if !nix::unistd::geteuid().is_root() {
        return;
    }
    if let Ok(Some(group)) = nix::unistd::Group::from_name("opksshuser") {
        let _ = std::os::unix::fs::fchown(file, Some(0), Some(group.gid.as_raw()));
        let _ = file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o660));
    }
}

/// Go's log timestamp, `YYYY/MM/DD HH:MM:SS` (UTC).
pub fn timestamp(now: SystemTime) -> String {
    let seconds = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    let seconds = i64::try_from(seconds).unwrap_or(0);
    let days = seconds.div_euclid(86_400);
    let of_day = seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}/{month:02}/{day:02} {:02}:{:02}:{:02}",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60
    )
}

/// Unix seconds as RFC 3339 UTC (`2026-11-26T04:15:34Z`).
pub fn rfc3339(seconds: i64) -> String {
    let (year, month, day) = civil_from_days(seconds.div_euclid(86_400));
    let of_day = seconds.rem_euclid(86_400);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (UTC).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    (year_of_era + era * 400 + i64::from(month <= 2), month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_795_666_534), "2026-11-26T04:15:34Z");
        assert_eq!(rfc3339(4_102_444_800), "2100-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn go_log_timestamp() {
        assert_eq!(
            timestamp(UNIX_EPOCH + Duration::from_secs(1_795_666_534)),
            "2026/11/26 04:15:34"
        );
    }

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
