//! The same families through the real `opkssh verify` binary, as sshd runs it: policy files
//! anyone but root could have written, a cache entry planted by another user, a redirect at
//! discovery. Each asserts exit 1, empty stdout and the log line. Gated like the e2e tests
//! (`OPKSSH_E2E=1`): they need the `opkssh` binary of the test command.

use opkssh_tests::e2e::{self, DISCOVERY_PATH, Fault, IssuerServer};
use opkssh_tests::mint::{Minted, mint_with};
use sha2::Digest as _;
use std::os::unix::fs::PermissionsExt as _;
use std::process::Command;

/// A server's config directory, an issuer on loopback and a minted login for `alice`.
pub struct Host {
    pub server: IssuerServer,
    pub minted: Minted,
    pub dir: tempfile::TempDir,
}

impl Host {
    pub fn new() -> Self {
        Self::with_claims(|_| {})
    }

    /// A host whose login's ID-token claims are edited before the OP signs them.
    pub fn with_claims(edit: impl FnOnce(&mut serde_json::Value)) -> Self {
        let server = IssuerServer::start_custom().unwrap();
        let issuer = server.issuer().to_owned();
        let minted = mint_with(&issuer, "attack-client", "alice@example.com", edit).unwrap();
        server.set_documents(
            Minted::discovery_json(&issuer).as_bytes(),
            minted.jwks_json.as_bytes(),
        );
        Self::serving(server, minted)
    }

    /// A host for a login minted by the caller, at an issuer the caller has set up.
    pub fn serving(server: IssuerServer, minted: Minted) -> Self {
        let issuer = server.issuer().to_owned();
        let dir = tempfile::tempdir().unwrap();
        let etc = dir.path().join("etc");
        std::fs::create_dir(&etc).unwrap();
        for (name, text) in [
            ("providers", format!("{issuer} attack-client oidc\n")),
            ("auth_id", format!("alice alice@example.com {issuer}\n")),
        ] {
            std::fs::write(etc.join(name), text).unwrap();
            std::fs::set_permissions(etc.join(name), std::fs::Permissions::from_mode(0o640))
                .unwrap();
        }
        Self {
            server,
            minted,
            dir,
        }
    }

    pub fn etc(&self) -> std::path::PathBuf {
        self.dir.path().join("etc")
    }

    /// Replaces a file of the config directory (mode 0640, root's).
    pub fn write_etc(&self, name: &str, text: &str) {
        let path = self.etc().join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    }

    /// Installs a policy plugin `policy.d/<name>.yml` running `script` (root's, 0755).
    pub fn install_plugin(&self, name: &str, script: &str) -> std::path::PathBuf {
        let plugins = self.etc().join("policy.d");
        if !plugins.exists() {
            std::fs::create_dir(&plugins).unwrap();
            std::fs::set_permissions(&plugins, std::fs::Permissions::from_mode(0o750)).unwrap();
        }
        let command = self.dir.path().join(format!("{name}.plugin"));
        std::fs::write(&command, script).unwrap();
        std::fs::set_permissions(&command, std::fs::Permissions::from_mode(0o755)).unwrap();
        let config = plugins.join(format!("{name}.yml"));
        std::fs::write(
            &config,
            format!("name: {name}\ncommand: {}\n", command.display()),
        )
        .unwrap();
        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o640)).unwrap();
        command
    }

    pub fn verify(&self) -> (bool, String) {
        self.verify_with(&[])
    }

    /// `opkssh <args…>` with the host's config and cache directories, e.g. `explain` (stdout,
    /// exit code).
    pub fn opkssh(&self, args: &[&str]) -> std::process::Output {
        Command::new(e2e::target_binary("opkssh"))
            .args(args)
            .env_clear()
            .output()
            .unwrap()
    }

    /// The certificate line in a file, for `explain` and `inspect`.
    pub fn certificate_file(&self) -> std::path::PathBuf {
        let path = self.dir.path().join("id-cert.pub");
        std::fs::write(&path, &self.minted.cert_line).unwrap();
        path
    }

    /// verify with extra flags before sshd's arguments (`--log-level debug`).
    pub fn verify_with(&self, flags: &[&str]) -> (bool, String) {
        let (output, log) = self.verify_output(flags);
        (output.status.code() == Some(0), log)
    }

    /// verify for the account `principal` (sshd's `%u`), with extra flags; the log is what
    /// this run wrote.
    pub fn verify_as(&self, principal: &str, flags: &[&str]) -> (bool, String) {
        let (output, log) = self.verify_output_as(principal, flags);
        (output.status.code() == Some(0), log)
    }

    /// [`Host::verify_with`] with the whole process output (stdout, stderr, exit code).
    pub fn verify_output(&self, flags: &[&str]) -> (std::process::Output, String) {
        self.verify_output_as("alice", flags)
    }

    /// [`Host::verify_as`] with the whole process output (stdout, stderr, exit code).
    pub fn verify_output_as(
        &self,
        principal: &str,
        flags: &[&str],
    ) -> (std::process::Output, String) {
        let log_path = self.dir.path().join("opkssh.log");
        let before = std::fs::metadata(&log_path).map_or(0, |meta| meta.len());
        let (key_type, key_b64) = self.minted.type_and_base64();
        let output = Command::new(e2e::target_binary("opkssh"))
            .arg("verify")
            .arg("--config-dir")
            .arg(self.dir.path().join("etc"))
            .arg("--cache-dir")
            .arg(self.dir.path().join("cache"))
            .arg("--log-file")
            .arg(self.dir.path().join("opkssh.log"))
            .args(flags)
            .args([principal, key_b64, key_type])
            .env_clear()
            .output()
            .unwrap();
        let log = std::fs::read(&log_path).unwrap_or_default();
        let log = String::from_utf8_lossy(
            log.get(usize::try_from(before).unwrap()..)
                .unwrap_or_default(),
        )
        .into_owned();
        let allowed = output.status.code() == Some(0);
        assert_eq!(allowed, !output.stdout.is_empty(), "{output:?}");
        (output, log)
    }

    pub fn denied_with(&self, needle: &str) {
        let (allowed, log) = self.verify();
        assert!(!allowed, "ATTACK ACCEPTED\n{log}");
        assert!(log.contains(needle), "expected {needle:?} in\n{log}");
    }
}

pub fn gate() -> bool {
    if e2e::enabled() {
        return true;
    }
    eprintln!("SKIP e2e: set OPKSSH_E2E=1");
    false
}

#[test]
fn binary_control_the_honest_setup_allows() {
    if !gate() {
        return;
    }
    let (allowed, log) = Host::new().verify();
    assert!(allowed, "{log}");
}

#[test]
fn binary_world_writable_auth_id() {
    if !gate() {
        return;
    }
    let host = Host::new();
    let path = host.dir.path().join("etc/auth_id");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
    host.denied_with(
        "insecure permissions: expected one of the following permissions [640], got (666)",
    );
}

#[test]
fn binary_providers_symlinked_to_a_user_owned_file() {
    if !gate() {
        return;
    }
    let host = Host::new();
    let providers = host.dir.path().join("etc/providers");
    let user_file = host.dir.path().join("user-providers");
    std::fs::copy(&providers, &user_file).unwrap();
    std::fs::set_permissions(&user_file, std::fs::Permissions::from_mode(0o640)).unwrap();
    std::os::unix::fs::chown(&user_file, Some(65534), None).unwrap();
    std::fs::remove_file(&providers).unwrap();
    std::os::unix::fs::symlink(&user_file, &providers).unwrap();
    host.denied_with("failed to load providers");
    host.denied_with("expected owner (root), got (nobody)");
}

/// Another user plants a cache entry vouching for the attacker's key while the IdP is down.
#[test]
fn binary_cache_entry_planted_by_another_user() {
    if !gate() {
        return;
    }
    let host = Host::new();
    let issuer = host.server.issuer().to_owned();
    let cache = host.dir.path().join("cache");
    std::fs::create_dir(&cache).unwrap();
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o700)).unwrap();
    let digest = hex::encode(sha2::Sha256::digest(issuer.as_bytes()));
    let entry = cache.join(format!("{}.json", &digest[..32]));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let planted = serde_json::json!({
        "issuer": issuer, "fetched_at": now, "jwks_uri": format!("{issuer}/jwks.json"),
        "userinfo_endpoint": null, "jwks": host.minted.jwks_json, "kid_refresh_at": now
    });
    std::fs::write(&entry, planted.to_string()).unwrap();
    std::fs::set_permissions(&entry, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::chown(&entry, Some(65534), Some(65534)).unwrap();
    host.server.set_fault(Fault::Down).unwrap();
    host.denied_with("ignored: not owned by this user");
}

#[test]
fn binary_discovery_redirect_to_another_host() {
    if !gate() {
        return;
    }
    let host = Host::new();
    host.server.set_path_fault(
        DISCOVERY_PATH,
        Fault::Redirect("http://127.0.0.2:9/.well-known/openid-configuration"),
    );
    host.denied_with("answered HTTP 302");
}

/// A fleet-sized policy: 100,000 rows (over the old 4 MiB cap), the matching row last.
fn big_auth_id(issuer: &str, rows: usize) -> String {
    let mut text = String::with_capacity(rows * 60);
    for index in 1..rows {
        text.push_str(&format!(
            "user{index:06} user{index:06}@example.com {issuer}\n"
        ));
    }
    text.push_str(&format!("alice alice@example.com {issuer}\n"));
    text
}

#[test]
fn binary_policy_of_100000_rows_over_4_mib_still_decides() {
    if !gate() {
        return;
    }
    let host = Host::new();
    let text = big_auth_id(host.server.issuer(), 100_000);
    assert!(text.len() > 4 * 1024 * 1024, "{}", text.len());
    host.write_etc("auth_id", &text);
    let (allowed, log) = host.verify_with(&["--log-level", "debug"]);
    assert!(allowed, "{log}");
    assert!(
        log.contains("not parsed: 99967 more lines for principals other than alice"),
        "{log}"
    );
}

#[test]
fn binary_policy_over_max_policy_size_names_the_file_and_the_limit() {
    if !gate() {
        return;
    }
    e2e::ensure_users();
    let host = Host::new();
    host.write_etc("auth_id", &big_auth_id(host.server.issuer(), 100_000));
    host.write_etc("config.yml", "max_policy_size: 1MiB\n");
    std::os::unix::fs::chown(
        host.etc().join("config.yml"),
        Some(0),
        Some(e2e::group_id(e2e::AKC_USER)),
    )
    .unwrap();
    host.denied_with(&format!(
        "{}: file is larger than 1048576 bytes (max_policy_size in config.yml)",
        host.etc().join("auth_id").display()
    ));
}
