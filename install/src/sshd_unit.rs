//! sshd's systemd unit, for one thing: an `AuthorizedKeysCommand` given on sshd's command line
//! (`ExecStart=/usr/sbin/sshd -D -o "AuthorizedKeysCommand …"`). sshd takes the first value it
//! obtains and reads its command line before its files, so such a command wins over every
//! `sshd_config` line, opkssh's included. EC2 Instance Connect's Debian/Ubuntu package and its
//! RPM install such an override (`ssh.service.d/ec2-instance-connect.conf`) when sshd_config
//! sets no `AuthorizedKeysCommand`. `install-server` cannot chain it from there; it says so.

use crate::Layout;
use std::path::PathBuf;

/// Where systemd looks for unit files and drop-in folders, most important first: a file in an
/// earlier folder hides one of the same name in a later one.
const UNIT_DIRS: [&str; 4] = [
    "/etc/systemd/system",
    "/run/systemd/system",
    "/usr/lib/systemd/system",
    "/lib/systemd/system",
];
/// The names sshd's unit goes by (Debian's `ssh`, elsewhere `sshd`).
const UNITS: [&str; 2] = ["ssh.service", "sshd.service"];

/// The unit files and drop-ins in force whose `ExecStart` gives sshd an
/// `AuthorizedKeysCommand` option, with that line.
pub(crate) fn command_line_overrides(layout: &Layout) -> Vec<(PathBuf, String)> {
    let mut found = Vec::new();
    for unit in UNITS {
        // (name, path) of the unit file and of each drop-in, the first of each name only.
        let mut seen: Vec<String> = Vec::new();
        let mut files: Vec<PathBuf> = Vec::new();
        for dir in UNIT_DIRS {
            let unit_file = layout.path(&format!("{dir}/{unit}"));
            if !seen.iter().any(|name| name == unit) && unit_file.is_file() {
                seen.push(unit.to_owned());
                files.push(unit_file);
            }
            let Ok(entries) = std::fs::read_dir(layout.path(&format!("{dir}/{unit}.d"))) else {
                continue;
            };
            let mut names: Vec<String> = entries
                .filter_map(Result::ok)
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .filter(|name| name.ends_with(".conf"))
                .collect();
            names.sort();
            for name in names {
                if !seen.contains(&name) {
                    files.push(layout.path(&format!("{dir}/{unit}.d/{name}")));
                    seen.push(name);
                }
            }
        }
        for file in files {
            let Ok(text) = std::fs::read_to_string(&file) else {
                continue;
            };
            for line in text.lines() {
                let line = line.trim();
                if line.starts_with("ExecStart=")
                    && line.to_ascii_lowercase().contains("authorizedkeyscommand")
                {
                    found.push((file.clone(), line.to_owned()));
                }
            }
        }
    }
    found
}
