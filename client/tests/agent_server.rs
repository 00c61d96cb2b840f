//! The agent server (`opk_client::agent_server`) on a real socket, in front of OpenSSH's real
//! `ssh-agent`, driven by OpenSSH's `ssh-add` and `ssh-keygen`, holding a certificate from a
//! login at the in-process demo OP: our certificate is listed first and signs, the upstream's
//! keys follow and sign, adding and removing reach the upstream, a dead upstream leaves our
//! identity working, an expired certificate disappears, lock and unlock cover both, and bad
//! input costs one connection.
//!
//! Needs `ssh-agent`, `ssh-add` and `ssh-keygen`; gated like the end-to-end tests: without
//! `OPKSSH_E2E=1` every test prints `SKIP` and passes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)] // test code: a panic is a failure

use opk_client::agent::{Agent, CertificateIdentity, MAX_MESSAGE_LEN};
use opk_client::agent_certificates::identity_comment;
use opk_client::agent_server::{
    Held, LOGIN_EXTENSION, MAX_CONNECTIONS, Shared, query_status, request_login, serve,
};
use opk_client::demo_op::{DemoOp, DemoUser};
use opk_client::login::{self, BrowserProvider};
use opk_core::sshcert::{CertComment, UserKeyType, generate_user_key};
use opk_net::http::HttpClient;
use opk_os::agent::AgentListener;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn enabled() -> bool {
    if std::env::var_os("OPKSSH_E2E").is_some_and(|value| value == "1") {
        true
    } else {
        eprintln!("SKIP e2e: set OPKSSH_E2E=1");
        false
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

/// `ssh-add` (or another OpenSSH tool) with `SSH_AUTH_SOCK` set to `socket`.
fn tool(program: &str, socket: &Path, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .env("SSH_AUTH_SOCK", socket)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// `ssh-add -L` through `socket`, one line per identity.
fn listed(socket: &Path) -> Vec<String> {
    let output = tool("ssh-add", socket, &["-L"]);
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .filter(|line| !line.starts_with("The agent has no identities"))
        .map(str::to_owned)
        .collect()
}

/// The type and base64 of a key line, without its comment.
fn key_of(line: &str) -> String {
    line.trim_end()
        .split(' ')
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

fn assert_ok(output: &Output, what: &str) {
    assert!(
        output.status.success(),
        "{what}: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `ssh-agent -D -a <dir>/agent.sock`, killed and reaped on drop.
struct SshAgent {
    child: Child,
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl SshAgent {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("agent.sock");
        let child = Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&socket)
            .stdout(Stdio::null())
            .spawn()
            .expect("ssh-agent (openssh-client) must be installed");
        wait_for_socket(&socket);
        Self {
            child,
            socket,
            _dir: dir,
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for SshAgent {
    fn drop(&mut self) {
        self.kill();
    }
}

fn wait_for_socket(socket: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while UnixStream::connect(socket).is_err() {
        assert!(Instant::now() < deadline, "nothing listens at {socket:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Our agent: `serve` on a fresh private folder's socket, in a thread left running.
struct Ours {
    socket: PathBuf,
    shared: Shared,
    _dir: tempfile::TempDir,
}

impl Ours {
    fn start(upstream: Option<&Path>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        // The listener refuses a folder others can enter.
        opk_os::file::set_mode(dir.path(), 0o700).unwrap();
        let socket = dir.path().join("opkssh-agent.sock");
        let listener = AgentListener::bind(&socket).unwrap();
        let shared = Shared::new();
        let upstream = upstream.map(Path::to_owned);
        std::thread::spawn({
            let shared = shared.clone();
            move || serve(listener, shared, upstream)
        });
        Self {
            socket,
            shared,
            _dir: dir,
        }
    }
}

/// A login at the demo OP, made once for all tests of this file.
struct Login {
    held: Held,
    line: String,
}

fn browse(url: &str) {
    let agent = ureq::Agent::config_builder()
        .max_redirects(0)
        .http_status_as_error(false)
        .build()
        .new_agent();
    let mut url = url.to_owned();
    for _ in 0..10 {
        let response = agent.get(&url).call().unwrap();
        match response.headers().get("location") {
            Some(location) => url = location.to_str().unwrap().to_owned(),
            None => return,
        }
    }
}

fn demo_login() -> &'static Login {
    static LOGIN: OnceLock<Login> = OnceLock::new();
    LOGIN.get_or_init(|| {
        let op = DemoOp::start(0, "agent-client", DemoUser::default()).unwrap();
        let provider = BrowserProvider {
            issuer: op.issuer().to_owned(),
            client_id: op.client_id().to_owned(),
            client_secret: None,
            scopes: "openid email".into(),
            prompt: "consent".into(),
            access_type: "offline".into(),
            redirect_uris: vec!["http://localhost:0/login-callback".into()],
            remote_redirect_uri: None,
        };
        let http = HttpClient::new(&Default::default());
        let key = generate_user_key(UserKeyType::Ecdsa).unwrap();
        let mut browser = None;
        let mut opener = |url: &str| {
            let url = url.to_owned();
            browser = Some(std::thread::spawn(move || browse(&url)));
        };
        let session =
            login::login(&provider, key, &http, &mut opener, Duration::from_secs(30)).unwrap();
        browser.unwrap().join().unwrap();
        let certificate =
            opk_client::certificate(&session.key, &session.pk_token, None, None).unwrap();
        let line = key_of(&certificate.to_line(CertComment::None));
        Login {
            held: Held {
                key: session.key.clone(),
                certificate,
                comment: identity_comment(session.pk_token.claims()),
                expires_at: login::current_expiry(&session.pk_token),
            },
            line,
        }
    })
}

/// A plain Ed25519 key made by ssh-keygen in `dir`; returns its private key path.
fn keygen(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    let output = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
        .arg(&path)
        .output()
        .unwrap();
    assert_ok(&output, "ssh-keygen");
    path
}

fn public_line(private: &Path) -> String {
    let text = std::fs::read_to_string(private.with_extension("pub")).unwrap();
    key_of(text.trim())
}

/// Our certificate, written where `ssh-add -T` and `ssh-keygen -Y sign` read it.
fn write_certificate(dir: &Path, login: &Login) -> PathBuf {
    let path = dir.join("id-cert.pub");
    std::fs::write(
        &path,
        login.held.certificate.to_line(CertComment::None).as_bytes(),
    )
    .unwrap();
    path
}

fn frame(body: &[u8]) -> Vec<u8> {
    let mut frame = u32::try_from(body.len()).unwrap().to_be_bytes().to_vec();
    frame.extend_from_slice(body);
    frame
}

fn extension(name: &str) -> Vec<u8> {
    let mut body = vec![27];
    body.extend_from_slice(&u32::try_from(name.len()).unwrap().to_be_bytes());
    body.extend_from_slice(name.as_bytes());
    body
}

/// Sends raw bytes on a fresh connection and reads one reply body (`None`: the agent hung up).
fn raw_exchange(socket: &Path, bytes: &[u8]) -> Option<Vec<u8>> {
    let mut stream = UnixStream::connect(socket).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(bytes).unwrap();
    read_reply(&mut stream)
}

fn read_reply(stream: &mut UnixStream) -> Option<Vec<u8>> {
    let mut prefix = [0; 4];
    stream.read_exact(&mut prefix).ok()?;
    let mut body = vec![0; usize::try_from(u32::from_be_bytes(prefix)).unwrap()];
    stream.read_exact(&mut body).ok()?;
    Some(body)
}

/// Whether the agent closed `stream` rather than answer: end of file, or a reset when it
/// closed with our request unread (Linux reports that on Unix sockets).
fn closed(stream: &mut UnixStream) -> bool {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    match stream.read(&mut [0; 1]) {
        Ok(0) => true,
        Err(error) => error.kind() == std::io::ErrorKind::ConnectionReset,
        Ok(_) => false,
    }
}

#[test]
fn lists_our_certificate_first_then_the_upstream_keys_and_signs_with_both() {
    if !enabled() {
        return;
    }
    let login = demo_login();
    let upstream = SshAgent::start();
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path(), "upstream-key");
    assert_ok(
        &tool("ssh-add", &upstream.socket, &[key.to_str().unwrap()]),
        "ssh-add to upstream",
    );
    let ours = Ours::start(Some(&upstream.socket));
    ours.shared.hold(login.held.clone());

    let lines = listed(&ours.socket);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(key_of(&lines[0]), login.line);
    assert!(lines[0].ends_with(&login.held.comment), "{}", lines[0]);
    assert_eq!(key_of(&lines[1]), public_line(&key));

    // Signing through our socket: our certificate (signed here) and the upstream's key
    // (forwarded), each checked by ssh-add against the public key.
    let cert_file = write_certificate(dir.path(), login);
    for public in [cert_file.clone(), key.with_extension("pub")] {
        let output = tool("ssh-add", &ours.socket, &["-T", public.to_str().unwrap()]);
        assert_ok(&output, &format!("ssh-add -T {public:?}"));
    }

    // ssh-keygen -Y sign with the certificate, then checked.
    let message = dir.path().join("message");
    std::fs::write(&message, b"signed through opkssh agent").unwrap();
    let output = tool(
        "ssh-keygen",
        &ours.socket,
        &[
            "-Y",
            "sign",
            "-n",
            "file",
            "-f",
            cert_file.to_str().unwrap(),
            message.to_str().unwrap(),
        ],
    );
    assert_ok(&output, "ssh-keygen -Y sign");
    let signature = std::fs::read(message.with_extension("sig")).unwrap();
    let check = Command::new("ssh-keygen")
        .args(["-Y", "check-novalidate", "-n", "file", "-s"])
        .arg(message.with_extension("sig"))
        .stdin(std::fs::File::open(&message).unwrap())
        .output()
        .unwrap();
    assert_ok(&check, "ssh-keygen -Y check-novalidate");
    assert!(!signature.is_empty());
}

#[test]
fn never_two_certificates_for_the_same_login() {
    if !enabled() {
        return;
    }
    let login = demo_login();
    let upstream = SshAgent::start();
    // `opkssh login` put the same login's certificate in the user's agent.
    Agent::connect(&upstream.socket)
        .unwrap()
        .add_certificate(&CertificateIdentity {
            key: &login.held.key,
            certificate: &login.held.certificate,
            comment: "from opkssh login",
            lifetime: None,
        })
        .unwrap();
    assert_eq!(listed(&upstream.socket).len(), 1);
    let ours = Ours::start(Some(&upstream.socket));
    ours.shared.hold(login.held.clone());
    let lines = listed(&ours.socket);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].ends_with(&login.held.comment));
}

#[test]
fn an_expired_certificate_is_not_listed_and_does_not_sign() {
    if !enabled() {
        return;
    }
    let login = demo_login();
    let upstream = SshAgent::start();
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path(), "upstream-key");
    assert_ok(
        &tool("ssh-add", &upstream.socket, &[key.to_str().unwrap()]),
        "ssh-add",
    );
    let ours = Ours::start(Some(&upstream.socket));
    let expires_at = unix_now() + 2;
    ours.shared.hold(Held {
        expires_at: Some(expires_at),
        ..login.held.clone()
    });
    assert_eq!(key_of(&listed(&ours.socket)[0]), login.line);
    while unix_now() < expires_at {
        std::thread::sleep(Duration::from_millis(100));
    }
    let lines = listed(&ours.socket);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(key_of(&lines[0]), public_line(&key));
    assert!(!ours.shared.is_presenting());
    let cert_file = write_certificate(dir.path(), login);
    let output = tool(
        "ssh-add",
        &ours.socket,
        &["-T", cert_file.to_str().unwrap()],
    );
    assert!(!output.status.success(), "an expired certificate signed");
}

#[test]
fn adding_and_removing_reach_the_upstream() {
    if !enabled() {
        return;
    }
    let login = demo_login();
    let upstream = SshAgent::start();
    let ours = Ours::start(Some(&upstream.socket));
    ours.shared.hold(login.held.clone());
    let dir = tempfile::tempdir().unwrap();
    let first = keygen(dir.path(), "first");
    let second = keygen(dir.path(), "second");
    for key in [&first, &second] {
        assert_ok(
            &tool("ssh-add", &ours.socket, &[key.to_str().unwrap()]),
            "ssh-add through ours",
        );
    }
    let upstream_keys: Vec<_> = listed(&upstream.socket).iter().map(|l| key_of(l)).collect();
    assert_eq!(upstream_keys, [public_line(&first), public_line(&second)]);
    assert_eq!(listed(&ours.socket).len(), 3);

    assert_ok(
        &tool(
            "ssh-add",
            &ours.socket,
            &["-d", first.with_extension("pub").to_str().unwrap()],
        ),
        "ssh-add -d through ours",
    );
    assert_eq!(listed(&upstream.socket).len(), 1);

    assert_ok(&tool("ssh-add", &ours.socket, &["-D"]), "ssh-add -D");
    assert!(listed(&upstream.socket).is_empty());
    // Ours is the session's to manage, not the user's agent's: it stays.
    let lines = listed(&ours.socket);
    assert_eq!(lines.len(), 1);
    assert_eq!(key_of(&lines[0]), login.line);
}

#[test]
fn a_dead_upstream_leaves_our_identity_working() {
    if !enabled() {
        return;
    }
    let login = demo_login();
    let mut upstream = SshAgent::start();
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path(), "upstream-key");
    assert_ok(
        &tool("ssh-add", &upstream.socket, &[key.to_str().unwrap()]),
        "ssh-add",
    );
    let ours = Ours::start(Some(&upstream.socket));
    ours.shared.hold(login.held.clone());
    assert_eq!(listed(&ours.socket).len(), 2);

    upstream.kill();
    let lines = listed(&ours.socket);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(key_of(&lines[0]), login.line);
    let cert_file = write_certificate(dir.path(), login);
    assert_ok(
        &tool(
            "ssh-add",
            &ours.socket,
            &["-T", cert_file.to_str().unwrap()],
        ),
        "ssh-add -T with the upstream gone",
    );
    // What would go upstream is refused, not hung.
    let output = tool("ssh-add", &ours.socket, &[key.to_str().unwrap()]);
    assert!(!output.status.success());
}

#[test]
fn without_an_upstream_only_ours_is_there() {
    if !enabled() {
        return;
    }
    let login = demo_login();
    let ours = Ours::start(None);
    assert!(listed(&ours.socket).is_empty());
    ours.shared.hold(login.held.clone());
    let lines = listed(&ours.socket);
    assert_eq!(lines.len(), 1);
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path(), "k");
    let output = tool("ssh-add", &ours.socket, &[key.to_str().unwrap()]);
    assert!(
        !output.status.success(),
        "an add with no upstream succeeded"
    );
    ours.shared.release();
    assert!(listed(&ours.socket).is_empty());
}

#[test]
fn bad_input_costs_one_connection() {
    if !enabled() {
        return;
    }
    let login = demo_login();
    let upstream = SshAgent::start();
    let ours = Ours::start(Some(&upstream.socket));
    ours.shared.hold(login.held.clone());
    let request_identities = frame(&[11]);
    let works = |socket: &Path| {
        let reply = raw_exchange(socket, &request_identities).expect("the agent answers");
        assert_eq!(reply[0], 12, "identities answer");
        assert_eq!(listed(socket).len(), 1);
    };

    // A length over the limit: that connection is closed, the body never read.
    let oversized = u32::try_from(MAX_MESSAGE_LEN + 1).unwrap().to_be_bytes();
    for prefix in [oversized, [0xff; 4], [0; 4]] {
        let mut stream = UnixStream::connect(&ours.socket).unwrap();
        stream.write_all(&prefix).unwrap();
        assert!(closed(&mut stream), "{prefix:?}");
        works(&ours.socket);
    }

    // Malformed inside a good frame: a failure, as OpenSSH answers; the connection goes on.
    let mut stream = UnixStream::connect(&ours.socket).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    for body in [
        &[13, 0, 0, 0, 200, 1, 2][..],
        &[11, 1],
        &[22],
        &[27, 0, 0, 0, 9],
    ] {
        stream.write_all(&frame(body)).unwrap();
        assert_eq!(read_reply(&mut stream), Some(vec![5]), "{body:?}");
    }
    stream.write_all(&request_identities).unwrap();
    assert_eq!(read_reply(&mut stream).unwrap()[0], 12);
    drop(stream);

    // A peer that hangs up halfway, in the prefix or in the body.
    for half in [&[0, 0][..], &[0, 0, 0, 100, 13, 0, 0]] {
        let mut stream = UnixStream::connect(&ours.socket).unwrap();
        stream.write_all(half).unwrap();
        drop(stream);
        works(&ours.socket);
    }

    // A peer that stalls halfway holds only its own connection.
    let mut stalled = UnixStream::connect(&ours.socket).unwrap();
    stalled.write_all(&[0, 0, 0, 100, 13]).unwrap();
    works(&ours.socket);
    drop(stalled);
}

#[test]
fn a_hostile_upstream_costs_its_identities_only() {
    if !enabled() {
        return;
    }
    // An "agent" that answers every request with an oversized length, then garbage.
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("hostile.sock");
    let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut request = [0; 64];
            let _ = stream.read(&mut request);
            let _ = stream.write_all(&[0xff, 0xff, 0xff, 0xff, 12, 0, 0]);
        }
    });
    let login = demo_login();
    let ours = Ours::start(Some(&socket));
    ours.shared.hold(login.held.clone());
    for _ in 0..3 {
        let lines = listed(&ours.socket);
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert_eq!(key_of(&lines[0]), login.line);
    }
    let cert_file = write_certificate(dir.path(), login);
    assert_ok(
        &tool(
            "ssh-add",
            &ours.socket,
            &["-T", cert_file.to_str().unwrap()],
        ),
        "ssh-add -T next to a hostile upstream",
    );
}

#[test]
fn connections_are_bounded_and_the_agent_goes_on() {
    if !enabled() {
        return;
    }
    let ours = Ours::start(None);
    ours.shared.hold(demo_login().held.clone());
    let mut held_open = Vec::new();
    for _ in 0..MAX_CONNECTIONS {
        let mut stream = UnixStream::connect(&ours.socket).unwrap();
        // Each one answered: it has its thread.
        stream.write_all(&frame(&[11])).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        assert!(read_reply(&mut stream).is_some());
        held_open.push(stream);
    }
    let mut extra = UnixStream::connect(&ours.socket).unwrap();
    let _ = extra.write_all(&frame(&[11]));
    assert!(closed(&mut extra), "a connection over the limit is closed");
    held_open.truncate(MAX_CONNECTIONS - 1);
    // The freed slot is taken again once its thread has seen the hang-up.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut stream = UnixStream::connect(&ours.socket).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        if stream.write_all(&frame(&[11])).is_ok() && read_reply(&mut stream).is_some() {
            break;
        }
        assert!(Instant::now() < deadline, "the freed slot never came back");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// An `SSH_ASKPASS` program that prints `passphrase`.
fn askpass(dir: &Path, passphrase: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    let path = dir.join(format!("askpass-{passphrase}"));
    std::fs::write(&path, format!("#!/bin/sh\necho '{passphrase}'\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700)).unwrap();
    path
}

fn ssh_add_with_passphrase(socket: &Path, askpass: &Path, flag: &str) -> Output {
    Command::new("ssh-add")
        .arg(flag)
        .env("SSH_AUTH_SOCK", socket)
        .env("SSH_ASKPASS", askpass)
        .env("SSH_ASKPASS_REQUIRE", "force")
        .env("DISPLAY", ":0")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn lock_and_unlock_cover_our_key_and_the_upstream() {
    if !enabled() {
        return;
    }
    let login = demo_login();
    let upstream = SshAgent::start();
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path(), "upstream-key");
    assert_ok(
        &tool("ssh-add", &upstream.socket, &[key.to_str().unwrap()]),
        "ssh-add",
    );
    let ours = Ours::start(Some(&upstream.socket));
    ours.shared.hold(login.held.clone());
    let right = askpass(dir.path(), "open-sesame");
    let wrong = askpass(dir.path(), "guess");

    assert_ok(
        &ssh_add_with_passphrase(&ours.socket, &right, "-x"),
        "ssh-add -x",
    );
    assert!(listed(&ours.socket).is_empty(), "locked: nothing listed");
    assert!(
        listed(&upstream.socket).is_empty(),
        "the upstream is locked too"
    );
    let cert_file = write_certificate(dir.path(), login);
    let output = tool(
        "ssh-add",
        &ours.socket,
        &["-T", cert_file.to_str().unwrap()],
    );
    assert!(!output.status.success(), "a locked agent signed");
    assert_eq!(
        query_status(&ours.socket).unwrap(),
        None,
        "locked: no status"
    );

    let output = ssh_add_with_passphrase(&ours.socket, &wrong, "-X");
    assert!(!output.status.success(), "a wrong passphrase unlocked");
    assert!(listed(&ours.socket).is_empty());

    assert_ok(
        &ssh_add_with_passphrase(&ours.socket, &right, "-X"),
        "ssh-add -X",
    );
    assert_eq!(listed(&ours.socket).len(), 2);
    assert_ok(
        &tool(
            "ssh-add",
            &ours.socket,
            &["-T", cert_file.to_str().unwrap()],
        ),
        "ssh-add -T after unlock",
    );
}

#[test]
fn status_and_login_extensions_round_trip() {
    if !enabled() {
        return;
    }
    let upstream = SshAgent::start();
    let ours = Ours::start(Some(&upstream.socket));
    assert_eq!(query_status(&ours.socket).unwrap().as_deref(), Some("{}"));
    let status = r#"{"identity":"demo@example.com","issuer":"http://localhost","expires_at":1}"#;
    ours.shared.set_status(status.into());
    assert_eq!(query_status(&ours.socket).unwrap().as_deref(), Some(status));
    // A plain ssh-agent is not an opkssh agent.
    assert_eq!(query_status(&upstream.socket).unwrap(), None);
    assert!(request_login(&upstream.socket).is_err());

    let waiter = std::thread::spawn({
        let shared = ours.shared.clone();
        move || shared.wait_login_request(Duration::from_secs(30))
    });
    request_login(&ours.socket).unwrap();
    assert!(waiter.join().unwrap());
    // The raw extension, as any client would send it.
    assert_eq!(
        raw_exchange(&ours.socket, &frame(&extension(LOGIN_EXTENSION))),
        Some(vec![6])
    );
    assert!(ours.shared.take_login_request());
    assert!(query_status(&ours.socket.with_extension("absent")).is_err());
}
