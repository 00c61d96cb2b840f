//! Signature stripping, truncation, duplication and swapping, in the compact and JSON forms.

use crate::*;
use opk_core::cic::CicError;
use opk_core::jws::JwsError;
use opk_core::pktoken::Role;

#[test]
fn op_signature_stripped() {
    let login = Login::new().sound();
    let mut parts = login.parts();
    parts[2].clear();
    let refusal = login.refuse(&parts.join(":"));
    assert!(
        matches!(refusal, Refusal::Verify(VerifyError::OpSignature(_))),
        "{refusal:?}"
    );
}

#[test]
fn op_signature_bit_flip() {
    let login = Login::rsa().sound();
    let mut parts = login.parts();
    parts[2] = flip_bit(&parts[2]);
    let refusal = login.refuse(&parts.join(":"));
    assert!(
        matches!(
            refusal,
            Refusal::Verify(VerifyError::OpSignature(JwsError::BadSignature))
        ),
        "{refusal:?}"
    );
}

#[test]
fn op_signature_truncated() {
    let login = Login::new().sound();
    let mut parts = login.parts();
    parts[2].truncate(40);
    let refusal = login.refuse(&parts.join(":"));
    assert!(
        matches!(refusal, Refusal::Verify(VerifyError::OpSignature(_))),
        "{refusal:?}"
    );
}

/// A DER-encoded ECDSA signature where JWS wants raw r‖s.
#[test]
fn op_es256_signature_der_encoded() {
    let login = Login::new().sound();
    let parts = login.parts();
    let raw = b64::decode_url_strict(&parts[2]).unwrap();
    let signature = p256::ecdsa::Signature::from_slice(&raw).unwrap();
    let der = signature.to_der();
    let mut forged = login.parts();
    forged[2] = b64::encode_url(der.as_bytes());
    let refusal = login.refuse(&forged.join(":"));
    assert!(
        matches!(
            refusal,
            Refusal::Verify(VerifyError::OpSignature(JwsError::BadSignature))
        ),
        "{refusal:?}"
    );
}

#[test]
fn cic_signature_stripped() {
    let login = Login::new().sound();
    let mut parts = login.parts();
    parts[4].clear();
    let refusal = login.refuse(&parts.join(":"));
    assert!(
        matches!(
            refusal,
            Refusal::Verify(VerifyError::Cic(CicError::Signature(_)))
        ),
        "{refusal:?}"
    );
}

#[test]
fn cic_signature_bit_flip() {
    let login = Login::new().sound();
    let mut parts = login.parts();
    parts[4] = flip_bit(&parts[4]);
    let refusal = login.refuse(&parts.join(":"));
    assert!(
        matches!(
            refusal,
            Refusal::Verify(VerifyError::Cic(CicError::Signature(
                JwsError::BadSignature
            )))
        ),
        "{refusal:?}"
    );
}

/// Go keeps the last of two OP signatures; we refuse the token.
#[test]
fn op_signature_duplicated() {
    let login = Login::new().sound();
    let parts = login.parts();
    let token = [
        &parts[0], &parts[1], &parts[2], &parts[1], &parts[2], &parts[3], &parts[4],
    ]
    .map(String::as_str)
    .join(":");
    let refusal = login.refuse(&token);
    assert!(
        matches!(refusal, Refusal::Parse(PkTokenError::Duplicate(Role::Op))),
        "{refusal:?}"
    );
}

/// A second OP signature from the attacker placed after the genuine one (Go keeps the last).
#[test]
fn op_signature_second_one_from_an_attacker() {
    let login = Login::new().sound();
    let attacker = es_key();
    let header = r#"{"alg":"ES256","kid":"op-key","typ":"JWT"}"#;
    let sig = b64::encode_url(
        attacker
            .sign(login.signing_input(header).as_bytes())
            .unwrap(),
    );
    let parts = login.parts();
    let token = format!(
        "{}:{}:{}:{}:{sig}:{}:{}",
        parts[0],
        parts[1],
        parts[2],
        b64::encode_url(header),
        parts[3],
        parts[4]
    );
    let refusal = login.refuse(&token);
    assert!(
        matches!(refusal, Refusal::Parse(PkTokenError::Duplicate(Role::Op))),
        "{refusal:?}"
    );
}

#[test]
fn cic_signature_duplicated() {
    let login = Login::new().sound();
    let parts = login.parts();
    let token = [
        &parts[0], &parts[1], &parts[2], &parts[3], &parts[4], &parts[3], &parts[4],
    ]
    .map(String::as_str)
    .join(":");
    let refusal = login.refuse(&token);
    assert!(
        matches!(refusal, Refusal::Parse(PkTokenError::Duplicate(Role::Cic))),
        "{refusal:?}"
    );
}

/// Go dereferences a nil CIC and crashes; we refuse.
#[test]
fn cic_removed() {
    let login = Login::new().sound();
    let parts = login.parts();
    let refusal = login.refuse(&parts[..3].join(":"));
    assert!(
        matches!(refusal, Refusal::Parse(PkTokenError::Missing(Role::Cic))),
        "{refusal:?}"
    );
}

#[test]
fn op_removed() {
    let login = Login::new().sound();
    let parts = login.parts();
    let token = [&parts[0], &parts[3], &parts[4]]
        .map(String::as_str)
        .join(":");
    let refusal = login.refuse(&token);
    assert!(
        matches!(refusal, Refusal::Parse(PkTokenError::Missing(Role::Op))),
        "{refusal:?}"
    );
}

/// The OP signature replaced by the CIC's (both sign the same payload).
#[test]
fn signatures_swapped_between_op_and_cic() {
    let login = Login::new().sound();
    let mut parts = login.parts();
    parts.swap(2, 4);
    let refusal = login.refuse(&parts.join(":"));
    assert!(
        matches!(
            refusal,
            Refusal::Verify(VerifyError::Cic(CicError::Signature(_)))
        ),
        "{refusal:?}"
    );
}

/// The JSON form with a third, attacker-made OP-typed signature.
#[test]
fn json_form_with_an_extra_op_signature() {
    let login = Login::new().sound();
    let mut value: Value = serde_json::from_str(&login.token.to_json()).unwrap();
    let first = value["signatures"][0].clone();
    value["signatures"].as_array_mut().unwrap().push(first);
    let result = PkToken::from_json(&value.to_string());
    assert!(
        matches!(result, Err(PkTokenError::Duplicate(Role::Op))),
        "{result:?}"
    );
}

/// The JSON form with `alg: none` placed in the unprotected header: it must be ignored, and the
/// protected `alg: none` with no signature refused.
#[test]
fn json_form_alg_none() {
    let login = Login::new().sound();
    let mut value: Value = serde_json::from_str(&login.token.to_json()).unwrap();
    value["signatures"][0]["protected"] =
        b64::encode_url(r#"{"alg":"none","kid":"op-key","typ":"JWT"}"#).into();
    value["signatures"][0]["signature"] = "".into();
    value["signatures"][0]["header"] = serde_json::json!({"alg": "none"});
    let token = PkToken::from_json(&value.to_string()).unwrap();
    let result = login.verify(&token);
    assert!(
        matches!(
            result,
            Err(VerifyError::OpAlgorithm(JwsError::UnsupportedAlgorithm(_)))
        ),
        "{result:?}"
    );
}
