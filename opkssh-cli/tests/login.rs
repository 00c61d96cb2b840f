//! `opkssh login`, `logout` and `client provider list` as a user runs them, against the demo
//! OpenID provider in this test process (loopback only, no e2e gate): where keys land, that a
//! key opkssh did not write is never touched, the identity directory, `--print-key`, and the
//! config file.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)] // test code: a panic is a failure

use opk_client::demo_op::{DemoOp, DemoUser};
use std::io::{BufRead as _, BufReader};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

const CLIENT_ID: &str = "opkssh-test";

struct Fixture {
    op: DemoOp,
    home: tempfile::TempDir,
    config: PathBuf,
}

impl Fixture {
    fn new() -> Self {
        let op = DemoOp::start(0, CLIENT_ID, DemoUser::default()).unwrap();
        let home = tempfile::tempdir().unwrap();
        let config = home.path().join(".opk").join("config.yml");
        std::fs::create_dir_all(config.parent().unwrap()).unwrap();
        std::fs::write(
            &config,
            format!(
                "default_provider: demo\nproviders:\n  - alias: demo local\n    issuer: {}\n    client_id: {CLIENT_ID}\n    scopes: openid email profile\n    redirect_uris:\n      - http://localhost:0/login-callback\n",
                op.issuer()
            ),
        )
        .unwrap();
        Self { op, home, config }
    }

    fn home(&self) -> &Path {
        self.home.path()
    }

    fn ssh(&self, name: &str) -> PathBuf {
        self.home().join(".ssh").join(name)
    }

    fn opkssh(&self) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_opkssh"));
        command
            .env("HOME", self.home())
            .env_remove("OPKSSH_PROVIDERS")
            .env_remove("OPKSSH_DEFAULT")
            .env_remove("ACTIONS_ID_TOKEN_REQUEST_URL")
            .env_remove("GITLAB_CI")
            // logout would also clear the opkssh certificates of the tester's own agent.
            .env_remove("SSH_AUTH_SOCK");
        command
    }

    /// `opkssh login --disable-browser-open <args>`, the browser step answered by following the
    /// printed URL's redirects (the demo OP consents at once).
    fn login(&self, args: &[&str]) -> Output {
        let mut child = self
            .opkssh()
            .args(["login", "--disable-browser-open", "--timeout", "30"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut printed = String::new();
        loop {
            let mut line = String::new();
            if stdout.read_line(&mut line).unwrap() == 0 {
                break;
            }
            printed.push_str(&line);
            if let Some(url) = line.trim_end().strip_prefix("Open your browser to: ") {
                follow(url);
                break;
            }
        }
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
        printed.push_str(&rest);
        let mut output = child.wait_with_output().unwrap();
        output.stdout = printed.into_bytes();
        output
    }
}

/// A browser that follows redirects on loopback.
fn follow(url: &str) {
    let agent = ureq::Agent::config_builder()
        .max_redirects(0)
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(20)))
        .build()
        .new_agent();
    let mut url = url.to_owned();
    for _ in 0..10 {
        assert!(url.starts_with("http://localhost:"), "{url}");
        let response = agent.get(&url).call().unwrap();
        match response.headers().get("location") {
            Some(location) => url = location.to_str().unwrap().to_owned(),
            None => {
                assert_eq!(response.status().as_u16(), 200, "{url}");
                return;
            }
        }
    }
    panic!("too many redirects");
}

fn text(output: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

/// A key the user made themselves with ssh-keygen (comment `me@laptop`).
fn users_own_key(path: &Path) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let status = Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ecdsa",
            "-b",
            "256",
            "-N",
            "",
            "-C",
            "me@laptop",
            "-f",
        ])
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn default_names_skip_a_key_opkssh_did_not_write_and_replace_its_own() {
    let fixture = Fixture::new();
    let own = fixture.ssh("id_ecdsa");
    users_own_key(&own);
    let own_bytes = std::fs::read(&own).unwrap();
    let own_pub = std::fs::read(fixture.ssh("id_ecdsa.pub")).unwrap();

    let first = fixture.login(&[]);
    assert!(first.status.success(), "{}", text(&first));
    let stdout = String::from_utf8_lossy(&first.stdout);
    let sk = fixture.ssh("id_ecdsa_sk");
    assert!(
        stdout.contains(&format!(
            "Writing opk ssh public key to {}-cert.pub and corresponding secret key to {}",
            sk.display(),
            sk.display()
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "Keys generated for identity\nEmail, sub, issuer, audience: \ndemo@example.com demo-user {} {CLIENT_ID}",
            fixture.op.issuer()
        )),
        "{stdout}"
    );
    assert_eq!(mode(&sk), 0o600);
    assert_eq!(mode(&fixture.ssh("id_ecdsa_sk-cert.pub")), 0o644);
    let first_cert = std::fs::read_to_string(fixture.ssh("id_ecdsa_sk-cert.pub")).unwrap();
    assert!(first_cert.ends_with(" openpubkey"));

    // Again: the opkssh-written pair is replaced, the user's key still untouched.
    let second = fixture.login(&[]);
    assert!(second.status.success(), "{}", text(&second));
    assert_ne!(
        std::fs::read_to_string(fixture.ssh("id_ecdsa_sk-cert.pub")).unwrap(),
        first_cert
    );
    assert_eq!(std::fs::read(&own).unwrap(), own_bytes);
    assert_eq!(std::fs::read(fixture.ssh("id_ecdsa.pub")).unwrap(), own_pub);
    assert!(!fixture.ssh("id_ecdsa-cert.pub").exists());

    // logout removes only the opkssh pair.
    let logout = fixture.opkssh().arg("logout").output().unwrap();
    assert!(logout.status.success(), "{}", text(&logout));
    let said = String::from_utf8_lossy(&logout.stdout);
    assert!(
        said.contains("Successfully removed 1 opkssh key pair(s)"),
        "{said}"
    );
    assert!(!sk.exists());
    assert_eq!(std::fs::read(&own).unwrap(), own_bytes);
    let again = fixture.opkssh().arg("logout").output().unwrap();
    assert!(String::from_utf8_lossy(&again.stdout).contains("No opkssh keys found to remove"));
}

#[test]
fn no_free_default_name_is_a_clear_error_and_nothing_is_touched() {
    let fixture = Fixture::new();
    users_own_key(&fixture.ssh("id_ecdsa"));
    users_own_key(&fixture.ssh("id_ecdsa_sk"));
    // A certificate of the user's own, not written by opkssh.
    std::fs::write(
        fixture.ssh("id_ecdsa_sk-cert.pub"),
        "not a certificate of ours",
    )
    .unwrap();
    let before: Vec<Vec<u8>> = ["id_ecdsa", "id_ecdsa_sk", "id_ecdsa_sk-cert.pub"]
        .iter()
        .map(|name| std::fs::read(fixture.ssh(name)).unwrap())
        .collect();
    let output = fixture.login(&[]);
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr)
            .contains("Error: no default ssh key file free for openpubkey"),
        "{}",
        text(&output)
    );
    let after: Vec<Vec<u8>> = ["id_ecdsa", "id_ecdsa_sk", "id_ecdsa_sk-cert.pub"]
        .iter()
        .map(|name| std::fs::read(fixture.ssh(name)).unwrap())
        .collect();
    assert_eq!(before, after);
    // Ed25519 uses its own names, which are free.
    let ed = fixture.login(&["-t", "ED25519"]);
    assert!(ed.status.success(), "{}", text(&ed));
    assert!(fixture.ssh("id_ed25519").exists());
}

#[test]
fn explicit_path_alias_and_principals() {
    let fixture = Fixture::new();
    let key = fixture.home().join("elsewhere").join("mykey");
    std::fs::create_dir_all(key.parent().unwrap()).unwrap();
    let output = fixture.login(&[
        "local",
        "-i",
        key.to_str().unwrap(),
        "--principals",
        "alice,bob",
    ]);
    assert!(output.status.success(), "{}", text(&output));
    let cert = std::fs::read_to_string(format!("{}-cert.pub", key.display())).unwrap();
    let inspect = fixture
        .opkssh()
        .args(["inspect", "--json"])
        .arg(format!("{}-cert.pub", key.display()))
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!(
        report["certificate"]["principals"],
        serde_json::json!(["alice", "bob"])
    );
    assert!(cert.ends_with(" openpubkey"));
    // Unknown alias.
    let unknown = fixture.login(&["nope"]);
    assert!(!unknown.status.success());
    assert!(
        String::from_utf8_lossy(&unknown.stderr)
            .contains("error getting provider config for alias nope")
    );
}

#[test]
fn print_key_writes_no_files() {
    let fixture = Fixture::new();
    let output = fixture.login(&["-p"]);
    assert!(output.status.success(), "{}", text(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("ecdsa-sha2-nistp256-cert-v01@openssh.com AAAA"),
        "{stdout}"
    );
    assert!(
        stdout.contains("-----BEGIN OPENSSH PRIVATE KEY-----"),
        "{stdout}"
    );
    assert!(!fixture.ssh("id_ecdsa").exists());
}

#[test]
fn identity_directory_mode_and_logout_of_it() {
    let fixture = Fixture::new();
    let configure = fixture
        .opkssh()
        .args(["login", "--configure"])
        .output()
        .unwrap();
    assert!(configure.status.success(), "{}", text(&configure));
    let dir = fixture.home().join(".ssh").join("opkssh");
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("config")), 0o600);
    let ssh_config = std::fs::read_to_string(fixture.ssh("config")).unwrap();
    assert!(
        ssh_config.starts_with("Include ~/.ssh/opkssh/config\n\n"),
        "{ssh_config}"
    );
    // Idempotent.
    fixture
        .opkssh()
        .args(["login", "--configure"])
        .output()
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(fixture.ssh("config")).unwrap(),
        ssh_config
    );

    let output = fixture.login(&[]);
    assert!(output.status.success(), "{}", text(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.starts_with("OPK SSH identity directory is configured\n"),
        "{stdout}"
    );
    let port = fixture.op.issuer().rsplit(':').next().unwrap().to_owned();
    let name = format!("http_localhost_{port}-{CLIENT_ID}");
    let key = dir.join(&name);
    assert!(key.exists(), "{stdout}");
    let cert = std::fs::read_to_string(dir.join(format!("{name}-cert.pub"))).unwrap();
    assert!(
        cert.ends_with(&format!(
            "  openpubkey: {} {CLIENT_ID}",
            fixture.op.issuer()
        )),
        "{cert}"
    );
    let config = std::fs::read_to_string(dir.join("config")).unwrap();
    assert_eq!(config, format!("IdentityFile \"{}\"\n", key.display()));

    let logout = fixture.opkssh().arg("logout").output().unwrap();
    assert!(logout.status.success(), "{}", text(&logout));
    assert!(!key.exists());
    assert_eq!(std::fs::read_to_string(dir.join("config")).unwrap(), "");
}

#[test]
fn logout_refuses_a_pair_whose_key_is_not_the_certificates() {
    let fixture = Fixture::new();
    let key = fixture.home().join("k");
    assert!(
        fixture
            .login(&["-i", key.to_str().unwrap()])
            .status
            .success()
    );
    // Swap in another key: the certificate no longer matches.
    std::fs::remove_file(&key).unwrap();
    users_own_key(&key);
    let output = fixture
        .opkssh()
        .args(["logout", "-i"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("does not match"),
        "{}",
        text(&output)
    );
    assert!(key.exists());
}

#[test]
fn provider_list_and_create_config() {
    let fixture = Fixture::new();
    let list = fixture
        .opkssh()
        .args(["client", "provider", "list"])
        .output()
        .unwrap();
    assert!(list.status.success(), "{}", text(&list));
    assert_eq!(
        String::from_utf8_lossy(&list.stdout),
        format!("demo  {0}\nlocal {0}\n", fixture.op.issuer())
    );
    let missing = fixture
        .opkssh()
        .args(["client", "provider", "list", "--config-path"])
        .arg(fixture.home().join("nope.yml"))
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(
        String::from_utf8_lossy(&missing.stderr).starts_with("Error: Unable to load providers.")
    );

    let created = fixture.home().join("new").join("config.yml");
    let create = fixture
        .opkssh()
        .args(["login", "--create-config", "--config-path"])
        .arg(&created)
        .output()
        .unwrap();
    assert!(create.status.success(), "{}", text(&create));
    assert!(String::from_utf8_lossy(&create.stdout).contains("created client config file at"));
    assert_eq!(mode(&created), 0o644);
    let listed = fixture
        .opkssh()
        .args(["client", "provider", "list", "--config-path"])
        .arg(&created)
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout);
    for alias in ["google", "azure", "microsoft", "gitlab", "hello"] {
        assert!(
            listed.lines().any(|line| line.starts_with(alias)),
            "{listed}"
        );
    }
    let _ = &fixture.config;
}

#[test]
fn provider_flag_and_env_selection() {
    let fixture = Fixture::new();
    // OPKSSH_PROVIDERS replaces the config list; OPKSSH_DEFAULT picks from it. Its providers
    // use the default callback ports, so point it at a provider that fails fast instead.
    let output = fixture
        .opkssh()
        .args(["login", "--disable-browser-open"])
        .env("OPKSSH_PROVIDERS", "x,http://example.com,cid")
        .env("OPKSSH_DEFAULT", "x")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr)
            .contains("Expected issuer to start with 'https://'"),
        "{}",
        text(&output)
    );
    let spec = fixture
        .opkssh()
        .args(["login", "--provider", "https://accounts.google.com,cid"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&spec.stderr).contains("Expected format for google"));
}

#[test]
fn web_chooser_lists_the_providers_and_logs_in_with_the_chosen_one() {
    let fixture = Fixture::new();
    std::fs::write(
        &fixture.config,
        format!(
            "default_provider: webchooser\nproviders:\n  - alias: demo\n    issuer: {}\n    client_id: {CLIENT_ID}\n    redirect_uris:\n      - http://localhost:0/login-callback\n  - alias: other\n    issuer: https://op.example/realm\n    client_id: x\n",
            fixture.op.issuer()
        ),
    )
    .unwrap();
    let mut child = fixture
        .opkssh()
        .args(["login", "--disable-browser-open", "--timeout", "30"])
        .env(
            "ACTIONS_ID_TOKEN_REQUEST_URL",
            "https://codeberg.org/api/actions/_apis/pipelines/idtoken",
        )
        .env("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "t")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let url = loop {
        let mut line = String::new();
        assert!(stdout.read_line(&mut line).unwrap() > 0, "no chooser URL");
        if let Some(url) = line.trim_end().strip_prefix("Open your browser to: ") {
            break url.to_owned();
        }
    };
    assert!(url.ends_with("/chooser"), "{url}");
    let page = ureq::get(&url)
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    assert!(
        page.contains("/select?op=localhost") && page.contains("/select?op=op.example"),
        "{page}"
    );
    // CI/CD providers are never offered.
    assert!(
        !page.contains("codeberg") && !page.contains("forgejo"),
        "{page}"
    );
    follow(&url.replace("/chooser", "/select?op=localhost"));
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{rest}");
    assert!(rest.contains("demo@example.com demo-user"), "{rest}");
    assert!(fixture.ssh("id_ecdsa").exists());
}

#[test]
fn send_access_token_puts_it_in_the_certificate() {
    let fixture = Fixture::new();
    let key = fixture.home().join("k");
    let output = fixture.login(&["--send-access-token", "-i", key.to_str().unwrap()]);
    assert!(output.status.success(), "{}", text(&output));
    let inspect = fixture
        .opkssh()
        .args(["inspect", "--json"])
        .arg(format!("{}-cert.pub", key.display()))
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert!(
        report["certificate"]["extensions"]["openpubkey-act"]
            .as_u64()
            .unwrap()
            > 10,
        "{report}"
    );
    // Without the flag (and no send_access_token in the config) there is none.
    let plain = fixture.home().join("plain");
    assert!(
        fixture
            .login(&["-i", plain.to_str().unwrap()])
            .status
            .success()
    );
    let inspect = fixture
        .opkssh()
        .args(["inspect", "--json"])
        .arg(format!("{}-cert.pub", plain.display()))
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert!(
        report["certificate"]["extensions"]
            .get("openpubkey-act")
            .is_none(),
        "{report}"
    );
}

#[test]
fn a_browser_that_never_comes_back_times_out_clearly() {
    let fixture = Fixture::new();
    let output = fixture
        .opkssh()
        .args(["login", "--disable-browser-open", "--timeout", "1"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(
            "Error: timed out after 1 seconds waiting for the login to finish in the browser"
        ),
        "{}",
        text(&output)
    );
    assert!(!fixture.ssh("id_ecdsa").exists());
}

#[test]
fn inspect_cert_and_print_id_token() {
    let fixture = Fixture::new();
    let key = fixture.home().join("k");
    let output = fixture.login(&[
        "--inspect-cert",
        "--print-id-token",
        "-i",
        key.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", text(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("--- SSH Certificate Information ---"),
        "{stdout}"
    );
    assert!(stdout.contains("id_token:\n{\n  \"iss\": "), "{stdout}");
    assert!(
        stdout.contains("\"email\": \"demo@example.com\""),
        "{stdout}"
    );
    // aud is not among the claims Go prints.
    let block = stdout
        .split("id_token:\n")
        .nth(1)
        .unwrap()
        .split("\n}\n")
        .next()
        .unwrap();
    assert!(!block.contains("\"aud\""), "{block}");
}

/// A certificate without principals is refused by sshd for every account: an empty
/// `--principals` is a usage error (issue 13, as in Go), before any login or key file.
#[test]
fn empty_principals_flag_is_a_usage_error() {
    let fixture = Fixture::new();
    for (index, flag) in [["--principals="], ["--principals"]].iter().enumerate() {
        let key = fixture.home().join(format!("k{index}"));
        let mut args: Vec<&str> = flag.to_vec();
        args.extend(["-i", key.to_str().unwrap()]);
        let output = fixture.login(&args);
        assert_eq!(output.status.code(), Some(1), "{}", text(&output));
        assert!(
            text(&output).contains("--principals <LIST>"),
            "{flag:?}: {}",
            text(&output)
        );
        assert!(!key.exists(), "{flag:?}: a key was written");
    }
}

#[test]
fn remote_redirect_uri_is_what_the_op_is_sent() {
    let fixture = Fixture::new();
    let mut child = fixture
        .opkssh()
        .args(["login", "--disable-browser-open", "--timeout", "10"])
        .args([
            "--remote-redirect-uri",
            "https://relay.example/opkssh-callback",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let url = loop {
        let mut line = String::new();
        assert!(stdout.read_line(&mut line).unwrap() > 0, "no URL");
        if let Some(url) = line.trim_end().strip_prefix("Open your browser to: ") {
            break url.to_owned();
        }
    };
    let agent = ureq::Agent::config_builder()
        .max_redirects(0)
        .http_status_as_error(false)
        .build()
        .new_agent();
    let response = agent.get(&url).call().unwrap();
    let location = response
        .headers()
        .get("location")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        location.starts_with(&format!("{}/authorize?", fixture.op.issuer())),
        "{location}"
    );
    assert!(
        location.contains("redirect_uri=https%3A%2F%2Frelay.example%2Fopkssh-callback"),
        "{location}"
    );
    assert!(location.contains("code_challenge_method=S256") && location.contains("&nonce="));
}
