//! Attacks on `opkssh login`, through the real binary: an OpenID provider that lies (endpoints
//! that inject headers or leave https, ID tokens bound to another key, for another audience,
//! client or issuer, unsigned, expired, refreshed for another subject, device codes and links
//! disguised with bidi controls or pointing elsewhere) and a local attacker at the loopback
//! callback (another state, a rebound `Host`, a look-alike redirect host). Each login must fail
//! without writing a key, or ignore the forged request and finish the honest login. Gated like
//! the e2e tests (`OPKSSH_E2E=1`).
//!
//! The provider here is a small HTTP server of this test, not the npm one: the real provider
//! cannot be made to lie. The honest case is checked first so a refusal cannot come from a
//! broken fixture.

use opk_core::b64;
use opk_core::cic::CicHeader;
use opk_core::jwk::{Jwk, Jwks};
use opk_core::jws::{Jws, SigningKey};
use opk_core::sshcert::{OpksshCertificate, UserKeyType, generate_user_key};
use opkssh_tests::e2e;
use opkssh_tests::login::LoginProcess;
use serde_json::{Value, json};
use sha2::Digest as _;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const CLIENT_ID: &str = "login-attack-client";
const KID: &str = "lying-op";

fn now() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

/// What the lying provider answers at its token endpoint.
#[derive(Default)]
struct Answers {
    /// ID tokens for the code grant, then for each refresh, in order.
    id_tokens: Vec<String>,
    /// Form bodies posted to the token endpoint.
    token_requests: Vec<String>,
    /// What the device authorization endpoint answers (none: HTTP 404).
    device_answer: Option<Value>,
    /// Form bodies posted to the device authorization endpoint.
    device_requests: Vec<String>,
    /// Once `id_tokens` is used up: makes each further ID token (a provider that keeps
    /// refreshing).
    mint: Option<Box<dyn FnMut() -> String + Send>>,
    /// Once `id_tokens` is used up and nothing mints: the error answered (HTTP 400).
    refusal: Option<Value>,
}

/// An OpenID provider on loopback whose ID tokens the test writes.
struct LyingOp {
    issuer: String,
    key: SigningKey,
    answers: Arc<Mutex<Answers>>,
}

impl LyingOp {
    fn start() -> Self {
        Self::start_with(|_, _| {})
    }

    /// A provider whose discovery document is edited by `edit(document, issuer)`.
    fn start_with(edit: impl FnOnce(&mut Value, &str)) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let issuer = format!("http://localhost:{port}");
        let key = generate_user_key(UserKeyType::Ecdsa).unwrap();
        let jwks = Jwks::from_keys(vec![Jwk::new(
            key.public_key(),
            Some(KID.into()),
            Some(key.algorithm()),
        )])
        .to_json();
        let mut discovery = json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{issuer}/auth"),
            "token_endpoint": format!("{issuer}/token"),
            "jwks_uri": format!("{issuer}/jwks.json"),
            "device_authorization_endpoint": format!("{issuer}/device"),
        });
        edit(&mut discovery, &issuer);
        let discovery = discovery.to_string();
        let answers = Arc::new(Mutex::new(Answers::default()));
        let served = Arc::clone(&answers);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                serve(stream, &discovery, &jwks, &served);
            }
        });
        Self {
            issuer,
            key,
            answers,
        }
    }

    /// Claims of an honest ID token for `nonce`.
    fn claims(&self, nonce: &str) -> Value {
        json!({
            "iss": self.issuer, "sub": "alice", "aud": CLIENT_ID, "iat": now(),
            "exp": now() + 3600, "nonce": nonce, "email": "alice@example.com",
            "email_verified": true
        })
    }

    fn sign(&self, claims: &Value) -> String {
        self.sign_with(
            &format!(r#"{{"alg":"ES256","kid":"{KID}","typ":"JWT"}}"#),
            claims,
            &self.key,
        )
    }

    fn sign_with(&self, header: &str, claims: &Value, key: &SigningKey) -> String {
        Jws::sign(header, &b64::encode_url(claims.to_string()), key)
            .unwrap()
            .to_compact()
    }

    fn answer_with(&self, id_tokens: Vec<String>) {
        self.answers.lock().unwrap().id_tokens = id_tokens;
    }

    /// Once the queued ID tokens are used up, answers every refresh with `claims` signed
    /// afresh, issued now and expiring `lifetime` seconds later.
    fn mint_with(&self, claims: Value, lifetime: i64) {
        let key = self.key.clone();
        self.answers.lock().unwrap().mint = Some(Box::new(move || {
            let mut claims = claims.clone();
            claims["iat"] = json!(now());
            claims["exp"] = json!(now() + lifetime);
            Jws::sign(
                &format!(r#"{{"alg":"ES256","kid":"{KID}","typ":"JWT"}}"#),
                &b64::encode_url(claims.to_string()),
                &key,
            )
            .unwrap()
            .to_compact()
        }));
    }

    /// Answers the token endpoint with this OAuth error (HTTP 400).
    fn refuse_with(&self, error: Value) {
        self.answers.lock().unwrap().refusal = Some(error);
    }

    fn token_requests(&self) -> usize {
        self.answers.lock().unwrap().token_requests.len()
    }
}

fn serve(mut stream: TcpStream, discovery: &str, jwks: &str, answers: &Mutex<Answers>) {
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut length = 0;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).is_err() || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; length];
    let _ = reader.read_exact(&mut body);
    let path = request_line.split(' ').nth(1).unwrap_or("");
    let (status, content) = match path {
        "/.well-known/openid-configuration" => (200, discovery.to_owned()),
        "/jwks.json" => (200, jwks.to_owned()),
        "/token" => {
            let mut answers = answers.lock().unwrap();
            answers
                .token_requests
                .push(String::from_utf8_lossy(&body).into_owned());
            let device_grant = String::from_utf8_lossy(&body).contains("device_code=");
            let id_token = if answers.id_tokens.is_empty() {
                answers.mint.as_mut().map(|mint| mint())
            } else {
                Some(answers.id_tokens.remove(0))
            };
            if let Some(id_token) = id_token {
                (
                    200,
                    json!({"id_token": id_token, "access_token": "at", "token_type": "Bearer",
                           "refresh_token": "rt", "expires_in": 3600})
                    .to_string(),
                )
            } else if device_grant {
                (400, json!({"error": "authorization_pending"}).to_string())
            } else {
                let refusal = answers
                    .refusal
                    .clone()
                    .unwrap_or_else(|| json!({"error": "invalid_grant"}));
                (400, refusal.to_string())
            }
        }
        "/device" => {
            let mut answers = answers.lock().unwrap();
            answers
                .device_requests
                .push(String::from_utf8_lossy(&body).into_owned());
            match &answers.device_answer {
                Some(answer) => (200, answer.to_string()),
                None => (404, "{}".to_owned()),
            }
        }
        _ => (404, "{}".to_owned()),
    };
    let _ = write!(
        stream,
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{content}",
        content.len()
    );
}

/// A running `opkssh login` for the lying provider, stopped where it waits for the browser.
struct PendingLogin {
    process: LoginProcess,
    home: tempfile::TempDir,
    /// The authorization request's parameters.
    request: HashMap<String, String>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A home whose `~/.opk/config.yml` is `config`.
fn home_with_client_config(config: &str) -> tempfile::TempDir {
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir(home.path().join(".opk")).unwrap();
    std::fs::write(home.path().join(".opk").join("config.yml"), config).unwrap();
    home
}

/// A home whose client config names the provider with `redirect_uri`.
fn home_for(op: &LyingOp, redirect_uri: &str) -> tempfile::TempDir {
    home_with_client_config(&format!(
        "providers:\n  - alias: lying\n    issuer: {}\n    client_id: {CLIENT_ID}\n    scopes: openid email\n    redirect_uris:\n      - {redirect_uri}\n",
        op.issuer
    ))
}

/// Starts `opkssh login <args> lying` in `home`, stopped where it waits for the browser.
fn start_login_in(
    op: &LyingOp,
    home: tempfile::TempDir,
    args: &[&str],
    env: &[(&str, &OsStr)],
) -> PendingLogin {
    let mut args = args.to_vec();
    args.push("lying");
    let mut process = LoginProcess::start(home.path(), &args, env);
    let login_url = process.auth_url();
    PendingLogin {
        process,
        home,
        request: authorization_request(op, &login_url),
    }
}

/// GETs the listener's `/login` as the browser would; the parameters of the authorization
/// request it redirects to.
fn authorization_request(op: &LyingOp, login_url: &str) -> HashMap<String, String> {
    let response = e2e::loopback_agent().get(login_url).call().unwrap();
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        location.starts_with(&format!("{}/auth?", op.issuer)),
        "{location}"
    );
    let query = location.split_once('?').unwrap().1;
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(name, value)| (name.to_owned(), percent_decode(value)))
        .collect()
}

/// Starts a login with `-i <home>/id_key` whose client config names the provider with
/// `redirect_uri`.
fn start_login_with(op: &LyingOp, redirect_uri: &str, extra: &[&str]) -> PendingLogin {
    let home = home_for(op, redirect_uri);
    let key = home.path().join("id_key");
    let mut args = vec!["-i", key.to_str().unwrap()];
    args.extend_from_slice(extra);
    start_login_in(op, home, &args, &[])
}

fn start_login(op: &LyingOp, extra: &[&str]) -> PendingLogin {
    let redirect_uri = format!("http://localhost:{}/login-callback", free_port());
    start_login_with(op, &redirect_uri, extra)
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'%' if index + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[index + 1..index + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                index += 3;
            }
            b'+' => {
                out.push(b' ');
                index += 1;
            }
            byte => {
                out.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8(out).unwrap()
}

impl PendingLogin {
    fn param(&self, name: &str) -> &str {
        self.request
            .get(name)
            .unwrap_or_else(|| panic!("no {name} in the authorization request"))
    }

    fn key_path(&self) -> PathBuf {
        self.home.path().join("id_key")
    }

    /// GETs the callback with `query`, as the browser (or an attacker) would; the status.
    fn callback(&self, query: &str, host: Option<&str>) -> u16 {
        let url = format!("{}?{query}", self.param("redirect_uri"));
        let mut request = e2e::loopback_agent().get(&url);
        if let Some(host) = host {
            request = request.header("Host", host);
        }
        request
            .call()
            .map_or(0, |response| response.status().as_u16())
    }

    /// The port of the loopback callback listener.
    fn callback_port(&self) -> u16 {
        let authority = self
            .param("redirect_uri")
            .strip_prefix("http://")
            .unwrap()
            .split('/')
            .next()
            .unwrap();
        authority.rsplit(':').next().unwrap().parse().unwrap()
    }

    fn honest_callback(&self) -> u16 {
        let state = self.param("state").to_owned();
        self.callback(&format!("code=the-code&state={state}"), None)
    }

    /// Ends the login: whether it succeeded, everything it printed, and its home (kept until
    /// dropped).
    fn end(self) -> (bool, String, tempfile::TempDir) {
        let run = self.process.finish();
        let printed = format!(
            "{}\nstdout:\n{}\nstderr:\n{}",
            run.status, run.stdout, run.stderr
        );
        (run.status.success(), printed, self.home)
    }
}

/// A local client at a loopback listener that sends the start of a request one byte every
/// `every` and never finishes it (slowloris): at most `bytes` bytes, stopped when dropped.
struct SlowClient {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl SlowClient {
    fn start(port: u16, every: Duration, bytes: usize) -> Self {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            for byte in b"GET /login-callback?state=".iter().cycle().take(bytes) {
                if stream.write_all(&[*byte]).is_err() {
                    return;
                }
                let next = Instant::now() + every;
                while Instant::now() < next {
                    if stopped.load(Ordering::Acquire) {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        });
        // Give the listener time to take this connection before any other.
        std::thread::sleep(Duration::from_millis(500));
        Self { stop, thread }
    }

    /// Whether it is still connected and sending.
    fn sending(&self) -> bool {
        !self.thread.is_finished()
    }
}

impl Drop for SlowClient {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

/// Runs a login whose code grant answers `id_token(nonce)`; asserts it fails, naming `reason`,
/// and wrote no key.
fn assert_refused(op: &LyingOp, id_token: impl FnOnce(&str) -> String, reason: &str) {
    let login = start_login(op, &[]);
    op.answer_with(vec![id_token(login.param("nonce"))]);
    let _ = login.honest_callback();
    let (succeeded, output, home) = login.end();
    assert!(!succeeded, "login accepted it:\n{output}");
    assert!(output.contains(reason), "expected `{reason}`:\n{output}");
    assert!(
        !home.path().join("id_key").exists(),
        "a key was written:\n{output}"
    );
    assert!(!home.path().join("id_key-cert.pub").exists());
}

fn gated() -> Option<LyingOp> {
    if !e2e::enabled() {
        eprintln!("SKIP e2e: set OPKSSH_E2E=1");
        return None;
    }
    Some(LyingOp::start())
}

#[test]
fn honest_provider_fixture_logs_in_with_pkce() {
    let Some(op) = gated() else { return };
    let login = start_login(&op, &[]);
    let claims = op.claims(login.param("nonce"));
    op.answer_with(vec![op.sign(&claims)]);
    assert_eq!(login.honest_callback(), 200);
    let challenge = login.param("code_challenge").to_owned();
    assert_eq!(login.param("code_challenge_method"), "S256");
    let (succeeded, output, home) = login.end();
    assert!(succeeded, "{output}");
    let certificate = std::fs::read_to_string(home.path().join("id_key-cert.pub")).unwrap();
    OpksshCertificate::from_line(&certificate).unwrap();
    // The code went back with the verifier of this login's challenge.
    let body = op.answers.lock().unwrap().token_requests.remove(0);
    assert!(body.contains("code=the-code"), "{body}");
    let verifier = body
        .split('&')
        .find_map(|pair| pair.strip_prefix("code_verifier="))
        .unwrap();
    let digest = sha2::Sha256::digest(percent_decode(verifier).as_bytes());
    assert_eq!(b64::encode_url(digest), challenge);
}

#[test]
fn id_token_whose_nonce_commits_to_another_key() {
    let Some(op) = gated() else { return };
    let attacker_key = generate_user_key(UserKeyType::Ecdsa).unwrap();
    let attacker_cic = CicHeader::generate(&attacker_key, &[]).unwrap();
    let other_nonce = attacker_cic.commitment().to_owned();
    assert_refused(
        &op,
        |_| op.sign(&op.claims(&other_nonce)),
        "nonce does not match the key commitment",
    );
}

#[test]
fn id_token_without_nonce() {
    let Some(op) = gated() else { return };
    assert_refused(
        &op,
        |nonce| {
            let mut claims = op.claims(nonce);
            claims.as_object_mut().unwrap().remove("nonce");
            op.sign(&claims)
        },
        "nonce",
    );
}

#[test]
fn id_token_for_another_audience() {
    let Some(op) = gated() else { return };
    assert_refused(
        &op,
        |nonce| {
            let mut claims = op.claims(nonce);
            claims["aud"] = json!("another-client");
            op.sign(&claims)
        },
        "audience does not contain",
    );
}

#[test]
fn id_token_from_another_issuer() {
    let Some(op) = gated() else { return };
    assert_refused(
        &op,
        |nonce| {
            let mut claims = op.claims(nonce);
            claims["iss"] = json!("https://accounts.google.com");
            op.sign(&claims)
        },
        "issuer",
    );
}

#[test]
fn id_token_signed_by_a_key_the_provider_does_not_publish() {
    let Some(op) = gated() else { return };
    let stranger = generate_user_key(UserKeyType::Ecdsa).unwrap();
    assert_refused(
        &op,
        |nonce| {
            op.sign_with(
                &format!(r#"{{"alg":"ES256","kid":"{KID}","typ":"JWT"}}"#),
                &op.claims(nonce),
                &stranger,
            )
        },
        "id token",
    );
}

#[test]
fn id_token_with_alg_none() {
    let Some(op) = gated() else { return };
    assert_refused(
        &op,
        |nonce| {
            format!(
                "{}.{}.",
                b64::encode_url(r#"{"alg":"none","typ":"JWT"}"#),
                b64::encode_url(op.claims(nonce).to_string())
            )
        },
        "id token",
    );
}

#[test]
fn id_token_already_expired() {
    let Some(op) = gated() else { return };
    assert_refused(
        &op,
        |nonce| {
            let mut claims = op.claims(nonce);
            claims["iat"] = json!(now() - 7200);
            claims["exp"] = json!(now() - 3600);
            op.sign(&claims)
        },
        "expired",
    );
}

#[test]
fn id_token_authorized_for_another_client() {
    let Some(op) = gated() else { return };
    // Issued to another client of the provider, with us merely among its audiences.
    assert_refused(
        &op,
        |nonce| {
            let mut claims = op.claims(nonce);
            claims["aud"] = json!([CLIENT_ID, "another-client"]);
            claims["azp"] = json!("another-client");
            op.sign(&claims)
        },
        "azp `another-client` is another client",
    );
    assert_refused(
        &op,
        |nonce| {
            let mut claims = op.claims(nonce);
            claims["azp"] = json!("another-client");
            op.sign(&claims)
        },
        "azp `another-client` is another client",
    );
    assert_refused(
        &op,
        |nonce| {
            let mut claims = op.claims(nonce);
            claims["aud"] = json!([CLIENT_ID, "another-client"]);
            op.sign(&claims)
        },
        "no azp says which client",
    );
}

#[test]
fn id_token_authorized_for_us_among_several_audiences_logs_in() {
    let Some(op) = gated() else { return };
    let login = start_login(&op, &[]);
    let mut claims = op.claims(login.param("nonce"));
    claims["aud"] = json!([CLIENT_ID, "https://api.example"]);
    claims["azp"] = json!(CLIENT_ID);
    op.answer_with(vec![op.sign(&claims)]);
    assert_eq!(login.honest_callback(), 200);
    let (succeeded, output, home) = login.end();
    assert!(succeeded, "{output}");
    assert!(home.path().join("id_key-cert.pub").exists(), "{output}");
}

#[test]
fn callback_with_another_state_is_ignored() {
    let Some(op) = gated() else { return };
    let login = start_login(&op, &[]);
    op.answer_with(vec![op.sign(&op.claims(login.param("nonce")))]);
    // A page the attacker opened in the user's browser delivers the attacker's code.
    assert_eq!(
        login.callback("code=attackers-code&state=guessed", None),
        400
    );
    assert!(op.answers.lock().unwrap().token_requests.is_empty());
    assert_eq!(login.honest_callback(), 200);
    let (succeeded, output, _) = login.end();
    assert!(succeeded, "{output}");
    let requests = &op.answers.lock().unwrap().token_requests;
    assert_eq!(requests.len(), 1);
    assert!(requests[0].contains("code=the-code"), "{requests:?}");
}

#[test]
fn callback_through_a_rebound_host_name_is_refused() {
    let Some(op) = gated() else { return };
    let login = start_login(&op, &[]);
    op.answer_with(vec![op.sign(&op.claims(login.param("nonce")))]);
    // DNS rebinding: attacker.example resolved to 127.0.0.1, the browser sends its name.
    let port = login.param("redirect_uri").rsplit(':').next().unwrap();
    let port = port.split('/').next().unwrap().to_owned();
    let state = login.param("state").to_owned();
    assert_eq!(
        login.callback(
            &format!("code=the-code&state={state}"),
            Some(&format!("attacker.example:{port}"))
        ),
        400
    );
    assert!(op.answers.lock().unwrap().token_requests.is_empty());
    assert_eq!(login.honest_callback(), 200);
    let (succeeded, output, _) = login.end();
    assert!(succeeded, "{output}");
}

#[test]
fn callback_error_from_the_provider_ends_the_login() {
    let Some(op) = gated() else { return };
    let login = start_login(&op, &[]);
    let state = login.param("state").to_owned();
    login.callback(
        &format!("error=access_denied&error_description=user+said+no&state={state}"),
        None,
    );
    let (succeeded, output, home) = login.end();
    assert!(!succeeded, "{output}");
    assert!(output.contains("access_denied"), "{output}");
    assert!(!home.path().join("id_key").exists());
}

#[test]
fn callback_error_without_the_state_is_ignored() {
    let Some(op) = gated() else { return };
    let login = start_login(&op, &[]);
    op.answer_with(vec![op.sign(&op.claims(login.param("nonce")))]);
    // Any page the browser opens, or any local process, can send these: they are not the
    // provider's answer to this login and must not end it.
    assert_eq!(
        login.callback("error=access_denied&error_description=stop", None),
        400
    );
    assert_eq!(
        login.callback("error=access_denied&state=guessed", None),
        400
    );
    assert_eq!(login.honest_callback(), 200);
    let (succeeded, output, home) = login.end();
    assert!(succeeded, "{output}");
    assert!(!output.contains("access_denied"), "{output}");
    assert!(home.path().join("id_key-cert.pub").exists(), "{output}");
}

#[test]
fn callback_error_description_with_terminal_controls() {
    let Some(op) = gated() else { return };
    let log_dir = tempfile::tempdir().unwrap();
    let login = start_login(&op, &["--log-dir", log_dir.path().to_str().unwrap()]);
    let state = login.param("state").to_owned();
    // ESC ]0;…BEL retitles the terminal, ESC [2K erases the line, CR returns to its start, LF
    // starts a line of its own.
    let error = "access_denied%1B%5D0%3Bowned%07";
    let description = "denied%1B%5B2K%0D%0AAllowed+as+root";
    let query = format!("error={error}&error_description={description}&state={state}");
    assert_eq!(login.callback(&query, None), 500);
    let run = login.process.finish();
    let printed = format!("stdout:\n{}\nstderr:\n{}", run.stdout, run.stderr);
    assert!(!run.status.success(), "{printed}");
    let log = std::fs::read_to_string(log_dir.path().join("opkssh.log")).unwrap();
    for (name, text) in [
        ("stdout", &run.stdout),
        ("stderr", &run.stderr),
        ("log", &log),
    ] {
        assert!(
            !text.contains(['\x1b', '\x07', '\r']),
            "raw control characters on {name}:\n{printed}\nlog:\n{log}"
        );
    }
    let shown = r"access_denied\x1b]0;owned\x07 (denied\x1b[2K\r\nAllowed as root)";
    assert!(run.stderr.contains(shown), "{printed}");
    assert!(log.contains(shown), "{log}");
    assert!(!login.home.path().join("id_key").exists());
}

#[test]
fn slow_client_at_the_callback_does_not_hold_up_the_login() {
    let Some(op) = gated() else { return };
    let login = start_login(&op, &[]);
    op.answer_with(vec![op.sign(&op.claims(login.param("nonce")))]);
    // One byte every 2 s is within any per-read timeout; 30 of them would take a minute.
    let slow = SlowClient::start(login.callback_port(), Duration::from_secs(2), 30);
    assert_eq!(login.honest_callback(), 200);
    assert!(
        slow.sending(),
        "the slow client stopped before the callback"
    );
    let (succeeded, output, home) = login.end();
    assert!(succeeded, "{output}");
    assert!(home.path().join("id_key-cert.pub").exists(), "{output}");
}

#[test]
fn slow_client_at_the_callback_cannot_outlast_the_timeout() {
    let Some(op) = gated() else { return };
    let login = start_login(&op, &["--timeout", "5"]);
    let started = Instant::now();
    let slow = SlowClient::start(login.callback_port(), Duration::from_secs(2), 30);
    let mut process = login.process;
    let limit = Duration::from_secs(5 + 10);
    while !process.has_exited() && started.elapsed() < limit {
        std::thread::sleep(Duration::from_millis(100));
    }
    let ended = process.has_exited();
    let slow_still_sending = slow.sending();
    drop(slow);
    if !ended {
        process.kill();
    }
    let run = process.finish();
    let printed = format!("stdout:\n{}\nstderr:\n{}", run.stdout, run.stderr);
    assert!(
        ended,
        "--timeout 5 still waiting after {limit:?}:\n{printed}"
    );
    assert!(slow_still_sending, "the slow client stopped first");
    run.assert_failure("timed out after 5 seconds");
}

#[test]
fn chooser_page_through_another_host_name_or_method() {
    let Some(op) = gated() else { return };
    let home = home_with_client_config(&format!(
        "default_provider: webchooser\nproviders:\n  - alias: lying\n    issuer: {}\n    client_id: {CLIENT_ID}\n    scopes: openid email\n    redirect_uris:\n      - http://localhost:{}/login-callback\n  - alias: other\n    issuer: https://op.invalid\n    client_id: x\n",
        op.issuer,
        free_port()
    ));
    let key = home.path().join("id_key");
    let mut process = LoginProcess::start(home.path(), &["-i", key.to_str().unwrap()], &[]);
    let chooser_url = process.auth_url();
    assert!(chooser_url.ends_with("/chooser"), "{chooser_url}");
    let base = chooser_url.strip_suffix("/chooser").unwrap();
    let port = base.rsplit(':').next().unwrap();
    let agent = e2e::loopback_agent();
    let status = |response: Result<ureq::http::Response<ureq::Body>, ureq::Error>| {
        response.map_or(0, |response| response.status().as_u16())
    };
    let rebound = format!("attacker.example:{port}");
    // A page on attacker.example, rebound to 127.0.0.1, reads the list or chooses.
    assert_eq!(
        status(agent.get(&chooser_url).header("Host", &rebound).call()),
        400
    );
    let honest_page = agent
        .get(&chooser_url)
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    let choice = honest_page
        .split("href=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .find(|href| href.contains("localhost"))
        .unwrap_or_else(|| panic!("no button for the lying provider:\n{honest_page}"))
        .to_owned();
    let select_url = format!("{base}{choice}");
    assert_eq!(
        status(agent.get(&select_url).header("Host", &rebound).call()),
        400
    );
    // A form on any site posts to the chooser.
    assert_eq!(status(agent.post(&chooser_url).send_empty()), 405);
    assert_eq!(status(agent.post(&select_url).send_empty()), 405);
    assert_eq!(status(agent.put(&select_url).send_empty()), 405);
    // None of those chose: the honest GET does, and the login goes on to the end.
    let chosen = agent.get(&select_url).call().unwrap();
    assert_eq!(chosen.status().as_u16(), 302);
    let login_url = chosen.headers()["location"].to_str().unwrap().to_owned();
    assert!(login_url.ends_with("/login"), "{login_url}");
    let login = PendingLogin {
        process,
        home,
        request: authorization_request(&op, &login_url),
    };
    op.answer_with(vec![op.sign(&op.claims(login.param("nonce")))]);
    assert_eq!(login.honest_callback(), 200);
    let (succeeded, output, _home) = login.end();
    assert!(succeeded, "{output}");
}

#[test]
fn redirect_uri_on_a_look_alike_of_localhost() {
    let Some(op) = gated() else { return };
    // openpubkey#375: a prefix check let `localhost.attacker.com` through.
    let home = home_with_client_config(&format!(
        "providers:\n  - alias: lying\n    issuer: {}\n    client_id: {CLIENT_ID}\n    scopes: openid\n    redirect_uris:\n      - http://localhost.attacker.com:{}/login-callback\n",
        op.issuer,
        free_port()
    ));
    let output = Command::new(e2e::target_binary("opkssh"))
        .args(["login", "--disable-browser-open", "lying"])
        .env("HOME", home.path())
        .env_remove("SSH_AUTH_SOCK")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!output.status.success(), "{text}");
    assert!(!text.contains("Open your browser"), "{text}");
    assert!(text.contains("localhost.attacker.com"), "{text}");
}

/// A home whose client config names `op` as `lying`, with a free loopback redirect URI.
fn home_with_free_port(op: &LyingOp) -> tempfile::TempDir {
    home_for(
        op,
        &format!("http://localhost:{}/login-callback", free_port()),
    )
}

/// Runs `opkssh login <args> lying` to its end (`--timeout 3`, so a login that wrongly goes on
/// to wait for the browser or the device approval ends soon); whether it succeeded and what it
/// printed.
fn login_to_the_end(home: &Path, args: &[&str]) -> (bool, String) {
    let key = home.join("id_key");
    let mut all = vec!["--timeout", "3", "-i", key.to_str().unwrap()];
    all.extend_from_slice(args);
    all.push("lying");
    let run = LoginProcess::start(home, &all, &[]).finish();
    let printed = format!(
        "{}\nstdout:\n{}\nstderr:\n{}",
        run.status, run.stdout, run.stderr
    );
    (run.status.success(), printed)
}

/// A provider whose discovery document sets `field` to `url(issuer)`: the login must stop
/// before the browser is opened, naming the field, and write nothing.
fn assert_discovery_refused(field: &str, url: impl FnOnce(&str) -> String, reason: &str) {
    let op = LyingOp::start_with(|document, issuer| document[field] = json!(url(issuer)));
    let home = home_with_free_port(&op);
    let (succeeded, output) = login_to_the_end(home.path(), &[]);
    assert!(!succeeded, "login accepted it:\n{output}");
    assert!(
        output.contains(&format!("discovery document's {field} `")) && output.contains(reason),
        "expected {field} and `{reason}`:\n{output}"
    );
    assert!(!output.contains("Open your browser"), "{output}");
    assert!(!home.path().join("id_key").exists(), "{output}");
}

#[test]
fn discovery_authorization_endpoint_with_crlf_injects_headers() {
    if gated().is_none() {
        return;
    }
    // The endpoint becomes the Location header of the local /login redirect.
    assert_discovery_refused(
        "authorization_endpoint",
        |issuer| format!("{issuer}/auth\r\nSet-Cookie: session=attacker"),
        "has a space, a control character",
    );
}

#[test]
fn discovery_endpoints_over_plain_http_to_another_host() {
    if gated().is_none() {
        return;
    }
    for field in [
        "authorization_endpoint",
        "token_endpoint",
        "jwks_uri",
        "userinfo_endpoint",
        "device_authorization_endpoint",
    ] {
        assert_discovery_refused(
            field,
            |_| "http://op.attacker.example/endpoint".to_owned(),
            "is not https://",
        );
    }
    // A look-alike of localhost and a user name before it are other hosts too.
    assert_discovery_refused(
        "token_endpoint",
        |_| "http://localhost.attacker.example/token".to_owned(),
        "is not https://",
    );
    assert_discovery_refused(
        "authorization_endpoint",
        |issuer| format!("{issuer}@attacker.example/auth"),
        "user name",
    );
}

/// `--auto-refresh` with a first token due for refreshing at once (so the refresh comes after
/// the loop's minimum interval); the refresh answers `refreshed`. Returns the certificate
/// before, after, and the output.
fn auto_refresh_with(
    op: &LyingOp,
    refreshed: impl FnOnce(&Value) -> String,
) -> (String, String, String) {
    let login = start_login(op, &["--auto-refresh"]);
    let mut claims = op.claims(login.param("nonce"));
    // Refreshes start 60 s before exp, and no sooner than the minimum interval.
    claims["exp"] = json!(now() + 61);
    let mut fresh = claims.clone();
    fresh.as_object_mut().unwrap().remove("nonce");
    fresh["exp"] = json!(now() + 3600);
    op.answer_with(vec![op.sign(&claims), refreshed(&fresh)]);
    assert_eq!(login.honest_callback(), 200);
    let certificate_path = format!("{}-cert.pub", login.key_path().display());
    let deadline = Instant::now() + Duration::from_secs(10);
    while !Path::new(&certificate_path).exists() {
        assert!(Instant::now() < deadline, "no certificate written");
        std::thread::sleep(Duration::from_millis(20));
    }
    let before = std::fs::read_to_string(&certificate_path).unwrap();
    let (succeeded, output, _home) = login.end();
    assert!(!succeeded, "auto-refresh went on:\n{output}");
    let after = std::fs::read_to_string(&certificate_path).unwrap();
    (before, after, output)
}

#[test]
fn refreshed_id_token_for_another_subject() {
    let Some(op) = gated() else { return };
    let (before, after, output) = auto_refresh_with(&op, |fresh| {
        let mut fresh = fresh.clone();
        fresh["sub"] = json!("mallory");
        fresh["email"] = json!("mallory@example.com");
        op.sign(&fresh)
    });
    assert!(output.contains("another subject"), "{output}");
    assert_eq!(before, after, "the certificate was rewritten");
    assert_eq!(op.answers.lock().unwrap().token_requests.len(), 2);
}

#[test]
fn refreshed_id_token_for_another_audience() {
    let Some(op) = gated() else { return };
    let (before, after, output) = auto_refresh_with(&op, |fresh| {
        let mut fresh = fresh.clone();
        fresh["aud"] = json!("another-client");
        op.sign(&fresh)
    });
    assert!(output.contains("audience does not contain"), "{output}");
    assert_eq!(before, after, "the certificate was rewritten");
}

#[test]
fn refreshed_id_token_signed_by_a_stranger() {
    let Some(op) = gated() else { return };
    let stranger = generate_user_key(UserKeyType::Ecdsa).unwrap();
    let (before, after, output) = auto_refresh_with(&op, |fresh| {
        op.sign_with(
            &format!(r#"{{"alg":"ES256","kid":"{KID}","typ":"JWT"}}"#),
            fresh,
            &stranger,
        )
    });
    assert!(output.contains("id token"), "{output}");
    assert_eq!(before, after, "the certificate was rewritten");
}

/// A proxy in the user's environment that holds a password and does not parse (another scheme,
/// an unencoded space): the login to the loopback provider goes ahead, since loopback is never
/// proxied, and a login to a provider behind the proxy fails naming the variable. The password
/// is printed in neither.
#[test]
fn login_through_an_unparsable_proxy_with_a_password() {
    let Some(op) = gated() else { return };
    for proxy in [
        "ftp://proxyuser:S3cretPassw0rd@proxy.corp:3128",
        "http://proxyuser:S3cret Passw0rd@proxy.corp:3128",
    ] {
        let env = [
            ("HTTPS_PROXY", std::ffi::OsStr::new(proxy)),
            ("HTTP_PROXY", std::ffi::OsStr::new(proxy)),
        ];
        let no_password = |printed: &str| {
            for secret in ["S3cret", "Passw0rd", "proxyuser"] {
                assert!(
                    !printed.contains(secret),
                    "PROXY CREDENTIAL SHOWN ({secret})\n{printed}"
                );
            }
        };

        let home = home_with_client_config(&format!(
            "providers:\n  - alias: remote\n    issuer: https://opk-issuer.test\n    client_id: {CLIENT_ID}\n    scopes: openid\n    redirect_uris:\n      - http://localhost:{}/login-callback\n",
            free_port()
        ));
        let output = Command::new(e2e::target_binary("opkssh"))
            .args(["login", "--disable-browser-open", "remote"])
            .env("HOME", home.path())
            .envs(env)
            .env_remove("SSH_AUTH_SOCK")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let printed = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        no_password(&printed);
        assert!(!output.status.success(), "{proxy}: {printed}");
        assert!(
            printed.contains(
                "https://opk-issuer.test/.well-known/openid-configuration would go through the \
                 proxy in HTTPS_PROXY, which is not a usable http or https proxy URL (value not shown)"
            ),
            "{proxy}: {printed}"
        );

        let home = home_with_client_config(&format!(
            "providers:\n  - alias: lying\n    issuer: {}\n    client_id: {CLIENT_ID}\n    scopes: openid\n    redirect_uris:\n      - http://localhost:{}/login-callback\n",
            op.issuer,
            free_port()
        ));
        let mut login = LoginProcess::start(home.path(), &["lying"], &env);
        // The authorization URL comes from the provider's discovery document: it was fetched.
        let url = login.auth_url();
        assert!(url.contains("localhost"), "{url}");
        login.kill();
        no_password(&login.stdout_so_far());
    }
}

/// An RFC 8628 answer of the lying provider's device endpoint, edited by `edit`.
fn device_answer(op: &LyingOp, edit: impl FnOnce(&mut Value)) -> Value {
    let mut answer = json!({
        "device_code": "the-device-code", "user_code": "WDJB-MJHT",
        "verification_uri": format!("{}/activate", op.issuer),
        "verification_uri_complete": format!("{}/activate?user_code=WDJB-MJHT", op.issuer),
        "expires_in": 60, "interval": 1
    });
    edit(&mut answer);
    answer
}

#[test]
fn device_fixture_logs_in_with_the_commitment_as_nonce() {
    let Some(op) = gated() else { return };
    op.answers.lock().unwrap().device_answer = Some(device_answer(&op, |_| {}));
    let home = home_with_free_port(&op);
    let key = home.path().join("id_key");
    let mut login = LoginProcess::start(
        home.path(),
        &["--device", "--no-qr", "-i", key.to_str().unwrap(), "lying"],
        &[],
    );
    login.wait_for("Waiting for the login to be approved");
    let request = op.answers.lock().unwrap().device_requests.remove(0);
    let nonce = opk_core::oidc::form_decode(&request)
        .into_iter()
        .find(|(name, _)| name == "nonce")
        .unwrap()
        .1;
    op.answer_with(vec![op.sign(&op.claims(&nonce))]);
    let run = login.finish();
    run.assert_success();
    assert!(
        run.stdout.contains(&format!(
            "open this page in a browser on any device:\n  {}/activate\nand enter the code: WDJB-MJHT",
            op.issuer
        )),
        "{}",
        run.stdout
    );
    assert!(key.exists());
}

/// A device login whose device endpoint answers `answer`: it must end with `reason` before
/// telling the user anything to open or type, and write nothing.
fn assert_device_refused(op: &LyingOp, answer: Value, reason: &str) {
    op.answers.lock().unwrap().device_answer = Some(answer);
    let home = home_with_free_port(op);
    let (succeeded, output) = login_to_the_end(home.path(), &["--device"]);
    assert!(!succeeded, "login accepted it:\n{output}");
    assert!(output.contains(reason), "expected `{reason}`:\n{output}");
    assert!(!output.contains("To log in, open this page"), "{output}");
    assert!(!home.path().join("id_key").exists(), "{output}");
}

#[test]
fn device_user_code_with_bidi_controls() {
    let Some(op) = gated() else { return };
    // Shown as WDJB-MJHT's mirror image; what the user types is not what the OP issued.
    for code in [
        "\u{202e}THJM-BJDW",
        "WDJB\u{2067}-MJHT",
        "WDJB\u{200f}-MJHT",
    ] {
        assert_device_refused(
            &op,
            device_answer(&op, |answer| answer["user_code"] = json!(code)),
            "user_code is not a short printable code",
        );
    }
}

#[test]
fn device_verification_uri_with_bidi_controls() {
    let Some(op) = gated() else { return };
    // Displays as …/activate/moc.elpmaxe-po, hiding where the link really goes.
    assert_device_refused(
        &op,
        device_answer(&op, |answer| {
            answer["verification_uri"] =
                json!(format!("{}/\u{202e}activate/moc.elpmaxe-po", op.issuer));
            answer
                .as_object_mut()
                .unwrap()
                .remove("verification_uri_complete");
        }),
        "verification_uri has a space, a control character or a character outside visible ASCII",
    );
}

#[test]
fn device_qr_code_to_another_host() {
    let Some(op) = gated() else { return };
    // The page printed is the provider's; the QR code, which nobody reads, is the attacker's.
    assert_device_refused(
        &op,
        device_answer(&op, |answer| {
            answer["verification_uri_complete"] =
                json!("https://op.attacker.example/activate?user_code=WDJB-MJHT");
        }),
        &format!(
            "verification_uri_complete is on https://op.attacker.example, not on {} where \
             verification_uri is",
            op.issuer
        ),
    );
}

/// An honest login without `-i` in `home`: the key pair lands on the default names.
fn default_login(op: &LyingOp, home: tempfile::TempDir) -> (bool, String, tempfile::TempDir) {
    let login = start_login_in(op, home, &[], &[]);
    op.answer_with(vec![op.sign(&op.claims(login.param("nonce")))]);
    assert_eq!(login.honest_callback(), 200);
    login.end()
}

/// What a user gets from `ssh-keygen -t ecdsa -f <path>`: their own key, not opkssh's.
fn ssh_keygen(path: &Path) {
    let _ = std::fs::remove_file(path);
    let _ = std::fs::remove_file(format!("{}.pub", path.display()));
    let made = Command::new("ssh-keygen")
        .args(["-q", "-t", "ecdsa", "-N", "", "-C", "alice@laptop", "-f"])
        .arg(path)
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
}

/// A home where an earlier opkssh login wrote `~/.ssh/id_ecdsa` and its certificate (comment
/// `openpubkey`), then the user ran `ssh-keygen` into `id_ecdsa`: the certificate is stale.
fn home_with_own_key_beside_a_stale_certificate(op: &LyingOp) -> tempfile::TempDir {
    let redirect_uri = format!("http://localhost:{}/login-callback", free_port());
    let (succeeded, output, home) = default_login(op, home_for(op, &redirect_uri));
    assert!(succeeded, "{output}");
    let ssh = home.path().join(".ssh");
    let stale = std::fs::read_to_string(ssh.join("id_ecdsa-cert.pub")).unwrap();
    assert!(stale.ends_with(" openpubkey"), "{stale}");
    ssh_keygen(&ssh.join("id_ecdsa"));
    home
}

/// The files under `~/.ssh`, by name, with their contents.
fn ssh_files(home: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(home.join(".ssh"))
        .unwrap()
        .map(|entry| entry.unwrap())
        .map(|entry| {
            (
                entry.file_name().to_string_lossy().into_owned(),
                std::fs::read(entry.path()).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

#[test]
fn users_own_key_beside_a_stale_openpubkey_certificate() {
    let Some(op) = gated() else { return };
    let home = home_with_own_key_beside_a_stale_certificate(&op);
    let ssh = home.path().join(".ssh");
    let own_key = std::fs::read(ssh.join("id_ecdsa")).unwrap();
    let own_public = std::fs::read(ssh.join("id_ecdsa.pub")).unwrap();
    let stale = std::fs::read(ssh.join("id_ecdsa-cert.pub")).unwrap();

    let (succeeded, output, home) = default_login(&op, home);
    assert!(succeeded, "{output}");
    // The user's key and what sits beside it are untouched; the login took the next name,
    // as it does for any key that is not opkssh's.
    assert_eq!(
        std::fs::read(ssh.join("id_ecdsa")).unwrap(),
        own_key,
        "{output}"
    );
    assert_eq!(std::fs::read(ssh.join("id_ecdsa.pub")).unwrap(), own_public);
    assert_eq!(std::fs::read(ssh.join("id_ecdsa-cert.pub")).unwrap(), stale);
    let written = ssh.join("id_ecdsa_sk-cert.pub");
    assert!(
        output.contains(&format!(
            "Writing opk ssh public key to {}",
            written.display()
        )),
        "{output}"
    );
    let certificate = OpksshCertificate::from_line(&std::fs::read_to_string(&written).unwrap());
    let key = opk_core::sshcert::private_key_from_openssh(
        &std::fs::read_to_string(ssh.join("id_ecdsa_sk")).unwrap(),
    )
    .unwrap();
    assert!(certificate.unwrap().matches_upk(&key.public_key()));
    drop(home);
}

#[test]
fn users_own_keys_on_every_default_name() {
    let Some(op) = gated() else { return };
    let home = home_with_own_key_beside_a_stale_certificate(&op);
    let ssh = home.path().join(".ssh");
    // The user also generated `id_ecdsa_sk` over an earlier opkssh pair.
    std::fs::copy(
        ssh.join("id_ecdsa-cert.pub"),
        ssh.join("id_ecdsa_sk-cert.pub"),
    )
    .unwrap();
    ssh_keygen(&ssh.join("id_ecdsa_sk"));
    let before = ssh_files(home.path());

    let (succeeded, output, home) = default_login(&op, home);
    assert!(!succeeded, "{output}");
    assert_eq!(ssh_files(home.path()), before, "{output}");
    // The refusal says which files were kept, why, and what to do instead.
    for expected in [
        "Error: no default ssh key file free for openpubkey",
        &format!(
            "private key {} does not match certificate {}-cert.pub",
            ssh.join("id_ecdsa").display(),
            ssh.join("id_ecdsa").display()
        ),
        &format!(
            "private key {} does not match",
            ssh.join("id_ecdsa_sk").display()
        ),
        "-i <path>",
    ] {
        assert!(
            output.contains(expected),
            "expected `{expected}`:\n{output}"
        );
    }
}

/// Claim values that would draw on a terminal or start lines of their own: ESC sequences, CR,
/// LF, a C1 control, a paragraph separator and bidi overrides. Each injected line starts with
/// `FAKE`.
const HOSTILE_EMAIL: &str = "alice\u{1b}[2K\r\u{202e}@example.com\nFAKE email line";
const HOSTILE_SUB: &str = "alice\u{1b}]0;owned\u{7}\u{9b}1m\r\nFAKE sub line\u{2066}";
const HOSTILE_AUD: &str = "evil\u{1b}[1G\r\nopenpubkey FAKE aud line\u{2029}\u{202e}";

/// Panics unless `text` (output or a file, `what`) holds no raw control, separator or bidi
/// character other than its own line ends, and every `FAKE` in it follows a visible `\n`
/// escape instead of starting a line.
fn assert_nothing_raw(what: &str, text: &str) {
    let raw: Vec<char> = text
        .chars()
        .filter(|&c| opk_core::escape::needs_escape(c) && c != '\\' && c != '\n')
        .collect();
    assert!(raw.is_empty(), "{what}: raw {raw:?} in:\n{text}");
    for line in text.lines() {
        assert!(
            !line.trim_start().starts_with("FAKE") && !line.starts_with("openpubkey FAKE"),
            "{what}: an injected line:\n{text}"
        );
    }
    let escaped = text.matches("\\nFAKE").count() + text.matches("\\nopenpubkey FAKE").count();
    assert_eq!(text.matches("FAKE").count(), escaped, "{what}:\n{text}");
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(files_under(&path));
        } else {
            found.push(path);
        }
    }
    found
}

/// OpenSSH's `ssh-agent` in the foreground on a socket in `dir`; killed on drop.
struct SshAgent {
    child: std::process::Child,
    socket: PathBuf,
}

impl SshAgent {
    fn start(dir: &Path) -> Self {
        let socket = dir.join("agent.sock");
        let child = opkssh_tests::e2e::start_ssh_agent(&socket, "-D", |command| {
            command.stderr(Stdio::null());
        });
        Self { child, socket }
    }
}

impl Drop for SshAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn claims_with_terminal_controls_and_line_breaks() {
    let Some(op) = gated() else { return };
    let redirect_uri = format!("http://localhost:{}/login-callback", free_port());
    let home = home_for(&op, &redirect_uri);
    // The identity directory, whose certificate comment carries the audience.
    let configured = Command::new(e2e::target_binary("opkssh"))
        .args(["login", "--configure"])
        .env("HOME", home.path())
        .output()
        .unwrap();
    assert!(configured.status.success(), "{configured:?}");
    let agent_dir = tempfile::tempdir().unwrap();
    let agent = SshAgent::start(agent_dir.path());

    let login = start_login_in(
        &op,
        home,
        &["--print-id-token", "--inspect-cert"],
        &[("SSH_AUTH_SOCK", agent.socket.as_os_str())],
    );
    let mut claims = op.claims(login.param("nonce"));
    claims["email"] = json!(HOSTILE_EMAIL);
    claims["sub"] = json!(HOSTILE_SUB);
    // The hostile audience comes first, as the one shown and written; ours is in the list.
    claims["aud"] = json!([HOSTILE_AUD, CLIENT_ID]);
    claims["azp"] = json!(CLIENT_ID);
    op.answer_with(vec![op.sign(&claims)]);
    assert_eq!(login.honest_callback(), 200);
    let (succeeded, output, home) = login.end();
    assert!(succeeded, "{output}");

    assert_nothing_raw("output", &output);
    let line = |text| opk_core::escape::line(text).into_owned();
    let identity = format!(
        "{} {} {} {}",
        line(HOSTILE_EMAIL),
        line(HOSTILE_SUB),
        op.issuer,
        line(HOSTILE_AUD)
    );
    assert!(
        output.contains(&identity),
        "expected `{identity}`:\n{output}"
    );

    let written = files_under(&home.path().join(".ssh"));
    for file in &written {
        assert_nothing_raw(
            &file.display().to_string(),
            &std::fs::read_to_string(file).unwrap(),
        );
    }
    let certificate = written
        .iter()
        .find(|file| file.to_string_lossy().ends_with("-cert.pub"))
        .unwrap_or_else(|| panic!("no certificate in {written:?}"));
    let text = std::fs::read_to_string(certificate).unwrap();
    assert!(!text.contains('\n'), "{text}");
    assert!(
        text.ends_with(&format!(
            "  openpubkey: {} {}",
            op.issuer,
            line(HOSTILE_AUD)
        )),
        "{text}"
    );

    let held = opk_client::agent::Agent::connect(&agent.socket)
        .unwrap()
        .identities()
        .unwrap();
    assert_eq!(held.len(), 1, "{held:?}");
    let comment = String::from_utf8(held[0].comment.clone()).unwrap();
    assert_nothing_raw("agent comment", &comment);
    assert_eq!(
        comment,
        format!("openpubkey {} {}", op.issuer, line(HOSTILE_EMAIL))
    );
}

#[test]
fn token_endpoint_error_description_with_terminal_controls() {
    let Some(op) = gated() else { return };
    let description = "\u{1b}[2K\r\u{202e}code expired\u{9b}31m\nFAKE error line";
    op.refuse_with(json!({
        "error": "invalid_grant\u{1b}[1G",
        "error_description": description,
    }));
    let login = start_login(&op, &[]);
    let _ = login.honest_callback();
    let (succeeded, output, home) = login.end();
    assert!(!succeeded, "{output}");
    assert_nothing_raw("output", &output);
    let shown = opk_core::escape::line(description);
    assert!(
        output.contains(shown.as_ref()),
        "expected `{shown}`:\n{output}"
    );
    assert!(!home.path().join("id_key").exists());
}

/// The refresh loop's minimum interval between two ID tokens (docs/client.md).
const MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(10);

/// Runs `opkssh login --auto-refresh` for about `window` against a provider whose login ID
/// token lives `first_lifetime` seconds and every refreshed one `lifetime` seconds. Returns
/// how many refreshes the provider saw, how long the login ran at most, and the output.
fn refreshes_within(
    op: &LyingOp,
    first_lifetime: i64,
    lifetime: i64,
    window: Duration,
) -> (usize, Duration, String) {
    let started = Instant::now();
    let mut login = start_login(op, &["--auto-refresh"]);
    let mut claims = op.claims(login.param("nonce"));
    claims["exp"] = json!(now() + first_lifetime);
    let mut fresh = claims.clone();
    fresh.as_object_mut().unwrap().remove("nonce");
    op.answer_with(vec![op.sign(&claims)]);
    op.mint_with(fresh, lifetime);
    assert_eq!(login.honest_callback(), 200);
    login.process.wait_for("Keys generated for identity");
    std::thread::sleep(window.saturating_sub(started.elapsed()));
    login.process.kill();
    let ran = started.elapsed();
    let (_, output, _) = login.end();
    // The first request was the code grant.
    (op.token_requests().saturating_sub(1), ran, output)
}

#[test]
fn auto_refresh_with_id_tokens_that_live_20_seconds() {
    let Some(op) = gated() else { return };
    let (refreshes, ran, output) = refreshes_within(&op, 20, 20, Duration::from_secs(15));
    // One ID token per minimum interval at most, each starting after the login.
    let most = usize::try_from(ran.as_secs() / MIN_REFRESH_INTERVAL.as_secs()).unwrap();
    assert!(
        refreshes <= most,
        "{refreshes} refreshes in {ran:?} (at most {most}):\n{}",
        output.lines().take(40).collect::<Vec<_>>().join("\n")
    );
    // And the loop does keep a 20 s token fresh.
    assert!(refreshes >= 1, "no refresh in {ran:?}:\n{output}");
    assert!(output.contains("Refreshing id_token..."), "{output}");
}

#[test]
fn auto_refresh_when_the_provider_hands_back_tokens_near_expiry() {
    let Some(op) = gated() else { return };
    let (refreshes, ran, output) = refreshes_within(&op, 5, 5, Duration::from_secs(25));
    // Each token is gone before the next refresh may come, so the waits double from the
    // minimum interval: refresh k comes at least MIN_REFRESH_INTERVAL · (2^k − 1) after the
    // login.
    let mut most = 0;
    while MIN_REFRESH_INTERVAL.as_secs() * ((1 << (most + 1)) - 1) <= ran.as_secs() {
        most += 1;
    }
    assert!(
        refreshes <= most,
        "{refreshes} refreshes in {ran:?} (at most {most}):\n{}",
        output.lines().take(40).collect::<Vec<_>>().join("\n")
    );
    assert!(refreshes >= 1, "no refresh in {ran:?}:\n{output}");
}
