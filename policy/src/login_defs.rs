//! The line between system accounts and people's accounts: `UID_MIN` in `/etc/login.defs`, as
//! `useradd` reads it. Principal templates never grant an account below it, and the installer
//! never creates, changes or deletes one.

use std::path::Path;

/// Where shadow-utils keeps `UID_MIN`.
pub const LOGIN_DEFS: &str = "/etc/login.defs";

/// `useradd`'s own default when `login.defs` has no usable `UID_MIN`.
pub const DEFAULT_UID_MIN: u32 = 1000;

/// `UID_MIN` from the text of a `login.defs` file: the last `UID_MIN <decimal>` line wins, as in
/// shadow-utils; comments, other keys and malformed values are ignored.
pub fn parse_uid_min(text: &str) -> Option<u32> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            match (words.next(), words.next()) {
                (Some("UID_MIN"), Some(value)) => value.parse::<u32>().ok(),
                _ => None,
            }
        })
        .next_back()
}

/// `UID_MIN` of the file at `path`, or [`DEFAULT_UID_MIN`] when the file is missing, unreadable
/// or has no usable value. Reading it fails towards the default rather than towards 0, so a
/// broken `login.defs` never makes system accounts look like people's.
pub fn uid_min_at(path: &Path) -> u32 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|text| parse_uid_min(&text))
        .unwrap_or(DEFAULT_UID_MIN)
}

/// `UID_MIN` of this machine ([`LOGIN_DEFS`]).
pub fn uid_min() -> u32 {
    uid_min_at(Path::new(LOGIN_DEFS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debian_login_defs_value() {
        let text = "# comment UID_MIN 5\nUID_MAX\t\t\t60000\nUID_MIN\t\t\t 1000\nSYS_UID_MIN 100\n";
        assert_eq!(parse_uid_min(text), Some(1000));
    }

    #[test]
    fn last_line_wins_and_junk_is_ignored() {
        assert_eq!(parse_uid_min("UID_MIN 500\nUID_MIN 2000\n"), Some(2000));
        assert_eq!(parse_uid_min("UID_MIN 500\nUID_MIN lots\n"), Some(500));
        assert_eq!(parse_uid_min("#UID_MIN 10\nXUID_MIN 10\n"), None);
        assert_eq!(parse_uid_min("UID_MIN -1\n"), None);
    }

    #[test]
    fn missing_file_means_the_default() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(uid_min_at(&dir.path().join("none")), DEFAULT_UID_MIN);
        let file = dir.path().join("login.defs");
        std::fs::write(&file, "UID_MIN 60000\n").expect("write");
        assert_eq!(uid_min_at(&file), 60000);
    }
}
