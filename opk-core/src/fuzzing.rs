//! Fuzzing shims, always compiled (as `opk_core::fuzzing`), so stable `cargo test` runs the
//! same bodies the cargo-fuzz targets in `fuzz/` run (style.md §9). Each takes any bytes and
//! must return without panicking; the `assert!`s are the properties a fuzzer checks.

use crate::jwk::Jwks;
use crate::pktoken::PkToken;
use crate::sshcert::{CertComment, OpksshCertificate};
use crate::verify::{Provider, VerifiedPkToken};
use std::time::SystemTime;

/// Parses bytes as a certificate line (`<type> <base64> [comment]`), and, when that works,
/// checks the self-signature, reads the extensions, and asserts that writing the line back
/// parses to the same certificate bytes.
pub fn ssh_cert_line(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(certificate) = OpksshCertificate::from_line(text) else {
        return;
    };
    let _ = certificate.verify_self_signature();
    let _ = certificate.pk_token();
    let _ = certificate.access_token();
    let _ = certificate.principals();
    let _ = certificate.signature_key_line();
    let line = certificate.to_line(CertComment::None);
    let again = OpksshCertificate::from_line(&line);
    assert!(
        again
            .as_ref()
            .is_ok_and(|again| again.as_bytes() == certificate.as_bytes()),
        "a parsed certificate must write back to a line that parses to the same bytes"
    );
}

/// Parses bytes as a compact PK token; a token that parses must serialize to a compact form
/// that parses to an equal token, and its JSON form must too (minus the refreshed token).
pub fn pktoken_compact(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(token) = PkToken::from_compact(text) else {
        return;
    };
    let compact = token.to_compact();
    assert!(
        PkToken::from_compact(&compact).is_ok_and(|again| again == token),
        "compact round trip"
    );
    let _ = token.op_key_id();
    let _ = token.hash();
    // The JSON form refuses an empty `typ` that the compact form reads as OP (wire-format.md
    // §2.1, as Go does); any other compact token must survive the JSON round trip.
    let json = token.to_json();
    match PkToken::from_json(&json) {
        Ok(again) => assert!(
            again.to_json() == json,
            "json round trip of a compact token"
        ),
        Err(crate::pktoken::PkTokenError::UnrecognizedSignatureType(typ)) if typ.is_empty() => {}
        Err(error) => panic!("json round trip of a compact token: {error}"),
    }
}

/// Parses bytes as a JSON-form PK token; one that parses must round-trip.
pub fn pktoken_json(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(token) = PkToken::from_json(text) else {
        return;
    };
    let json = token.to_json();
    assert!(
        PkToken::from_json(&json).is_ok_and(|again| again == token),
        "json round trip"
    );
    // The compact form drops unprotected headers, so compare compact texts.
    let compact = token.to_compact();
    assert!(
        PkToken::from_compact(&compact).is_ok_and(|again| again.to_compact() == compact),
        "compact round trip of a json token"
    );
}

/// The PK-token part of a verify: parse the certificate line, check its self-signature,
/// parse and verify its PK token against `provider` and `jwks` at `now`, and require the
/// certificate key to be the token's upk. `Some` only when every check passed.
pub fn verify_certificate(
    data: &[u8],
    provider: &Provider,
    jwks: &Jwks,
    now: SystemTime,
) -> Option<(OpksshCertificate, VerifiedPkToken)> {
    let text = std::str::from_utf8(data).ok()?;
    let certificate = OpksshCertificate::from_line(text).ok()?;
    certificate.verify_self_signature().ok()?;
    let token = PkToken::from_compact(certificate.pk_token().ok()?).ok()?;
    let verified = token.verify_at(now, provider, jwks).ok()?;
    if !certificate.matches_upk(verified.upk()) {
        return None;
    }
    Some((certificate, verified))
}
