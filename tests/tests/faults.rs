//! Fault injection on `opkssh verify`: the real binary, a cold cache, and a local IdP that is
//! down, slow, hangs (before or after its headers), answers garbage, a huge body, the wrong
//! content type, an error status, a redirect, or a JWKS with no usable key. Every case must end
//! in the documented decision within the verify deadline (10 s by default). Prints the table.
//! Gated like the e2e tests (`OPKSSH_E2E=1`): it needs the `opkssh` binary of the test command.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)] // test code: a panic is a failure

use opkssh_tests::e2e::{self, DISCOVERY_PATH, Fault, IssuerServer, JWKS_PATH};
use opkssh_tests::mint::{Minted, mint};
use std::os::unix::fs::PermissionsExt as _;
use std::process::Command;
use std::time::{Duration, Instant};

const CLIENT_ID: &str = "faults-client";
/// The verify deadline is 10 s; process start and exit get a little on top.
const BOUND: Duration = Duration::from_millis(11_500);

struct Setup {
    server: IssuerServer,
    minted: Minted,
    dir: tempfile::TempDir,
}

impl Setup {
    fn new() -> Self {
        let server = IssuerServer::start_custom().unwrap();
        let issuer = server.issuer().to_owned();
        let minted = mint(&issuer, CLIENT_ID, "alice@example.com").unwrap();
        server.set_documents(
            Minted::discovery_json(&issuer).as_bytes(),
            minted.jwks_json.as_bytes(),
        );
        let dir = tempfile::tempdir().unwrap();
        let etc = dir.path().join("etc");
        std::fs::create_dir(&etc).unwrap();
        for (name, text) in [
            ("providers", format!("{issuer} {CLIENT_ID} oidc\n")),
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

    /// Runs verify; (allowed, elapsed, last log line).
    fn verify(&self) -> (bool, Duration, String) {
        let (key_type, key_b64) = self.minted.type_and_base64();
        let started = Instant::now();
        let output = Command::new(e2e::target_binary("opkssh"))
            .arg("verify")
            .arg("--config-dir")
            .arg(self.dir.path().join("etc"))
            .arg("--cache-dir")
            .arg(self.dir.path().join("cache"))
            .arg("--log-file")
            .arg(self.dir.path().join("opkssh.log"))
            .args(["alice", key_b64, key_type])
            .env_clear()
            .output()
            .unwrap();
        let took = started.elapsed();
        let log = std::fs::read_to_string(self.dir.path().join("opkssh.log")).unwrap_or_default();
        let last = log
            .lines()
            .rfind(|line| !line.trim().is_empty())
            .unwrap_or_default()
            .to_owned();
        let allowed = output.status.code() == Some(0);
        assert_eq!(allowed, !output.stdout.is_empty(), "{output:?}");
        (allowed, took, last)
    }
}

#[derive(Clone, Copy)]
enum Where {
    All,
    Path(&'static str),
}

#[test]
fn every_fault_ends_in_the_documented_decision_within_the_deadline() {
    if !e2e::enabled() {
        eprintln!("SKIP e2e: set OPKSSH_E2E=1");
        return;
    }
    let huge = 8 * 1024 * 1024;
    // (name, where, fault, replacement jwks, expected allow)
    type Case = (
        &'static str,
        Where,
        Option<Fault>,
        Option<&'static str>,
        bool,
    );
    let cases: Vec<Case> = vec![
        ("none (control)", Where::All, None, None, true),
        (
            "down (connection refused)",
            Where::All,
            Some(Fault::Down),
            None,
            false,
        ),
        (
            "slow 2 s",
            Where::All,
            Some(Fault::Slow(Duration::from_secs(2))),
            None,
            true,
        ),
        (
            "slow 7 s (over the 5 s request cap)",
            Where::All,
            Some(Fault::Slow(Duration::from_secs(7))),
            None,
            false,
        ),
        (
            "hangs before answering",
            Where::All,
            Some(Fault::Hang),
            None,
            false,
        ),
        (
            "hangs after headers (discovery)",
            Where::Path(DISCOVERY_PATH),
            Some(Fault::HangAfterHeaders),
            None,
            false,
        ),
        (
            "hangs after headers (jwks)",
            Where::Path(JWKS_PATH),
            Some(Fault::HangAfterHeaders),
            None,
            false,
        ),
        (
            "garbage discovery",
            Where::Path(DISCOVERY_PATH),
            Some(Fault::Garbage),
            None,
            false,
        ),
        (
            "garbage jwks",
            Where::Path(JWKS_PATH),
            Some(Fault::Garbage),
            None,
            false,
        ),
        (
            "huge discovery (8 MiB)",
            Where::Path(DISCOVERY_PATH),
            Some(Fault::HugeBody(huge)),
            None,
            false,
        ),
        (
            "huge jwks (8 MiB)",
            Where::Path(JWKS_PATH),
            Some(Fault::HugeBody(huge)),
            None,
            false,
        ),
        (
            "wrong content type (HTML)",
            Where::All,
            Some(Fault::WrongContentType),
            None,
            false,
        ),
        (
            "HTTP 500",
            Where::All,
            Some(Fault::Status(500)),
            None,
            false,
        ),
        (
            "HTTP 503 on jwks",
            Where::Path(JWKS_PATH),
            Some(Fault::Status(503)),
            None,
            false,
        ),
        (
            "HTTP 404 on discovery",
            Where::Path(DISCOVERY_PATH),
            Some(Fault::Status(404)),
            None,
            false,
        ),
        (
            "closes without answering",
            Where::All,
            Some(Fault::Close),
            None,
            false,
        ),
        (
            "redirect to another host",
            Where::Path(DISCOVERY_PATH),
            Some(Fault::Redirect("http://127.0.0.2:9/x")),
            None,
            false,
        ),
        (
            "jwks with no usable key",
            Where::All,
            None,
            Some(r#"{"keys":[{"kty":"oct","k":"c2VjcmV0","kid":"mint-key","alg":"HS256"}]}"#),
            false,
        ),
        (
            "jwks: EC key without alg",
            Where::All,
            None,
            Some("noalg"),
            false,
        ),
        (
            "jwks: empty key set",
            Where::All,
            None,
            Some(r#"{"keys":[]}"#),
            false,
        ),
    ];
    let mut table = vec![
        "| fault | decision | time | log |".to_owned(),
        "|---|---|---|---|".to_owned(),
    ];
    let mut failures = Vec::new();
    for (name, place, fault, jwks, expect_allow) in cases {
        let setup = Setup::new();
        if let Some(jwks) = jwks {
            let jwks = if jwks == "noalg" {
                let mut value: serde_json::Value =
                    serde_json::from_str(&setup.minted.jwks_json).unwrap();
                value["keys"][0].as_object_mut().unwrap().remove("alg");
                value.to_string()
            } else {
                jwks.to_owned()
            };
            setup.server.set_documents(
                Minted::discovery_json(setup.server.issuer()).as_bytes(),
                jwks.as_bytes(),
            );
        }
        match (place, fault) {
            (_, None) => {}
            (Where::All, Some(fault)) => setup.server.set_fault(fault).unwrap(),
            (Where::Path(path), Some(fault)) => setup.server.set_path_fault(path, fault),
        }
        let (allowed, took, last) = setup.verify();
        let decision = if allowed { "allow" } else { "deny" };
        let reason = last
            .split_once("reason: ")
            .map(|(_, reason)| reason)
            .unwrap_or_else(|| last.split_once(' ').map_or(last.as_str(), |(_, rest)| rest));
        let excerpt: String = reason.chars().take(140).collect();
        table.push(format!(
            "| {name} | {decision} | {:.2} s | {} |",
            took.as_secs_f64(),
            excerpt.trim().replace('|', "/")
        ));
        if allowed != expect_allow || took > BOUND {
            failures.push(format!("{name}: {decision} in {took:?}; {last}"));
        }
        // Release hung connections before the server is dropped.
        let _ = setup.server.set_fault(Fault::None);
        setup.server.set_path_fault(DISCOVERY_PATH, Fault::None);
        setup.server.set_path_fault(JWKS_PATH, Fault::None);
    }
    eprintln!("{}", table.join("\n"));
    assert!(failures.is_empty(), "{failures:#?}");
}

/// With a warm cache whose entry is past its max age, an IdP outage falls back to the cached
/// keys (fail-stale, logged) up to the stale limit.
#[test]
fn outage_with_a_stale_cache_uses_the_cached_keys() {
    if !e2e::enabled() {
        eprintln!("SKIP e2e: set OPKSSH_E2E=1");
        return;
    }
    let setup = Setup::new();
    assert!(setup.verify().0);
    // Age the entry by 2 h (max age 1 h, stale limit 24 h), then take the IdP down.
    for entry in std::fs::read_dir(setup.dir.path().join("cache")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|ext| ext == "json") {
            let mut value: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            value["fetched_at"] = (value["fetched_at"].as_u64().unwrap() - 7200).into();
            std::fs::write(&path, value.to_string()).unwrap();
        }
    }
    for fault in [Fault::Down, Fault::Status(500)] {
        setup.server.set_fault(fault).unwrap();
        let (allowed, took, last) = setup.verify();
        assert!(
            allowed && took < BOUND,
            "{fault:?}: {allowed} {took:?} {last}"
        );
        eprintln!(
            "| {fault:?}, cache 2 h old | allow (stale) | {:.2} s |",
            took.as_secs_f64()
        );
    }
}
