//! Algorithm confusion: `none`, HS256 keyed with public key material, RS/ES/PS/EdDSA swaps,
//! unsupported and missing algorithms, for the OP and for the CIC signature (CVE-2025-3757,
//! openpubkey#188, #350).

use crate::*;
use opk_core::cic::CicError;
use opk_core::jws::{Algorithm, JwsError};

fn unsupported(refusal: &Refusal, name: &str) -> bool {
    matches!(refusal, Refusal::Verify(VerifyError::OpAlgorithm(JwsError::UnsupportedAlgorithm(alg))) if alg == name)
}

#[test]
fn op_alg_none_with_empty_signature() {
    let login = Login::new().sound();
    let refusal = login.refuse(&login.with_op(r#"{"alg":"none","kid":"op-key","typ":"JWT"}"#, b""));
    assert!(unsupported(&refusal, "none"), "{refusal:?}");
}

#[test]
fn op_alg_none_in_other_letter_cases() {
    let login = Login::new().sound();
    for alg in ["None", "NONE", "nOnE", ""] {
        let header = format!(r#"{{"alg":"{alg}","kid":"op-key","typ":"JWT"}}"#);
        let refusal = login.refuse(&login.with_op(&header, b""));
        assert!(unsupported(&refusal, alg), "{alg}: {refusal:?}");
    }
}

#[test]
fn op_alg_none_keeping_the_real_signature() {
    let login = Login::new().sound();
    let parts = login.parts();
    let sig = b64::decode_url_strict(&parts[2]).unwrap();
    let refusal =
        login.refuse(&login.with_op(r#"{"alg":"none","kid":"op-key","typ":"JWT"}"#, &sig));
    assert!(unsupported(&refusal, "none"), "{refusal:?}");
}

#[test]
fn op_hs256_keyed_with_the_rsa_jwk() {
    let login = Login::rsa().sound();
    let header = r#"{"alg":"HS256","kid":"op-key","typ":"JWT"}"#;
    let key = Value::Object(login.jwks().keys()[0].to_object()).to_string();
    let mac = hmac_sha256(key.as_bytes(), login.signing_input(header).as_bytes());
    let refusal = login.refuse(&login.with_op(header, &mac));
    assert!(unsupported(&refusal, "HS256"), "{refusal:?}");
}

#[test]
fn op_hs256_keyed_with_the_rsa_modulus() {
    let login = Login::rsa().sound();
    let header = r#"{"alg":"HS256","kid":"op-key","typ":"JWT"}"#;
    let jwk: Value = Value::Object(login.jwks().keys()[0].to_object());
    let n = b64::decode_url_strict(jwk["n"].as_str().unwrap()).unwrap();
    let mac = hmac_sha256(&n, login.signing_input(header).as_bytes());
    let refusal = login.refuse(&login.with_op(header, &mac));
    assert!(unsupported(&refusal, "HS256"), "{refusal:?}");
}

#[test]
fn op_hs256_keyed_with_the_ec_jwk() {
    let login = Login::new().sound();
    let header = r#"{"alg":"HS256","kid":"op-key","typ":"JWT"}"#;
    let key = Value::Object(login.jwks().keys()[0].to_object()).to_string();
    let mac = hmac_sha256(key.as_bytes(), login.signing_input(header).as_bytes());
    let refusal = login.refuse(&login.with_op(header, &mac));
    assert!(unsupported(&refusal, "HS256"), "{refusal:?}");
}

#[test]
fn op_hs384_and_hs512() {
    let login = Login::new().sound();
    for alg in ["HS384", "HS512"] {
        let header = format!(r#"{{"alg":"{alg}","kid":"op-key","typ":"JWT"}}"#);
        let refusal = login.refuse(&login.with_op(&header, &[0; 48]));
        assert!(unsupported(&refusal, alg), "{refusal:?}");
    }
}

#[test]
fn op_other_algorithm_names() {
    let login = Login::new().sound();
    for alg in [
        "RS384", "RS512", "ES384", "ES512", "PS384", "Ed25519", "rs256", "es256", "RS256 ",
        "ECDH-ES",
    ] {
        let header = format!(r#"{{"alg":"{alg}","kid":"op-key","typ":"JWT"}}"#);
        let refusal = login.refuse(&login.with_op(&header, &[1; 64]));
        assert!(unsupported(&refusal, alg), "{alg}: {refusal:?}");
    }
}

#[test]
fn op_alg_missing() {
    let login = Login::new().sound();
    let refusal = login.refuse(&login.with_op(r#"{"kid":"op-key","typ":"JWT"}"#, &[1; 64]));
    assert!(
        matches!(
            refusal,
            Refusal::Verify(VerifyError::OpAlgorithm(JwsError::MissingAlgorithm))
        ),
        "{refusal:?}"
    );
}

#[test]
fn op_alg_not_a_string() {
    let login = Login::new().sound();
    let refusal =
        login.refuse(&login.with_op(r#"{"alg":["ES256"],"kid":"op-key","typ":"JWT"}"#, &[1; 64]));
    assert!(
        matches!(
            refusal,
            Refusal::Parse(PkTokenError::Jws {
                error: JwsError::HeaderMemberType("alg"),
                ..
            })
        ),
        "{refusal:?}"
    );
}

/// An attacker's ES256 signature under a header claiming RS256, against an RS256 JWKS key.
#[test]
fn op_rs256_header_over_an_es256_signature() {
    let login = Login::rsa().sound();
    let attacker = es_key();
    let header = r#"{"alg":"RS256","kid":"op-key","typ":"JWT"}"#;
    let sig = attacker
        .sign(login.signing_input(header).as_bytes())
        .unwrap();
    let refusal = login.refuse(&login.with_op(header, &sig));
    assert!(
        matches!(refusal, Refusal::Verify(VerifyError::OpSignature(_))),
        "{refusal:?}"
    );
}

/// ES256 claimed in the header while the JWKS key under that kid is RSA.
#[test]
fn op_es256_header_against_an_rsa_jwks_key() {
    let login = Login::rsa().sound();
    let attacker = es_key();
    let header = r#"{"alg":"ES256","kid":"op-key","typ":"JWT"}"#;
    let sig = attacker
        .sign(login.signing_input(header).as_bytes())
        .unwrap();
    let refusal = login.refuse(&login.with_op(header, &sig));
    assert!(
        matches!(
            refusal,
            Refusal::Verify(VerifyError::KeyAlgorithmMismatch {
                token_alg: Algorithm::Es256,
                ..
            })
        ),
        "{refusal:?}"
    );
}

/// RS256 claimed in the header while the JWKS key is EC.
#[test]
fn op_rs256_header_against_an_ec_jwks_key() {
    let login = Login::new().sound();
    let attacker = rsa_key2();
    let header = r#"{"alg":"RS256","kid":"op-key","typ":"JWT"}"#;
    let sig = attacker
        .sign(login.signing_input(header).as_bytes())
        .unwrap();
    let refusal = login.refuse(&login.with_op(header, &sig));
    assert!(
        matches!(
            refusal,
            Refusal::Verify(VerifyError::KeyAlgorithmMismatch {
                token_alg: Algorithm::Rs256,
                ..
            })
        ),
        "{refusal:?}"
    );
}

/// PS256 in the header over the OP's own PKCS#1 v1.5 signature, JWKS key marked RS256.
#[test]
fn op_ps256_header_over_an_rs256_signature() {
    let login = Login::rsa().sound();
    let header = r#"{"alg":"PS256","kid":"op-key","typ":"JWT"}"#;
    let sig = rsa_key()
        .sign(login.signing_input(header).as_bytes())
        .unwrap();
    let refusal = login.refuse(&login.with_op(header, &sig));
    assert!(
        matches!(
            refusal,
            Refusal::Verify(VerifyError::KeyAlgorithmMismatch {
                token_alg: Algorithm::Ps256,
                ..
            })
        ),
        "{refusal:?}"
    );
}

/// The same, with the JWKS key marked PS256: the PKCS#1 v1.5 signature is not a PSS one.
#[test]
fn op_ps256_header_over_an_rs256_signature_with_a_ps256_key() {
    let login = Login::rsa().sound();
    let header = r#"{"alg":"PS256","kid":"op-key","typ":"JWT"}"#;
    let sig = rsa_key()
        .sign(login.signing_input(header).as_bytes())
        .unwrap();
    let jwks = Jwks::from_keys(vec![Jwk::new(
        rsa_key().public_key(),
        Some(KID.into()),
        Some(Algorithm::Ps256),
    )]);
    let refusal = login.refuse_with(
        &login.with_op(header, &sig),
        &provider(ExpirationPolicy::Oidc),
        &jwks,
    );
    assert!(
        matches!(
            refusal,
            Refusal::Verify(VerifyError::OpSignature(JwsError::BadSignature))
        ),
        "{refusal:?}"
    );
}

#[test]
fn op_eddsa_header_against_an_ec_jwks_key() {
    let login = Login::new().sound();
    let attacker = ed_key();
    let header = r#"{"alg":"EdDSA","kid":"op-key","typ":"JWT"}"#;
    let sig = attacker
        .sign(login.signing_input(header).as_bytes())
        .unwrap();
    let refusal = login.refuse(&login.with_op(header, &sig));
    assert!(
        matches!(
            refusal,
            Refusal::Verify(VerifyError::KeyAlgorithmMismatch {
                token_alg: Algorithm::EdDsa,
                ..
            })
        ),
        "{refusal:?}"
    );
}

/// An EC key published without `alg` counts as RS256 (Go's default), so ES256 tokens fail.
#[test]
fn jwks_ec_key_without_alg_is_not_an_es256_key() {
    let login = Login::new().sound();
    let jwks = Jwks::from_keys(vec![Jwk::new(
        login.op_key.public_key(),
        Some(KID.into()),
        None,
    )]);
    let refusal = login.refuse_with(&login.compact(), &provider(ExpirationPolicy::Oidc), &jwks);
    assert!(
        matches!(
            refusal,
            Refusal::Verify(VerifyError::KeyAlgorithmMismatch { .. })
        ),
        "{refusal:?}"
    );
}

/// GQ256 claimed for an ES256-signed token: its kid does not decode to an RS256 header.
#[test]
fn op_gq256_header_on_a_non_gq_token() {
    let login = Login::new().sound();
    let parts = login.parts();
    let header = format!(r#"{{"alg":"GQ256","kid":"{}","typ":"JWT"}}"#, parts[1]);
    let refusal = login.refuse(&login.with_op(&header, &[7; 4128]));
    assert!(
        matches!(refusal, Refusal::Verify(VerifyError::GqOriginalHeader)),
        "{refusal:?}"
    );
}

#[test]
fn cic_alg_none() {
    let login = Login::new().sound();
    let mut header = login.cic_object();
    header.insert("alg".into(), "none".into());
    let refusal = login.refuse(&login.with_cic_object(&header));
    assert!(
        matches!(
            refusal,
            Refusal::Parse(PkTokenError::Cic(CicError::AlgMismatch { .. }))
        ),
        "{refusal:?}"
    );
}

#[test]
fn cic_alg_hs256_with_upk_alg_hs256() {
    let login = Login::new().sound();
    let mut header = login.cic_object();
    header.insert("alg".into(), "HS256".into());
    header.get_mut("upk").unwrap()["alg"] = "HS256".into();
    let refusal = login.refuse(&login.with_cic_object(&header));
    assert!(
        matches!(
            refusal,
            Refusal::Parse(PkTokenError::Cic(CicError::UnsupportedAlgorithm(_)))
        ),
        "{refusal:?}"
    );
}

#[test]
fn cic_alg_differs_from_upk_alg() {
    let login = Login::new().sound();
    let mut header = login.cic_object();
    header.insert("alg".into(), "EdDSA".into());
    let refusal = login.refuse(&login.with_cic_object(&header));
    assert!(
        matches!(
            refusal,
            Refusal::Parse(PkTokenError::Cic(CicError::AlgMismatch { .. }))
        ),
        "{refusal:?}"
    );
}

/// An EC upk relabelled EdDSA in both places: the key type does not fit.
#[test]
fn cic_upk_key_type_does_not_fit_alg() {
    let login = Login::new().sound();
    let mut header = login.cic_object();
    header.insert("alg".into(), "EdDSA".into());
    header.get_mut("upk").unwrap()["alg"] = "EdDSA".into();
    let refusal = login.refuse(&login.with_cic_object(&header));
    assert!(
        matches!(refusal, Refusal::Parse(PkTokenError::Cic(_))),
        "{refusal:?}"
    );
}
