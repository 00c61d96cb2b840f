//! PK-token verification and certificate parsing on the Go vectors.
//!
//! Run: `cargo bench -p opk-core --bench verify`. Targets on a 2-core machine: RS256 path
//! at most 0.5 ms, GQ256 at most 2.5 ms (Go, in-process: 1.08 ms and 3.7 ms).
//! Measured here (2 cores): RS256 196 µs, GQ256 1.38 ms, ES256 OP with EdDSA key 177 µs;
//! certificate parse 2.2 µs (4.4 µs with a GQ token), 161 µs with the self-signature check.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)] // test code: a panic is a failure

use criterion::{Criterion, criterion_group, criterion_main};
use opk_core::jwk::Jwks;
use opk_core::pktoken::PkToken;
use opk_core::sshcert::OpksshCertificate;
use opk_core::verify::{ExpirationPolicy, Provider};
use std::hint::black_box;
use std::path::Path;
use std::time::SystemTime;

fn read(vector: &str, file: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/vectors/go-opkssh/accept")
        .join(vector)
        .join(file);
    match std::fs::read_to_string(&path) {
        Ok(text) => text.trim_end().to_owned(),
        Err(error) => panic!("{}: {error}", path.display()),
    }
}

fn bench_vector(criterion: &mut Criterion, label: &str, vector: &str) {
    let compact = read(vector, "pktoken.compact");
    let jwks_text = read(vector, "jwks.json");
    let provider = Provider::new(
        &read(vector, "issuer.txt"),
        &read(vector, "client_id.txt"),
        ExpirationPolicy::Oidc,
    );
    criterion.bench_function(label, |bencher| {
        bencher.iter(|| {
            // Everything a verify process does per login: parse the token and the cached JWKS,
            // then verify.
            let token = PkToken::from_compact(black_box(&compact)).ok();
            let jwks = Jwks::from_json(black_box(jwks_text.as_bytes())).ok();
            match (token, jwks) {
                (Some(token), Some(jwks)) => {
                    token.verify_at(SystemTime::now(), &provider, &jwks).is_ok()
                }
                _ => false,
            }
        });
    });
}

fn pk_token_verification(criterion: &mut Criterion) {
    bench_vector(
        criterion,
        "verify pk token: RS256 OP, ES256 user key",
        "rs256-ecdsa",
    );
    bench_vector(
        criterion,
        "verify pk token: GQ256 OP, ES256 user key",
        "rs256-gq-ecdsa",
    );
    bench_vector(
        criterion,
        "verify pk token: ES256 OP, EdDSA user key",
        "es256-ed25519",
    );
}

fn certificate_parsing(criterion: &mut Criterion) {
    for (label, vector) in [
        ("parse certificate: ECDSA, RS256 token", "rs256-ecdsa"),
        ("parse certificate: ECDSA, GQ256 token", "rs256-gq-ecdsa"),
    ] {
        let line = read(vector, "cert.pub");
        let (key_type, base64) = line.split_once(' ').unwrap_or_default();
        criterion.bench_function(label, |bencher| {
            bencher.iter(|| {
                OpksshCertificate::from_type_and_base64(black_box(key_type), black_box(base64))
                    .is_ok()
            });
        });
        criterion.bench_function(&format!("{label}, self-signature checked"), |bencher| {
            bencher.iter(|| {
                OpksshCertificate::from_type_and_base64(black_box(key_type), black_box(base64))
                    .is_ok_and(|certificate| certificate.verify_self_signature().is_ok())
            });
        });
    }
}

criterion_group!(benches, pk_token_verification, certificate_parsing);
criterion_main!(benches);
