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
    self, AkcConfig, DeviceChoice, E2e, LOGIN_USER, LOGIN_USER2, Op, Sshd, http_device_login,
    ssh_login,
};
use std::io::{BufRead as _, BufReader};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Scopes that get email, groups and a refresh token from the test OP.
const SCOPES: &str = "openid profile email groups offline_access";

fn provider_spec(op: &Op) -> String {
    format!("{},{},,{SCOPES}", op.issuer(), op.client_id())
}

/// A running `opkssh login --device …`, its stdout read line by line; killed on drop.
struct DeviceLogin {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

/// What the instructions told the user.
struct Instructions {
    verification_uri: String,
    user_code: String,
    verification_uri_complete: Option<String>,
}

impl DeviceLogin {
    fn start(home: &Path, args: &[&str]) -> DeviceLogin {
        let mut child = Command::new(e2e::target_binary("opkssh"))
            .args(["login", "--device"])
            .args(args)
            .env("HOME", home)
            .env_remove("OPKSSH_PROVIDERS")
            .env_remove("OPKSSH_DEFAULT")
            .env_remove("ACTIONS_ID_TOKEN_REQUEST_URL")
            .env_remove("GITLAB_CI")
            // A browser opened by mistake would show up as this failing command.
            .env("BROWSER", "false")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        DeviceLogin {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// The next stdout line (within 30 s), or `None` once stdout has closed.
    fn next_line(&mut self) -> Option<String> {
        match self.lines.recv_timeout(Duration::from_secs(30)) {
            Ok(line) => {
                self.seen.push(line.clone());
                Some(line)
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => None,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                panic!("no output for 30 s; so far:\n{}", self.seen.join("\n"))
            }
        }
    }

    /// Reads up to the "Waiting for the login" line and parses what the user is told.
    fn instructions(&mut self) -> Instructions {
        let mut verification_uri = None;
        let mut user_code = None;
        let mut verification_uri_complete = None;
        let mut previous = String::new();
        loop {
            let Some(line) = self.next_line() else {
                let (status, stderr) = self.finish();
                panic!(
                    "login ended ({status}) before waiting; stdout:\n{}\nstderr:\n{stderr}",
                    self.seen.join("\n")
                );
            };
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

    /// Waits (at most 60 s) for the command to end; the rest of stdout lands in `seen`.
    fn finish(&mut self) -> (ExitStatus, String) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "login did not finish; stdout:\n{}",
                self.seen.join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.seen.push(line);
        }
        let mut stderr = String::new();
        if let Some(mut pipe) = self.child.stderr.take() {
            std::io::Read::read_to_string(&mut pipe, &mut stderr).unwrap();
        }
        (status, stderr)
    }

    fn stdout(&self) -> String {
        self.seen.join("\n")
    }
}

impl Drop for DeviceLogin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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

/// sshd with our verify as AuthorizedKeysCommand, `providers` and `auth_id` as given.
struct Server {
    sshd: Sshd,
    rw: PathBuf,
}

impl Server {
    fn start(e2e: &E2e, providers: &str, auth_id: &str) -> Server {
        let opkssh = e2e.install_binary(&e2e::target_binary("opkssh"));
        let config = e2e.install_dir(
            &[
                ("providers", providers.as_bytes(), 0o640),
                ("auth_id", auth_id.as_bytes(), 0o640),
            ],
            Some(e2e::AKC_USER),
        );
        let rw = e2e.writable_dir(e2e::AKC_USER);
        let sshd = Sshd::start(AkcConfig::new(format!(
            "{} verify --config-dir {} --log-file {}/opkssh.log --cache-dir {}/cache %u %k %t",
            opkssh.display(),
            config.display(),
            rw.display(),
            rw.display()
        )));
        Server { sshd, rw }
    }

    fn verify_log(&self) -> String {
        std::fs::read_to_string(self.rw.join("opkssh.log")).unwrap_or_default()
    }

    fn ssh_status(&self, user: &str, key: &Path) -> (Option<i32>, String) {
        let cert = PathBuf::from(format!("{}-cert.pub", key.display()));
        let output = ssh_login(&self.sshd, user, key, Some(&cert), "id -un");
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).trim().to_owned(),
        )
    }
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
    let mut login = DeviceLogin::start(
        &home,
        &[
            "--provider",
            &provider_spec(&op),
            "-i",
            key.to_str().unwrap(),
            "--print-id-token",
        ],
    );
    let shown = login.instructions();
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
        login.stdout().contains("\u{2588}\u{2588}\u{2588}\u{2588}"),
        "{}",
        login.stdout()
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
    let (status, stderr) = login.finish();
    eprintln!(
        "opkssh login --device, approved after the first poll: {:?}",
        t.elapsed()
    );
    let stdout = login.stdout();
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
    let server = Server::start(
        &e2e,
        &format!("{} {} oidc\n", op.issuer(), op.client_id()),
        &format!("{LOGIN_USER} alice@example.com {}\n", op.issuer()),
    );
    let (code, who) = server.ssh_status(LOGIN_USER, &key);
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
    assert_eq!(server.ssh_status(LOGIN_USER2, &key).0, Some(255));
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
    let mut login = DeviceLogin::start(
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
    let shown = login.instructions();
    assert!(!login.stdout().contains('\u{2588}'), "{}", login.stdout());
    // The person opens the link that carries the code; the OP still asks to confirm it.
    let page = http_device_login(
        shown.verification_uri_complete.as_deref().unwrap(),
        &shown.user_code,
        "bob",
        DeviceChoice::Approve,
    )
    .unwrap();
    assert_eq!(page, "Sign-in Success");
    let (status, stderr) = login.finish();
    assert!(status.success(), "{status}\n{}\n{stderr}", login.stdout());
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

    let server = Server::start(
        &e2e,
        &format!("{} {} oidc\n", op.issuer(), op.client_id()),
        &format!("{LOGIN_USER} bob@example.com {}\n", op.issuer()),
    );
    let (code, who) = server.ssh_status(LOGIN_USER, &key);
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
        let mut login = DeviceLogin::start(
            &home,
            &[
                "--provider",
                &provider_spec(&op),
                "-i",
                key.to_str().unwrap(),
            ],
        );
        let shown = login.instructions();
        let page =
            http_device_login(&shown.verification_uri, &shown.user_code, "alice", choice).unwrap();
        assert_eq!(page, "The Sign-in request was interrupted", "{choice:?}");
        let (status, stderr) = login.finish();
        assert_eq!(status.code(), Some(1), "{choice:?}: {}", login.stdout());
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
    let mut login = DeviceLogin::start(
        &home,
        &[
            "--provider",
            &provider_spec(&op),
            "-i",
            key.to_str().unwrap(),
        ],
    );
    let shown = login.instructions();
    let page = http_device_login(
        &shown.verification_uri,
        &shown.user_code,
        "alice",
        DeviceChoice::Approve,
    )
    .unwrap();
    assert_eq!(page, "Sign-in Success");
    let (status, stderr) = login.finish();
    assert_eq!(status.code(), Some(1), "{}", login.stdout());
    assert_eq!(
        stderr,
        format!(
            "Error: provider {} left the nonce out of its device-flow ID token, so the token is \
             not bound to your key and opkssh refuses it; log in without --device with this \
             provider\n",
            op.issuer()
        )
    );
    assert!(!key.exists() && !cert_path(&key).exists());
    assert!(!login.stdout().contains("eyJ"), "{}", login.stdout());
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
    let mut login = DeviceLogin::start(
        &home,
        &[
            "--provider",
            &provider_spec(&op),
            "-i",
            key.to_str().unwrap(),
        ],
    );
    let (status, stderr) = login.finish();
    assert_eq!(status.code(), Some(1), "{}", login.stdout());
    assert_eq!(
        stderr,
        format!(
            "Error: provider {} does not support the device flow\n",
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
    let mut login = DeviceLogin::start(
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
    let shown = login.instructions();
    http_device_login(
        &shown.verification_uri,
        &shown.user_code,
        "alice",
        DeviceChoice::Approve,
    )
    .unwrap();
    let mut wait_for = |pattern: &str| loop {
        let line = login
            .next_line()
            .unwrap_or_else(|| panic!("ended before {pattern:?}"));
        if line.contains(pattern) {
            break;
        }
    };
    wait_for("Keys generated for identity");
    let public_key = || {
        opk_core::sshcert::private_key_from_openssh(&std::fs::read_to_string(&key).unwrap())
            .unwrap()
            .public_key()
            .thumbprint()
    };
    let first_key = public_key();
    let first_cert = std::fs::read_to_string(&cert).unwrap();
    wait_for("Refreshing id_token...");
    wait_for("Writing opk ssh public key");
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
