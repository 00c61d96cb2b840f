//! The arm64 packages against the amd64 ones: the architecture in each package's metadata, an
//! aarch64 binary inside, and otherwise the same package: the same files with the same modes and
//! owners, the same configuration files and the same maintainer scripts or scriptlets. The
//! packages are only read (`dpkg-deb`, `rpm`, and an `rpm -i` into a scratch root); nothing on
//! the machine changes.
//!
//! `.ci/run` packages the aarch64 binary `.ci/cross` built with `build-deb`/`build-rpm --binary`
//! and sets `OPKSSH_DEB_ARM64` and `OPKSSH_RPM_ARM64` beside `OPKSSH_DEB` and `OPKSSH_RPM` (the
//! amd64 packages, which `install_server.rs` checks in depth); without them these tests print
//! SKIP.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // test code: a panic is a failure

use opkssh_tests::e2e;
use std::ffi::OsString;
use std::fs;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

/// Unpacking a 50 MB debug binary can be slow on a busy disk.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(300);

fn run(command: &mut Command) -> Output {
    e2e::run_with_timeout(command, COMMAND_TIMEOUT)
}

/// Runs a command; asserts success and returns stdout.
fn stdout_of(command: &mut Command) -> String {
    let what = format!("{command:?}");
    let output = run(command);
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The amd64 and arm64 packages named by the two variables; `None` (after a SKIP line) when the
/// arm64 one is not set. The arm64 one set without the amd64 one is a broken setup, not a skip.
fn packages(amd64_var: &str, arm64_var: &str) -> Option<(PathBuf, PathBuf)> {
    let Some(arm64) = std::env::var_os(arm64_var) else {
        eprintln!(
            "SKIP {arm64_var} is not set (.ci/run sets it when .ci/cross built the aarch64 binary)"
        );
        return None;
    };
    let amd64: OsString = std::env::var_os(amd64_var).unwrap_or_else(|| {
        panic!("{arm64_var} is set but {amd64_var} is not: nothing to compare with")
    });
    Some((PathBuf::from(amd64), PathBuf::from(arm64)))
}

/// The machine an ELF executable is built for: its header's `e_machine`.
fn elf_machine(binary: &Path) -> u16 {
    let mut header = [0u8; 20];
    fs::File::open(binary)
        .unwrap()
        .read_exact(&mut header)
        .unwrap();
    assert_eq!(
        header[..4],
        *b"\x7fELF",
        "{} is not an ELF file",
        binary.display()
    );
    u16::from_le_bytes([header[18], header[19]])
}

const EM_X86_64: u16 = 0x3e;
const EM_AARCH64: u16 = 0xb7;

// ---------------------------------------------------------------------------------------------
// .deb
// ---------------------------------------------------------------------------------------------

fn deb_field(deb: &Path, field: &str) -> String {
    stdout_of(Command::new("dpkg-deb").arg("-f").arg(deb).arg(field))
        .trim()
        .to_owned()
}

/// Every entry of the package's data (`dpkg-deb -c`) as "mode owner path", sorted: sizes and
/// dates left out.
fn deb_listing(deb: &Path) -> Vec<String> {
    let listing = stdout_of(Command::new("dpkg-deb").arg("-c").arg(deb));
    let mut entries: Vec<String> = listing
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            format!("{} {} {}", fields[0], fields[1], fields.last().unwrap())
        })
        .collect();
    entries.sort();
    entries
}

#[test]
fn arm64_deb_is_the_amd64_deb_with_an_aarch64_binary() {
    let Some((amd64, arm64)) = packages("OPKSSH_DEB", "OPKSSH_DEB_ARM64") else {
        return;
    };
    assert_eq!(deb_field(&amd64, "Architecture"), "amd64");
    assert_eq!(deb_field(&arm64, "Architecture"), "arm64");
    for field in ["Package", "Version", "Recommends", "Section", "Maintainer"] {
        assert_eq!(
            deb_field(&arm64, field),
            deb_field(&amd64, field),
            "{field}"
        );
    }
    // Plain libc6 of the version the binary's symbols need, as dpkg-shlibdeps writes for the
    // native package: not the cross toolchain's "libc6:arm64 (>= its own version)".
    let depends = deb_field(&arm64, "Depends");
    let mut terms = depends.split(", ");
    assert!(
        terms.clone().any(|dep| dep == "openssh-server"),
        "Depends: {depends}"
    );
    assert!(
        terms.any(|dep| dep.starts_with("libc6 (>= 2.")) && !depends.contains(':'),
        "Depends: {depends}"
    );

    let files = deb_listing(&amd64);
    assert!(
        files.contains(&"-rwxr-xr-x 0/0 ./usr/bin/opkssh".to_owned()),
        "{files:#?}"
    );
    assert_eq!(
        deb_listing(&arm64),
        files,
        "the arm64 and amd64 files differ"
    );

    // conffiles and the maintainer scripts, byte for byte.
    let control = tempfile::tempdir().unwrap();
    for (deb, dir) in [(&amd64, "amd64"), (&arm64, "arm64")] {
        stdout_of(
            Command::new("dpkg-deb")
                .arg("-e")
                .arg(deb)
                .arg(control.path().join(dir)),
        );
    }
    for name in ["conffiles", "postinst", "prerm", "postrm"] {
        assert_eq!(
            fs::read(control.path().join("arm64").join(name)).unwrap(),
            fs::read(control.path().join("amd64").join(name)).unwrap(),
            "{name}"
        );
    }

    let data = tempfile::tempdir().unwrap();
    for (deb, dir, machine) in [(&amd64, "amd64", EM_X86_64), (&arm64, "arm64", EM_AARCH64)] {
        let root = data.path().join(dir);
        stdout_of(Command::new("dpkg-deb").arg("-x").arg(deb).arg(&root));
        assert_eq!(
            elf_machine(&root.join("usr/bin/opkssh")),
            machine,
            "{}",
            deb.display()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// .rpm
// ---------------------------------------------------------------------------------------------

fn rpm_query(rpm: &Path, format: &str) -> String {
    stdout_of(Command::new("rpm").args(["-qp", "--qf", format]).arg(rpm))
}

#[test]
fn arm64_rpm_is_the_amd64_rpm_with_an_aarch64_binary() {
    let Some((amd64, arm64)) = packages("OPKSSH_RPM", "OPKSSH_RPM_ARM64") else {
        return;
    };
    assert_eq!(rpm_query(&amd64, "%{ARCH}"), "x86_64");
    assert_eq!(rpm_query(&arm64, "%{ARCH}"), "aarch64");
    assert_eq!(
        arm64.file_name().unwrap().to_string_lossy(),
        format!("opkssh-{}-1.aarch64.rpm", env!("CARGO_PKG_VERSION"))
    );
    let same = "%{NAME} %{VERSION} %{RELEASE} %{LICENSE} %{SUMMARY}";
    assert_eq!(rpm_query(&arm64, same), rpm_query(&amd64, same));

    // Files with their modes, owners and flags (%config(noreplace) is "cn", %doc "d").
    let files =
        "[%{FILEMODES:perms} %{FILEUSERNAME} %{FILEGROUPNAME} %{FILEFLAGS:fflags} %{FILENAMES}\\n]";
    let listing = rpm_query(&amd64, files);
    assert!(
        listing
            .lines()
            .any(|line| line == "-rw-r----- root root cn /etc/opk/providers"),
        "{listing}"
    );
    assert_eq!(
        rpm_query(&arm64, files),
        listing,
        "the arm64 and amd64 files differ"
    );

    let scripts = |rpm: &Path| stdout_of(Command::new("rpm").args(["-qp", "--scripts"]).arg(rpm));
    assert!(scripts(&amd64).contains("install-server --from-package"));
    assert_eq!(scripts(&arm64), scripts(&amd64));

    // The libraries the binary needs are aarch64's, as rpm read them from the binary: glibc's
    // symbols start at version 2.17 there (2.2.5 on x86_64), and no x86-64 loader.
    let requires = stdout_of(Command::new("rpm").args(["-qp", "--requires"]).arg(&arm64));
    for needed in ["openssh-server", "libc.so.6(GLIBC_2.17)(64bit)"] {
        assert!(requires.lines().any(|line| line == needed), "{requires}");
    }
    assert!(
        !requires.contains("GLIBC_2.2.5") && !requires.contains("x86-64"),
        "{requires}"
    );

    // Installed into a scratch root (rpm would refuse an aarch64 package on this machine
    // without --ignorearch): the binary is an aarch64 one.
    let root = tempfile::tempdir().unwrap();
    stdout_of(
        Command::new("rpm")
            .arg("-i")
            .arg("--root")
            .arg(root.path())
            .args([
                "--dbpath",
                "/rpmdb",
                "--nodeps",
                "--noscripts",
                "--ignorearch",
            ])
            .arg(&arm64),
    );
    assert_eq!(elf_machine(&root.path().join("usr/bin/opkssh")), EM_AARCH64);
}
