//! `opkssh verify` as sshd runs it: the real binary, a local discovery/JWKS server per vector
//! issuer, policy files in a temporary directory; then the cache (zero requests when warm, one
//! fetch for 20 cold processes, key rotation, IdP down, stale limit, hung IdP) and a real sshd.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)] // test code: a panic is a failure

use opkssh_tests::e2e::{
    self, AkcConfig, DISCOVERY_PATH, E2e, Fault, JWKS_PATH, LOGIN_USER, LOGIN_USER2, Sshd,
    VectorIssuers, ssh_login,
};
use opkssh_tests::proxy::{ConnectProxy, CountingOrigin};
use opkssh_tests::{Vector, vector, vectors};
use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A config directory, cache and log for verify runs.
struct Server {
    dir: tempfile::TempDir,
}

impl Server {
    fn new(providers: &str, auth_id: &str, config_yml: Option<&str>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let etc = dir.path().join("etc");
        std::fs::create_dir(&etc).unwrap();
        let mut files = vec![("providers", providers), ("auth_id", auth_id)];
        if let Some(config) = config_yml {
            files.push(("config.yml", config));
        }
        for (name, text) in files {
            let path = etc.join(name);
            std::fs::write(&path, text).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
            if name == "config.yml" {
                let group = e2e::group_id(e2e::AKC_USER);
                std::os::unix::fs::chown(&path, Some(0), Some(group)).unwrap();
            }
        }
        Self { dir }
    }

    fn for_vector(vector: &Vector, principal: &str) -> Self {
        Self::for_vector_with_config(vector, principal, None)
    }

    fn for_vector_with_config(vector: &Vector, principal: &str, config_yml: Option<&str>) -> Self {
        let issuer = vector.trimmed("issuer.txt").unwrap();
        let client_id = vector.trimmed("client_id.txt").unwrap();
        let policy = vector.meta_str("expiration_policy").unwrap_or("oidc");
        let email = vector.meta_str("email").unwrap();
        Self::new(
            &format!("{issuer} {client_id} {policy}\n"),
            &format!("{principal} {email} {issuer}\n"),
            config_yml,
        )
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn verify(&self, principal: &str, cert_line: &str) -> Output {
        let (key_type, key_b64) = cert_line.trim_end().split_once(' ').unwrap();
        self.verify_raw(principal, key_b64, key_type)
    }

    fn verify_raw(&self, principal: &str, key_b64: &str, key_type: &str) -> Output {
        self.verify_with_env(principal, key_b64, key_type, &[])
    }

    /// verify with these variables in its (otherwise empty) environment.
    fn verify_with_env(
        &self,
        principal: &str,
        key_b64: &str,
        key_type: &str,
        env: &[(&str, &std::ffi::OsStr)],
    ) -> Output {
        Command::new(e2e::target_binary("opkssh"))
            .arg("verify")
            .arg("--config-dir")
            .arg(self.path("etc"))
            .arg("--cache-dir")
            .arg(self.path("cache"))
            .arg("--log-file")
            .arg(self.path("opkssh.log"))
            .args([principal, key_b64, key_type])
            .env_clear()
            .envs(env.iter().copied())
            .output()
            .unwrap()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.path("opkssh.log")).unwrap_or_default()
    }

    /// Ages every cache entry by `seconds`, as if it had been fetched that long ago.
    fn age_cache(&self, seconds: u64) {
        for entry in std::fs::read_dir(self.path("cache")).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|ext| ext == "json") {
                let mut value: serde_json::Value =
                    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap()
                    .as_secs();
                value["fetched_at"] = (now - seconds).into();
                std::fs::write(&path, value.to_string()).unwrap();
            }
        }
    }
}

fn allowed(output: &Output) -> bool {
    output.status.code() == Some(0)
}

fn assert_allowed(output: &Output, server: &Server, cert_line: &str) {
    let stdout = String::from_utf8(output.stdout.clone()).unwrap();
    assert!(allowed(output), "{output:?}\n{}", server.log());
    // Exactly one line: the certificate's principals and its own (signature) key.
    let certificate = opk_core::sshcert::OpksshCertificate::from_line(cert_line).unwrap();
    let expected = format!(
        "cert-authority,principals=\"{}\" {}\n",
        certificate.principals().join(","),
        certificate.signature_key_line()
    );
    assert_eq!(stdout, expected);
}

fn assert_denied(output: &Output, server: &Server) {
    assert_eq!(
        output.status.code(),
        Some(1),
        "{output:?}\n{}",
        server.log()
    );
    assert!(
        output.stdout.is_empty(),
        "stdout must stay empty on a denial: {output:?}"
    );
}

#[test]
fn every_go_vector_gets_the_documented_decision() {
    let Some(_e2e) = E2e::require() else { return };
    let issuers = VectorIssuers::start().unwrap();
    for vector in vectors("accept").unwrap() {
        issuers.serve_vector(&vector.name).unwrap();
        let server = Server::for_vector(&vector, "alice");
        let line = vector.text("cert.pub").unwrap();
        let output = server.verify("alice", &line);
        assert_allowed(&output, &server, &line);
        // The same certificate for a principal the policy does not name is denied.
        assert_denied(&server.verify("mallory", &line), &server);
        assert!(
            server.log().contains("deny principal=mallory"),
            "{}",
            server.log()
        );
    }
    for vector in vectors("reject").unwrap() {
        issuers.serve_vector(&vector.name).unwrap();
        let server = Server::for_vector(&vector, "alice");
        let output = server.verify("alice", &vector.text("cert.pub").unwrap());
        assert_denied(&output, &server);
        assert!(
            server.log().contains("deny principal=alice"),
            "{}: {}",
            vector.name,
            server.log()
        );
    }
}

#[test]
fn non_certificates_are_refused_before_any_io() {
    let Some(_e2e) = E2e::require() else { return };
    let issuers = VectorIssuers::start().unwrap();
    let vector = vector("accept", "rs256-ecdsa").unwrap();
    let issuer = issuers.serve_vector(&vector.name).unwrap();
    issuer.reset_requests();
    let server = Server::for_vector(&vector, "alice");
    // A bare key offer, as ssh makes before the certificate (%t is not a certificate type).
    let output = server.verify_raw(
        "alice",
        "AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBA==",
        "ecdsa-sha2-nistp256",
    );
    assert_denied(&output, &server);
    assert!(
        server.log().contains("not an opkssh certificate type"),
        "{}",
        server.log()
    );
    // Garbage in the certificate slot.
    assert_denied(
        &server.verify_raw("alice", "!!!", "ecdsa-sha2-nistp256-cert-v01@openssh.com"),
        &server,
    );
    assert_eq!(
        issuer.requests(DISCOVERY_PATH) + issuer.requests(JWKS_PATH),
        0
    );
}

#[test]
fn cache_warm_cold_rotation_outage_and_stale_limit() {
    let Some(_e2e) = E2e::require() else { return };
    let issuers = VectorIssuers::start().unwrap();
    let vector = vector("accept", "rs256-ecdsa").unwrap();
    let line = vector.text("cert.pub").unwrap();
    let key = line.clone();
    let issuer = issuers.serve_vector(&vector.name).unwrap();

    // 20 concurrent cold verifies: one discovery and one JWKS request between them.
    issuer.reset_requests();
    let server = Server::for_vector(&vector, "alice");
    let outputs: Vec<Output> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..20)
            .map(|_| scope.spawn(|| server.verify("alice", &line)))
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().unwrap())
            .collect()
    });
    for output in &outputs {
        assert_allowed(output, &server, &key);
    }
    assert_eq!(issuer.requests(JWKS_PATH), 1, "{}", server.log());
    assert_eq!(issuer.requests(DISCOVERY_PATH), 1);

    // Warm: no request at all.
    issuer.reset_requests();
    for _ in 0..5 {
        assert_allowed(&server.verify("alice", &line), &server, &key);
    }
    assert_eq!(
        issuer.requests(JWKS_PATH) + issuer.requests(DISCOVERY_PATH),
        0
    );

    // IdP down, cache fresh: allowed without it.
    issuer.set_fault(Fault::Down).unwrap();
    assert_allowed(&server.verify("alice", &line), &server, &key);
    // Down and the cache past max age but within the stale limit (24 h): allowed, and logged.
    server.age_cache(2 * 3600);
    assert_allowed(&server.verify("alice", &line), &server, &key);
    assert!(
        server.log().contains("using cached keys"),
        "{}",
        server.log()
    );
    // Past the stale limit: denied.
    server.age_cache(25 * 3600);
    assert_denied(&server.verify("alice", &line), &server);
    assert!(
        server.log().contains("over the stale limit"),
        "{}",
        server.log()
    );
    issuer.set_fault(Fault::None).unwrap();

    // Rotation: the cache holds a JWKS without the token's kid; the unknown kid refreshes it.
    let rotated = Server::for_vector(&vector, "alice");
    issuers.serve_vector("neg-rs256-jwks-lacks-kid").unwrap();
    assert_denied(&rotated.verify("alice", &line), &rotated);
    issuers.serve_vector(&vector.name).unwrap();
    issuer.reset_requests();
    assert_allowed(&rotated.verify("alice", &line), &rotated, &key);
    assert_eq!(issuer.requests(JWKS_PATH), 1);
    // An unknown kid cannot make every login fetch: one forced refresh per minute.
    issuers.serve_vector("neg-rs256-jwks-lacks-kid").unwrap();
    let fresh = Server::for_vector(&vector, "alice");
    assert_denied(&fresh.verify("alice", &line), &fresh);
    issuer.reset_requests();
    assert_denied(&fresh.verify("alice", &line), &fresh);
    assert_eq!(
        issuer.requests(JWKS_PATH),
        1,
        "the first unknown kid refreshes once"
    );
    issuer.reset_requests();
    for _ in 0..3 {
        assert_denied(&fresh.verify("alice", &line), &fresh);
    }
    assert_eq!(
        issuer.requests(JWKS_PATH),
        0,
        "no more refreshes within the interval"
    );
    issuers.serve_vector(&vector.name).unwrap();
}

#[test]
fn stale_limit_zero_fails_closed_and_a_hung_idp_is_cut_at_the_deadline() {
    let Some(_e2e) = E2e::require() else { return };
    let issuers = VectorIssuers::start().unwrap();
    let vector = vector("accept", "rs256-ecdsa").unwrap();
    let line = vector.text("cert.pub").unwrap();
    let issuer = issuers.serve_vector(&vector.name).unwrap();
    let server = Server::for_vector_with_config(
        &vector,
        "alice",
        Some("jwks_cache_stale_limit: 0\njwks_cache_max_age: 10m\n"),
    );
    assert_allowed(&server.verify("alice", &line), &server, &line);
    server.age_cache(3600);
    issuer.set_fault(Fault::Down).unwrap();
    assert_denied(&server.verify("alice", &line), &server);

    // A cold cache and an IdP that accepts connections and never answers.
    issuer.set_fault(Fault::Hang).unwrap();
    let hung = Server::for_vector(&vector, "alice");
    let started = Instant::now();
    let output = hung.verify("alice", &line);
    let took = started.elapsed();
    assert_denied(&output, &hung);
    assert!(
        took < Duration::from_secs(12),
        "verify took {took:?}, beyond its 10 s deadline"
    );
    assert!(hung.log().contains("timed out"), "{}", hung.log());
    issuer.set_fault(Fault::None).unwrap();
}

#[test]
fn a_config_yml_that_cannot_be_trusted_denies() {
    let Some(_e2e) = E2e::require() else { return };
    let issuers = VectorIssuers::start().unwrap();
    let vector = vector("accept", "rs256-ecdsa").unwrap();
    issuers.serve_vector(&vector.name).unwrap();
    let line = vector.text("cert.pub").unwrap();
    let server = Server::for_vector(&vector, "alice");
    let config = server.path("etc").join("config.yml");
    std::fs::write(&config, "deny_users: [alice]\n").unwrap();
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();
    // World-readable config.yml: Go would drop the deny list and let alice in.
    assert_denied(&server.verify("alice", &line), &server);
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o640)).unwrap();
    std::os::unix::fs::chown(&config, Some(0), Some(e2e::group_id(e2e::AKC_USER))).unwrap();
    assert_denied(&server.verify("alice", &line), &server);
    assert!(
        server.log().contains("denied user alice") || server.log().contains("deny_users"),
        "{}",
        server.log()
    );
}

#[test]
fn sshd_with_opkssh_verify_admits_the_policy_and_nothing_else() {
    let Some(e2e) = E2e::require() else { return };
    let issuers = VectorIssuers::start().unwrap();
    issuers.serve_vector("rs256-ed25519").unwrap();
    let opkssh = e2e.install_binary(&e2e::target_binary("opkssh"));
    let accept = vector("accept", "rs256-ed25519").unwrap();
    let issuer = accept.trimmed("issuer.txt").unwrap();
    // The reject vector below comes from another issuer; both are configured and allowed, so
    // only its broken signature can deny it.
    let bad_vector = vector("reject", "neg-rs256-op-sig-bitflip").unwrap();
    let bad_issuer = bad_vector.trimmed("issuer.txt").unwrap();
    let providers = format!(
        "{issuer} {} oidc\n{bad_issuer} {} oidc\n",
        accept.trimmed("client_id.txt").unwrap(),
        bad_vector.trimmed("client_id.txt").unwrap()
    );
    let auth_id = format!(
        "{LOGIN_USER} {} {issuer}\n{LOGIN_USER} {} {bad_issuer}\n",
        accept.meta_str("email").unwrap(),
        bad_vector.meta_str("email").unwrap()
    );
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
    let verify_log = || std::fs::read_to_string(rw.join("opkssh.log")).unwrap_or_default();
    let identity = |kind: &str, name: &str| {
        let source = opkssh_tests::vectors_root().join(kind).join(name);
        let key = e2e.dir().join(format!("{name}-key"));
        std::fs::copy(source.join("id_key"), &key).unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        let cert = e2e.dir().join(format!("{name}-key-cert.pub"));
        std::fs::copy(source.join("cert.pub"), &cert).unwrap();
        (key, cert)
    };
    let (key, cert) = identity("accept", "rs256-ed25519");
    let ok = ssh_login(&sshd, LOGIN_USER, &key, Some(&cert), "echo logged-in");
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{ok:?}\n{}\n{}",
        verify_log(),
        sshd.log()
    );
    assert_eq!(String::from_utf8_lossy(&ok.stdout).trim(), "logged-in");

    // A principal the policy does not allow.
    let other = ssh_login(&sshd, LOGIN_USER2, &key, Some(&cert), "true");
    assert_eq!(
        other.status.code(),
        Some(255),
        "{other:?}\n{}",
        verify_log()
    );
    // The bare key without its certificate (under another name: ssh picks up `<key>-cert.pub`
    // by itself).
    let bare_key = e2e.dir().join("bare-key");
    std::fs::copy(&key, &bare_key).unwrap();
    std::fs::set_permissions(&bare_key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let bare = ssh_login(&sshd, LOGIN_USER, &bare_key, None, "true");
    assert_eq!(bare.status.code(), Some(255), "{bare:?}");
    assert!(
        verify_log().contains("not an opkssh certificate type"),
        "{}",
        verify_log()
    );
    // A reject vector from the same issuer: its PK token's OP signature was tampered with.
    issuers.serve_vector("neg-rs256-op-sig-bitflip").unwrap();
    let (bad_key, bad_cert) = identity("reject", "neg-rs256-op-sig-bitflip");
    let bad = ssh_login(&sshd, LOGIN_USER, &bad_key, Some(&bad_cert), "true");
    assert_eq!(bad.status.code(), Some(255), "{bad:?}\n{}", verify_log());
    assert!(
        verify_log().contains("op signature: signature does not verify"),
        "{}",
        verify_log()
    );
}

#[test]
fn an_insecure_cache_is_ignored_and_an_unwritable_log_does_not_change_the_decision() {
    let Some(_e2e) = E2e::require() else { return };
    let issuers = VectorIssuers::start().unwrap();
    let vector = vector("accept", "es256-ecdsa").unwrap();
    let issuer = issuers.serve_vector(&vector.name).unwrap();
    let line = vector.text("cert.pub").unwrap();
    let server = Server::for_vector(&vector, "alice");
    std::fs::create_dir(server.path("cache")).unwrap();
    std::fs::set_permissions(server.path("cache"), std::fs::Permissions::from_mode(0o777)).unwrap();
    issuer.reset_requests();
    for _ in 0..2 {
        assert_allowed(&server.verify("alice", &line), &server, &line);
    }
    // Nothing was cached in a folder others can write: both verifies fetched.
    assert_eq!(issuer.requests(JWKS_PATH), 2);
    assert!(
        server
            .log()
            .contains("ignored: not a directory owned by this user"),
        "{}",
        server.log()
    );
    assert_eq!(std::fs::read_dir(server.path("cache")).unwrap().count(), 0);

    // The log cannot be opened: the decision is the same, the lines go to stderr.
    let output = Command::new(e2e::target_binary("opkssh"))
        .args(["verify", "--config-dir"])
        .arg(server.path("etc"))
        .arg("--cache-dir")
        .arg(server.path("cache2"))
        .args(["--log-file", "/nonexistent/dir/opkssh.log", "alice"])
        .args(
            line.trim_end()
                .split_once(' ')
                .map(|(key_type, b64)| [b64, key_type])
                .unwrap(),
        )
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("Error opening log file"),
        "{output:?}"
    );
}

/// Go never proxies requests to loopback (httpproxy's `useProxy`), so a loopback test issuer
/// is reached directly even with both proxy variables set: the login is allowed and the proxy
/// sees nothing.
#[test]
fn env_vars_proxy_is_not_used_for_a_loopback_issuer() {
    let Some(_e2e) = E2e::require() else { return };
    let issuers = VectorIssuers::start().unwrap();
    let vector = vector("accept", "es256-ecdsa").unwrap();
    issuers.serve_vector(&vector.name).unwrap();
    let line = vector.text("cert.pub").unwrap();
    let proxy = ConnectProxy::start(&[]).unwrap();
    let config = format!(
        "env_vars:\n  HTTP_PROXY: {0}\n  HTTPS_PROXY: {0}\n",
        proxy.url()
    );
    let server = Server::for_vector_with_config(&vector, "alice", Some(&config));
    assert_allowed(&server.verify("alice", &line), &server, &line);
    assert_eq!(proxy.requests(), Vec::<String>::new());
}

/// Which way the discovery request went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    /// Through the proxy: it saw `CONNECT <host>:<port>` and tunnelled to the origin.
    Proxy,
    /// Straight to the origin (an IP host): the proxy saw nothing, the origin a connection.
    Direct,
    /// Direct to a name only the proxy can resolve: nothing reached the proxy or the origin.
    DirectUnresolvable,
}

/// `env_vars` proxies through the real binary, each NO_PROXY form, upper and lower case, a
/// real CONNECT proxy. The issuer is https (verify fetches plain http only from loopback,
/// which is never proxied), so no case gets past the TLS handshake with the origin; the
/// proxy's and the origin's records show the route.
#[test]
fn env_vars_proxies_are_chosen_as_go_chooses_them() {
    let Some(_e2e) = E2e::require() else { return };
    let origin = CountingOrigin::start("0.0.0.0:0").unwrap();
    let port = origin.port();
    let proxy = ConnectProxy::start(&[("opk-issuer.test", [127, 0, 0, 1].into())]).unwrap();
    let url = proxy.url();
    let name = format!("opk-issuer.test:{port}");
    let ip = format!("0.0.0.0:{port}");
    let cases: Vec<(&str, String, Route)> = vec![
        (&name, format!("HTTPS_PROXY: {url}"), Route::Proxy),
        (&name, format!("https_proxy: {url}"), Route::Proxy),
        (
            &name,
            format!("HTTPS_PROXY: \"\"\n  https_proxy: {url}"),
            Route::Proxy,
        ),
        // http URLs only use HTTP_PROXY, https URLs only HTTPS_PROXY; ALL_PROXY is not read.
        (
            &name,
            format!("HTTP_PROXY: {url}"),
            Route::DirectUnresolvable,
        ),
        (
            &name,
            format!("ALL_PROXY: {url}"),
            Route::DirectUnresolvable,
        ),
        (
            &name,
            format!("HTTPS_PROXY: {url}\n  NO_PROXY: opk-issuer.test"),
            Route::DirectUnresolvable,
        ),
        (
            &name,
            format!("HTTPS_PROXY: {url}\n  NO_PROXY: .test"),
            Route::DirectUnresolvable,
        ),
        (
            &name,
            format!("HTTPS_PROXY: {url}\n  no_proxy: \"*.test\""),
            Route::DirectUnresolvable,
        ),
        (
            &name,
            format!("https_proxy: {url}\n  no_proxy: example.com,test"),
            Route::DirectUnresolvable,
        ),
        (
            &name,
            format!("HTTPS_PROXY: {url}\n  NO_PROXY: \"*\""),
            Route::DirectUnresolvable,
        ),
        (
            &name,
            format!("HTTPS_PROXY: {url}\n  NO_PROXY: opk-issuer.test:{port}"),
            Route::DirectUnresolvable,
        ),
        // A leading dot matches subdomains only; a port narrows the entry.
        (
            &name,
            format!("HTTPS_PROXY: {url}\n  NO_PROXY: .opk-issuer.test"),
            Route::Proxy,
        ),
        (
            &name,
            format!("HTTPS_PROXY: {url}\n  NO_PROXY: opk-issuer.test:1"),
            Route::Proxy,
        ),
        (
            &name,
            format!("HTTPS_PROXY: {url}\n  NO_PROXY: issuer.test"),
            Route::Proxy,
        ),
        // IP hosts: addresses and CIDRs.
        (&ip, format!("HTTPS_PROXY: {url}"), Route::Proxy),
        (
            &ip,
            format!("HTTPS_PROXY: {url}\n  NO_PROXY: 0.0.0.0/8"),
            Route::Direct,
        ),
        (
            &ip,
            format!("HTTPS_PROXY: {url}\n  no_proxy: 0.0.0.0"),
            Route::Direct,
        ),
        (
            &ip,
            format!("HTTPS_PROXY: {url}\n  NO_PROXY: 0.0.0.0:{port}"),
            Route::Direct,
        ),
        (
            &ip,
            format!("HTTPS_PROXY: {url}\n  NO_PROXY: 10.0.0.0/8,0.0.0.0:1"),
            Route::Proxy,
        ),
    ];
    for (host, env_vars, route) in cases {
        let issuer = format!("https://{host}");
        let minted =
            opkssh_tests::mint::mint(&issuer, "proxy-client", "alice@example.com").unwrap();
        let server = Server::new(
            &format!("{issuer} proxy-client oidc\n"),
            &format!("alice alice@example.com {issuer}\n"),
            Some(&format!("env_vars:\n  {env_vars}\n")),
        );
        let (before_proxy, before_origin) = (proxy.requests().len(), origin.connections());
        let output = server.verify("alice", &minted.cert_line);
        assert_denied(&output, &server);
        let through_proxy = proxy.requests().split_off(before_proxy);
        let at_origin = origin.connections() - before_origin;
        let case = format!(
            "{host} with {env_vars:?}: proxy saw {through_proxy:?}, origin {at_origin}\n{}",
            server.log()
        );
        match route {
            Route::Proxy => {
                assert!(!through_proxy.is_empty(), "{case}");
                assert!(
                    through_proxy
                        .iter()
                        .all(|line| *line == format!("CONNECT {host} HTTP/1.1")),
                    "{case}"
                );
                assert!(
                    at_origin >= 1,
                    "the tunnel did not reach the origin: {case}"
                );
            }
            Route::Direct => {
                assert!(through_proxy.is_empty(), "{case}");
                assert!(at_origin >= 1, "{case}");
            }
            Route::DirectUnresolvable => {
                assert!(through_proxy.is_empty(), "{case}");
                assert_eq!(at_origin, 0, "{case}");
                assert!(server.log().contains("opk-issuer.test"), "{case}");
            }
        }
    }
    // Every connection that reached the origin, tunnelled or not, began a TLS handshake.
    assert!(
        origin.first_bytes().iter().all(|byte| *byte == 0x16),
        "{:?}",
        origin.first_bytes()
    );
}

/// `openssl s_server -WWW` serving a folder over TLS on 127.0.0.1, killed on drop.
struct TlsIssuer {
    child: std::process::Child,
}

impl Drop for TlsIssuer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn openssl(dir: &std::path::Path, args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(output.status.success(), "openssl {args:?}: {output:?}");
}

/// A whole login through the proxy: an https issuer (TLS with a test CA that verify trusts
/// through `SSL_CERT_FILE`, which the platform verifier reads on Linux) that verify can reach
/// only through the CONNECT proxy `env_vars` names, since its host name resolves nowhere but
/// in the proxy. Allowed, with every request carried by the proxy; denied without the proxy.
#[test]
fn env_vars_https_issuer_through_the_proxy_allows() {
    let Some(e2e) = E2e::require() else { return };
    let dir = e2e.dir().join("tls-issuer");
    std::fs::create_dir_all(dir.join("www/.well-known")).unwrap();
    openssl(
        &dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=opkssh test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign",
        ],
    );
    openssl(
        &dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "leaf.key",
            "-out",
            "leaf.csr",
            "-subj",
            "/CN=opk-issuer.test",
        ],
    );
    std::fs::write(
        dir.join("leaf.ext"),
        "subjectAltName=DNS:opk-issuer.test\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        &dir,
        &[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "leaf.pem",
            "-days",
            "2",
            "-extfile",
            "leaf.ext",
        ],
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .unwrap()
        .port();
    let issuer = format!("https://opk-issuer.test:{port}");
    let minted = opkssh_tests::mint::mint(&issuer, "proxy-client", "alice@example.com").unwrap();
    std::fs::write(
        dir.join("www/.well-known/openid-configuration"),
        opkssh_tests::mint::Minted::discovery_json(&issuer),
    )
    .unwrap();
    std::fs::write(dir.join("www/jwks.json"), &minted.jwks_json).unwrap();
    let _tls = TlsIssuer {
        child: Command::new("openssl")
            .args(["s_server", "-WWW", "-quiet", "-accept"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["-cert", "../leaf.pem", "-key", "../leaf.key"])
            .current_dir(dir.join("www"))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "openssl s_server did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    let proxy = ConnectProxy::start(&[("opk-issuer.test", [127, 0, 0, 1].into())]).unwrap();
    let ca = dir.join("ca.pem");
    let (key_type, key_b64) = minted.type_and_base64();
    let env = [("SSL_CERT_FILE", ca.as_os_str())];

    let server = Server::new(
        &format!("{issuer} proxy-client oidc\n"),
        &format!("alice alice@example.com {issuer}\n"),
        Some(&format!("env_vars:\n  HTTPS_PROXY: {}\n", proxy.url())),
    );
    let output = server.verify_with_env("alice", key_b64, key_type, &env);
    assert!(allowed(&output), "{output:?}\n{}", server.log());
    let requests = proxy.requests();
    assert!(
        requests.len() >= 2
            && requests
                .iter()
                .all(|line| *line == format!("CONNECT opk-issuer.test:{port} HTTP/1.1")),
        "discovery and JWKS through the proxy: {requests:?}"
    );

    // The same without the proxy: the name resolves nowhere, so the keys cannot be had.
    let direct = Server::new(
        &format!("{issuer} proxy-client oidc\n"),
        &format!("alice alice@example.com {issuer}\n"),
        None,
    );
    let output = direct.verify_with_env("alice", key_b64, key_type, &env);
    assert_denied(&output, &direct);
    assert_eq!(proxy.requests().len(), requests.len());
}

/// Fleets alert on Go's verify log lines; they must keep matching after the swap. Each
/// decision is one line carrying Go's phrase and then ours, and `Providers loaded:` comes
/// before it.
#[test]
fn log_lines_carry_the_phrases_go_admins_grep_for() {
    let Some(_e2e) = E2e::require() else { return };
    let issuers = VectorIssuers::start().unwrap();
    let vector = vector("accept", "es256-ecdsa").unwrap();
    issuers.serve_vector(&vector.name).unwrap();
    let issuer = vector.trimmed("issuer.txt").unwrap();
    let line = vector.text("cert.pub").unwrap();
    let server = Server::for_vector(&vector, "alice");
    let client_id = vector.trimmed("client_id.txt").unwrap();
    let policy = vector.meta_str("expiration_policy").unwrap_or("oidc");

    assert_allowed(&server.verify("alice", &line), &server, &line);
    let log = server.log();
    let lines: Vec<&str> = log.lines().collect();
    let loaded = lines
        .iter()
        .position(|line| line.contains("Providers loaded: "))
        .unwrap_or_else(|| panic!("no Providers loaded line: {log}"));
    assert!(
        lines[loaded].ends_with(&format!("Providers loaded: {issuer} {client_id} {policy}")),
        "{log}"
    );
    let allows: Vec<&&str> = lines
        .iter()
        .filter(|line| line.contains("successfully verified"))
        .collect();
    assert_eq!(allows.len(), 1, "{log}");
    assert!(
        allows[0].contains("successfully verified: allow principal=alice identity="),
        "{log}"
    );
    // Go's logger prefix (`YYYY/MM/DD HH:MM:SS `), then Go's words, as in Go's own line.
    assert_eq!(
        allows[0].get(20..41),
        Some("successfully verified"),
        "{log}"
    );
    assert!(lines.iter().position(|l| l == allows[0]).unwrap() > loaded);
    assert!(!log.contains("failed to verify:"), "{log}");

    assert_denied(&server.verify("mallory", &line), &server);
    let log = server.log();
    let denies: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("failed to verify: "))
        .collect();
    assert_eq!(denies.len(), 1, "{log}");
    assert_eq!(denies[0].get(20..38), Some("failed to verify: "), "{log}");
    assert!(
        denies[0].contains("failed to verify: deny principal=mallory identity="),
        "{log}"
    );
    assert_eq!(
        log.lines()
            .filter(|line| line.contains("successfully verified"))
            .count(),
        1,
        "{log}"
    );
}

/// The version sshd -V (or ssh -V) prints on this machine, as `OpenSSH_9.2p1 Debian-2+deb12u3`.
fn machine_openssh_version() -> String {
    for (binary, flag) in [("/usr/sbin/sshd", "-V"), ("ssh", "-V")] {
        if let Ok(output) = Command::new(binary).arg(flag).output() {
            let text = String::from_utf8_lossy(&output.stderr).into_owned();
            if let Some(line) = text.lines().find(|line| line.starts_with("OpenSSH_")) {
                return line.split(", ").next().unwrap().trim_end().to_owned();
            }
        }
    }
    panic!("no OpenSSH on this machine");
}

/// `audit --json` reports this machine's OpenSSH version, as Go's does.
#[test]
fn audit_json_reports_the_machines_openssh_version() {
    let Some(_e2e) = E2e::require() else { return };
    let server = Server::new(
        "https://accounts.google.com g oidc\n",
        "alice alice@example.com https://accounts.google.com\n",
        None,
    );
    let output = Command::new(e2e::target_binary("opkssh"))
        .arg("audit")
        .arg("--config-dir")
        .arg(server.path("etc"))
        .args(["--skip-user-policy", "--json"])
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|error| panic!("{error}: {output:?}"));
    assert_eq!(
        report["openssh_version"].as_str(),
        Some(machine_openssh_version().as_str()),
        "{report:#}"
    );
}

/// verify warns, in Go's words, about an OpenSSH older than 8.1. The version is cached per
/// sshd binary in the cache directory: the first verify fills it from this machine's real
/// sshd (no warning here: it is newer), then an old version is planted in the entry, under the
/// real binary's key, and the next verify warns from the cache, with no exec.
#[test]
fn verify_warns_about_an_openssh_older_than_8_1() {
    let Some(_e2e) = E2e::require() else { return };
    let issuers = VectorIssuers::start().unwrap();
    let vector = vector("accept", "es256-ecdsa").unwrap();
    issuers.serve_vector(&vector.name).unwrap();
    let line = vector.text("cert.pub").unwrap();
    let server = Server::for_vector(&vector, "alice");
    const WARNING: &str = "Warning: OpenPubkey SSH requires OpenSSH v. 8.1 or greater";

    assert_allowed(&server.verify("alice", &line), &server, &line);
    assert_allowed(&server.verify("alice", &line), &server, &line);
    assert!(!server.log().contains(WARNING), "{}", server.log());
    let entry = server.path("cache").join("openssh-version");
    let text = std::fs::read_to_string(&entry).unwrap();
    let (key, version) = text.split_once('\n').unwrap();
    assert_eq!(version.trim_end(), machine_openssh_version());

    std::fs::write(&entry, format!("{key}\nOpenSSH_7.4p1\n")).unwrap();
    assert_allowed(&server.verify("alice", &line), &server, &line);
    let log = server.log();
    assert_eq!(log.matches(WARNING).count(), 1, "{log}");
    // The warning does not change the decision, and it precedes it.
    assert!(
        log.find(WARNING).unwrap() < log.rfind("successfully verified").unwrap(),
        "{log}"
    );
}
