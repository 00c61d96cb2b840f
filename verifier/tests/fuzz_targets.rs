//! The `verify` fuzz target's body on stable: the fixed policy of `fuzz/fuzz_targets/verify.rs`
//! allows the seed certificate, denies it for another principal, and denies every reject vector
//! of the same issuer; the YAML shim takes the YAML seeds.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)] // test code: a panic is a failure

use opk_core::jwk::Jwks;
use opk_core::verify::{ExpirationPolicy, Provider};
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};
use verifier::fuzzing::{Outcome, verify_decision};

const AUTH_ID: &str = "alice carol@example.com http://localhost:18203\n";

fn fuzz_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz"))
}

#[test]
fn verify_target_allows_its_seed_and_denies_the_rest() {
    let jwks =
        Jwks::from_json(&std::fs::read(fuzz_dir().join("data/es256-jwks.json")).unwrap()).unwrap();
    let provider = Provider::new(
        "http://localhost:18203",
        "opkssh-test-client",
        ExpirationPolicy::Oidc,
    );
    let now = UNIX_EPOCH + Duration::from_secs(1_795_666_534 + 60);
    let mut denied = 0;
    for entry in std::fs::read_dir(fuzz_dir().join("corpus/verify")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.starts_with("seed-") {
            continue;
        }
        let data = std::fs::read(&path).unwrap();
        let outcome = verify_decision(&data, "alice", &provider, &jwks, now, AUTH_ID);
        if name == "seed-es256-ecdsa" {
            assert!(
                matches!(&outcome, Outcome::Allow(line) if line.starts_with("cert-authority,principals=\"opkssh-wildcard\" ecdsa-sha2-nistp256 ")),
                "{outcome:?}"
            );
            assert_eq!(
                verify_decision(&data, "bob", &provider, &jwks, now, AUTH_ID),
                Outcome::Deny
            );
        } else {
            assert_eq!(outcome, Outcome::Deny, "{name}");
            denied += 1;
        }
    }
    assert!(denied >= 10, "only {denied} reject seeds");
}

fn seeds(target: &str) -> Vec<std::path::PathBuf> {
    let paths: Vec<_> = std::fs::read_dir(fuzz_dir().join("corpus").join(target))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            path.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("seed-")
        })
        .collect();
    assert!(!paths.is_empty(), "no seeds for {target}");
    paths
}

#[test]
fn yaml_target_takes_its_seeds() {
    for path in seeds("yaml_config") {
        policy::fuzzing::yaml_configs(&std::fs::read(path).unwrap());
    }
    for path in seeds("policy_table") {
        let data = std::fs::read(path).unwrap();
        policy::fuzzing::providers_file(&data);
        policy::fuzzing::auth_id_file(&data);
    }
}
