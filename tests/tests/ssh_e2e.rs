//! `opkssh ssh` end to end: the real binary against the test OpenID provider and a real sshd
//! whose AuthorizedKeysCommand is our `opkssh verify` (policy `oidc`: the ID token's `exp`
//! counts). With no certificate it logs in and then runs ssh; with a valid one it runs ssh
//! without a login (the OP sees no authorization request, the key file is unchanged); after
//! the short-lived ID token expires it logs in again, so ssh never meets an expired
//! certificate.
//!
//! Gated like the harness: without `OPKSSH_E2E=1` every test prints `SKIP e2e: …` and passes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)] // test code: a panic is a failure

use opkssh_tests::e2e::{E2e, LOGIN_USER, Op, VerifyServer, http_login};
use opkssh_tests::login::{LoginProcess, LoginRun};
use std::path::Path;
use std::time::{Duration, Instant};

const SCOPES: &str = "openid profile email groups offline_access";
/// The test OP's ID-token lifetime here.
const TTL: Duration = Duration::from_secs(15);

/// `opkssh ssh --provider … --disable-browser-open -- <ssh options> e2euser@127.0.0.1 id -un`;
/// when `logs_in`, answers the login through the OP's pages as alice.
fn opkssh_ssh(home: &Path, op: &Op, server: &VerifyServer, logs_in: bool) -> LoginRun {
    let provider = format!("{},{},,{SCOPES}", op.issuer(), op.client_id());
    let known_hosts = format!("UserKnownHostsFile={}", server.sshd.known_hosts().display());
    let port = server.sshd.port().to_string();
    let destination = format!("{LOGIN_USER}@127.0.0.1");
    let args = [
        "ssh",
        "--provider",
        &provider,
        "--disable-browser-open",
        "--min-valid",
        "2s",
        "--",
        "-F",
        "none",
        "-o",
        "BatchMode=yes",
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        &known_hosts,
        "-o",
        "StrictHostKeyChecking=yes",
        "-p",
        &port,
        &destination,
        "id",
        "-un",
    ];
    let mut process = LoginProcess::start_opkssh(home, &args, &[]);
    if logs_in {
        let url = process.auth_url();
        http_login(&url, "alice").unwrap();
    }
    process.finish()
}

fn assert_got_in(run: &LoginRun, server: &VerifyServer) {
    assert!(
        run.status.success(),
        "{run:?}\nverify log:\n{}\nsshd log:\n{}",
        server.verify_log(),
        server.sshd.log()
    );
    assert_eq!(run.stdout.trim(), LOGIN_USER, "{run:?}");
}

#[test]
fn opkssh_ssh_logs_in_only_when_the_certificate_is_missing_or_expired() {
    let Some(e2e) = E2e::require() else { return };
    let op = Op::start(&[("OP_ID_TOKEN_TTL", &TTL.as_secs().to_string())]);
    let server = VerifyServer::start(
        &e2e,
        &format!("{} {} oidc\n", op.issuer(), op.client_id()),
        &format!("{LOGIN_USER} alice@example.com {}\n", op.issuer()),
    );
    let home = e2e.dir().join("home");
    std::fs::create_dir(&home).unwrap();
    let key = home.join(".ssh").join("id_ecdsa");

    // 1. No certificate: it logs in, then ssh gets in with it.
    op.take_request_counts();
    let run = opkssh_ssh(&home, &op, &server, true);
    let logged_in = Instant::now();
    assert_got_in(&run, &server);
    assert!(
        run.stderr.contains("opkssh ssh: no opkssh key; logging in"),
        "{}",
        run.stderr
    );
    // The login's own lines went to stderr, not into ssh's stdout.
    assert!(
        run.stderr.contains("Writing opk ssh public key"),
        "{}",
        run.stderr
    );
    assert_eq!(op.take_request_counts().auth, 1);
    let first_key = std::fs::read(&key).unwrap();

    // 2. Still valid: no login at all, the same key.
    let run = opkssh_ssh(&home, &op, &server, false);
    assert_got_in(&run, &server);
    assert!(logged_in.elapsed() < TTL, "too slow to test reuse");
    assert!(!run.stderr.contains("logging in"), "{}", run.stderr);
    assert!(!run.stderr.contains("Open your browser"), "{}", run.stderr);
    let counts = op.take_request_counts();
    assert_eq!((counts.auth, counts.token), (0, 0), "{counts:?}");
    assert_eq!(std::fs::read(&key).unwrap(), first_key);

    // 3. After the ID token expired: a new login, a new key, and ssh gets in.
    std::thread::sleep((TTL + Duration::from_secs(1)).saturating_sub(logged_in.elapsed()));
    let run = opkssh_ssh(&home, &op, &server, true);
    assert_got_in(&run, &server);
    assert!(
        run.stderr
            .contains("opkssh ssh: the ID token has expired; logging in")
            || run
                .stderr
                .contains("opkssh ssh: the ID token expires within 2s; logging in"),
        "{}",
        run.stderr
    );
    assert_eq!(op.take_request_counts().auth, 1);
    assert_ne!(std::fs::read(&key).unwrap(), first_key);
}
