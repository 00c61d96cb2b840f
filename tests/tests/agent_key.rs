//! `--agent-key` against OpenSSH's real `ssh-agent`: keys made by `ssh-keygen` (P-256 and
//! Ed25519), `ssh-add`ed and deleted from disk, so the agent is the only place they exist. The
//! in-process demo OP logs in with such a key through the library's login flow; the agent makes
//! the CIC signature and the certificate's self-signature. The result goes through the same
//! parsing and verification as the Go vectors (`go_vectors.rs`), through the whole server
//! decision (`verifier::decide`), and through `ssh-keygen -L`, and has the Go vectors' shape
//! field by field. Real `ssh` then logs in to a real sshd whose AuthorizedKeysCommand is our
//! `opkssh verify` with that certificate while the key exists only in the agent: from a file
//! (after the real `opkssh login --agent-key` against the real test OP, too), and through the
//! agent server of `opkssh agent`, which presents the certificate and has the upstream agent sign. Keys that
//! cannot sign for opkssh (RSA, P-384) are refused with their reason, and an agent that
//! refuses, loses the key or goes away fails the login with its words.
//!
//! Needs `ssh-agent`, `ssh-add` and `ssh-keygen` (and for the ssh login the e2e harness: root,
//! sshd, a fresh `cargo build -p opkssh-cli`); gated like the end-to-end tests: without
//! `OPKSSH_E2E=1` every test prints `SKIP` and passes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)] // test code: a panic is a failure

use opk_client::agent_certificates::identity_comment;
use opk_client::agent_key::{AgentKeyError, Unusable, find_agent_key};
use opk_client::agent_server::{Held, Shared, serve};
use opk_client::client_config::ProviderKind;
use opk_client::demo_op::{DemoOp, DemoUser};
use opk_client::{BrowserProvider, Flow, Identity, LoginError, certificate, log_in};
use opk_core::b64;
use opk_core::external::SignError;
use opk_core::jwk::Jwks;
use opk_core::jws::{JwsError, SigningKey};
use opk_core::pktoken::PkToken;
use opk_core::sshcert::ssh_key::encoding::Encode as _;
use opk_core::sshcert::{CertComment, CertError, OpksshCertificate};
use opk_core::verify::{ExpirationPolicy, Provider};
use opkssh_tests::e2e::{
    E2e, LOGIN_USER, LOGIN_USER2, Op, SSH_TIMEOUT, VerifyServer, run_with_timeout,
};
use opkssh_tests::login::{LoginProcess, login_through_op};
use opkssh_tests::vector;
use serde_json::{Map, Value};
use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, SystemTime};
use verifier::http::HttpClient;

fn enabled() -> bool {
    if std::env::var_os("OPKSSH_E2E").is_some_and(|value| value == "1") {
        true
    } else {
        eprintln!("SKIP e2e: set OPKSSH_E2E=1");
        false
    }
}

/// `ssh-agent -D -a <dir>/agent.sock` with `env`, killed and reaped on drop.
struct SshAgent {
    child: Child,
    socket: PathBuf,
    dir: tempfile::TempDir,
}

impl SshAgent {
    fn start(env: &[(&str, &Path)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("agent.sock");
        let child = opkssh_tests::e2e::start_ssh_agent(&socket, "-D", |command| {
            command.envs(env.iter().copied());
        });
        Self { child, socket, dir }
    }

    fn ssh_add(&self, args: &[&str]) -> Output {
        let output = Command::new("ssh-add")
            .args(args)
            .env("SSH_AUTH_SOCK", &self.socket)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(output.status.success(), "ssh-add {args:?}: {output:?}");
        output
    }

    /// Makes a key with `ssh-keygen <type_args>`, adds it (with `add_args`), deletes both files
    /// and returns its fingerprint as `ssh-keygen -l` printed it.
    fn add_key_only_here(&self, type_args: &[&str], add_args: &[&str]) -> String {
        let path = self.dir.path().join("id_agent_only");
        let made = Command::new("ssh-keygen")
            .args(["-q", "-N", "", "-C", "agent-only"])
            .args(type_args)
            .arg("-f")
            .arg(&path)
            .output()
            .unwrap();
        assert!(made.status.success(), "{made:?}");
        let listed = Command::new("ssh-keygen")
            .args(["-l", "-E", "sha256", "-f"])
            .arg(path.with_extension("pub"))
            .output()
            .unwrap();
        let listed = String::from_utf8(listed.stdout).unwrap();
        let fingerprint = listed.split(' ').nth(1).unwrap().to_owned();
        let mut args = add_args.to_vec();
        let path_text = path.to_str().unwrap();
        args.push(path_text);
        self.ssh_add(&args);
        std::fs::remove_file(&path).unwrap();
        std::fs::remove_file(path.with_extension("pub")).unwrap();
        assert!(!path.exists() && !path.with_extension("pub").exists());
        let agent_list = String::from_utf8(self.ssh_add(&["-l", "-E", "sha256"]).stdout).unwrap();
        assert!(agent_list.contains(&fingerprint), "{agent_list}");
        fingerprint
    }
}

impl Drop for SshAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn provider(op: &DemoOp) -> ProviderKind {
    ProviderKind::Browser(BrowserProvider {
        issuer: op.issuer().to_owned(),
        client_id: op.client_id().to_owned(),
        client_secret: None,
        scopes: "openid email".into(),
        prompt: "consent".into(),
        access_type: "offline".into(),
        redirect_uris: vec!["http://localhost:0/login-callback".into()],
        remote_redirect_uri: None,
    })
}

/// The browser step: follows the redirects from the local `/login` through the demo OP, which
/// consents at once, back to the callback.
fn browse(url: &str) {
    let agent = ureq::Agent::config_builder()
        .max_redirects(0)
        .http_status_as_error(false)
        .build()
        .new_agent();
    let mut url = url.to_owned();
    while let Ok(response) = agent.get(&url).call() {
        match response.headers().get("location") {
            Some(location) => url = location.to_str().unwrap().to_owned(),
            None => return,
        }
    }
}

/// The library's login (`opk_client::log_in`, as `opkssh login` runs it) with `key`.
fn log_in_with(op: &DemoOp, key: SigningKey) -> Result<Identity, LoginError> {
    let http = HttpClient::new(&Default::default());
    let mut browser = None;
    let mut opener = |url: &str| {
        let url = url.to_owned();
        browser = Some(std::thread::spawn(move || browse(&url)));
    };
    let flow = Flow::Browser {
        timeout: Duration::from_secs(20),
    };
    let result = log_in(&provider(op), key, flow, &http, &mut opener);
    if let Some(handle) = browser {
        handle.join().unwrap();
    }
    result
}

/// A decoded protected header of a JWS segment.
fn header_of(segment: &str) -> Map<String, Value> {
    serde_json::from_slice(&b64::decode_url_strict(segment).unwrap()).unwrap()
}

/// What `go_vectors.rs` does with a Go certificate before policy, step by step: the line as
/// sshd hands it over, the self-signature, the exact re-encoding, the PK token in its extension,
/// the token against the issuer's keys, the certificate key against the committed `upk`.
fn verify_like_a_go_vector(line: &str, op: &DemoOp) -> OpksshCertificate {
    let (key_type, base64) = line.trim_end().split_once(' ').unwrap();
    let parsed = OpksshCertificate::from_type_and_base64(key_type, base64).unwrap();
    parsed.verify_self_signature().unwrap();
    assert_eq!(parsed.to_line(CertComment::None), line);
    let token = PkToken::from_compact(parsed.pk_token().unwrap()).unwrap();
    let jwks = Jwks::from_json(op.jwks_json().as_bytes()).unwrap();
    let provider = Provider::new(op.issuer(), op.client_id(), ExpirationPolicy::Oidc);
    let verified = token
        .verify_at(SystemTime::now(), &provider, &jwks)
        .unwrap();
    assert!(parsed.matches_upk(verified.upk()));
    parsed
}

/// The certificate fields opkssh fixes (wire-format.md §6.1), as ssh-key reads them.
fn shape(certificate: &OpksshCertificate) -> Vec<String> {
    let inner = certificate.inner();
    vec![
        certificate.cert_type_name().to_owned(),
        format!("nonce {} bytes", inner.nonce().len()),
        format!("serial {}", inner.serial()),
        format!("{:?}", inner.cert_type()),
        format!("valid {}..{}", inner.valid_after(), inner.valid_before()),
        format!("principals {:?}", inner.valid_principals()),
        format!("critical {:?}", inner.critical_options()),
        format!(
            "extensions {:?}",
            inner.extensions().keys().collect::<Vec<_>>()
        ),
        format!("signature {}", inner.signature().algorithm()),
        format!(
            "self-signed {}",
            inner.signature_key() == inner.public_key()
        ),
    ]
}

/// The server's whole decision (`opkssh verify` in process, policy files unchecked as the
/// demo runs it) for `principal` with the certificate `line`, where policy lets the demo user
/// in as root only.
fn server_allows(line: &str, op: &DemoOp, principal: &str) -> Result<String, String> {
    let dir = tempfile::tempdir().unwrap();
    let etc = dir.path().join("etc");
    std::fs::create_dir(&etc).unwrap();
    std::fs::write(
        etc.join("providers"),
        format!("{} {} oidc\n", op.issuer(), op.client_id()),
    )
    .unwrap();
    std::fs::write(
        etc.join("auth_id"),
        format!("root {} {}\n", op.user().email, op.issuer()),
    )
    .unwrap();
    for name in ["providers", "auth_id"] {
        std::fs::set_permissions(etc.join(name), std::fs::Permissions::from_mode(0o640)).unwrap();
    }
    let (key_type, key_base64) = line.trim_end().split_once(" ").unwrap();
    let verdict = verifier::decide(&verifier::Attempt {
        dir: policy::ConfigDir::new(&etc),
        cache_dir: dir.path().join("cache"),
        create_cache_dir: true,
        files: verifier::ServerFiles::DemoUnchecked,
        principal,
        key_base64,
        key_type,
        extra: &[],
        chain: verifier::ChainMode::Ignore,
    });
    match verdict.line {
        Some(line) => Ok(line.to_string()),
        None => Err(verdict.trace.to_string()),
    }
}

#[test]
fn agent_keys_log_in_and_their_certificates_verify_like_go_ones() {
    if !enabled() {
        return;
    }
    let op = DemoOp::start(0, "agent-key-client", DemoUser::default()).unwrap();
    let cases = [
        (&["-t", "ecdsa", "-b", "256"][..], "rs256-ecdsa", "ECDSA"),
        (&["-t", "ed25519"][..], "rs256-ed25519", "ED25519"),
    ];
    for (type_args, go_name, openssh_name) in cases {
        let agent = SshAgent::start(&[]);
        let fingerprint = agent.add_key_only_here(type_args, &[]);
        let key = find_agent_key(&agent.socket, &fingerprint).unwrap();
        assert!(key.external().is_some());

        let identity = log_in_with(&op, key).unwrap();
        let token = &identity.pk_token;
        // The CIC signature is the agent's, over the JWS signing input, and verifies under the
        // upk, which is the agent's key.
        let cic = token.cic_claims();
        assert_eq!(cic.upk(), &identity.key.public_key());
        cic.verify_signature(token.cic()).unwrap();

        let certificate = certificate(&identity.key, token, None, None).unwrap();
        let line = certificate.to_line(CertComment::None);
        let parsed = verify_like_a_go_vector(&line, &op);
        assert_eq!(server_allows(&line, &op, "root").map(|_| ()), Ok(()));
        assert!(server_allows(&line, &op, "someone-else").is_err());

        // Byte for byte the Go format: the Go vector of this key type has the same CIC header
        // members, upk members, signature lengths and certificate fields.
        let go = vector("accept", go_name).unwrap();
        let go_certificate =
            OpksshCertificate::from_line(&go.trimmed("cert.pub").unwrap()).unwrap();
        let go_token = PkToken::from_compact(go_certificate.pk_token().unwrap()).unwrap();
        let members = |header: &Map<String, Value>| {
            let upk = header["upk"].as_object().unwrap();
            (
                header.keys().cloned().collect::<Vec<_>>(),
                upk.keys().cloned().collect::<Vec<_>>(),
                header["alg"].clone(),
            )
        };
        assert_eq!(
            members(&header_of(token.cic().header_segment())),
            members(&header_of(go_token.cic().header_segment())),
            "{go_name}"
        );
        let signature_len = |token: &PkToken| {
            b64::decode_url_strict(token.cic().signature_segment())
                .unwrap()
                .len()
        };
        assert_eq!(signature_len(token), 64);
        assert_eq!(signature_len(token), signature_len(&go_token));
        assert_eq!(shape(&parsed), shape(&go_certificate), "{go_name}");
        assert_eq!(parsed.inner().key_id(), op.user().email);

        // OpenSSH reads it, and names the agent's key as both the subject and the signer.
        let cert_path = agent.dir.path().join("id_agent_only-cert.pub");
        std::fs::write(&cert_path, certificate.to_line(CertComment::Default)).unwrap();
        let listed = Command::new("ssh-keygen")
            .args(["-L", "-f"])
            .arg(&cert_path)
            .output()
            .unwrap();
        assert!(listed.status.success(), "{listed:?}");
        let listed = String::from_utf8(listed.stdout).unwrap();
        assert!(
            listed.contains(&format!("Public key: {openssh_name}-CERT {fingerprint}")),
            "{listed}"
        );
        assert!(
            listed.contains(&format!("Signing CA: {openssh_name} {fingerprint}")),
            "{listed}"
        );
        assert!(listed.contains("Key ID: \"demo@example.com\""), "{listed}");
    }
}

#[test]
fn keys_that_cannot_sign_for_opkssh_are_refused_with_their_reason() {
    if !enabled() {
        return;
    }
    let agent = SshAgent::start(&[]);
    let rsa = agent.add_key_only_here(&["-t", "rsa", "-b", "2048"], &[]);
    let p384 = agent.add_key_only_here(&["-t", "ecdsa", "-b", "384"], &[]);
    let error = find_agent_key(&agent.socket, &rsa).unwrap_err();
    assert!(
        matches!(&error, AgentKeyError::Unusable { reason: Unusable::Rsa, fingerprint } if *fingerprint == rsa),
        "{error}"
    );
    let message = error.to_string();
    assert!(
        message.contains("RSA") && message.contains(&rsa),
        "{message}"
    );
    let error = find_agent_key(&agent.socket, &p384).unwrap_err();
    assert!(
        matches!(&error, AgentKeyError::Unusable { reason: Unusable::Curve(curve), .. } if curve == "nistp384"),
        "{error}"
    );
    // A fingerprint the agent does not hold, and text that is no fingerprint.
    let absent = "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU";
    let error = find_agent_key(&agent.socket, absent).unwrap_err();
    assert!(matches!(error, AgentKeyError::NotFound { .. }), "{error}");
    assert!(error.to_string().contains("ssh-add -l"), "{error}");
    let error = find_agent_key(&agent.socket, "MD5:00:11").unwrap_err();
    assert!(matches!(error, AgentKeyError::Fingerprint(_)), "{error}");
}

#[test]
fn an_agent_that_refuses_loses_the_key_or_goes_away_fails_with_its_words() {
    if !enabled() {
        return;
    }
    let op = DemoOp::start(0, "agent-key-client", DemoUser::default()).unwrap();
    // `ssh-add -c`: the agent asks through SSH_ASKPASS before each signature. A person who
    // confirms gets the login; one who declines gets the agent's refusal, naming the key.
    let askpass_dir = tempfile::tempdir().unwrap();
    for (answer, confirmed) in [("exit 0", true), ("exit 1", false)] {
        let askpass = askpass_dir.path().join(format!("askpass-{confirmed}"));
        std::fs::write(&askpass, format!("#!/bin/sh\n{answer}\n")).unwrap();
        std::fs::set_permissions(&askpass, std::fs::Permissions::from_mode(0o755)).unwrap();
        let agent = SshAgent::start(&[
            ("SSH_ASKPASS", &askpass),
            ("SSH_ASKPASS_REQUIRE", Path::new("force")),
            ("DISPLAY", Path::new(":0")),
        ]);
        let fingerprint = agent.add_key_only_here(&["-t", "ed25519"], &["-c"]);
        let key = find_agent_key(&agent.socket, &fingerprint).unwrap();
        match log_in_with(&op, key) {
            Ok(identity) => {
                assert!(confirmed);
                certificate(&identity.key, &identity.pk_token, None, None).unwrap();
            }
            Err(error) => {
                let error = error.to_string();
                assert!(!confirmed, "{error}");
                assert!(
                    error.contains(&fingerprint) && error.contains("refused to sign"),
                    "{error}"
                );
                eprintln!("declined: {error}");
            }
        }
    }

    // A key removed after it was found: the next signature is refused.
    let agent = SshAgent::start(&[]);
    let fingerprint = agent.add_key_only_here(&["-t", "ecdsa", "-b", "256"], &[]);
    let key = find_agent_key(&agent.socket, &fingerprint).unwrap();
    let identity = log_in_with(&op, key).unwrap();
    agent.ssh_add(&["-D"]);
    let error = certificate(&identity.key, &identity.pk_token, None, None).unwrap_err();
    assert!(
        matches!(&error, CertError::Sign(SignError::Holder(words)) if words.contains("refused to sign")),
        "{error}"
    );
    // The agent gone: the holder says it cannot be reached.
    let socket = agent.socket.clone();
    drop(agent);
    let error = identity.key.sign(b"header.payload").unwrap_err();
    eprintln!("agent gone: {error}");
    assert!(
        matches!(&error, SignError::Holder(words) if words.contains("cannot reach the ssh-agent") && words.contains(socket.to_str().unwrap())),
        "{error}"
    );
    let error = opk_core::jws::Jws::sign(r#"{"alg":"ES256"}"#, "e30", &identity.key).unwrap_err();
    assert!(matches!(error, JwsError::Sign(_)), "{error}");
}

/// `ssh` with the certificate from a file and its key from the agent only (OpenSSH's
/// `CertificateFile` with `IdentityAgent`, as Secretive's users set it up), as `user`.
fn ssh_with_agent_key(server: &VerifyServer, agent: &SshAgent, cert: &Path, user: &str) -> Output {
    let home = agent.dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let mut command = Command::new("ssh");
    command
        .args(["-F", "none"])
        .args(["-o", "BatchMode=yes"])
        .arg("-o")
        .arg(format!("IdentityAgent={}", agent.socket.display()))
        .arg("-o")
        .arg(format!("CertificateFile={}", cert.display()))
        .arg("-o")
        .arg(format!(
            "UserKnownHostsFile={}",
            server.sshd.known_hosts().display()
        ))
        .args(["-o", "StrictHostKeyChecking=yes"])
        .arg("-p")
        .arg(server.sshd.port().to_string())
        .arg(format!("{user}@127.0.0.1"))
        .args(["id", "-un"])
        .env("HOME", &home)
        .env_remove("SSH_AUTH_SOCK");
    run_with_timeout(&mut command, SSH_TIMEOUT)
}

#[test]
fn ssh_logs_in_with_the_certificate_while_the_key_is_only_in_the_agent() {
    let Some(e2e) = E2e::require() else {
        return;
    };
    let op = DemoOp::start(0, "agent-key-client", DemoUser::default()).unwrap();
    let server = VerifyServer::start(
        &e2e,
        &format!("{} {} oidc\n", op.issuer(), op.client_id()),
        &format!("{LOGIN_USER} {} {}\n", op.user().email, op.issuer()),
    );
    for type_args in [&["-t", "ecdsa", "-b", "256"][..], &["-t", "ed25519"][..]] {
        let agent = SshAgent::start(&[]);
        let fingerprint = agent.add_key_only_here(type_args, &[]);
        let key = find_agent_key(&agent.socket, &fingerprint).unwrap();
        let identity = log_in_with(&op, key).unwrap();
        let certificate = certificate(&identity.key, &identity.pk_token, None, None).unwrap();
        let cert = agent.dir.path().join("opkssh-cert.pub");
        std::fs::write(&cert, certificate.to_line(CertComment::Default)).unwrap();
        // Nothing but the certificate is on disk: no private or public key file.
        let files: Vec<_> = std::fs::read_dir(agent.dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .filter(|name| name != "agent.sock" && name != "home")
            .collect();
        assert_eq!(files, ["opkssh-cert.pub"]);

        let output = ssh_with_agent_key(&server, &agent, &cert, LOGIN_USER);
        assert_eq!(
            output.status.code(),
            Some(0),
            "{type_args:?}: {output:?}\nverify log:\n{}\nsshd log:\n{}",
            server.verify_log(),
            server.sshd.log()
        );
        assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), LOGIN_USER);
        // The policy names the first user only.
        let output = ssh_with_agent_key(&server, &agent, &cert, LOGIN_USER2);
        assert_eq!(output.status.code(), Some(255), "{output:?}");
    }
    assert!(
        server.verify_log().contains(&format!(
            "allow principal={LOGIN_USER} identity=demo@example.com"
        )),
        "{}",
        server.verify_log()
    );
}

#[test]
fn opkssh_login_with_an_agent_key_writes_only_the_certificate_and_ssh_gets_in() {
    let Some(e2e) = E2e::require() else {
        return;
    };
    let op = Op::start(&[]);
    let server = VerifyServer::start(
        &e2e,
        &format!("{} {} oidc\n", op.issuer(), op.client_id()),
        &format!("{LOGIN_USER} alice@example.com {}\n", op.issuer()),
    );
    let agent = SshAgent::start(&[]);
    let fingerprint = agent.add_key_only_here(&["-t", "ecdsa", "-b", "256"], &[]);
    let home = e2e.dir().join("home");
    std::fs::create_dir(&home).unwrap();
    let key_path = home.join("from-agent");
    let spec = format!("{},{},,openid profile email", op.issuer(), op.client_id());
    let env = [("SSH_AUTH_SOCK", agent.socket.as_os_str())];
    let args = [
        "--provider",
        spec.as_str(),
        "--agent-key",
        fingerprint.as_str(),
        "-i",
        key_path.to_str().unwrap(),
    ];
    let run = login_through_op(&home, &args, &env, "alice");
    run.assert_success();
    let cert = PathBuf::from(format!("{}-cert.pub", key_path.display()));
    assert!(
        run.stdout.contains(&format!(
            "Writing opk ssh certificate to {}; the key stays in the ssh-agent (the ssh-agent key {fingerprint})",
            cert.display()
        )),
        "{}",
        run.stdout
    );
    // Only the certificate: no key file, nothing added to the agent.
    assert!(!key_path.exists());
    let listed = String::from_utf8(agent.ssh_add(&["-L"]).stdout).unwrap();
    assert_eq!(listed.lines().count(), 1, "{listed}");
    assert!(listed.starts_with("ecdsa-sha2-nistp256 "), "{listed}");
    let certificate =
        OpksshCertificate::from_line(&std::fs::read_to_string(&cert).unwrap()).unwrap();
    assert_eq!(
        opk_client::agent_key::fingerprint(&certificate.inner().public_key().encode_vec().unwrap()),
        fingerprint
    );

    let output = ssh_with_agent_key(&server, &agent, &cert, LOGIN_USER);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{output:?}\nverify log:\n{}",
        server.verify_log()
    );
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), LOGIN_USER);

    // Refused before the browser opens: an RSA key, a key file in the way, no agent.
    let rsa = agent.add_key_only_here(&["-t", "rsa", "-b", "2048"], &[]);
    let run = LoginProcess::start(
        &home,
        &[
            "--provider",
            &spec,
            "--agent-key",
            &rsa,
            "-i",
            key_path.to_str().unwrap(),
        ],
        &env,
    )
    .finish();
    assert!(!run.stdout.contains("Open your browser"), "{}", run.stdout);
    run.assert_failure("opkssh user keys are ECDSA P-256 or Ed25519");
    let in_the_way = home.join("in-the-way");
    std::fs::write(&in_the_way, "a key").unwrap();
    let run = LoginProcess::start(
        &home,
        &[
            "--provider",
            &spec,
            "--agent-key",
            &fingerprint,
            "-i",
            in_the_way.to_str().unwrap(),
        ],
        &env,
    )
    .finish();
    run.assert_failure("give -i a path where no key file is");
    let run = LoginProcess::start(
        &home,
        &[
            "--provider",
            &spec,
            "--agent-key",
            &fingerprint,
            "-i",
            key_path.to_str().unwrap(),
        ],
        &[("SSH_AUTH_SOCK", OsStr::new(""))],
    )
    .finish();
    run.assert_failure("SSH_AUTH_SOCK is not set");
}

/// `ssh` with nothing but the agent at `socket`: no key or certificate file.
fn ssh_through_agent(server: &VerifyServer, socket: &Path, home: &Path, user: &str) -> Output {
    let mut command = Command::new("ssh");
    command
        .args(["-F", "none"])
        .args(["-o", "BatchMode=yes"])
        .arg("-o")
        .arg(format!("IdentityAgent={}", socket.display()))
        .arg("-o")
        .arg(format!(
            "UserKnownHostsFile={}",
            server.sshd.known_hosts().display()
        ))
        .args(["-o", "StrictHostKeyChecking=yes"])
        .arg("-p")
        .arg(server.sshd.port().to_string())
        .arg(format!("{user}@127.0.0.1"))
        .args(["id", "-un"])
        .env("HOME", home)
        .env_remove("SSH_AUTH_SOCK");
    run_with_timeout(&mut command, SSH_TIMEOUT)
}

#[test]
fn the_agent_server_presents_an_agent_key_certificate_and_the_upstream_agent_signs() {
    let Some(e2e) = E2e::require() else {
        return;
    };
    let op = DemoOp::start(0, "agent-key-client", DemoUser::default()).unwrap();
    let server = VerifyServer::start(
        &e2e,
        &format!("{} {} oidc\n", op.issuer(), op.client_id()),
        &format!("{LOGIN_USER} {} {}\n", op.user().email, op.issuer()),
    );
    let upstream = SshAgent::start(&[]);
    let fingerprint = upstream.add_key_only_here(&["-t", "ed25519"], &[]);
    let key = find_agent_key(&upstream.socket, &fingerprint).unwrap();
    let identity = log_in_with(&op, key).unwrap();
    let certificate = certificate(&identity.key, &identity.pk_token, None, None).unwrap();

    // What `opkssh agent --agent-key` runs: the agent server, holding the certificate and the
    // agent-held key, forwarding the rest to the upstream agent.
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let socket = dir.path().join("opkssh-agent.sock");
    let listener = opk_os::agent::AgentListener::bind(&socket).unwrap();
    let shared = Shared::new();
    shared.hold(Held {
        key: identity.key.clone(),
        certificate: certificate.clone(),
        comment: identity_comment(identity.pk_token.claims()),
        expires_at: None,
    });
    std::thread::spawn({
        let shared = shared.clone();
        let upstream = upstream.socket.clone();
        move || serve(listener, shared, Some(upstream))
    });
    let listed = Command::new("ssh-add")
        .arg("-L")
        .env("SSH_AUTH_SOCK", &socket)
        .output()
        .unwrap();
    let listed = String::from_utf8(listed.stdout).unwrap();
    // The certificate only: the upstream's plain key is the certificate's key, which the
    // agent server answers for itself and does not list a second time.
    let lines: Vec<_> = listed.lines().collect();
    assert_eq!(lines.len(), 1, "{listed}");
    assert!(
        lines[0].starts_with("ssh-ed25519-cert-v01@openssh.com "),
        "{listed}"
    );

    let home = dir.path().join("home");
    std::fs::create_dir(&home).unwrap();
    let output = ssh_through_agent(&server, &socket, &home, LOGIN_USER);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{output:?}\nverify log:\n{}\nsshd log:\n{}",
        server.verify_log(),
        server.sshd.log()
    );
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), LOGIN_USER);
    assert!(
        server.verify_log().contains(&format!(
            "allow principal={LOGIN_USER} identity=demo@example.com"
        )),
        "{}",
        server.verify_log()
    );
    // With the key gone from the upstream agent, the certificate cannot sign any more.
    upstream.ssh_add(&["-D"]);
    let output = ssh_through_agent(&server, &socket, &home, LOGIN_USER);
    assert_eq!(output.status.code(), Some(255), "{output:?}");
}
