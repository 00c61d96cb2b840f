//! `opkssh demo` end to end (loopback only): its steps and decision, and its `--out` folder
//! verified later by the real `opkssh verify` against the folder's own issuer documents.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)] // test code: a panic is a failure

use opk_client::httpd::{self, Response};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Command;

fn opkssh() -> Command {
    Command::new(env!("CARGO_BIN_EXE_opkssh"))
}

fn is_root() -> bool {
    opk_os::account::is_root()
}

#[test]
fn demo_prints_every_step_and_the_sshd_line() {
    let output = opkssh().arg("demo").output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for step in [
        "1. OpenID provider started in this process at http://localhost:",
        "2. Fresh user key: ecdsa-sha2-nistp256",
        "3. Browser step: http://localhost:",
        "nonce = commitment to the user key: ",
        "demo@example.com demo-user http://localhost:",
        "4. PK token: ",
        "certificate: ecdsa-sha2-nistp256-cert-v01@openssh.com, key ID demo@example.com, principals opkssh-wildcard",
        "5. Temporary server policy in ",
        "6. opkssh verify ",
        "   decision: allow",
        "   verify prints for sshd: cert-authority,principals=\"opkssh-wildcard\" ecdsa-sha2-nistp256 AAAA",
        "   and as nobody-else: deny (",
        "Done: ",
    ] {
        assert!(stdout.contains(step), "missing {step:?} in:\n{stdout}");
    }
    // No token or code is printed.
    assert!(!stdout.contains("code="), "{stdout}");
    assert!(!stdout.contains("eyJ"), "{stdout}");
}

/// Serves a vector folder's discovery document and JWKS at its issuer's port until dropped.
struct IssuerFiles {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    port: u16,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl IssuerFiles {
    fn serve(dir: &Path, port: u16) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
        let discovery = std::fs::read(dir.join("openid-configuration.json")).unwrap();
        let jwks = std::fs::read(dir.join("jwks.json")).unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if flag.load(std::sync::atomic::Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let Ok(request) = httpd::read_request(&stream) else {
                    continue;
                };
                let response = match request.path.as_str() {
                    "/.well-known/openid-configuration" => Response::json(200, discovery.clone()),
                    "/jwks.json" => Response::json(200, jwks.clone()),
                    _ => Response::json(404, "{}"),
                };
                let _ = response.write_to(&stream);
            }
        });
        Self {
            stop,
            port,
            thread: Some(thread),
        }
    }
}

impl Drop for IssuerFiles {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = std::net::TcpStream::connect(("127.0.0.1", self.port));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn demo_out_folder_has_the_vector_layout_and_verifies_later() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("vector");
    let port = free_port();
    let output = opkssh()
        .args([
            "demo",
            "-t",
            "ed25519",
            "--issuer-port",
            &port.to_string(),
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let read = |name: &str| std::fs::read_to_string(out.join(name)).unwrap();
    let issuer = format!("http://localhost:{port}");
    assert_eq!(read("issuer.txt"), format!("{issuer}\n"));
    assert_eq!(read("client_id.txt"), "opkssh-demo\n");
    let meta: serde_json::Value = serde_json::from_str(&read("meta.json")).unwrap();
    let keys: Vec<&str> = meta
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    for key in [
        "cert_type",
        "client_id",
        "created",
        "email",
        "gq",
        "issuer",
        "key_type",
        "op_alg",
        "principals",
        "expect",
        "expiration_policy",
    ] {
        assert!(keys.contains(&key), "meta.json lacks {key}");
    }
    assert_eq!(meta["key_type"], "ed25519");
    assert_eq!(meta["op_alg"], "RS256");
    let cert = read("cert.pub");
    assert!(cert.starts_with("ssh-ed25519-cert-v01@openssh.com AAAA") && cert.ends_with('\n'));
    assert_eq!(cert.matches(' ').count(), 1, "no comment in cert.pub");
    assert!(read("id_key").starts_with("-----BEGIN OPENSSH PRIVATE KEY-----\n"));
    let key_mode = std::fs::metadata(out.join("id_key"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(key_mode, 0o600);
    let discovery: serde_json::Value =
        serde_json::from_str(&read("openid-configuration.json")).unwrap();
    assert_eq!(discovery["jwks_uri"], format!("{issuer}/jwks.json"));

    // OpenSSH reads the certificate.
    if Path::new("/usr/bin/ssh-keygen").exists() {
        let listed = Command::new("/usr/bin/ssh-keygen")
            .args(["-L", "-f"])
            .arg(out.join("cert.pub"))
            .output()
            .unwrap();
        assert!(
            listed.status.success(),
            "{}",
            String::from_utf8_lossy(&listed.stderr)
        );
        assert!(String::from_utf8_lossy(&listed.stdout).contains("Key ID: \"demo@example.com\""));
    }

    // Later, with the demo's OP gone: serve its documents and run the real verify.
    if !is_root() {
        eprintln!("SKIP verify of the --out folder: verify requires root-owned policy files");
        return;
    }
    let _issuer = IssuerFiles::serve(&out, port);
    let config = dir.path().join("etc-opk");
    std::fs::create_dir(&config).unwrap();
    for (name, text) in [
        ("providers", format!("{issuer} opkssh-demo oidc\n")),
        ("auth_id", format!("alice demo@example.com {issuer}\n")),
    ] {
        std::fs::write(config.join(name), text).unwrap();
        std::fs::set_permissions(config.join(name), std::fs::Permissions::from_mode(0o640))
            .unwrap();
    }
    let (key_type, key_base64) = cert.trim_end().split_once(' ').unwrap();
    let verify = |principal: &str| {
        opkssh()
            .arg("verify")
            .arg("--config-dir")
            .arg(&config)
            .arg("--log-file")
            .arg(dir.path().join("opkssh.log"))
            .arg("--cache-dir")
            .arg(dir.path().join("cache"))
            .args([principal, key_base64, key_type])
            .output()
            .unwrap()
    };
    let allowed = verify("alice");
    let line = String::from_utf8_lossy(&allowed.stdout);
    assert!(
        allowed.status.success(),
        "{line}\n{}\n{}",
        String::from_utf8_lossy(&allowed.stderr),
        std::fs::read_to_string(dir.path().join("opkssh.log")).unwrap_or_default()
    );
    assert!(
        line.starts_with("cert-authority,principals=\"opkssh-wildcard\" ssh-ed25519 AAAA"),
        "{line}"
    );
    let denied = verify("bob");
    assert!(!denied.status.success());
    assert!(denied.stdout.is_empty());
}
