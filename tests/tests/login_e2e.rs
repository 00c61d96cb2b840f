//! `opkssh login` end to end: the real binary logs in against the real OpenID provider (npm
//! `oidc-provider`), driven through its login and consent pages by an HTTP client with cookies,
//! writes the key pair; then `ssh` reaches a real sshd whose AuthorizedKeysCommand is our
//! `opkssh verify`.
//!
//! Gated like the harness: without `OPKSSH_E2E=1` every test prints `SKIP e2e: …` and passes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)] // test code: a panic is a failure

use opkssh_tests::e2e::{self, E2e, LOGIN_USER, LOGIN_USER2, Op, VerifyServer, http_login};
use opkssh_tests::login::{LoginProcess, LoginRun, login_through_op};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A scope list that gets email, groups and a refresh token from the test OP.
const SCOPES: &str = "openid profile email groups offline_access";

fn provider_spec(op: &Op) -> String {
    format!("{},{},,{SCOPES}", op.issuer(), op.client_id())
}

/// Logs in through the OP's pages as `who` with `opkssh login <args>` and `HOME=home`.
fn login(home: &Path, args: &[&str], who: &str) -> LoginRun {
    login_through_op(home, args, &[], who)
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

#[test]
fn alice_logs_in_through_the_op_pages_and_sshes_through_verify() {
    let Some(e2e) = E2e::require() else { return };
    let op = Op::start(&[]);
    let home = e2e.dir().join("home");
    std::fs::create_dir(&home).unwrap();
    let key = e2e.dir().join("alice_key");
    let t = Instant::now();
    let run = login(
        &home,
        &[
            "--provider",
            &provider_spec(&op),
            "-i",
            key.to_str().unwrap(),
            "--print-id-token",
        ],
        "alice",
    );
    eprintln!("opkssh login through the OP's pages: {:?}", t.elapsed());
    run.assert_success();
    let cert = PathBuf::from(format!("{}-cert.pub", key.display()));
    assert!(
        run.stdout.contains(&format!(
            "Writing opk ssh public key to {} and corresponding secret key to {}",
            cert.display(),
            key.display()
        )),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("id_token:\n{"), "{}", run.stdout);
    assert!(run.stdout.contains(&format!(
        "Keys generated for identity\nEmail, sub, issuer, audience: \nalice@example.com alice {} {}",
        op.issuer(),
        op.client_id()
    )), "{}", run.stdout);
    // Go's modes and comments.
    assert_eq!(mode(&key), 0o600);
    assert_eq!(mode(&cert), 0o644);
    let cert_text = std::fs::read_to_string(&cert).unwrap();
    assert!(cert_text.ends_with(" openpubkey"), "{cert_text}");
    // No token, code or key on stdout (only the claims --print-id-token asks for).
    assert!(
        !run.stdout.contains("eyJ") && !run.stdout.contains("PRIVATE KEY"),
        "{}",
        run.stdout
    );

    let server = VerifyServer::start(
        &e2e,
        &format!("{} {} oidc\n", op.issuer(), op.client_id()),
        &format!("{LOGIN_USER} alice@example.com {}\n", op.issuer()),
    );
    server.assert_ssh_ok(LOGIN_USER, &key);
    assert!(
        server
            .verify_log()
            .contains("allow principal=e2euser identity=alice@example.com"),
        "{}",
        server.verify_log()
    );
    // The policy names e2euser only.
    server.assert_ssh_denied(LOGIN_USER2, &key);

    // logout -i removes exactly that pair.
    let logout = Command::new(e2e::target_binary("opkssh"))
        .args(["logout", "-i"])
        .arg(&key)
        .env("HOME", &home)
        .output()
        .unwrap();
    assert!(logout.status.success(), "{logout:?}");
    assert!(!key.exists() && !cert.exists());
}

#[test]
fn a_user_the_policy_does_not_name_is_denied_and_unverified_email_is_noted() {
    let Some(e2e) = E2e::require() else { return };
    let op = Op::start(&[]);
    let home = e2e.dir().join("home");
    std::fs::create_dir(&home).unwrap();
    let key = e2e.dir().join("bob_key");
    // bob's token says email_verified: false; login does not care.
    let run = login(
        &home,
        &[
            "--provider",
            &provider_spec(&op),
            "-i",
            key.to_str().unwrap(),
        ],
        "bob",
    );
    run.assert_success();
    assert!(
        run.stdout.contains("bob@example.com bob "),
        "{}",
        run.stdout
    );

    // Policy for alice only: bob is denied.
    let server = VerifyServer::start(
        &e2e,
        &format!("{} {} oidc\n", op.issuer(), op.client_id()),
        &format!("{LOGIN_USER} alice@example.com {}\n", op.issuer()),
    );
    server.assert_ssh_denied(LOGIN_USER, &key);
    assert!(
        server
            .verify_log()
            .contains("deny principal=e2euser identity=bob@example.com"),
        "{}",
        server.verify_log()
    );
    drop(server);

    // A row naming bob's email lets him in, as Go does, with the unverified email noted.
    let server = VerifyServer::start(
        &e2e,
        &format!("{} {} oidc\n", op.issuer(), op.client_id()),
        &format!("{LOGIN_USER} bob@example.com {}\n", op.issuer()),
    );
    server.assert_ssh_ok(LOGIN_USER, &key);
    assert!(
        server.verify_log().contains("email_verified"),
        "{}",
        server.verify_log()
    );
}

#[test]
fn a_principal_template_row_lets_each_user_into_their_own_account_only() {
    let Some(e2e) = E2e::require() else { return };
    let op = Op::start(&[]);
    let home = e2e.dir().join("home");
    std::fs::create_dir(&home).unwrap();
    // The OP gives an account it does not list `<name>@example.com` and `sub` = its name.
    let key = e2e.dir().join("e2euser_key");
    let run = login(
        &home,
        &[
            "--provider",
            &provider_spec(&op),
            "-i",
            key.to_str().unwrap(),
        ],
        LOGIN_USER,
    );
    run.assert_success();
    assert!(
        run.stdout
            .contains(&format!("{LOGIN_USER}@example.com {LOGIN_USER} ")),
        "{}",
        run.stdout
    );

    // One template row, no row naming e2euser.
    let server = VerifyServer::start(
        &e2e,
        &format!("{} {} oidc\n", op.issuer(), op.client_id()),
        &format!("* %u@example.com {}\n", op.issuer()),
    );
    server.assert_ssh_ok(LOGIN_USER, &key);
    assert!(
        server.verify_log().contains(&format!(
            "allow principal={LOGIN_USER} identity={LOGIN_USER}@example.com issuer={} rule: policy * %u@example.com (template, %u = {LOGIN_USER}: {LOGIN_USER}@example.com)",
            op.issuer()
        )),
        "{}",
        server.verify_log()
    );
    // The same row does not let e2euser@example.com into e2euser2.
    server.assert_ssh_denied(LOGIN_USER2, &key);
    drop(server);

    // A `*` row without %u would let one identity into every account: refused.
    let server = VerifyServer::start(
        &e2e,
        &format!("{} {} oidc\n", op.issuer(), op.client_id()),
        &format!("* {LOGIN_USER}@example.com {}\n", op.issuer()),
    );
    server.assert_ssh_denied(LOGIN_USER, &key);
    assert!(
        server
            .verify_log()
            .contains("template row refused: identity"),
        "{}",
        server.verify_log()
    );
}

#[test]
fn groups_policy_with_an_es256_op_and_ed25519_key() {
    let Some(e2e) = E2e::require() else { return };
    let op = Op::start(&[("OP_SIGNING_ALG", "ES256")]);
    assert_eq!(op.alg(), "ES256");
    let home = e2e.dir().join("home");
    std::fs::create_dir(&home).unwrap();
    let key = e2e.dir().join("alice_ed25519");
    let run = login(
        &home,
        &[
            "--provider",
            &provider_spec(&op),
            "-i",
            key.to_str().unwrap(),
            "-t",
            "ed25519",
        ],
        "alice",
    );
    run.assert_success();
    let cert_text = std::fs::read_to_string(format!("{}-cert.pub", key.display())).unwrap();
    assert!(cert_text.starts_with("ssh-ed25519-cert-v01@openssh.com "));
    let server = VerifyServer::start(
        &e2e,
        &format!("{} {} oidc\n", op.issuer(), op.client_id()),
        &format!("{LOGIN_USER} oidc:groups:ssh-users {}\n", op.issuer()),
    );
    server.assert_ssh_ok(LOGIN_USER, &key);
    // bob is in `devs`, not `ssh-users`.
    let bob_key = e2e.dir().join("bob_ed25519");
    login(
        &home,
        &[
            "--provider",
            &provider_spec(&op),
            "-i",
            bob_key.to_str().unwrap(),
            "-t",
            "ed25519",
        ],
        "bob",
    )
    .assert_success();
    server.assert_ssh_denied(LOGIN_USER, &bob_key);
}

#[test]
fn a_token_with_200_groups_goes_through() {
    let Some(e2e) = E2e::require() else { return };
    let groups: Vec<String> = (0..200)
        .map(|i| format!("group-with-a-rather-long-name-number-{i:03}"))
        .collect();
    let accounts = serde_json::json!({
        "carol": { "email": "carol@example.com", "email_verified": true, "groups": groups, "name": "Carol" }
    });
    let op = Op::start(&[("OP_ACCOUNTS", &accounts.to_string())]);
    let home = e2e.dir().join("home");
    std::fs::create_dir(&home).unwrap();
    let key = e2e.dir().join("carol_key");
    login(
        &home,
        &[
            "--provider",
            &provider_spec(&op),
            "-i",
            key.to_str().unwrap(),
        ],
        "carol",
    )
    .assert_success();
    let cert_len = std::fs::metadata(format!("{}-cert.pub", key.display()))
        .unwrap()
        .len();
    assert!(cert_len > 8_000, "certificate is only {cert_len} bytes");
    let server = VerifyServer::start(
        &e2e,
        &format!("{} {} oidc\n", op.issuer(), op.client_id()),
        &format!(
            "{LOGIN_USER} oidc:groups:group-with-a-rather-long-name-number-199 {}\n",
            op.issuer()
        ),
    );
    server.assert_ssh_ok(LOGIN_USER, &key);
}

#[test]
fn auto_refresh_keeps_the_key_and_a_refreshed_certificate_outlives_the_original_token() {
    let Some(e2e) = E2e::require() else { return };
    // ID tokens live 70 s; the loop refreshes at exp - 60 s, so about every 10 s. At 72 s the
    // original token has expired and the latest refreshed one has not.
    let ttl = 70;
    let op = Op::start(&[("OP_ID_TOKEN_TTL", &ttl.to_string())]);
    let home = e2e.dir().join("home");
    std::fs::create_dir(&home).unwrap();
    let key = e2e.dir().join("refresh_key");
    let cert = PathBuf::from(format!("{}-cert.pub", key.display()));
    let opkssh = e2e::target_binary("opkssh");
    let provider = provider_spec(&op);
    let mut login = LoginProcess::start(
        &home,
        &[
            "--auto-refresh",
            "--provider",
            &provider,
            "-i",
            key.to_str().unwrap(),
        ],
        &[],
    );
    let url = login.auth_url();
    http_login(&url, "alice").unwrap();
    login.wait_for("Keys generated for identity");
    let logged_in = Instant::now();
    let public_key = |path: &Path| {
        opk_core::sshcert::private_key_from_openssh(&std::fs::read_to_string(path).unwrap())
            .unwrap()
            .public_key()
            .thumbprint()
    };
    let first_key = public_key(&key);
    let first_cert = std::fs::read_to_string(&cert).unwrap();
    login.wait_for("Refreshing id_token...");
    login.wait_for("Writing opk ssh public key");
    // Same key; the certificate now carries `<compact>.<refreshed ID token>`.
    assert_eq!(public_key(&key), first_key);
    assert_ne!(std::fs::read_to_string(&cert).unwrap(), first_cert);
    let inspect = Command::new(&opkssh)
        .args(["inspect", "--json"])
        .arg(&cert)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&inspect.stdout);
    assert!(inspect.status.success(), "{report}");
    assert!(report.contains("refreshed_id_token"), "{report}");

    let providers = |policy: &str| format!("{} {} {policy}\n", op.issuer(), op.client_id());
    let auth_id = format!("{LOGIN_USER} alice@example.com {}\n", op.issuer());
    let refreshed = VerifyServer::start(&e2e, &providers("oidc_refreshed"), &auth_id);
    let plain = VerifyServer::start(&e2e, &providers("oidc"), &auth_id);
    std::thread::sleep(Duration::from_secs(ttl + 2).saturating_sub(logged_in.elapsed()));
    // The original ID token has expired: `oidc` denies, `oidc_refreshed` accepts the
    // certificate the loop keeps rewriting.
    plain.assert_ssh_denied(LOGIN_USER, &key);
    assert!(
        plain.verify_log().contains("expired"),
        "{}",
        plain.verify_log()
    );
    refreshed.assert_ssh_ok(LOGIN_USER, &key);
}

#[test]
fn demo_with_sshd_lets_ssh_in_through_verify() {
    let Some(_e2e) = E2e::require() else { return };
    let output = Command::new(e2e::target_binary("opkssh"))
        .args(["demo", "--sshd"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("7. sshd on 127.0.0.1:"), "{stdout}");
    assert!(stdout.contains("@127.0.0.1 true: exit 0"), "{stdout}");
    assert!(stdout.contains("sshd: Accepted publickey for "), "{stdout}");
}

/// One login as a person makes it: `opkssh login` opens the browser through `$BROWSER` (the
/// `webbrowser` crate), headless Chromium fills the OP's login and consent pages, and the
/// certificate then gets through sshd and verify.
#[test]
fn headless_chromium_login_through_browser_env() {
    let Some(e2e) = E2e::require() else { return };
    assert!(
        Path::new("/usr/bin/chromium").exists(),
        "e2e: /usr/bin/chromium is missing (apt-get install chromium; .ci/run does)"
    );
    let driver = e2e::op_dir().join("chromium_login.mjs");
    assert!(
        e2e::op_dir().join("node_modules/playwright-core").is_dir(),
        "e2e: playwright-core is missing: npm ci in tests/e2e/op"
    );
    let op = Op::start(&[]);
    let home = e2e.dir().join("home");
    std::fs::create_dir(&home).unwrap();
    let browser_log = e2e.dir().join("browser.log");
    let wrapper = e2e.dir().join("browser.sh");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nnode {} \"$1\" alice >> {} 2>&1 &\nexit 0\n",
            driver.display(),
            browser_log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let key = e2e.dir().join("chromium_key");
    let t = Instant::now();
    let output = Command::new(e2e::target_binary("opkssh"))
        .args(["login", "--timeout", "60", "--provider"])
        .arg(provider_spec(&op))
        .arg("-i")
        .arg(&key)
        .env("HOME", &home)
        .env("BROWSER", &wrapper)
        .env_remove("SSH_AUTH_SOCK")
        .env_remove("OPKSSH_PROVIDERS")
        .env_remove("OPKSSH_DEFAULT")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    eprintln!("opkssh login through headless Chromium: {:?}", t.elapsed());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}\nbrowser log:\n{}",
        String::from_utf8_lossy(&output.stderr),
        std::fs::read_to_string(&browser_log).unwrap_or_default()
    );
    assert!(
        stdout.contains("Opening browser to http://localhost:"),
        "{stdout}"
    );
    // The browser saw our success page.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !std::fs::read_to_string(&browser_log)
        .unwrap_or_default()
        .contains("CALLBACK_BODY")
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = std::fs::read_to_string(&browser_log).unwrap_or_default();
    assert!(log.contains("close this window"), "{log}");

    let server = VerifyServer::start(
        &e2e,
        &format!("{} {} oidc\n", op.issuer(), op.client_id()),
        &format!("{LOGIN_USER} alice@example.com {}\n", op.issuer()),
    );
    server.assert_ssh_ok(LOGIN_USER, &key);
}

/// Not root: verify's ownership checks cannot pass for files a user writes, so the demo runs
/// the same pipeline and policy code in process, and says so.
#[test]
fn demo_as_an_unprivileged_user() {
    let Some(e2e) = E2e::require() else { return };
    let opkssh = e2e.install_binary(&e2e::target_binary("opkssh"));
    let output = Command::new("runuser")
        .args(["-u", LOGIN_USER, "--"])
        .arg(&opkssh)
        .arg("demo")
        .current_dir("/")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("(in process: not root"), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "auth_id:   {LOGIN_USER} demo@example.com http://localhost:"
        )),
        "{stdout}"
    );
    assert!(stdout.contains("   decision: allow"), "{stdout}");
}
