//! GQ256 forgeries: bit flips, truncation, a wrong exponent, the outer-header swap of
//! openpubkey#379, GQ-only providers and GQ-bound commitments.

use crate::*;
use opk_core::gq::GqError;
use opk_core::jws::JwsError;
use opk_core::verify::Commitment;

const GITHUB: &str = "https://token.actions.githubusercontent.com";

fn rsa_public() -> rsa::PublicKey {
    match rsa_key().public_key() {
        opk_core::jwk::PublicKey::Rsa(key) => key,
        _ => unreachable!(),
    }
}

/// The login's RS256 ID token GQ-signed (with `extra` GQ header members), as a compact PK token.
fn gq_token(login: &Login, extra: &[(&str, &str)]) -> String {
    let op = sign(&op_header(&login.op_key), &login.payload, &login.op_key);
    let gq = opk_core::gq::sign_id_token(&op.to_compact(), &rsa_public(), extra).unwrap();
    let gq = Jws::parse(&gq).unwrap();
    let parts = login.parts();
    format!(
        "{}:{}:{}:{}:{}",
        parts[0],
        gq.header_segment(),
        gq.signature_segment(),
        parts[3],
        parts[4]
    )
}

fn gq_bad_signature(refusal: &Refusal) -> bool {
    matches!(
        refusal,
        Refusal::Verify(VerifyError::OpSignature(JwsError::Gq(
            GqError::BadSignature
        )))
    )
}

fn sound_gq() -> (Login, String) {
    let login = Login::rsa().sound();
    let token = gq_token(&login, &[]);
    login
        .verify(&PkToken::from_compact(&token).unwrap())
        .expect("GQ fixture must verify");
    (login, token)
}

#[test]
fn gq_proof_bit_flip() {
    let (login, token) = sound_gq();
    let mut parts: Vec<String> = token.split(':').map(str::to_owned).collect();
    parts[2] = flip_bit(&parts[2]);
    let refusal = login.refuse(&parts.join(":"));
    assert!(gq_bad_signature(&refusal), "{refusal:?}");
}

#[test]
fn gq_proof_first_byte_of_r_flipped() {
    let (login, token) = sound_gq();
    let mut parts: Vec<String> = token.split(':').map(str::to_owned).collect();
    let mut proof = b64::decode_url_strict(&parts[2]).unwrap();
    proof[0] ^= 0x80;
    parts[2] = b64::encode_url(proof);
    let refusal = login.refuse(&parts.join(":"));
    assert!(gq_bad_signature(&refusal), "{refusal:?}");
}

#[test]
fn gq_proof_truncated() {
    let (login, token) = sound_gq();
    let mut parts: Vec<String> = token.split(':').map(str::to_owned).collect();
    let mut proof = b64::decode_url_strict(&parts[2]).unwrap();
    proof.truncate(proof.len() - 256);
    parts[2] = b64::encode_url(proof);
    let refusal = login.refuse(&parts.join(":"));
    assert!(
        matches!(
            refusal,
            Refusal::Verify(VerifyError::OpSignature(JwsError::Gq(_)))
        ),
        "{refusal:?}"
    );
}

/// Every S_i = 0 (and R = 0): the degenerate proof that would verify without care.
#[test]
fn gq_proof_all_zero() {
    let (login, token) = sound_gq();
    let mut parts: Vec<String> = token.split(':').map(str::to_owned).collect();
    let len = b64::decode_url_strict(&parts[2]).unwrap().len();
    parts[2] = b64::encode_url(vec![0_u8; len]);
    let refusal = login.refuse(&parts.join(":"));
    assert!(
        matches!(
            refusal,
            Refusal::Verify(VerifyError::OpSignature(JwsError::Gq(_)))
        ),
        "{refusal:?}"
    );
}

/// openpubkey#379: the outer (GQ) header is under the proof since v0.25; a swapped `jkt` breaks it.
#[test]
fn gq_outer_header_swap_jkt() {
    let (login, token) = sound_gq();
    let mut parts: Vec<String> = token.split(':').map(str::to_owned).collect();
    let mut header: Value =
        serde_json::from_slice(&b64::decode_url_strict(&parts[1]).unwrap()).unwrap();
    header["jkt"] = b64::encode_url([9_u8; 32]).into();
    parts[1] = b64::encode_url(opk_core::gojson::to_string(&header));
    let refusal = login.refuse(&parts.join(":"));
    assert!(gq_bad_signature(&refusal), "{refusal:?}");
}

/// openpubkey#379 exactly: a stolen GQ-bound token re-bound to the attacker's key by swapping
/// the outer header's `cic` and the CIC.
#[test]
fn gq_outer_header_cic_swapped_to_the_attackers_cic() {
    let login = Login::with(rsa_key().clone(), es_key(), |p| {
        p["aud"] = "OPENPUBKEY-PKTOKEN:project".into();
        p.as_object_mut().unwrap().remove("nonce");
    });
    let provider = Provider::new(ISSUER, CLIENT_ID, ExpirationPolicy::Oidc).with_commitment(
        Commitment::GqBound {
            audience_prefix: "OPENPUBKEY-PKTOKEN:".into(),
        },
    );
    let token = gq_token(&login, &[("cic", login.cic.commitment())]);
    PkToken::from_compact(&token)
        .unwrap()
        .verify_at(now(), &provider, &login.jwks())
        .expect("GQ-bound fixture must verify");

    let attacker = es_key();
    let attacker_cic = CicHeader::generate(&attacker, &[]).unwrap();
    let parts: Vec<String> = token.split(':').map(str::to_owned).collect();
    let mut header: Value =
        serde_json::from_slice(&b64::decode_url_strict(&parts[1]).unwrap()).unwrap();
    header["cic"] = attacker_cic.commitment().into();
    let cic = attacker_cic.sign(&parts[0], &attacker).unwrap();
    let forged = format!(
        "{}:{}:{}:{}:{}",
        parts[0],
        b64::encode_url(opk_core::gojson::to_string(&header)),
        parts[2],
        cic.header_segment(),
        cic.signature_segment()
    );
    let refusal = login.refuse_with(&forged, &provider, &login.jwks());
    assert!(gq_bad_signature(&refusal), "{refusal:?}");
}

/// The GQ `kid` (the original header) re-spelled: the RSA identity changes.
#[test]
fn gq_kid_original_header_respelled() {
    let (login, token) = sound_gq();
    let mut parts: Vec<String> = token.split(':').map(str::to_owned).collect();
    let mut header: Value =
        serde_json::from_slice(&b64::decode_url_strict(&parts[1]).unwrap()).unwrap();
    header["kid"] = b64::encode_url(r#"{"alg":"RS256", "kid":"op-key","typ":"JWT"}"#).into();
    parts[1] = b64::encode_url(opk_core::gojson::to_string(&header));
    let refusal = login.refuse(&parts.join(":"));
    assert!(gq_bad_signature(&refusal), "{refusal:?}");
}

#[test]
fn gq_original_header_alg_ps256() {
    let (login, token) = sound_gq();
    let mut parts: Vec<String> = token.split(':').map(str::to_owned).collect();
    let mut header: Value =
        serde_json::from_slice(&b64::decode_url_strict(&parts[1]).unwrap()).unwrap();
    header["kid"] = b64::encode_url(r#"{"alg":"PS256","kid":"op-key","typ":"JWT"}"#).into();
    parts[1] = b64::encode_url(opk_core::gojson::to_string(&header));
    let refusal = login.refuse(&parts.join(":"));
    assert!(
        matches!(refusal, Refusal::Verify(VerifyError::GqOriginalHeader)),
        "{refusal:?}"
    );
}

fn jwks_with_exponent(login: &Login, e: &str) -> Jwks {
    let mut jwk: Value = Value::Object(login.jwks().keys()[0].to_object());
    jwk["e"] = e.into();
    Jwks::from_json(serde_json::json!({"keys": [jwk]}).to_string().as_bytes()).unwrap()
}

/// The OP's modulus published with e = 3: the proof was made for 65537.
#[test]
fn gq_wrong_exponent() {
    let (login, token) = sound_gq();
    let refusal = login.refuse_with(
        &token,
        &provider(ExpirationPolicy::Oidc),
        &jwks_with_exponent(&login, "Aw"),
    );
    assert!(
        matches!(
            refusal,
            Refusal::Verify(VerifyError::OpSignature(JwsError::Gq(_)))
        ),
        "{refusal:?}"
    );
}

/// An even exponent (GQ is unsound for it, openpubkey#371).
#[test]
fn gq_even_exponent() {
    let (login, token) = sound_gq();
    let jwks = Jwks::from_json(
        serde_json::json!({"keys": [{
            "kty": "RSA", "alg": "RS256", "kid": KID, "e": "AQAA",
            "n": Value::Object(login.jwks().keys()[0].to_object())["n"]
        }]})
        .to_string()
        .as_bytes(),
    );
    match jwks {
        Err(_) => {}
        Ok(jwks) => {
            let refusal = login.refuse_with(&token, &provider(ExpirationPolicy::Oidc), &jwks);
            assert!(
                matches!(
                    refusal,
                    Refusal::Verify(
                        VerifyError::OpSignature(JwsError::Gq(GqError::InvalidExponent))
                            | VerifyError::KeyLookup(_)
                    )
                ),
                "{refusal:?}"
            );
        }
    }
}

/// GitHub Actions requires GQ: a plain RS256 token with the aud commitment is refused.
#[test]
fn actions_provider_given_a_plain_rs256_token() {
    let login = Login::with(rsa_key().clone(), es_key(), |p| {
        p["iss"] = GITHUB.into();
        p["aud"] = p["nonce"].clone();
    });
    let provider = Provider::new(GITHUB, "ignored", ExpirationPolicy::Oidc);
    let refusal = login.refuse_with(&login.compact(), &provider, &login.jwks());
    assert!(
        matches!(refusal, Refusal::Verify(VerifyError::GqRequired)),
        "{refusal:?}"
    );
}

/// openpubkey#373: `aud` as an array panicked Go's aud-commitment path; here it is a mismatch.
#[test]
fn actions_aud_commitment_as_an_array() {
    let login = Login::with(rsa_key().clone(), es_key(), |p| {
        p["iss"] = GITHUB.into();
        p["aud"] = serde_json::json!([p["nonce"].clone()]);
    });
    let provider = Provider::new(GITHUB, "ignored", ExpirationPolicy::Oidc);
    let refusal = login.refuse_with(&gq_token(&login, &[]), &provider, &login.jwks());
    assert!(
        matches!(
            refusal,
            Refusal::Verify(VerifyError::CommitmentMismatch("aud"))
        ),
        "{refusal:?}"
    );
}

#[test]
fn gq_bound_without_cic_in_the_gq_header() {
    let login = Login::with(rsa_key().clone(), es_key(), |p| {
        p["aud"] = "OPENPUBKEY-PKTOKEN:project".into()
    });
    let provider = Provider::new(ISSUER, CLIENT_ID, ExpirationPolicy::Oidc).with_commitment(
        Commitment::GqBound {
            audience_prefix: "OPENPUBKEY-PKTOKEN:".into(),
        },
    );
    let refusal = login.refuse_with(&gq_token(&login, &[]), &provider, &login.jwks());
    assert!(
        matches!(
            refusal,
            Refusal::Verify(VerifyError::CommitmentMismatch("gq header cic"))
        ),
        "{refusal:?}"
    );
}

#[test]
fn gq_bound_audience_without_the_prefix() {
    let login = Login::with(rsa_key().clone(), es_key(), |p| p["aud"] = "project".into());
    let provider = Provider::new(ISSUER, CLIENT_ID, ExpirationPolicy::Oidc).with_commitment(
        Commitment::GqBound {
            audience_prefix: "OPENPUBKEY-PKTOKEN:".into(),
        },
    );
    let refusal = login.refuse_with(
        &gq_token(&login, &[("cic", login.cic.commitment())]),
        &provider,
        &login.jwks(),
    );
    assert!(
        matches!(
            refusal,
            Refusal::Verify(VerifyError::CommitmentMismatch("gq header cic"))
        ),
        "{refusal:?}"
    );
}
