//! A real-sshd storm: 100 concurrent `ssh` logins through `opkssh verify` as the
//! AuthorizedKeysCommand, from a cold cache, against a local issuer that counts requests.
//! Ignored by default (about a minute of two cores); run once with
//! `OPKSSH_E2E=1 cargo test --test sshd_storm -- --ignored --nocapture`. Prints the figures.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)] // test code: a panic is a failure

use opkssh_tests::e2e::{
    self, AkcConfig, DISCOVERY_PATH, E2e, JWKS_PATH, LOGIN_USER, Sshd, VectorIssuers, ssh_login,
};
use opkssh_tests::vector;
use std::os::unix::fs::PermissionsExt as _;
use std::time::{Duration, Instant};

const LOGINS: usize = 100;

#[test]
#[ignore = "load test: run once by hand, see the module docs"]
fn hundred_concurrent_ssh_logins() {
    let Some(e2e) = E2e::require() else { return };
    let issuers = VectorIssuers::start().unwrap();
    let accept = vector("accept", "es256-ecdsa").unwrap();
    let server = issuers.serve_vector(&accept.name).unwrap();
    let issuer = accept.trimmed("issuer.txt").unwrap();
    let opkssh = e2e.install_binary(&e2e::target_binary("opkssh"));
    let providers = format!(
        "{issuer} {} oidc\n",
        accept.trimmed("client_id.txt").unwrap()
    );
    let auth_id = format!(
        "{LOGIN_USER} {} {issuer}\n",
        accept.meta_str("email").unwrap()
    );
    let config = e2e.install_dir(
        &[
            ("providers", providers.as_bytes(), 0o640),
            ("auth_id", auth_id.as_bytes(), 0o640),
        ],
        Some(e2e::AKC_USER),
    );
    let rw = e2e.writable_dir(e2e::AKC_USER);
    let sshd = Sshd::start(
        AkcConfig::new(format!(
            "{} verify --config-dir {} --log-file {}/opkssh.log --cache-dir {}/cache %u %k %t",
            opkssh.display(),
            config.display(),
            rw.display(),
            rw.display()
        ))
        .extra_line("MaxStartups 200")
        .extra_line("LogLevel INFO"),
    );
    let source = opkssh_tests::vectors_root()
        .join("accept")
        .join(&accept.name);
    let key = e2e.dir().join("storm-key");
    std::fs::copy(source.join("id_key"), &key).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let cert = e2e.dir().join("storm-key-cert.pub");
    std::fs::copy(source.join("cert.pub"), &cert).unwrap();
    server.reset_requests();

    let started = Instant::now();
    let results: Vec<(bool, Duration)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..LOGINS)
            .map(|_| {
                scope.spawn(|| {
                    let begun = Instant::now();
                    let output = ssh_login(&sshd, LOGIN_USER, &key, Some(&cert), "echo ok");
                    let ok = output.status.code() == Some(0)
                        && String::from_utf8_lossy(&output.stdout).trim() == "ok";
                    (ok, begun.elapsed())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().unwrap())
            .collect()
    });
    let wall = started.elapsed();
    let ok = results.iter().filter(|(ok, _)| *ok).count();
    let mut latencies: Vec<f64> = results
        .iter()
        .map(|(_, took)| took.as_secs_f64() * 1000.0)
        .collect();
    latencies.sort_by(f64::total_cmp);
    let pct = |p: usize| latencies[(p * (latencies.len() - 1) + 50) / 100];
    let log = std::fs::read_to_string(rw.join("opkssh.log")).unwrap_or_default();
    let allows = log.lines().filter(|line| line.contains(" allow ")).count();
    let denies = log.lines().filter(|line| line.contains(" deny ")).count();
    let requests = (server.requests(DISCOVERY_PATH), server.requests(JWKS_PATH));
    eprintln!(
        "sshd storm: {ok}/{LOGINS} logins ok, wall {:.2} s, login latency ms p50 {:.0} p90 {:.0} p99 {:.0} max {:.0}; verify log: {allows} allow, {denies} deny; IdP requests: discovery {}, jwks {}",
        wall.as_secs_f64(),
        pct(50),
        pct(90),
        pct(99),
        latencies[latencies.len() - 1],
        requests.0,
        requests.1
    );
    assert_eq!(
        ok,
        LOGINS,
        "{}",
        sshd.log()
            .lines()
            .rev()
            .take(40)
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(requests.0 + requests.1 <= 6, "{requests:?}");
}
