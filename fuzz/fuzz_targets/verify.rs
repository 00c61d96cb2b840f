//! The whole verify decision for one certificate line, on a fixed policy: the issuer and JWKS
//! of the Go vector `accept/es256-ecdsa` (copied to `data/`), a fixed clock, and an `auth_id`
//! that lets carol in as `alice`. The seed corpus holds that vector's certificate, so the
//! fuzzer starts from an allow.
#![no_main]

use opk_core::jwk::Jwks;
use opk_core::verify::{ExpirationPolicy, Provider};
use std::sync::OnceLock;
use std::time::{Duration, UNIX_EPOCH};

const ISSUER: &str = "http://localhost:18203";
const CLIENT_ID: &str = "opkssh-test-client";
const AUTH_ID: &str =
    "alice carol@example.com http://localhost:18203\nroot oidc:groups:ops http://localhost:18203\n";

fn jwks() -> &'static Jwks {
    static JWKS: OnceLock<Jwks> = OnceLock::new();
    JWKS.get_or_init(|| {
        Jwks::from_json(include_bytes!("../data/es256-jwks.json"))
            .unwrap_or_else(|_| Jwks::from_keys(Vec::new()))
    })
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let provider = Provider::new(ISSUER, CLIENT_ID, ExpirationPolicy::Oidc);
    let now = UNIX_EPOCH + Duration::from_secs(1_795_666_534 + 60);
    for principal in ["alice", "root"] {
        let _ =
            verifier::fuzzing::verify_decision(data, principal, &provider, jwks(), now, AUTH_ID);
    }
});
