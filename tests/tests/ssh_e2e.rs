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

/// The ssh options that reach the test sshd and nothing else: no config file, no agent, no
/// prompt, its host key only.
fn ssh_options(server: &VerifyServer) -> Vec<String> {
    [
        "-F",
        "none",
        "-o",
        "BatchMode=yes",
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "IdentityAgent=none",
        "-o",
        &format!("UserKnownHostsFile={}", server.sshd.known_hosts().display()),
        "-o",
        "StrictHostKeyChecking=yes",
        "-p",
        &server.sshd.port().to_string(),
    ]
    .map(str::to_owned)
    .to_vec()
}

/// `opkssh ssh --provider … --disable-browser-open --min-valid 2s <opkssh_options>
/// <ssh_args>`; when `logs_in`, answers the login through the OP's pages as alice.
fn opkssh_ssh_with(
    home: &Path,
    op: &Op,
    opkssh_options: &[&str],
    ssh_args: &[String],
    logs_in: bool,
) -> LoginRun {
    let provider = format!("{},{},,{SCOPES}", op.issuer(), op.client_id());
    let mut args = vec![
        "ssh",
        "--provider",
        &provider,
        "--disable-browser-open",
        "--min-valid",
        "2s",
    ];
    args.extend_from_slice(opkssh_options);
    args.extend(ssh_args.iter().map(String::as_str));
    let mut process = LoginProcess::start_opkssh(home, &args, &[]);
    if logs_in {
        let url = process.auth_url();
        http_login(&url, "alice").unwrap();
    }
    process.finish()
}

/// `opkssh ssh … <ssh options> e2euser@127.0.0.1 id -un`, ssh's options given straight after
/// opkssh's, as ssh takes them.
fn opkssh_ssh(home: &Path, op: &Op, server: &VerifyServer, logs_in: bool) -> LoginRun {
    let mut ssh_args = ssh_options(server);
    ssh_args.extend([format!("{LOGIN_USER}@127.0.0.1"), "id".into(), "-un".into()]);
    opkssh_ssh_with(home, op, &[], &ssh_args, logs_in)
}

/// A test OP and an sshd that lets alice in as e2euser, and a home for the client.
fn setup(e2e: &E2e, ttl: Option<Duration>) -> (Op, VerifyServer, std::path::PathBuf) {
    let ttl = ttl.map(|ttl| ttl.as_secs().to_string());
    let env: Vec<(&str, &str)> = ttl
        .iter()
        .map(|ttl| ("OP_ID_TOKEN_TTL", ttl.as_str()))
        .collect();
    let op = Op::start(&env);
    let server = VerifyServer::start(
        e2e,
        &format!("{} {} oidc\n", op.issuer(), op.client_id()),
        &format!("{LOGIN_USER} alice@example.com {}\n", op.issuer()),
    );
    let home = e2e.dir().join("home");
    std::fs::create_dir(&home).unwrap();
    (op, server, home)
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
    let (op, server, home) = setup(&e2e, Some(TTL));
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

/// Issue 18 item 5: `opkssh ssh --key K -- "$host" cmd` must mean what `ssh -- "$host" cmd`
/// means. clap used to swallow the `--`, so a host `-oProxyCommand=touch F` became an ssh
/// option and ran its command. Now ssh gets the `--` and refuses that host, while ssh options
/// given straight after opkssh's (`-o BatchMode=yes -p PORT host`) still reach the sshd.
#[test]
fn attack_host_that_looks_like_an_ssh_option_after_double_dash() {
    let Some(e2e) = E2e::require() else { return };
    let (op, server, home) = setup(&e2e, None);
    let key = home.join("id_ecdsa");
    let key_option = ["--key", key.to_str().unwrap()];

    // ssh's options right after opkssh's: the first one opkssh does not know starts ssh's.
    let mut ssh_args = ssh_options(&server);
    ssh_args.extend(["127.0.0.1".to_owned(), "true".to_owned()]);
    ssh_args.splice(0..0, ["-l".to_owned(), LOGIN_USER.to_owned()]);
    let run = opkssh_ssh_with(&home, &op, &key_option, &ssh_args, true);
    assert!(
        run.status.success(),
        "{run:?}\nverify log:\n{}\nsshd log:\n{}",
        server.verify_log(),
        server.sshd.log()
    );

    // The user's own `--` reaches ssh, which then reads the next word as the host.
    let mut ssh_args = ssh_options(&server);
    ssh_args.extend([
        "--".into(),
        format!("{LOGIN_USER}@127.0.0.1"),
        "id".into(),
        "-un".into(),
    ]);
    let run = opkssh_ssh_with(&home, &op, &key_option, &ssh_args, false);
    assert_got_in(&run, &server);

    // The attack: a host name that is an ssh option, protected by `--` as for ssh itself.
    let pwned = home.join("pwned");
    let host = format!("-oProxyCommand=touch {}", pwned.display());
    let ssh_args = ["--".to_owned(), host, "true".to_owned()];
    let run = opkssh_ssh_with(&home, &op, &key_option, &ssh_args, false);
    assert!(
        !pwned.exists(),
        "the host name ran as ssh's ProxyCommand: {run:?}"
    );
    assert!(!run.status.success(), "{run:?}");
    assert!(!run.stderr.contains("logging in"), "{run:?}");
}

/// Issue 18 item 7: `--key` went to ssh as `-o CertificateFile=<path>`, which ssh splits at a
/// space and `%`-expands, so a key in `~/my keys/` or named `100%d` was not offered (or ssh
/// refused the option). Each key here is logged in to and its certificate gets ssh in.
#[test]
fn attack_key_path_with_a_space_or_a_percent_sign() {
    let Some(e2e) = E2e::require() else { return };
    let (op, server, home) = setup(&e2e, None);
    for (dir, name) in [("100%d", "id%h%%"), ("my keys", "id_ecdsa")] {
        let dir = home.join(dir);
        std::fs::create_dir(&dir).unwrap();
        let key = dir.join(name);
        let mut ssh_args = ssh_options(&server);
        ssh_args.extend([format!("{LOGIN_USER}@127.0.0.1"), "id".into(), "-un".into()]);
        let run = opkssh_ssh_with(
            &home,
            &op,
            &["--key", key.to_str().unwrap()],
            &ssh_args,
            true,
        );
        assert_got_in(&run, &server);
        assert!(
            key.with_file_name(format!("{name}-cert.pub")).exists(),
            "{run:?}"
        );
    }
}
