//! `opkssh login --device` end to end: the real binary runs the device flow (RFC 8628) against
//! the real OpenID provider (npm `oidc-provider`); a person's browser is played by an HTTP
//! client with cookies on the OP's device pages (code entry, confirmation, login, consent);
//! the certificate then gets through a real sshd whose AuthorizedKeysCommand is our
//! `opkssh verify`. The refusals: the user aborts or cancels, the OP drops the nonce, the OP
//! has no device endpoint.
//!
//! Gated like the harness: without `OPKSSH_E2E=1` every test prints `SKIP e2e: …` and passes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)] // test code: a panic is a failure

use opk_core::pktoken::PkToken;
use opk_core::sshcert::OpksshCertificate;
use opkssh_tests::e2e::{
    self, DeviceChoice, E2e, LOGIN_USER, LOGIN_USER2, Op, VerifyServer, http_device_login,
};
use opkssh_tests::login::{LoginProcess, Pipe};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Scopes that get email, groups and a refresh token from the test OP.
const SCOPES: &str = "openid profile email groups offline_access";

fn provider_spec(op: &Op) -> String {
    format!("{},{},,{SCOPES}", op.issuer(), op.client_id())
}

/// What the instructions told the user.
struct Instructions {
    verification_uri: String,
    user_code: String,
    verification_uri_complete: Option<String>,
}

/// Starts `opkssh login --device <args>`.
fn start_device(home: &Path, args: &[&str]) -> LoginProcess {
    let mut all = vec!["--device"];
    all.extend_from_slice(args);
    LoginProcess::start(home, &all, &[])
}

/// Reads up to the "Waiting for the login" line and parses what the user is told.
fn instructions(login: &mut LoginProcess) -> Instructions {
    let mut verification_uri = None;
    let mut user_code = None;
    let mut verification_uri_complete = None;
    let mut previous = String::new();
    loop {
        let Some((pipe, line)) = login.next_line() else {
            panic!("login ended before waiting:\n{}", login.stdout_so_far());
        };
        if pipe != Pipe::Stdout {
            continue;
        }
        if previous.starts_with("To log in, open this page") {
            verification_uri = Some(line.trim().to_owned());
        }
        if previous.starts_with("Or open this link") {
            verification_uri_complete = Some(line.trim().to_owned());
        }
        if let Some(code) = line.strip_prefix("and enter the code: ") {
            user_code = Some(code.to_owned());
        }
        if line.starts_with("Waiting for the login to be approved") {
            break;
        }
        previous = line;
    }
    Instructions {
        verification_uri: verification_uri.expect("verification URI printed"),
        user_code: user_code.expect("user code printed"),
        verification_uri_complete,
    }
}

/// Waits until the client has polled the token endpoint at least once, so the user's approval
/// comes after an `authorization_pending` answer, as with a person who needs time.
fn wait_for_first_poll(op: &Op) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while op.request_counts().token == 0 {
        assert!(Instant::now() < deadline, "no token poll within 30 s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `ssh … id -un` through the server: the exit code and who it says we are.
fn ssh_status(server: &VerifyServer, user: &str, key: &Path) -> (Option<i32>, String) {
    let output = server.ssh(user, key, "id -un");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).trim().to_owned(),
    )
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

fn cert_path(key: &Path) -> PathBuf {
    PathBuf::from(format!("{}-cert.pub", key.display()))
}

/// The PK token in a written certificate, and whether the certificate's key is the CIC's.
fn pk_token_of(cert: &Path) -> PkToken {
    let line = std::fs::read_to_string(cert).unwrap();
    let certificate = OpksshCertificate::from_line(line.trim()).unwrap();
    let pk_token = PkToken::from_compact(certificate.pk_token().unwrap()).unwrap();
    assert!(
        certificate.matches_upk(pk_token.cic_claims().upk()),
        "the certificate's key is the key the PK token commits to"
    );
    pk_token
}

#[test]
fn device_login_binds_the_key_and_the_certificate_passes_sshd_and_verify() {
    let Some(e2e) = E2e::require() else { return };
    let op = Op::start(&[]);
    let home = e2e.dir().join("home");
    std::fs::create_dir(&home).unwrap();
    let key = e2e.dir().join("alice_device");
    let cert = cert_path(&key);
    let t = Instant::now();
    let mut login = start_device(
        &home,
        &[
            "--provider",
            &provider_spec(&op),
            "-i",
            key.to_str().unwrap(),
            "--print-id-token",
        ],
    );
    let shown = instructions(&mut login);
    assert_eq!(shown.verification_uri, op.url("/device"));
    assert_eq!(
        shown.verification_uri_complete.as_deref(),
        Some(
            format!(
                "{}?user_code={}",
                op.url("/device"),
                e2e::urlencode(&shown.user_code)
            )
            .as_str()
        )
    );
    // The QR code of the complete link is drawn by default.
    assert!(
        login
            .stdout_so_far()
            .contains("\u{2588}\u{2588}\u{2588}\u{2588}"),
        "{}",
        login.stdout_so_far()
    );
    assert_eq!(op.request_counts().paths.get("/device/auth"), Some(&1));
    wait_for_first_poll(&op);
    let page = http_device_login(
        &shown.verification_uri,
        &shown.user_code,
        "alice",
        DeviceChoice::Approve,
    )
    .unwrap();
    assert_eq!(page, "Sign-in Success");
    let run = login.finish();
    let (status, stderr) = (run.status, run.stderr.clone());
    eprintln!(
        "opkssh login --device, approved after the first poll: {:?}",
        t.elapsed()
    );
    let stdout = run.stdout;
    assert!(
        status.success(),
        "{status}\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    // At least one authorization_pending answer, then the tokens.
    assert!(op.request_counts().token >= 2, "{:?}", op.request_counts());
    assert!(
        stdout.contains(&format!(
            "Writing opk ssh public key to {} and corresponding secret key to {}",
            cert.display(),
            key.display()
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "Keys generated for identity\nEmail, sub, issuer, audience: \nalice@example.com alice {} {}",
            op.issuer(),
            op.client_id()
        )),
        "{stdout}"
    );
    assert_eq!(mode(&key), 0o600);
    assert_eq!(mode(&cert), 0o644);
    // No token or key on stdout, only the claims --print-id-token asks for.
    assert!(
        !stdout.contains("eyJ") && !stdout.contains("PRIVATE KEY"),
        "{stdout}"
    );

    // The ID token carries the commitment to the certificate's key as its nonce.
    let pk_token = pk_token_of(&cert);
    let claims = pk_token.claims();
    assert_eq!(claims.issuer(), op.issuer());
    assert_eq!(claims.audience().as_single(), Some(op.client_id()));
    assert_eq!(claims.email(), Some("alice@example.com"));
    assert_eq!(
        claims.nonce(),
        Some(pk_token.cic_claims().commitment().as_str())
    );
    assert!(stdout.contains(&format!(
        "\"nonce\": \"{}\"",
        pk_token.cic_claims().commitment()
    )));

    // A real sshd lets alice's principal in through `opkssh verify`, and no one else.
    let server = VerifyServer::start(
        &e2e,
        &format!("{} {} oidc\n", op.issuer(), op.client_id()),
        &format!("{LOGIN_USER} alice@example.com {}\n", op.issuer()),
    );
    let (code, who) = ssh_status(&server, LOGIN_USER, &key);
    assert_eq!(
        code,
        Some(0),
        "verify log:\n{}\nsshd log:\n{}",
        server.verify_log(),
        server.sshd.log()
    );
    assert_eq!(who, LOGIN_USER);
    assert!(
        server
            .verify_log()
            .contains("allow principal=e2euser identity=alice@example.com"),
        "{}",
        server.verify_log()
    );
    assert_eq!(ssh_status(&server, LOGIN_USER2, &key).0, Some(255));
}

#[test]
fn device_login_with_a_config_alias_es256_op_and_ed25519_key_without_qr() {
    let Some(e2e) = E2e::require() else { return };
    let op = Op::start(&[("OP_SIGNING_ALG", "ES256")]);
    let home = e2e.dir().join("home");
    std::fs::create_dir_all(home.join(".opk")).unwrap();
    std::fs::write(
        home.join(".opk").join("config.yml"),
        format!(
            "default_provider: webchooser\nproviders:\n  - alias: other\n    issuer: https://op.invalid\n    client_id: x\n  - alias: test-op\n    issuer: {}\n    client_id: {}\n    scopes: {SCOPES}\n",
            op.issuer(),
            op.client_id()
        ),
    )
    .unwrap();
    let key = e2e.dir().join("bob_ed25519");
    let mut login = start_device(
        &home,
        &[
            "test-op",
            "--no-qr",
            "-t",
            "ed25519",
            "-i",
            key.to_str().unwrap(),
        ],
    );
    let shown = instructions(&mut login);
    assert!(
        !login.stdout_so_far().contains('\u{2588}'),
        "{}",
        login.stdout_so_far()
    );
    // The person opens the link that carries the code; the OP still asks to confirm it.
    let page = http_device_login(
        shown.verification_uri_complete.as_deref().unwrap(),
        &shown.user_code,
        "bob",
        DeviceChoice::Approve,
    )
    .unwrap();
    assert_eq!(page, "Sign-in Success");
    let run = login.finish();
    let (status, stderr) = (run.status, run.stderr.clone());
    assert!(status.success(), "{status}\n{}\n{stderr}", run.stdout);
    let cert_text = std::fs::read_to_string(cert_path(&key)).unwrap();
    assert!(
        cert_text.starts_with("ssh-ed25519-cert-v01@openssh.com "),
        "{cert_text}"
    );
    let pk_token = pk_token_of(&cert_path(&key));
    assert_eq!(pk_token.op().header_str("alg"), Some("ES256"));
    assert_eq!(
        pk_token.claims().nonce(),
        Some(pk_token.cic_claims().commitment().as_str())
    );

    let server = VerifyServer::start(
        &e2e,
        &format!("{} {} oidc\n", op.issuer(), op.client_id()),
        &format!("{LOGIN_USER} bob@example.com {}\n", op.issuer()),
    );
    let (code, who) = ssh_status(&server, LOGIN_USER, &key);
    assert_eq!(
        (code, who.as_str()),
        (Some(0), LOGIN_USER),
        "{}",
        server.verify_log()
    );
}

#[test]
fn device_login_refused_by_the_user_exits_with_access_denied() {
    let Some(e2e) = E2e::require() else { return };
    let op = Op::start(&[]);
    let home = e2e.dir().join("home");
    std::fs::create_dir(&home).unwrap();
    for choice in [
        DeviceChoice::AbortAtConfirmation,
        DeviceChoice::CancelAtConsent,
    ] {
        let key = e2e.dir().join(format!("refused_{choice:?}"));
        let mut login = start_device(
            &home,
            &[
                "--provider",
                &provider_spec(&op),
                "-i",
                key.to_str().unwrap(),
            ],
        );
        let shown = instructions(&mut login);
        let page =
            http_device_login(&shown.verification_uri, &shown.user_code, "alice", choice).unwrap();
        assert_eq!(page, "The Sign-in request was interrupted", "{choice:?}");
        let run = login.finish();
        let (status, stderr) = (run.status, run.stderr.clone());
        assert_eq!(status.code(), Some(1), "{choice:?}: {}", run.stdout);
        assert!(
            stderr.starts_with(
                "Error: access denied: the login was refused at the provider (End-User aborted interaction)"
            ),
            "{choice:?}: {stderr}"
        );
        assert!(!key.exists() && !cert_path(&key).exists());
    }
}

#[test]
fn device_login_refuses_an_id_token_without_the_nonce() {
    let Some(e2e) = E2e::require() else { return };
    // Stock oidc-provider: the device authorization's nonce does not reach the ID token.
    let op = Op::start(&[("OP_DEVICE_NONCE", "0")]);
    let home = e2e.dir().join("home");
    std::fs::create_dir(&home).unwrap();
    let key = e2e.dir().join("unbound");
    let mut login = start_device(
        &home,
        &[
            "--provider",
            &provider_spec(&op),
            "-i",
            key.to_str().unwrap(),
        ],
    );
    let shown = instructions(&mut login);
    let page = http_device_login(
        &shown.verification_uri,
        &shown.user_code,
        "alice",
        DeviceChoice::Approve,
    )
    .unwrap();
    assert_eq!(page, "Sign-in Success");
    let run = login.finish();
    let (status, stderr) = (run.status, run.stderr.clone());
    assert_eq!(status.code(), Some(1), "{}", run.stdout);
    assert_eq!(
        stderr,
        format!(
            "Error: provider {} left the nonce out of its device-flow ID token, so the token is \
             not bound to your key and opkssh refuses it; log in without --device with this \
             provider",
            op.issuer()
        )
    );
    assert!(!key.exists() && !cert_path(&key).exists());
    assert!(!run.stdout.contains("eyJ"), "{}", run.stdout);
}

#[test]
fn device_login_against_a_provider_without_a_device_endpoint() {
    let Some(e2e) = E2e::require() else { return };
    let op = Op::start(&[("OP_DEVICE_FLOW", "0")]);
    assert!(
        op.discovery()
            .get("device_authorization_endpoint")
            .is_none()
    );
    let home = e2e.dir().join("home");
    std::fs::create_dir(&home).unwrap();
    let key = e2e.dir().join("none");
    let login = start_device(
        &home,
        &[
            "--provider",
            &provider_spec(&op),
            "-i",
            key.to_str().unwrap(),
        ],
    );
    let run = login.finish();
    let (status, stderr) = (run.status, run.stderr.clone());
    assert_eq!(status.code(), Some(1), "{}", run.stdout);
    assert_eq!(
        stderr,
        format!(
            "Error: provider {} does not support the device flow",
            op.issuer()
        )
    );
    assert_eq!(op.request_counts().token, 0);
    assert!(!key.exists());
}

#[test]
fn device_login_with_auto_refresh_keeps_the_key_and_refreshes_the_certificate() {
    let Some(e2e) = E2e::require() else { return };
    // ID tokens live 63 s; the loop refreshes at exp - 60 s, so about every 3 s.
    let op = Op::start(&[("OP_ID_TOKEN_TTL", "63")]);
    let home = e2e.dir().join("home");
    std::fs::create_dir(&home).unwrap();
    let key = e2e.dir().join("refreshing");
    let cert = cert_path(&key);
    let mut login = start_device(
        &home,
        &[
            "--provider",
            &provider_spec(&op),
            "--auto-refresh",
            "--no-qr",
            "-i",
            key.to_str().unwrap(),
        ],
    );
    let shown = instructions(&mut login);
    http_device_login(
        &shown.verification_uri,
        &shown.user_code,
        "alice",
        DeviceChoice::Approve,
    )
    .unwrap();
    login.wait_for("Keys generated for identity");
    let public_key = || {
        opk_core::sshcert::private_key_from_openssh(&std::fs::read_to_string(&key).unwrap())
            .unwrap()
            .public_key()
            .thumbprint()
    };
    let first_key = public_key();
    let first_cert = std::fs::read_to_string(&cert).unwrap();
    login.wait_for("Refreshing id_token...");
    login.wait_for("Writing opk ssh public key");
    assert_ne!(std::fs::read_to_string(&cert).unwrap(), first_cert);
    assert_eq!(public_key(), first_key);
    let pk_token = pk_token_of(&cert);
    let (_, refreshed) = pk_token
        .refreshed_id_token()
        .expect("the certificate carries the refreshed ID token");
    assert_eq!(refreshed.subject(), "alice");
    assert_eq!(
        pk_token.claims().nonce(),
        Some(pk_token.cic_claims().commitment().as_str())
    );
}
