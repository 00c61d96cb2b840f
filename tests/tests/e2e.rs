//! Self-tests of the end-to-end harness (`opkssh_tests::e2e`) against the real components:
//! npm `oidc-provider`, OpenSSH's sshd and ssh, and the Go vectors' issuers.
//!
//! Gated: without `OPKSSH_E2E=1` every test prints `SKIP e2e: set OPKSSH_E2E=1` and passes; with
//! it, a missing prerequisite fails the test.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)] // test code: a panic is a failure

use opk_core::b64;
use opk_core::jwk::Jwks;
use opk_core::jws::Jws;
use opkssh_tests::e2e::{
    self, AkcConfig, DISCOVERY_PATH, E2e, Fault, JWKS_PATH, LOGIN_USER, LOGIN_USER2, Op, Sshd,
    VectorIssuers, get_json, http_login, query_param, ssh_login, urlencode, write_private_key,
};
use opkssh_tests::vectors;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

fn random_b64url(len_bytes: usize) -> String {
    let mut bytes = vec![0_u8; len_bytes];
    getrandom::fill(&mut bytes).unwrap();
    b64::encode_url(bytes)
}

/// A one-shot callback listener on a free loopback port, as `opkssh login` runs one: it answers
/// the first request with 200 and hands its request target over.
struct Callback {
    redirect_uri: String,
    received: mpsc::Receiver<String>,
}

impl Callback {
    fn start() -> Callback {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let (tx, received) = mpsc::channel();
        thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(60);
            while Instant::now() < deadline {
                match listener.accept() {
                    Ok((stream, _)) => {
                        stream.set_nonblocking(false).unwrap();
                        stream
                            .set_read_timeout(Some(Duration::from_secs(5)))
                            .unwrap();
                        let mut reader = BufReader::new(stream.try_clone().unwrap());
                        let mut line = String::new();
                        reader.read_line(&mut line).unwrap();
                        let target = line.split_whitespace().nth(1).unwrap_or("").to_owned();
                        let mut header = String::new();
                        while reader.read_line(&mut header).unwrap_or(0) > 2 {
                            header.clear();
                        }
                        let body = "login complete";
                        let mut stream = stream;
                        write!(
                            stream,
                            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                            body.len()
                        )
                        .unwrap();
                        let _ = tx.send(target);
                        return;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        thread::sleep(Duration::from_millis(5));
                    }
                    Err(e) => panic!("callback accept: {e}"),
                }
            }
        });
        Callback {
            redirect_uri: format!("http://localhost:{port}/login-callback"),
            received,
        }
    }
}

/// What an opkssh-like client gets out of one authorization-code + PKCE (S256) login.
struct Login {
    id_token: String,
    header: Value,
    payload: Value,
    token_response: Value,
}

/// Plays the client (opkssh login) against the OP: auth URL with a custom nonce, PKCE S256 and
/// state; the harness's HTTP driver logs in as `who`; the code is exchanged at the token
/// endpoint with ureq; the ID token's signature is checked with opk-core against the OP's JWKS.
fn login(op: &Op, who: &str, nonce: &str) -> Login {
    let discovery = op.discovery();
    let verifier = random_b64url(32);
    let challenge = b64::encode_url(Sha256::digest(verifier.as_bytes()));
    let state = random_b64url(16);
    let callback = Callback::start();
    let auth_url = format!(
        "{}?response_type=code&client_id={}&redirect_uri={}&scope={}&state={}&nonce={}&code_challenge={}&code_challenge_method=S256&prompt=consent",
        discovery["authorization_endpoint"].as_str().unwrap(),
        urlencode(op.client_id()),
        urlencode(&callback.redirect_uri),
        urlencode("openid profile email groups"),
        urlencode(&state),
        urlencode(nonce),
        urlencode(&challenge),
    );
    let reached = http_login(&auth_url, who).unwrap();
    let target = callback
        .received
        .recv_timeout(Duration::from_secs(10))
        .unwrap();
    assert!(reached.ends_with(&target), "{reached} vs {target}");
    assert_eq!(query_param(&reached, "state").as_deref(), Some(&*state));
    assert_eq!(query_param(&reached, "iss").as_deref(), Some(op.issuer()));
    let code = query_param(&reached, "code").unwrap_or_else(|| panic!("no code in {reached}"));

    let token_endpoint = discovery["token_endpoint"].as_str().unwrap();
    e2e::check_loopback(token_endpoint).unwrap();
    let mut resp = e2e::loopback_agent()
        .post(token_endpoint)
        .send_form([
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", &callback.redirect_uri),
            ("client_id", op.client_id()),
            ("code_verifier", &verifier),
        ])
        .unwrap();
    let status = resp.status().as_u16();
    let token_response: Value = e2e::body_json(&mut resp).unwrap();
    assert_eq!(status, 200, "token endpoint: {token_response}");
    let id_token = token_response["id_token"].as_str().unwrap().to_owned();

    let jws = Jws::parse(&id_token).unwrap();
    let jwks = Jwks::from_json(op.jwks().to_string().as_bytes()).unwrap();
    let key = jwks.find(jws.header_str("kid")).unwrap();
    jws.verify(key.key())
        .expect("the OP's ID token verifies with opk-core");
    let header = Value::Object(jws.header().clone());
    let payload: Value =
        serde_json::from_slice(&b64::decode_url_strict(jws.payload_segment()).unwrap()).unwrap();
    Login {
        id_token,
        header,
        payload,
        token_response,
    }
}

#[test]
fn op_code_flow_with_pkce_custom_nonce_and_claims() {
    let Some(_e2e) = E2e::require() else { return };
    let op = Op::start(&[]);
    assert!(
        op.issuer().starts_with("http://localhost:"),
        "{}",
        op.issuer()
    );
    assert_eq!(op.take_request_counts().discovery, 0);

    let discovery = op.discovery();
    assert_eq!(discovery["issuer"], op.issuer());
    assert_eq!(
        discovery["code_challenge_methods_supported"],
        json!(["S256"])
    );
    assert_eq!(discovery["jwks_uri"], format!("{}/jwks", op.issuer()));
    assert!(
        discovery["device_authorization_endpoint"].is_string(),
        "device flow enabled"
    );
    let jwks = op.jwks();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 1);
    assert_eq!(jwks["keys"][0]["kid"], op.kid());
    assert_eq!(jwks["keys"][0]["kty"], "RSA");
    assert!(jwks["keys"][0].get("d").is_none(), "public keys only");

    // opkssh's nonce is a 43-character base64url commitment; the OP must carry it verbatim.
    let nonce = random_b64url(32);
    assert_eq!(nonce.len(), 43);
    let started = Instant::now();
    let alice = login(&op, "alice", &nonce);
    eprintln!("alice: login + token exchange in {:?}", started.elapsed());
    assert_eq!(alice.header["alg"], "RS256");
    assert_eq!(alice.header["kid"], op.kid());
    let p = &alice.payload;
    assert_eq!(p["nonce"], nonce.as_str());
    assert_eq!(p["iss"], op.issuer());
    assert_eq!(p["aud"], op.client_id());
    assert_eq!(p["sub"], "alice");
    assert_eq!(p["email"], "alice@example.com");
    assert_eq!(p["email_verified"], true);
    assert_eq!(p["groups"], json!(["ssh-users", "admins"]));
    let (iat, exp) = (p["iat"].as_u64().unwrap(), p["exp"].as_u64().unwrap());
    assert_eq!(exp - iat, 3600);
    assert!(alice.id_token.len() > 500);
    // Userinfo with the access token (the `openpubkey-act` extension will carry it).
    let access_token = alice.token_response["access_token"].as_str().unwrap();
    let mut resp = e2e::loopback_agent()
        .get(discovery["userinfo_endpoint"].as_str().unwrap())
        .header("authorization", &format!("Bearer {access_token}"))
        .call()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let userinfo: Value = e2e::body_json(&mut resp).unwrap();
    assert_eq!(userinfo["sub"], "alice");
    assert_eq!(userinfo["groups"], json!(["ssh-users", "admins"]));

    // The device flow answers (for a later `login --device` test).
    let mut resp = e2e::loopback_agent()
        .post(discovery["device_authorization_endpoint"].as_str().unwrap())
        .send_form([("client_id", op.client_id()), ("scope", "openid email")])
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let device: Value = e2e::body_json(&mut resp).unwrap();
    assert!(device["device_code"].is_string(), "{device}");
    assert!(device["user_code"].is_string(), "{device}");

    let bob_nonce = random_b64url(32);
    let bob = login(&op, "bob", &bob_nonce);
    assert_eq!(bob.payload["sub"], "bob");
    assert_eq!(bob.payload["email_verified"], false);
    assert_eq!(bob.payload["nonce"], bob_nonce.as_str());

    // Each login above: discovery, /auth, one token request, one JWKS fetch (for the check).
    let counts = op.request_counts();
    assert_eq!(
        (counts.discovery, counts.jwks, counts.token, counts.auth),
        (3, 3, 2, 2),
        "{counts:?}"
    );
    assert_eq!(counts.userinfo, 1);
    assert_eq!(counts.paths["/device/auth"], 1);
    assert_eq!(counts.paths["/token"], 2);
    assert_eq!(op.take_request_counts().token, 2);
    assert_eq!(op.request_counts().token, 0, "reset");
}

#[test]
fn op_refuses_a_wrong_pkce_verifier() {
    let Some(_e2e) = E2e::require() else { return };
    let op = Op::start(&[]);
    let discovery = op.discovery();
    let challenge = b64::encode_url(Sha256::digest(
        b"the right verifier, 43 chars or more......",
    ));
    let auth_url = format!(
        "{}?response_type=code&client_id={}&redirect_uri={}&scope=openid&state=s&nonce=n&code_challenge={challenge}&code_challenge_method=S256",
        discovery["authorization_endpoint"].as_str().unwrap(),
        op.client_id(),
        urlencode("http://localhost:3000/login-callback"),
    );
    let reached = e2e::http_login_stop_at_callback(&auth_url, "alice").unwrap();
    let code = query_param(&reached, "code").unwrap();
    let mut resp = e2e::loopback_agent()
        .post(discovery["token_endpoint"].as_str().unwrap())
        .send_form([
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "http://localhost:3000/login-callback"),
            ("client_id", op.client_id()),
            (
                "code_verifier",
                "a-wrong-verifier-a-wrong-verifier-a-wrong-verifier",
            ),
        ])
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let body: Value = e2e::body_json(&mut resp).unwrap();
    assert_eq!(body["error"], "invalid_grant", "{body}");

    // And no PKCE at all is refused at the authorization endpoint.
    let no_pkce = format!(
        "{}?response_type=code&client_id={}&redirect_uri={}&scope=openid&state=s&nonce=n",
        discovery["authorization_endpoint"].as_str().unwrap(),
        op.client_id(),
        urlencode("http://localhost:3000/login-callback"),
    );
    let reached = e2e::http_login_stop_at_callback(&no_pkce, "alice").unwrap();
    assert_eq!(
        query_param(&reached, "error").as_deref(),
        Some("invalid_request")
    );
    assert!(query_param(&reached, "code").is_none());
}

#[test]
fn op_rotation_changes_the_signing_kid() {
    let Some(_e2e) = E2e::require() else { return };
    let op = Op::start(&[]);
    let first = op.kid().to_owned();
    let kids = op.rotate(false);
    assert_eq!(kids.len(), 2);
    assert_ne!(kids[0], first);
    assert_eq!(kids[1], first);
    let published: Vec<String> = op.jwks()["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(published, kids);
    let after = login(&op, "alice", &random_b64url(32));
    assert_eq!(after.header["kid"], kids[0].as_str());

    let dropped = op.rotate(true);
    assert_eq!(dropped.len(), 1);
    assert!(!kids.contains(&dropped[0]));
    assert_eq!(op.jwks()["keys"].as_array().unwrap().len(), 1);
    assert_eq!(op.jwks()["keys"][0]["kid"], dropped[0].as_str());
    let last = login(&op, "alice", &random_b64url(32));
    assert_eq!(last.header["kid"], dropped[0].as_str());
}

#[test]
fn op_can_sign_with_es256_and_extra_accounts() {
    let Some(_e2e) = E2e::require() else { return };
    let op = Op::start(&[
        ("OP_SIGNING_ALG", "ES256"),
        ("OP_ID_TOKEN_TTL", "5"),
        (
            "OP_ACCOUNTS",
            r#"{"carol":{"email":"carol@example.org","email_verified":true,"groups":["g1","g2"],"name":"Carol"}}"#,
        ),
    ]);
    assert_eq!(op.alg(), "ES256");
    assert_eq!(op.jwks()["keys"][0]["kty"], "EC");
    let nonce = random_b64url(32);
    let carol = login(&op, "carol", &nonce);
    assert_eq!(carol.header["alg"], "ES256");
    assert_eq!(carol.payload["email"], "carol@example.org");
    assert_eq!(carol.payload["groups"], json!(["g1", "g2"]));
    assert_eq!(carol.payload["nonce"], nonce.as_str());
    let p = &carol.payload;
    assert_eq!(p["exp"].as_u64().unwrap() - p["iat"].as_u64().unwrap(), 5);
    let kids = op.rotate(false);
    assert_eq!(
        op.jwks()["keys"][0]["kty"],
        "EC",
        "rotation keeps the algorithm"
    );
    assert_eq!(kids.len(), 2);
}

// ---------------------------------------------------------------------------------------------
// sshd + ssh with a real AuthorizedKeysCommand
// ---------------------------------------------------------------------------------------------

fn vector_dir(kind: &str, name: &str) -> PathBuf {
    vectors(kind)
        .unwrap()
        .into_iter()
        .find(|v| v.name == name)
        .unwrap_or_else(|| panic!("vector {kind}/{name}"))
        .dir
}

/// Copies a vector's `id_key` (0600) and `cert.pub` into `dir`.
fn vector_identity(dir: &Path, kind: &str, name: &str) -> (PathBuf, PathBuf) {
    let src = vector_dir(kind, name);
    let key = write_private_key(
        &dir.join(format!("{name}-id")),
        &std::fs::read(src.join("id_key")).unwrap(),
    );
    let cert = dir.join(format!("{name}-id-cert.pub"));
    std::fs::copy(src.join("cert.pub"), &cert).unwrap();
    (key, cert)
}

/// The public key (type and base64) of a private key file, by ssh-keygen.
fn public_key_of(private_key: &Path) -> String {
    let out = Command::new("ssh-keygen")
        .arg("-y")
        .arg("-f")
        .arg(private_key)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    text.split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn sshd_runs_the_authorized_keys_command_and_ssh_logs_in_with_a_go_certificate() {
    let Some(e2e) = E2e::require() else { return };
    let (key, cert) = vector_identity(e2e.dir(), "accept", "rs256-ecdsa");
    let (other_key, other_cert) = vector_identity(e2e.dir(), "accept", "es256-ed25519");
    let line = std::fs::read_to_string(&cert).unwrap();
    assert!(line.starts_with("ecdsa-sha2-nistp256-cert-v01@openssh.com AAAA"));
    // Go's certificates are self-signed: the CA is the user's own key.
    let ca = public_key_of(&key);

    // A stand-in for `opkssh verify %t %k`: accepts exactly the certificate in its config file
    // (root:opksshuser 0640, as upstream installs /etc/opk), and answers as upstream does.
    let config = e2e.install_file("expected", line.as_bytes(), 0o640, Some(e2e::AKC_USER));
    let meta = std::fs::metadata(&config).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid(), meta.mode() & 0o7777),
        (0, e2e::group_id(e2e::AKC_USER), 0o640)
    );
    let script = format!(
        "#!/bin/sh\n\
         # e2e stand-in AuthorizedKeysCommand: accepts exactly the certificate in its config.\n\
         if [ \"$1 $2\" = \"$(cat '{config}')\" ]; then\n\
         \x20 echo 'cert-authority,principals=\"opkssh-wildcard\" {ca}'\n\
         \x20 exit 0\n\
         fi\n\
         echo \"akc-stub: refusing a $1 as $(id -un)\" >&2\n\
         exit 1\n",
        config = config.display()
    );
    let akc = e2e.install_executable("akc-stub", script.as_bytes());
    e2e::check_root_owned_path(&akc).unwrap();
    let mut sshd = Sshd::start(AkcConfig::new(format!("{} %t %k", akc.display())));

    let started = Instant::now();
    let ok = ssh_login(&sshd, LOGIN_USER, &key, Some(&cert), "true");
    eprintln!("ssh login with the stub verifier: {:?}", started.elapsed());
    assert_eq!(ok.status.code(), Some(0), "{ok:?}\n{}", sshd.log());
    let who = ssh_login(&sshd, LOGIN_USER2, &key, Some(&cert), "id -un");
    assert_eq!(who.status.code(), Some(0), "{who:?}");
    assert_eq!(String::from_utf8_lossy(&who.stdout).trim(), LOGIN_USER2);
    let log = sshd.log();
    assert!(
        log.contains(&format!(
            "Accepted publickey for {LOGIN_USER} from 127.0.0.1"
        )),
        "{log}"
    );
    assert!(log.contains("Accepted certificate ID"), "{log}");

    let denied = ssh_login(&sshd, LOGIN_USER, &other_key, Some(&other_cert), "true");
    assert_eq!(denied.status.code(), Some(255), "{denied:?}");
    assert!(
        String::from_utf8_lossy(&denied.stderr).contains("Permission denied"),
        "{denied:?}"
    );
    let log = sshd.log();
    assert!(
        log.contains("akc-stub: refusing a ssh-ed25519-cert-v01@openssh.com as opksshuser"),
        "{log}"
    );
    assert!(log.contains("failed, status 1"), "{log}");

    // The bare key without its certificate: the stub sees a plain key type and refuses.
    let bare_dir = e2e.dir().join("bare");
    std::fs::create_dir(&bare_dir).unwrap();
    let bare = write_private_key(&bare_dir.join("id"), &std::fs::read(&key).unwrap());
    let denied = ssh_login(&sshd, LOGIN_USER, &bare, None, "true");
    assert_eq!(denied.status.code(), Some(255), "{denied:?}");
    assert!(
        sshd.log()
            .contains("akc-stub: refusing a ecdsa-sha2-nistp256 as opksshuser"),
        "{}",
        sshd.log()
    );

    sshd.stop();
    let down = ssh_login(&sshd, LOGIN_USER, &key, Some(&cert), "true");
    assert_eq!(down.status.code(), Some(255), "sshd stopped");
}

#[test]
fn sshd_refuses_an_authorized_keys_command_it_would_not_trust() {
    let Some(e2e) = E2e::require() else { return };
    let unsafe_dir = e2e.dir().join("unsafe");
    std::fs::create_dir(&unsafe_dir).unwrap();
    let path = unsafe_dir.join("akc");
    std::fs::write(&path, "#!/bin/sh\nexit 1\n").unwrap();
    // Under /tmp (1777): the harness names the offending component instead of letting sshd log
    // only "Unsafe AuthorizedKeysCommand".
    let err = e2e::check_root_owned_path(&path).unwrap_err().to_string();
    assert!(err.contains("/tmp"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// The Go vectors' issuers
// ---------------------------------------------------------------------------------------------

#[test]
fn vector_issuers_serve_every_vector_and_count() {
    let Some(_e2e) = E2e::require() else { return };
    let issuers = VectorIssuers::start().unwrap();
    let mut all = vectors("accept").unwrap();
    all.extend(vectors("reject").unwrap());
    for v in &all {
        let issuer = v.trimmed("issuer.txt").unwrap();
        assert_eq!(issuers.for_vector(&v.name).issuer(), issuer, "{}", v.name);
    }
    assert_eq!(issuers.servers().count(), 12);
    for server in issuers.servers() {
        // Exactly as a verifier would: the issuer's (localhost) discovery URL, then its jwks_uri.
        let discovery = get_json(&format!("{}{DISCOVERY_PATH}", server.issuer())).unwrap();
        assert_eq!(discovery["issuer"], server.issuer());
        let jwks_uri = discovery["jwks_uri"].as_str().unwrap();
        assert_eq!(jwks_uri, format!("{}{JWKS_PATH}", server.issuer()));
        let jwks = get_json(jwks_uri).unwrap();
        let source = vector_folder(&all, &server.serving());
        let expected: Value =
            serde_json::from_slice(&std::fs::read(source.join("jwks.json")).unwrap()).unwrap();
        assert_eq!(jwks, expected, "{}", server.issuer());
        assert!(
            Jwks::from_json(jwks.to_string().as_bytes()).is_ok(),
            "{}",
            server.issuer()
        );
        assert_eq!(server.requests(DISCOVERY_PATH), 1);
        assert_eq!(server.requests(JWKS_PATH), 1);
        assert!(get_json(&server.url("/nope")).is_err());
        assert_eq!(server.requests("/nope"), 1);
        server.reset_requests();
        assert!(server.request_counts().is_empty());
    }

    // Two issuers are shared by folders with a different JWKS: the kid-less ones.
    let mut conflicts: Vec<(String, &str, Vec<String>)> = issuers
        .conflicts()
        .iter()
        .map(|c| (c.issuer.clone(), c.file, c.differing.clone()))
        .collect();
    conflicts.sort();
    assert_eq!(
        conflicts,
        vec![
            (
                "http://localhost:18201".to_owned(),
                "jwks.json",
                vec!["neg-rs256-jwks-lacks-kid".to_owned()]
            ),
            (
                "http://localhost:18204".to_owned(),
                "jwks.json",
                vec!["neg-es256-jwks-lacks-kid".to_owned()]
            ),
        ]
    );
    let server = issuers.serve_vector("neg-rs256-jwks-lacks-kid").unwrap();
    assert_eq!(server.serving(), "neg-rs256-jwks-lacks-kid");
    let expected: Value = serde_json::from_slice(
        &std::fs::read(vector_dir("reject", "neg-rs256-jwks-lacks-kid").join("jwks.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(get_json(&server.url(JWKS_PATH)).unwrap(), expected);
    issuers.serve_vector("rs256-ecdsa").unwrap();
    assert_ne!(get_json(&server.url(JWKS_PATH)).unwrap(), expected);
}

fn vector_folder(all: &[opkssh_tests::Vector], name: &str) -> PathBuf {
    all.iter()
        .find(|v| v.name == name)
        .unwrap_or_else(|| panic!("served folder {name}"))
        .dir
        .clone()
}

fn get_status(url: &str, timeout: Duration) -> Result<u16, ureq::Error> {
    let agent = ureq::Agent::config_builder()
        .proxy(None)
        .http_status_as_error(false)
        .timeout_global(Some(timeout))
        .build()
        .new_agent();
    agent.get(url).call().map(|r| r.status().as_u16())
}

#[test]
fn vector_issuer_fault_modes() {
    let Some(_e2e) = E2e::require() else { return };
    let issuers = VectorIssuers::start().unwrap();
    let server = issuers.for_vector("es256-ecdsa");
    let jwks = server.url(JWKS_PATH);
    let discovery = server.url(DISCOVERY_PATH);
    let ten = Duration::from_secs(10);
    assert_eq!(get_status(&jwks, ten).unwrap(), 200);

    server.set_fault(Fault::Status(500)).unwrap();
    assert_eq!(get_status(&jwks, ten).unwrap(), 500);
    assert_eq!(get_status(&discovery, ten).unwrap(), 500);

    server
        .set_fault(Fault::Slow(Duration::from_millis(400)))
        .unwrap();
    let t = Instant::now();
    assert_eq!(get_status(&jwks, ten).unwrap(), 200);
    assert!(
        t.elapsed() >= Duration::from_millis(400),
        "{:?}",
        t.elapsed()
    );

    server.set_fault(Fault::Hang).unwrap();
    let t = Instant::now();
    let err = get_status(&jwks, Duration::from_millis(700)).unwrap_err();
    assert!(matches!(err, ureq::Error::Timeout(_)), "{err:?}");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());

    server.set_fault(Fault::Close).unwrap();
    assert!(get_status(&jwks, ten).is_err());

    server.set_fault(Fault::Down).unwrap();
    let refused = TcpStream::connect(("127.0.0.1", server.port())).unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
    assert!(get_status(&jwks, ten).is_err());

    server.set_fault(Fault::None).unwrap();
    assert_eq!(get_status(&jwks, ten).unwrap(), 200);

    // A fault on one path only.
    server.set_path_fault(JWKS_PATH, Fault::Status(503));
    assert_eq!(get_status(&jwks, ten).unwrap(), 503);
    assert_eq!(get_status(&discovery, ten).unwrap(), 200);
    server.set_path_fault(JWKS_PATH, Fault::None);
    assert_eq!(get_status(&jwks, ten).unwrap(), 200);

    // Every request that arrived was counted, whatever the answer (not the refused ones).
    assert_eq!(server.requests(JWKS_PATH), 8);
    assert_eq!(server.requests(DISCOVERY_PATH), 2);
    // The other issuers were untouched.
    let other = issuers.for_vector("rs256-ecdsa");
    assert_eq!(other.request_counts().values().sum::<u64>(), 0);
    issuers.set_fault_all(Fault::Down).unwrap();
    issuers.set_fault_all(Fault::None).unwrap();
    assert_eq!(get_status(&other.url(JWKS_PATH), ten).unwrap(), 200);
}

#[test]
fn an_op_that_cannot_start_fails_fast_with_its_output() {
    let Some(_e2e) = E2e::require() else { return };
    let started = Instant::now();
    let failure = std::panic::catch_unwind(|| Op::start(&[("OP_SIGNING_ALG", "HS256")]))
        .expect_err("an OP with a bad algorithm must not start");
    let message = failure
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    assert!(message.contains("failed to start twice"), "{message}");
    assert!(message.contains("exited (exit status: 2)"), "{message}");
    assert!(
        message.contains("OP_SIGNING_ALG must be RS256 or ES256, not HS256"),
        "{message}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

// ---------------------------------------------------------------------------------------------
// The real `opkssh verify` as sshd's AuthorizedKeysCommand (the hook for the verify tests)
// ---------------------------------------------------------------------------------------------

#[test]
fn opkssh_verify_as_the_authorized_keys_command_lets_a_go_certificate_in() {
    let Some(e2e) = E2e::require() else { return };
    let issuers = VectorIssuers::start().unwrap();
    let issuer = issuers.serve_vector("rs256-ecdsa").unwrap();
    // sshd runs the command as opksshuser with an empty environment: the binary sits on a
    // root-owned path, its config (root:opksshuser 0640) comes through --config-dir, and its log
    // and cache go to a directory opksshuser owns.
    let opkssh = e2e.install_binary(&e2e::target_binary("opkssh"));
    let auth_id = format!("{LOGIN_USER} alice@example.com http://localhost:18201\n");
    let config = e2e.install_dir(
        &[
            (
                "providers",
                b"http://localhost:18201 opkssh-test-client oidc\n",
                0o640,
            ),
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
    let verify_log = || std::fs::read_to_string(rw.join("opkssh.log")).unwrap_or_default();
    let (key, cert) = vector_identity(e2e.dir(), "accept", "rs256-ecdsa");

    let t = Instant::now();
    let ok = ssh_login(&sshd, LOGIN_USER, &key, Some(&cert), "id -un");
    eprintln!("ssh login through opkssh verify: {:?}", t.elapsed());
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{ok:?}\n{}\n{}",
        verify_log(),
        sshd.log()
    );
    assert_eq!(String::from_utf8_lossy(&ok.stdout).trim(), LOGIN_USER);
    assert!(
        verify_log().contains("allow principal=e2euser identity=alice@example.com"),
        "{}",
        verify_log()
    );
    assert!(
        issuer.requests(JWKS_PATH) >= 1,
        "{:?}",
        issuer.request_counts()
    );

    // Not in auth_id: denied by policy (and the bare key that ssh offers next is no certificate).
    let denied = ssh_login(&sshd, LOGIN_USER2, &key, Some(&cert), "true");
    assert_eq!(denied.status.code(), Some(255), "{denied:?}");
    assert!(
        verify_log().contains("deny principal=e2euser2 identity=alice@example.com"),
        "{}",
        verify_log()
    );
}
