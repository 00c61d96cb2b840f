//! `opkssh check` end to end: the real binary, with certificates from real logins against the
//! test OpenID provider. Exit 0 for a usable certificate, 1 with one line saying why for a
//! missing key, a certificate that expires within `--exp`, and an expired one; `--json` says
//! the same for scripts.
//!
//! Gated like the harness: without `OPKSSH_E2E=1` every test prints `SKIP e2e: …` and passes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)] // test code: a panic is a failure

use opkssh_tests::e2e::{self, E2e, Op, SSH_TIMEOUT, run_with_timeout};
use opkssh_tests::login::login_through_op;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const SCOPES: &str = "openid profile email groups offline_access";

fn provider_spec(op: &Op) -> String {
    format!("{},{},,{SCOPES}", op.issuer(), op.client_id())
}

/// `opkssh check <args>` with `HOME=home` and no agent.
fn check(home: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let output: Output = run_with_timeout(
        Command::new(e2e::target_binary("opkssh"))
            .arg("check")
            .args(args)
            .env("HOME", home)
            .env_remove("SSH_AUTH_SOCK"),
        SSH_TIMEOUT,
    );
    (
        output.status.code(),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

#[test]
fn check_exit_codes_for_missing_valid_expiring_and_expired_certificates() {
    let Some(e2e) = E2e::require() else { return };
    let home = e2e.dir().join("home");
    std::fs::create_dir(&home).unwrap();

    // Missing: an empty HOME.
    let (code, stdout, stderr) = check(&home, &[]);
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert_eq!(stdout, "");
    assert_eq!(
        stderr.trim_end(),
        format!(
            "missing key: no opkssh key at {0}/.ssh/id_ecdsa, {0}/.ssh/id_ecdsa_sk, \
             {0}/.ssh/id_ed25519, {0}/.ssh/id_ed25519_sk",
            home.display()
        )
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");

    // Valid: a real login to the default location (ID tokens live an hour).
    let op = Op::start(&[]);
    let run = login_through_op(&home, &["--provider", &provider_spec(&op)], &[], "alice");
    run.assert_success();
    let cert = home.join(".ssh").join("id_ecdsa-cert.pub");
    let (code, stdout, stderr) = check(&home, &[]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(
        stdout.starts_with(&format!(
            "valid: {} (alice@example.com from {}) until ",
            cert.display(),
            op.issuer()
        )),
        "{stdout}"
    );
    assert_eq!(stderr, "");
    let key = home.join(".ssh").join("id_ecdsa");
    let (code, _, _) = check(&home, &["-i", key.to_str().unwrap(), "--exp", "50m"]);
    assert_eq!(code, Some(0));

    // Expiring: asked to last longer than the token's hour.
    let (code, stdout, stderr) = check(&home, &["--exp", "2h"]);
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert!(
        stderr.starts_with("expires within 2h, at ")
            && stderr
                .trim_end()
                .ends_with(&format!(": {}", cert.display())),
        "{stderr}"
    );
    let (code, stdout, _) = check(&home, &["--exp", "2h", "--json"]);
    assert_eq!(code, Some(1));
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(json["ok"], false);
    assert_eq!(json["status"], "expiring");
    let expires_in = json["expires_in"].as_i64().unwrap();
    assert!((3500..=3600).contains(&expires_in), "{json}");
    let (code, stdout, _) = check(&home, &["--json"]);
    assert_eq!(code, Some(0));
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        (json["ok"].clone(), json["status"].clone()),
        (true.into(), "valid".into())
    );
    assert_eq!(json["identity"], "alice@example.com");

    // Expired: an OP whose ID tokens live 3 s.
    let short_op = Op::start(&[("OP_ID_TOKEN_TTL", "3")]);
    let short_key = e2e.dir().join("short_key");
    let run = login_through_op(
        &home,
        &[
            "--provider",
            &provider_spec(&short_op),
            "-i",
            short_key.to_str().unwrap(),
        ],
        &[],
        "alice",
    );
    run.assert_success();
    let logged_in = Instant::now();
    std::thread::sleep(Duration::from_secs(5).saturating_sub(logged_in.elapsed()));
    let (code, stdout, stderr) = check(&home, &["-i", short_key.to_str().unwrap(), "--exp", "0s"]);
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert!(
        stderr.starts_with("expired at ")
            && stderr
                .trim_end()
                .ends_with(&format!(": {}-cert.pub", short_key.display())),
        "{stderr}"
    );
    // The default keys are still fine: check looks only where it is told.
    assert_eq!(check(&home, &[]).0, Some(0));
}
