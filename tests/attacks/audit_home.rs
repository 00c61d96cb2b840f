//! `opkssh audit` reading home policies (review finding 4). audit runs as root and reads every
//! `~/.opk/auth_id`: it must open them as verify does, so a user's symlink cannot make root
//! print a file the user could not read, a link to `/dev/zero` cannot run it out of memory,
//! and a FIFO cannot hang it. Each is reported as a finding instead. Through the real binary,
//! with a real account, under a 2 GiB address-space limit and a time limit.

use crate::home_fifo::HomePolicyFile;
use opkssh_tests::e2e::{self, E2e, LOGIN_USER, run_with_timeout};
use serde_json::Value;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const ISSUER: &str = "https://accounts.google.com";

/// `opkssh audit --json` on a config dir with one valid row; (exit code, stdout + stderr, the
/// JSON entry for the user's home policy).
fn audit(e2e: &E2e) -> (Option<i32>, String, Value) {
    let etc = e2e.dir().join("etc");
    if !etc.exists() {
        std::fs::create_dir(&etc).unwrap();
        for (name, text) in [
            ("providers", format!("{ISSUER} client-id 24h\n")),
            ("auth_id", format!("root admin@example.com {ISSUER}\n")),
        ] {
            std::fs::write(etc.join(name), text).unwrap();
            std::fs::set_permissions(etc.join(name), std::fs::Permissions::from_mode(0o640))
                .unwrap();
        }
    }
    let script = format!(
        "ulimit -v 2097152; exec {} audit --json --config-dir {}",
        e2e::target_binary("opkssh").display(),
        etc.display()
    );
    let output = run_with_timeout(
        Command::new("sh").args(["-c", &script]).env_clear(),
        Duration::from_secs(60),
    );
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let all = format!("{stdout}{}", String::from_utf8_lossy(&output.stderr));
    let report: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|error| panic!("audit --json printed no JSON ({error}):\n{all}"));
    let home = crate::home_fifo::home_of(LOGIN_USER).join(".opk/auth_id");
    let entry = report["home_policy"]
        .as_array()
        .unwrap()
        .iter()
        .find(|entry| entry["file_path"] == home.display().to_string())
        .cloned()
        .unwrap_or_else(|| panic!("no entry for {}:\n{all}", home.display()));
    (output.status.code(), all, entry)
}

#[test]
fn audit_home_control_a_regular_home_policy_is_audited() {
    let Some(e2e) = E2e::require() else { return };
    let _policy = HomePolicyFile::regular(
        LOGIN_USER,
        &format!("{LOGIN_USER} me@example.com {ISSUER}\n"),
    );
    let (code, all, entry) = audit(&e2e);
    assert_eq!(code, Some(0), "{all}");
    assert_eq!(entry["rows"].as_array().unwrap().len(), 1, "{all}");
    assert_eq!(entry["error"], "", "{all}");
}

#[test]
fn audit_home_symlink_to_a_file_the_user_cannot_read() {
    let Some(e2e) = E2e::require() else { return };
    let secret = e2e.dir().join("root-only");
    std::fs::write(
        &secret,
        format!("{LOGIN_USER} leaked-secret@example.com {ISSUER}\n"),
    )
    .unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let _policy = HomePolicyFile::symlink(LOGIN_USER, &secret);
    let (code, all, entry) = audit(&e2e);
    assert!(
        !all.contains("leaked-secret"),
        "root printed the target:\n{all}"
    );
    assert!(
        entry["error"].as_str().unwrap().contains("symlink"),
        "{all}"
    );
    assert_eq!(code, Some(1), "a symlinked home policy is a finding\n{all}");
}

#[test]
fn audit_home_symlink_to_dev_zero() {
    let Some(e2e) = E2e::require() else { return };
    let _policy = HomePolicyFile::symlink(LOGIN_USER, Path::new("/dev/zero"));
    let (code, all, entry) = audit(&e2e);
    assert!(
        entry["error"].as_str().unwrap().contains("symlink"),
        "{all}"
    );
    assert_eq!(code, Some(1), "{all}");
}

#[test]
fn audit_home_fifo() {
    let Some(e2e) = E2e::require() else { return };
    let _policy = HomePolicyFile::fifo(LOGIN_USER, "600");
    let (code, all, entry) = audit(&e2e);
    assert!(
        entry["error"]
            .as_str()
            .unwrap()
            .contains("FIFOs, devices and sockets are never read"),
        "{all}"
    );
    assert_eq!(code, Some(1), "{all}");
}
