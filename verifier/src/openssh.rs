//! The OpenSSH version of this host. OpenSSH before 8.1 cut `percent_expand` at 4096 bytes, so
//! sshd cannot pass `%k` (the certificate with its PK token) whole; Go's verify warns in its
//! log then (Go: main.go `checkOpenSSHVersion`) and `audit --json` reports the version.
//!
//! Go runs a package-manager query or `ssh -V` on every verify. Here the version is read from
//! `sshd -V` (then `ssh -V`) once per sshd binary and kept in the cache directory, keyed by the
//! binary's inode, size and mtime: a warm verify costs one `stat` and one small read, and an
//! upgraded sshd is noticed on the next verify.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Where sshd and ssh live; verify runs with sshd's `PATH`, which lacks `/usr/sbin`.
pub const BINARIES: [&str; 4] = [
    "/usr/sbin/sshd",
    "/usr/bin/ssh",
    "/usr/local/sbin/sshd",
    "/usr/local/bin/ssh",
];

/// The cache file, in verify's cache directory.
pub const CACHE_FILE: &str = "openssh-version";

/// Go's warning for an OpenSSH older than 8.1.
pub const TOO_OLD: &str = "Warning: OpenPubkey SSH requires OpenSSH v. 8.1 or greater";

/// Go's warning when no version could be read.
pub const UNKNOWN: &str = "Warning: Could not determine OpenSSH version";

/// A version as `ssh -V` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpensshVersion {
    /// As reported, up to the first `, ` (`OpenSSH_9.2p1 Debian-2+deb12u3`).
    pub text: String,
    /// The numeric part (`9.2`), major then minor.
    pub number: (u32, u32),
}

impl OpensshVersion {
    /// Whether sshd passes `%k` whole (8.1 or later).
    pub fn is_supported(&self) -> bool {
        self.number >= (8, 1)
    }
}

/// The version in the output of `sshd -V` or `ssh -V` (`OpenSSH_9.2p1 Debian-2+deb12u3,
/// OpenSSL 3.0.15 3 Sep 2024`); old sshd without `-V` prints it above its usage text, so the
/// first line naming `OpenSSH_` counts. `None` if there is none or it has no number.
pub fn parse(output: &str) -> Option<OpensshVersion> {
    let line = output.lines().find(|line| line.contains("OpenSSH_"))?;
    let start = line.find("OpenSSH_")?;
    let text = line.get(start..)?;
    let text = text.split(", ").next().unwrap_or(text).trim_end();
    let digits = text.strip_prefix("OpenSSH_")?;
    let number = |text: &str| -> Option<(u32, usize)> {
        let len = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        Some((text.get(..len)?.parse().ok()?, len))
    };
    let (major, major_len) = number(digits)?;
    // `OpenSSH_9p1` has no minor; a minor needs a `.` right after the major.
    let minor = match digits.get(major_len..)?.strip_prefix('.') {
        Some(rest) => number(rest)?.0,
        None => 0,
    };
    Some(OpensshVersion {
        text: text.to_owned(),
        number: (major, minor),
    })
}

/// Runs `<binary> -V` and parses what it prints (on stderr).
fn run_version(binary: &Path) -> Option<OpensshVersion> {
    let output = Command::new(binary)
        .arg("-V")
        .stdin(Stdio::null())
        .output()
        .ok()?;
    let mut text = String::from_utf8_lossy(&output.stderr).into_owned();
    text.push('\n');
    text.push_str(&String::from_utf8_lossy(&output.stdout));
    parse(&text)
}

/// The version, read from the first of `binaries` that exists and reports one (no cache):
/// for `audit`.
pub fn detect(binaries: &[&str]) -> Option<OpensshVersion> {
    binaries
        .iter()
        .map(Path::new)
        .filter(|path| path.exists())
        .find_map(run_version)
}

/// The version for verify: from `cache_dir` when the first existing binary is unchanged,
/// else detected (one exec) and cached.
pub fn cached(cache_dir: &Path, binaries: &[&str]) -> Option<OpensshVersion> {
    let found = binaries.iter().map(PathBuf::from).find_map(|path| {
        let meta = std::fs::metadata(&path).ok()?;
        Some((path, meta))
    });
    let key = match &found {
        Some((path, meta)) => format!("{} {}", path.display(), opk_os::file::change_stamp(meta)),
        None => "none".to_owned(),
    };
    // Only a folder (and file) of ours that nobody else can write is trusted, as for the
    // JWKS entries; otherwise the version is read afresh each time.
    let trusted = std::fs::symlink_metadata(cache_dir)
        .is_ok_and(|meta| meta.is_dir() && crate::jwks_cache::secure(&meta));
    let file = cache_dir.join(CACHE_FILE);
    if trusted
        && let Some(text) = read_own_file(&file)
        && let Some((cached_key, version)) = text.split_once('\n')
        && cached_key == key
    {
        return parse(version);
    }
    let version = found.and_then(|(path, _)| run_version(&path).or_else(|| detect(binaries)));
    if trusted {
        let text = version.as_ref().map_or("", |version| version.text.as_str());
        // Best effort: failing to write only costs the exec again next time.
        let _ = opk_os::atomic_file::replace(
            &file,
            format!("{key}\n{text}\n").as_bytes(),
            opk_os::atomic_file::FileMode::mode(0o600),
        );
    }
    version
}

fn read_own_file(path: &Path) -> Option<String> {
    use std::io::Read as _;
    let (file, meta) = crate::jwks_cache::open_cache_file(path)?;
    if !meta.is_file() || !crate::jwks_cache::secure(&meta) {
        return None;
    }
    let mut text = String::new();
    file.take(4096).read_to_string(&mut text).ok()?;
    Some(text)
}

/// Go's warning for `version`, if any.
pub fn warning(version: Option<&OpensshVersion>) -> Option<&'static str> {
    match version {
        None => Some(UNKNOWN),
        Some(version) if !version.is_supported() => Some(TOO_OLD),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::{TOO_OLD, UNKNOWN, cached, parse, warning};
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn parses_what_ssh_and_sshd_print() {
        for (output, text, number, supported) in [
            (
                "OpenSSH_7.4p1, OpenSSL 1.0.2k-fips  26 Jan 2017",
                "OpenSSH_7.4p1",
                (7, 4),
                false,
            ),
            (
                "OpenSSH_8.0p1, OpenSSL 1.1.1c FIPS  28 May 2019\n",
                "OpenSSH_8.0p1",
                (8, 0),
                false,
            ),
            (
                "OpenSSH_8.1p1, OpenSSL 1.1.1d  10 Sep 2019",
                "OpenSSH_8.1p1",
                (8, 1),
                true,
            ),
            (
                "OpenSSH_9.2p1 Debian-2+deb12u3, OpenSSL 3.0.15 3 Sep 2024",
                "OpenSSH_9.2p1 Debian-2+deb12u3",
                (9, 2),
                true,
            ),
            (
                "OpenSSH_10.0p2 Debian-5, OpenSSL 3.5.0 8 Apr 2025",
                "OpenSSH_10.0p2 Debian-5",
                (10, 0),
                true,
            ),
            ("OpenSSH_8.10", "OpenSSH_8.10", (8, 10), true),
            (
                "OpenSSH_6.6.1p1 Ubuntu-2ubuntu2.13, OpenSSL 1.0.1f 6 Jan 2014",
                "OpenSSH_6.6.1p1 Ubuntu-2ubuntu2.13",
                (6, 6),
                false,
            ),
            ("OpenSSH_9p1", "OpenSSH_9p1", (9, 0), true),
            // An old sshd without -V: the version sits above the usage text.
            (
                "sshd: illegal option -- V\nOpenSSH_7.2p2 Ubuntu-4ubuntu2.10, OpenSSL 1.0.2g  1 Mar 2016\nusage: sshd [-46DdeiqTt]",
                "OpenSSH_7.2p2 Ubuntu-4ubuntu2.10",
                (7, 2),
                false,
            ),
        ] {
            let version = parse(output).unwrap_or_else(|| panic!("{output}"));
            assert_eq!(version.text, text);
            assert_eq!(version.number, number, "{output}");
            assert_eq!(version.is_supported(), supported, "{output}");
        }
        for output in [
            "",
            "ssh: command not found",
            "OpenSSH_",
            "OpenSSH_x.1",
            "Dropbear v2022.83",
        ] {
            assert_eq!(parse(output), None, "{output}");
        }
    }

    #[test]
    fn warns_as_go_does() {
        assert_eq!(warning(None), Some(UNKNOWN));
        assert_eq!(warning(parse("OpenSSH_7.4p1").as_ref()), Some(TOO_OLD));
        assert_eq!(warning(parse("OpenSSH_8.1p1").as_ref()), None);
    }

    /// A fake `sshd` printing an old version: detected once, cached, then read from the cache
    /// with no exec (the script can no longer run), and detected again once it changes.
    #[test]
    fn the_version_is_cached_per_binary() {
        let dir = tempfile::tempdir().unwrap();
        let sshd = dir.path().join("sshd");
        let write_script = |version: &str| {
            std::fs::write(
                &sshd,
                format!("#!/bin/sh\necho '{version}, OpenSSL 1.0.2k-fips  26 Jan 2017' >&2\n"),
            )
            .unwrap();
            std::fs::set_permissions(&sshd, std::fs::Permissions::from_mode(0o755)).unwrap();
        };
        write_script("OpenSSH_7.4p1");
        let binaries = [sshd.to_str().unwrap()];
        let cache = dir.path().join("cache");
        std::fs::create_dir(&cache).unwrap();
        std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o700)).unwrap();

        let first = cached(&cache, &binaries).unwrap();
        assert_eq!(first.text, "OpenSSH_7.4p1");
        assert_eq!(warning(Some(&first)), Some(TOO_OLD));

        // chmod changes neither inode, size nor mtime: a cache hit cannot exec it.
        std::fs::set_permissions(&sshd, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(cached(&cache, &binaries), Some(first));

        // An upgrade (new size and mtime) is detected again.
        std::thread::sleep(std::time::Duration::from_millis(20));
        write_script("OpenSSH_9.2p1 Debian-2+deb12u3");
        let upgraded = cached(&cache, &binaries).unwrap();
        assert_eq!(upgraded.number, (9, 2));
        assert_eq!(warning(Some(&upgraded)), None);
    }
}
