//! CI/CD logins against local stand-ins for the runners' token sources: Forgejo Actions
//! (`ACTIONS_ID_TOKEN_REQUEST_URL`, the commitment as `audience`, GQ256) verified afterwards by
//! the real `opkssh verify`, and GitLab CI (`OPENPUBKEY_JWT`, the commitment in the GQ header).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)] // test code: a panic is a failure

use opk_client::httpd::{self, Response};
use opk_core::b64;
use opk_core::jwk::{Jwk, Jwks};
use opk_core::jws::{Jws, SigningKey};
use opk_core::oidc::form_decode;
use serde_json::json;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

const BEARER: &str = "runner-secret";
const SUBJECT: &str = "repo:owner/repo:ref:refs/heads/main";

fn now() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

struct Issuer {
    key: SigningKey,
    issuer: String,
}

impl Issuer {
    fn token(&self, aud: &str, sub: &str) -> String {
        let payload =
            json!({ "iss": self.issuer, "sub": sub, "aud": aud, "iat": now(), "exp": now() + 600 });
        Jws::sign(
            r#"{"alg":"RS256","kid":"ci-key","typ":"JWT"}"#,
            &b64::encode_url(payload.to_string()),
            &self.key,
        )
        .unwrap()
        .to_compact()
    }
}

/// Serves discovery and JWKS under `prefix`, and the Actions token endpoint, on a free port.
fn serve(prefix: &'static str) -> (Arc<Issuer>, u16) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let key = SigningKey::Rsa(Box::new(
        rsa::PrivateKey::new(&mut rand_core::UnwrapErr(getrandom::SysRng), 2048).unwrap(),
    ));
    let issuer = Arc::new(Issuer {
        issuer: format!("http://localhost:{port}{prefix}"),
        key,
    });
    let shared = issuer.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let Ok(request) = httpd::read_request(&stream) else {
                continue;
            };
            let base = &shared.issuer;
            let path = request.path.strip_prefix(prefix).unwrap_or("");
            let response = match path {
                "/.well-known/openid-configuration" => Response::json(
                    200,
                    json!({
                        "issuer": base,
                        "jwks_uri": format!("{base}/jwks"),
                        "authorization_endpoint": format!("{base}/authorize"),
                        "token_endpoint": format!("{base}/token"),
                    })
                    .to_string(),
                ),
                "/jwks" => Response::json(
                    200,
                    Jwks::from_keys(vec![Jwk::new(
                        shared.key.public_key(),
                        Some("ci-key".into()),
                        Some(opk_core::jws::Algorithm::Rs256),
                    )])
                    .to_json(),
                ),
                "/_apis/pipelines/idtoken"
                    if request.header("authorization") == Some(&format!("Bearer {BEARER}")) =>
                {
                    let audience = form_decode(&request.query)
                        .into_iter()
                        .find(|(name, _)| name == "audience")
                        .map(|(_, value)| value)
                        .unwrap_or_default();
                    Response::json(
                        200,
                        json!({ "value": shared.token(&audience, SUBJECT) }).to_string(),
                    )
                }
                _ => Response::json(404, "{}"),
            };
            let _ = response.write_to(&stream);
        }
    });
    (issuer, port)
}

fn opkssh(home: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_opkssh"));
    command
        .env("HOME", home)
        // A login now adds to the caller's ssh-agent when SSH_AUTH_SOCK is set.
        .env_remove("SSH_AUTH_SOCK")
        .env_remove("OPKSSH_PROVIDERS")
        .env_remove("OPKSSH_DEFAULT")
        .env_remove("ACTIONS_ID_TOKEN_REQUEST_URL")
        .env_remove("ACTIONS_ID_TOKEN_REQUEST_TOKEN")
        .env_remove("GITLAB_CI")
        .env_remove("OPENPUBKEY_JWT");
    command
}

fn text(output: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn forgejo_actions_login_is_gq_signed_and_verifies() {
    let (issuer, port) = serve("/api/actions");
    let home = tempfile::tempdir().unwrap();
    let key = home.path().join("ci_key");
    let request_url =
        format!("http://localhost:{port}/api/actions/_apis/pipelines/idtoken?api-version=2.0");
    let output = opkssh(home.path())
        .args(["login", "forgejo", "-i"])
        .arg(&key)
        .env("ACTIONS_ID_TOKEN_REQUEST_URL", &request_url)
        .env("ACTIONS_ID_TOKEN_REQUEST_TOKEN", BEARER)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));
    let cert = home.path().join("ci_key-cert.pub");
    let inspect = opkssh(home.path())
        .args(["inspect", "--json"])
        .arg(&cert)
        .output()
        .unwrap();
    let inspected = String::from_utf8_lossy(&inspect.stdout);
    assert!(inspected.contains("GQ256"), "{inspected}");
    assert!(inspected.contains(SUBJECT), "{inspected}");

    // The same alias outside Forgejo Actions: a clear explanation.
    let outside = opkssh(home.path())
        .args(["login", "forgejo"])
        .output()
        .unwrap();
    assert!(!outside.status.success());
    assert!(
        String::from_utf8_lossy(&outside.stderr).contains("only available inside Forgejo Actions"),
        "{}",
        text(&outside)
    );

    if !opk_os::account::is_root() {
        eprintln!(
            "SKIP verify of the Forgejo certificate: verify requires root-owned policy files"
        );
        return;
    }
    let config = home.path().join("etc-opk");
    std::fs::create_dir(&config).unwrap();
    for (name, text) in [
        ("providers", format!("{} unused oidc\n", issuer.issuer)),
        ("auth_id", format!("deploy {SUBJECT} {}\n", issuer.issuer)),
    ] {
        std::fs::write(config.join(name), text).unwrap();
        std::fs::set_permissions(config.join(name), std::fs::Permissions::from_mode(0o640))
            .unwrap();
    }
    let line = std::fs::read_to_string(&cert).unwrap();
    let mut fields = line.split(' ');
    let (key_type, key_base64) = (fields.next().unwrap(), fields.next().unwrap());
    let verify = opkssh(home.path())
        .arg("verify")
        .arg("--config-dir")
        .arg(&config)
        .arg("--log-file")
        .arg(home.path().join("opkssh.log"))
        .arg("--cache-dir")
        .arg(home.path().join("cache"))
        .args(["deploy", key_base64, key_type])
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{}\n{}",
        text(&verify),
        std::fs::read_to_string(home.path().join("opkssh.log")).unwrap_or_default()
    );
    assert!(
        String::from_utf8_lossy(&verify.stdout)
            .starts_with("cert-authority,principals=\"opkssh-wildcard\" ")
    );
}

#[test]
fn gitlab_ci_login_binds_the_key_in_the_gq_header() {
    let (issuer, port) = serve("");
    let home = tempfile::tempdir().unwrap();
    let key = home.path().join("gitlab_key");
    let token = issuer.token(
        "OPENPUBKEY-PKTOKEN:1234",
        "project_path:group/project:ref_type:branch:ref:main",
    );
    let output = opkssh(home.path())
        .args(["login", "gitlab-ci", "-i"])
        .arg(&key)
        .env("GITLAB_CI", "true")
        .env("CI_SERVER_URL", format!("http://localhost:{port}"))
        .env("OPENPUBKEY_JWT", &token)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));
    let inspect = opkssh(home.path())
        .args(["inspect", "--json"])
        .arg(home.path().join("gitlab_key-cert.pub"))
        .output()
        .unwrap();
    let inspected = String::from_utf8_lossy(&inspect.stdout);
    assert!(
        inspected.contains("GQ256") && inspected.contains("\"cic\""),
        "{inspected}"
    );
    // The token must be bound to opkssh's audience prefix.
    let wrong = issuer.token("some-other-audience", "x");
    let refused = opkssh(home.path())
        .args(["login", "gitlab-ci", "-i"])
        .arg(home.path().join("other"))
        .env("GITLAB_CI", "true")
        .env("CI_SERVER_URL", format!("http://localhost:{port}"))
        .env("OPENPUBKEY_JWT", &wrong)
        .output()
        .unwrap();
    assert!(!refused.status.success(), "{}", text(&refused));
    assert!(!home.path().join("other").exists());
}
