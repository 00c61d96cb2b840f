//! The ssh-agent client against OpenSSH's real `ssh-agent`: certificates of both key types go
//! in with a lifetime and sign (`ssh-add -T`), stale opkssh certificates are evicted while
//! other keys stay, and removal takes exactly what was asked.
//!
//! Needs `ssh-agent`, `ssh-add` and `ssh-keygen`; gated like the end-to-end tests: without
//! `OPKSSH_E2E=1` every test prints `SKIP` and passes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)] // test code: a panic is a failure

use opk_client::agent::{Agent, AgentError, CertificateIdentity};
use opk_client::agent_certificates::{self, add_replacing_stale};
use opk_core::b64;
use opk_core::cic::CicHeader;
use opk_core::jws::{Jws, SigningKey};
use opk_core::pktoken::PkToken;
use opk_core::sshcert::{
    CertComment, CertificateRequest, OpksshCertificate, Principals, UserKeyType, build_certificate,
    generate_user_key,
};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn enabled() -> bool {
    if std::env::var_os("OPKSSH_E2E").is_some_and(|value| value == "1") {
        true
    } else {
        eprintln!("SKIP e2e: set OPKSSH_E2E=1");
        false
    }
}

/// `ssh-agent -d -a <dir>/agent.sock`, its debug log (which names each added identity's
/// lifetime) in `<dir>/agent.log`; killed and reaped on drop.
struct SshAgent {
    child: Child,
    socket: PathBuf,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl SshAgent {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("agent.sock");
        let log = dir.path().join("agent.log");
        let child = Command::new("ssh-agent")
            .arg("-d")
            .arg("-a")
            .arg(&socket)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("ssh-agent (openssh-client) must be installed");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !socket.exists() {
            assert!(Instant::now() < deadline, "ssh-agent made no socket");
            std::thread::sleep(Duration::from_millis(10));
        }
        Self {
            child,
            socket,
            log,
            _dir: dir,
        }
    }

    fn connect(&self) -> Agent {
        Agent::connect(&self.socket).unwrap()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn ssh_add(&self, args: &[&str]) -> Output {
        Command::new("ssh-add")
            .args(args)
            .env("SSH_AUTH_SOCK", &self.socket)
            .output()
            .unwrap()
    }

    /// `ssh-add -L`, one line per identity (none: empty).
    fn listed(&self) -> Vec<String> {
        let output = self.ssh_add(&["-L"]);
        String::from_utf8(output.stdout)
            .unwrap()
            .lines()
            .filter(|line| !line.starts_with("The agent has no identities"))
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for SshAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn unix_now() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

/// A login as opkssh makes it, for `subject` at `issuer`, whose ID token expires at `exp`.
fn login(
    kind: UserKeyType,
    issuer: &str,
    subject: &str,
    exp: i64,
) -> (SigningKey, OpksshCertificate, PkToken) {
    let key = generate_user_key(kind).unwrap();
    let op_key = generate_user_key(UserKeyType::Ecdsa).unwrap();
    let cic = CicHeader::generate(&key, &[]).unwrap();
    let payload = serde_json::json!({
        "iss": issuer, "sub": subject, "aud": "client", "iat": exp - 3600, "exp": exp,
        "nonce": cic.commitment(), "email": format!("{subject}@example.com"),
    });
    let op = Jws::sign(
        r#"{"alg":"ES256","kid":"k","typ":"JWT"}"#,
        &b64::encode_url(payload.to_string()),
        &op_key,
    )
    .unwrap();
    let cic_jws = cic.sign(op.payload_segment(), &key).unwrap();
    let token = PkToken::from_signatures(op, cic_jws).unwrap();
    let certificate = build_certificate(CertificateRequest {
        key: &key,
        key_id: &format!("{subject}@example.com"),
        principals: Principals::Default,
        pk_token: &token.to_compact(),
        access_token: None,
    })
    .unwrap();
    (key, certificate, token)
}

fn line_of(certificate: &OpksshCertificate) -> String {
    certificate.to_line(CertComment::None).trim_end().to_owned()
}

fn write_cert(dir: &Path, certificate: &OpksshCertificate) -> PathBuf {
    let path = dir.join("id-cert.pub");
    std::fs::write(&path, certificate.to_line(CertComment::None)).unwrap();
    path
}

#[test]
fn certificates_of_both_key_types_go_in_and_sign() {
    if !enabled() {
        return;
    }
    let agent = SshAgent::start();
    let scratch = tempfile::tempdir().unwrap();
    for kind in [UserKeyType::Ecdsa, UserKeyType::Ed25519] {
        let (key, certificate, _) = login(kind, "https://op.example", "alice", unix_now() + 600);
        let mut client = agent.connect();
        client
            .add_certificate(&CertificateIdentity {
                key: &key,
                certificate: &certificate,
                comment: "openpubkey https://op.example alice@example.com",
                lifetime: Some(600),
            })
            .unwrap();
        assert_eq!(
            agent.listed(),
            [format!(
                "{} openpubkey https://op.example alice@example.com",
                line_of(&certificate)
            )],
            "{kind:?}"
        );
        // The agent holds the right private key: it signs, and the signature verifies under
        // the certificate's key.
        let cert_file = write_cert(scratch.path(), &certificate);
        let test = agent.ssh_add(&["-T", cert_file.to_str().unwrap()]);
        assert!(test.status.success(), "{kind:?}: {test:?}");

        let listed = client.identities().unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].key_blob, certificate.as_bytes());
        client.remove(certificate.as_bytes()).unwrap();
        assert!(agent.listed().is_empty());
        // Removing what the agent does not hold is a refusal, not a broken reply.
        assert!(matches!(
            client.remove(certificate.as_bytes()),
            Err(AgentError::Refused(_))
        ));
    }
}

#[test]
fn the_lifetime_reaches_the_agent() {
    if !enabled() {
        return;
    }
    let agent = SshAgent::start();
    let mut client = agent.connect();
    let mut add = |lifetime: Option<u32>| {
        let (key, certificate, _) = login(
            UserKeyType::Ecdsa,
            "https://op.example",
            "alice",
            unix_now() + 600,
        );
        client
            .add_certificate(&CertificateIdentity {
                key: &key,
                certificate: &certificate,
                comment: "c",
                lifetime,
            })
            .unwrap();
        line_of(&certificate)
    };
    let lasting = add(None);
    let brief = add(Some(3));
    // OpenSSH counts lifetimes in whole seconds: a 3 s identity lives at least 2 s.
    assert_eq!(agent.listed().len(), 2);
    // The agent drops it by itself (it checks on each request); the other one stays.
    let deadline = Instant::now() + Duration::from_secs(30);
    while agent.listed().iter().any(|line| line.starts_with(&brief)) {
        assert!(
            Instant::now() < deadline,
            "still listed: {:?}",
            agent.listed()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(agent.listed(), [format!("{lasting} c")]);
}

#[test]
fn adding_evicts_dead_and_superseded_opkssh_certificates_only() {
    if !enabled() {
        return;
    }
    let agent = SshAgent::start();
    let scratch = tempfile::tempdir().unwrap();
    let now = unix_now();
    // A plain key of the user's own, added with ssh-add.
    let own_key = scratch.path().join("own");
    let keygen = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "me@laptop", "-f"])
        .arg(&own_key)
        .output()
        .unwrap();
    assert!(keygen.status.success(), "{keygen:?}");
    assert!(agent.ssh_add(&[own_key.to_str().unwrap()]).status.success());

    let mut client = agent.connect();
    let mut add = |certificate: &OpksshCertificate, key: &SigningKey, comment: &str| {
        client
            .add_certificate(&CertificateIdentity {
                key,
                certificate,
                comment,
                lifetime: None,
            })
            .unwrap();
    };
    let (dead_key, dead, _) = login(
        UserKeyType::Ecdsa,
        "https://other.example",
        "dave",
        now - 30,
    );
    add(&dead, &dead_key, "dead");
    let (bob_key, bob, _) = login(UserKeyType::Ecdsa, "https://op.example", "bob", now + 600);
    add(&bob, &bob_key, "bob");
    let (old_key, old, _) = login(
        UserKeyType::Ed25519,
        "https://op.example",
        "alice",
        now + 600,
    );
    add(&old, &old_key, "alice before");
    assert_eq!(agent.listed().len(), 4);

    let (key, fresh, token) = login(UserKeyType::Ecdsa, "https://op.example", "alice", now + 900);
    let added = add_replacing_stale(
        &mut agent.connect(),
        &key,
        &fresh,
        &token,
        opk_client::duration::DEFAULT_AGENT_LIFETIME,
        SystemTime::now(),
    )
    .unwrap();
    let mut reasons: Vec<(String, String)> = added
        .removals
        .removed
        .iter()
        .map(|removal| (removal.certificate.comment.clone(), removal.reason.clone()))
        .collect();
    reasons.sort();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert_eq!(reasons[0].0, "alice before");
    assert_eq!(reasons[0].1, "an earlier certificate for the same identity");
    assert_eq!(reasons[1].0, "dead");
    assert!(
        reasons[1].1.starts_with("its ID token expired "),
        "{reasons:?}"
    );
    assert!(added.removals.failed.is_empty());
    assert_eq!(
        added.comment,
        "openpubkey https://op.example alice@example.com"
    );
    let lifetime = added.lifetime.unwrap();
    assert!((898..=900).contains(&lifetime), "{lifetime}");

    let own_public = std::fs::read_to_string(own_key.with_extension("pub")).unwrap();
    let mut listed = agent.listed();
    listed.sort();
    let mut expected = vec![
        own_public.trim_end().to_owned(),
        format!("{} bob", line_of(&bob)),
        format!("{} {}", line_of(&fresh), added.comment),
    ];
    expected.sort();
    assert_eq!(listed, expected);

    // Logout's removal: every opkssh certificate, the user's own key stays.
    let removals =
        agent_certificates::remove_where(&mut agent.connect(), |_| true, "logout").unwrap();
    assert_eq!(removals.removed.len(), 2);
    assert_eq!(agent.listed(), [own_public.trim_end().to_owned()]);
}

/// Windows' rules (Win32-OpenSSH's agent refuses lifetimes) against OpenSSH's agent: the
/// identity goes in with the plain add and no lifetime, `Added` says so, and the next login's
/// add still evicts it once its token has expired.
#[test]
fn under_windows_rules_no_lifetime_is_sent_and_the_next_add_evicts_the_stale_one() {
    if !enabled() {
        return;
    }
    let agent = SshAgent::start();
    let now = unix_now();
    let windows = |agent: &SshAgent| agent.connect().with_rules(opk_os::System::Windows);

    // alice's token has 60 s left: under this system's rules the agent would get 60 s.
    let (old_key, old, old_token) =
        login(UserKeyType::Ecdsa, "https://op.example", "alice", now + 60);
    let added = add_replacing_stale(
        &mut windows(&agent),
        &old_key,
        &old,
        &old_token,
        opk_client::duration::DEFAULT_AGENT_LIFETIME,
        SystemTime::now(),
    )
    .unwrap();
    assert_eq!(added.lifetime, None);
    assert!(added.removals.removed.is_empty());
    let log = agent.log();
    assert!(
        log.lines()
            .any(|line| line.trim_end().ends_with(") type 17"))
            && !log
                .lines()
                .any(|line| line.trim_end().ends_with(") type 25")),
        "not the plain add:\n{log}"
    );
    assert!(
        log.contains(&format!("\"{}\" (life: 0)", added.comment)),
        "a lifetime reached the agent:\n{log}"
    );
    assert_eq!(
        agent.listed(),
        [format!("{} {}", line_of(&old), added.comment)]
    );

    // The next login, bob's, 90 s later: alice's certificate is dead by then and goes.
    let later = SystemTime::now() + Duration::from_secs(90);
    let (key, fresh, token) = login(UserKeyType::Ed25519, "https://op.example", "bob", now + 900);
    let added = add_replacing_stale(
        &mut windows(&agent),
        &key,
        &fresh,
        &token,
        opk_client::duration::DEFAULT_AGENT_LIFETIME,
        later,
    )
    .unwrap();
    assert_eq!(added.lifetime, None);
    let removed: Vec<(&[u8], &str)> = added
        .removals
        .removed
        .iter()
        .map(|removal| {
            (
                removal.certificate.key_blob.as_slice(),
                removal.reason.as_str(),
            )
        })
        .collect();
    assert_eq!(removed.len(), 1, "{removed:?}");
    assert_eq!(removed[0].0, old.as_bytes());
    assert!(
        removed[0].1.starts_with("its ID token expired "),
        "{removed:?}"
    );
    assert_eq!(
        agent.listed(),
        [format!("{} {}", line_of(&fresh), added.comment)]
    );
}
