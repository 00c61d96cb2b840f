//! The `install-server` and `uninstall-server` command lines against a temporary root (the
//! hidden `--root`): `--dry-run` prints the plan and changes nothing, a missing
//! `--install-from` file is named, and an sshd drop-in that cannot be outranked is refused by
//! name. The real machine is covered by `tests/tests/install_server.rs` (e2e).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use assert_cmd::Command;
use std::path::Path;

fn root_with_sshd() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let ssh = dir.path().join("etc/ssh/sshd_config.d");
    std::fs::create_dir_all(&ssh).unwrap();
    std::fs::write(
        dir.path().join("etc/ssh/sshd_config"),
        "Include /etc/ssh/sshd_config.d/*.conf\nUsePAM yes\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("opkssh-to-install"), b"binary").unwrap();
    dir
}

fn listing(root: &Path) -> Vec<String> {
    let mut names = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            names.push(path.display().to_string());
            if path.is_dir() {
                stack.push(path);
            }
        }
    }
    names.sort();
    names
}

#[test]
fn dry_run_prints_the_plan_and_changes_nothing() {
    let root = root_with_sshd();
    let before = listing(root.path());
    let prefix = root.path().display().to_string();
    let output = Command::cargo_bin("opkssh")
        .unwrap()
        .args(["install-server", "--dry-run", "--no-home-policy", "--root"])
        .arg(root.path())
        .arg("--install-from")
        .arg(root.path().join("opkssh-to-install"))
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8(output.stdout).unwrap();
    for expected in [
        "change(s) would be made, nothing was changed".to_owned(),
        format!("write {prefix}/usr/local/bin/opkssh (new file, mode 0755, root:opksshuser, 6 bytes from {prefix}/opkssh-to-install)"),
        format!("create directory {prefix}/etc/opk (mode 0750, root:opksshuser)"),
        format!("write {prefix}/etc/ssh/sshd_config.d/60-opk-ssh.conf (new file, mode 0644, root:root)"),
        "    +AuthorizedKeysCommand /usr/local/bin/opkssh verify %u %k %t".to_owned(),
        "    +https://accounts.google.com 206584157355-7cbe4s640tvm7naoludob4ut1emii7sf.apps.googleusercontent.com 24h".to_owned(),
    ] {
        assert!(stdout.contains(&expected), "missing {expected:?} in:\n{stdout}");
    }
    assert!(!stdout.contains("sudoers"), "{stdout}");
    assert_eq!(listing(root.path()), before);

    let output = Command::cargo_bin("opkssh")
        .unwrap()
        .args(["uninstall-server", "--dry-run", "--purge", "--root"])
        .arg(root.path())
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        String::from_utf8(output.stdout).unwrap(),
        "opkssh uninstall-server --dry-run: nothing would change\n"
    );
}

#[test]
fn errors_name_the_file() {
    let root = root_with_sshd();
    Command::cargo_bin("opkssh")
        .unwrap()
        .args(["install-server", "--dry-run", "--root"])
        .arg(root.path())
        .args(["--install-from", "/nonexistent/opkssh"])
        .assert()
        .failure()
        .stderr("Error: /nonexistent/opkssh: the file to install does not exist\n");

    std::fs::write(
        root.path().join("etc/ssh/sshd_config.d/00-keys.conf"),
        "AuthorizedKeysCommand /usr/bin/other %u\nAuthorizedKeysCommandUser nobody\n",
    )
    .unwrap();
    let output = Command::cargo_bin("opkssh")
        .unwrap()
        .args(["install-server", "--dry-run", "--no-home-policy", "--root"])
        .arg(root.path())
        .arg("--install-from")
        .arg(root.path().join("opkssh-to-install"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.starts_with(&format!(
            "Error: {}/etc/ssh/sshd_config.d/00-keys.conf sets AuthorizedKeysCommand",
            root.path().display()
        )) && stderr.contains("--overwrite-config"),
        "{stderr}"
    );
}
