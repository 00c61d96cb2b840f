//! The Go interop vectors: every `accept/` PK token and certificate verifies, every `reject/`
//! one fails with the expected kind of error and no panic.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)] // test code: a panic is a failure

use opk_core::jwk::{Jwks, KeyLookupError};
use opk_core::jws::JwsError;
use opk_core::pktoken::{PkToken, PkTokenError, Role};
use opk_core::sshcert::{CertComment, CertError, OpksshCertificate};
use opk_core::verify::{ExpirationPolicy, Provider, VerifiedPkToken, VerifyError};
use opkssh_tests::{Vector, vectors};
use std::time::SystemTime;

/// Why a vector was refused, at the PK-token level.
#[derive(Debug)]
enum Refusal {
    #[allow(dead_code)] // read through Debug in failure messages
    Certificate(CertError),
    Parse(PkTokenError),
    Verify(VerifyError),
    KeyIsNotUpk,
}

/// What `opkssh verify` does before policy: the certificate as sshd hands it over (`%t %k`), its
/// self-signature, the PK token in its extension, the token against the issuer's JWKS, and the
/// certificate key against the committed `upk`.
fn verify_certificate(vector: &Vector) -> Result<VerifiedPkToken, Refusal> {
    let line = vector.text("cert.pub").unwrap();
    let (key_type, base64) = line.trim_end().split_once(' ').unwrap();
    let certificate =
        OpksshCertificate::from_type_and_base64(key_type, base64).map_err(Refusal::Certificate)?;
    certificate
        .verify_self_signature()
        .map_err(Refusal::Certificate)?;
    assert_eq!(
        certificate.to_line(CertComment::None),
        line,
        "{}",
        vector.name
    );
    let compact = certificate.pk_token().map_err(Refusal::Certificate)?;
    assert_eq!(
        compact,
        vector.trimmed("pktoken.compact").unwrap(),
        "{}",
        vector.name
    );
    let verified = verify_pk_token(vector)?;
    if !certificate.matches_upk(verified.upk()) {
        return Err(Refusal::KeyIsNotUpk);
    }
    Ok(verified)
}

fn verify_pk_token(vector: &Vector) -> Result<VerifiedPkToken, Refusal> {
    let compact = vector.trimmed("pktoken.compact").unwrap();
    let token = PkToken::from_compact(&compact).map_err(Refusal::Parse)?;
    let issuer = vector.trimmed("issuer.txt").unwrap();
    let client_id = vector.trimmed("client_id.txt").unwrap();
    let policy: ExpirationPolicy = vector
        .meta_str("expiration_policy")
        .unwrap_or("oidc")
        .parse()
        .unwrap();
    let jwks = Jwks::from_json(vector.text("jwks.json").unwrap().as_bytes()).unwrap();
    token
        .verify_at(
            SystemTime::now(),
            &Provider::new(&issuer, &client_id, policy),
            &jwks,
        )
        .map_err(Refusal::Verify)
}

#[test]
fn accept_vectors_verify() {
    let accept = vectors("accept").unwrap();
    assert!(
        accept.len() >= 10,
        "expected the full accept set, found {}",
        accept.len()
    );
    for vector in &accept {
        let verified = verify_certificate(vector)
            .unwrap_or_else(|refusal| panic!("{}: {refusal:?}", vector.name));
        assert_eq!(
            verified.claims().email(),
            vector.meta_str("email"),
            "{}",
            vector.name
        );
        assert_eq!(
            verified.claims().issuer(),
            vector.trimmed("issuer.txt").unwrap(),
            "{}",
            vector.name
        );
    }
}

#[test]
fn accept_vectors_round_trip_both_serializations() {
    for vector in vectors("accept").unwrap() {
        let compact = vector.trimmed("pktoken.compact").unwrap();
        let token = PkToken::from_compact(&compact).unwrap();
        assert_eq!(token.to_compact(), compact, "{}", vector.name);
        let json = vector.trimmed("pktoken.json").unwrap();
        let from_json = PkToken::from_json(&json).unwrap();
        // The JSON form does not carry a refreshed ID token; everything else is identical.
        let compact_without_refresh = compact
            .split_once('.')
            .map_or(compact.as_str(), |(colon, _)| colon);
        assert_eq!(
            from_json.to_compact(),
            compact_without_refresh,
            "{}",
            vector.name
        );
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        let reparsed: serde_json::Value = serde_json::from_str(&token.to_json()).unwrap();
        assert_eq!(reparsed, value, "{}", vector.name);
    }
}

/// What each reject vector must fail with (by its folder name, minus the `neg-<alg>-` prefix).
fn expected_refusal(name: &str, refusal: &Refusal) -> bool {
    let defect = name
        .trim_start_matches("neg-")
        .trim_start_matches("rs256-")
        .trim_start_matches("es256-");
    match (defect, refusal) {
        ("cic-missing", Refusal::Parse(PkTokenError::Missing(Role::Cic))) => true,
        ("op-sig-duplicated", Refusal::Parse(PkTokenError::Duplicate(Role::Op))) => true,
        ("cic-typ-lowercase", Refusal::Parse(PkTokenError::UnrecognizedSignatureType(typ))) => {
            typ == "cic"
        }
        // An edited payload breaks the CIC signature too, and the CIC is checked first (§5.2).
        ("cic-sig-bitflip" | "payload-email-changed", Refusal::Verify(VerifyError::Cic(_))) => true,
        ("op-sig-bitflip", Refusal::Verify(VerifyError::OpSignature(JwsError::BadSignature))) => {
            true
        }
        (
            "op-alg-none" | "op-alg-hs256",
            Refusal::Verify(VerifyError::OpAlgorithm(JwsError::UnsupportedAlgorithm(_))),
        ) => true,
        (
            "jwks-lacks-kid",
            Refusal::Verify(VerifyError::KeyLookup(KeyLookupError::UnknownKid(_))),
        ) => true,
        ("expired", Refusal::Verify(VerifyError::Expired { .. })) => true,
        ("cert-key-not-upk", Refusal::KeyIsNotUpk) => true,
        // Another user's token from another provider: the issuer lookup refuses it first.
        ("pkt-transplanted", Refusal::Verify(VerifyError::IssuerMismatch { .. })) => true,
        ("refreshed-other-subject", Refusal::Verify(VerifyError::Refreshed(inner))) => {
            matches!(
                **inner,
                VerifyError::OpSignature(_) | VerifyError::RefreshedMismatch(_)
            )
        }
        ("refreshed-other-subject", Refusal::Verify(VerifyError::RefreshedMismatch(_))) => true,
        ("refreshed-sig-bitflip", Refusal::Verify(VerifyError::Refreshed(inner))) => {
            matches!(**inner, VerifyError::OpSignature(JwsError::BadSignature))
        }
        _ => false,
    }
}

#[test]
fn reject_vectors_fail_with_the_expected_error() {
    let reject = vectors("reject").unwrap();
    assert!(
        reject.len() >= 20,
        "expected the full reject set, found {}",
        reject.len()
    );
    for vector in &reject {
        let outcome = std::panic::catch_unwind(|| verify_certificate(vector));
        let Ok(outcome) = outcome else {
            panic!("{}: panicked", vector.name)
        };
        match (vector.name.as_str(), outcome) {
            (name, Ok(_)) => panic!("{name}: accepted"),
            (name, Err(refusal)) => assert!(
                expected_refusal(name, &refusal),
                "{name}: unexpected refusal {refusal:?}"
            ),
        }
    }
}
