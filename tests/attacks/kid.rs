//! `kid` tricks: missing, unknown, duplicated, path-like, wrong type, pointing at another key.

use crate::*;
use opk_core::jwk::KeyLookupError;
use opk_core::jws::JwsError;

fn two_key_jwks(login: &Login) -> Jwks {
    let other = es_key();
    Jwks::from_keys(vec![
        Jwk::new(
            login.op_key.public_key(),
            Some(KID.into()),
            Some(login.op_key.algorithm()),
        ),
        Jwk::new(
            other.public_key(),
            Some("other".into()),
            Some(other.algorithm()),
        ),
    ])
}

/// Re-signs the OP part with the real OP key under `header` (an OP that emits it).
fn op_signed(login: &Login, header: &str) -> String {
    let sig = login
        .op_key
        .sign(login.signing_input(header).as_bytes())
        .unwrap();
    login.with_op(header, &sig)
}

#[test]
fn kid_missing_with_several_keys() {
    let login = Login::new().sound();
    let token = op_signed(&login, r#"{"alg":"ES256","typ":"JWT"}"#);
    let refusal = login.refuse_with(
        &token,
        &provider(ExpirationPolicy::Oidc),
        &two_key_jwks(&login),
    );
    assert!(
        matches!(refusal, Refusal::Verify(VerifyError::KeyLookup(_))),
        "{refusal:?}"
    );
}

#[test]
fn kid_unknown() {
    let login = Login::new().sound();
    let token = op_signed(
        &login,
        r#"{"alg":"ES256","kid":"rotated-away","typ":"JWT"}"#,
    );
    let refusal = login.refuse(&token);
    assert!(
        matches!(
            refusal,
            Refusal::Verify(VerifyError::KeyLookup(KeyLookupError::UnknownKid(_)))
        ),
        "{refusal:?}"
    );
}

#[test]
fn kid_empty_string_with_several_keys() {
    let login = Login::new().sound();
    let token = op_signed(&login, r#"{"alg":"ES256","kid":"","typ":"JWT"}"#);
    let refusal = login.refuse_with(
        &token,
        &provider(ExpirationPolicy::Oidc),
        &two_key_jwks(&login),
    );
    assert!(
        matches!(refusal, Refusal::Verify(VerifyError::KeyLookup(_))),
        "{refusal:?}"
    );
}

#[test]
fn kid_path_like() {
    let login = Login::new().sound();
    for kid in [
        "../../../../etc/passwd",
        "/etc/opk/providers",
        "op-key/../op-key",
        "op-key\u{0}",
        "file:///dev/zero",
    ] {
        let header = serde_json::json!({"alg": "ES256", "kid": kid, "typ": "JWT"}).to_string();
        let refusal = login.refuse(&op_signed(&login, &header));
        assert!(
            matches!(refusal, Refusal::Verify(VerifyError::KeyLookup(_))),
            "{kid}: {refusal:?}"
        );
    }
}

#[test]
fn kid_not_a_string() {
    let login = Login::new().sound();
    for kid in ["1", "null", "[\"op-key\"]", "{\"kid\":\"op-key\"}"] {
        let header = format!(r#"{{"alg":"ES256","kid":{kid},"typ":"JWT"}}"#);
        let refusal = login.refuse(&op_signed(&login, &header));
        assert!(
            matches!(
                refusal,
                Refusal::Parse(PkTokenError::Jws {
                    error: JwsError::HeaderMemberType("kid"),
                    ..
                })
            ),
            "{kid}: {refusal:?}"
        );
    }
}

/// A duplicated `kid` member: the verifier must use the same one for lookup that a signer
/// would have meant. Here an attacker's signature, the real kid given last.
#[test]
fn kid_duplicated_member_with_the_real_kid_last() {
    let login = Login::new().sound();
    let attacker = es_key();
    let header = r#"{"alg":"ES256","kid":"attacker","kid":"op-key","typ":"JWT"}"#;
    let sig = attacker
        .sign(login.signing_input(header).as_bytes())
        .unwrap();
    let refusal = login.refuse(&login.with_op(header, &sig));
    assert!(
        matches!(
            refusal,
            Refusal::Verify(VerifyError::OpSignature(JwsError::BadSignature))
        ),
        "{refusal:?}"
    );
}

/// The attacker's key is in the JWKS under `attacker`; the kid is duplicated with it first.
#[test]
fn kid_duplicated_member_with_the_real_kid_first() {
    let login = Login::new().sound();
    let attacker = es_key();
    let header = r#"{"alg":"ES256","kid":"op-key","kid":"attacker","typ":"JWT"}"#;
    let sig = attacker
        .sign(login.signing_input(header).as_bytes())
        .unwrap();
    let refusal = login.refuse(&login.with_op(header, &sig));
    assert!(
        matches!(refusal, Refusal::Verify(VerifyError::KeyLookup(_))),
        "{refusal:?}"
    );
}

/// A genuine OP signature relabelled with the kid of another key in the same JWKS.
#[test]
fn kid_of_another_key_in_the_jwks() {
    let login = Login::new().sound();
    let parts = login.parts();
    let header = r#"{"alg":"ES256","kid":"other","typ":"JWT"}"#;
    let sig = b64::decode_url_strict(&parts[2]).unwrap();
    let refusal = login.refuse_with(
        &login.with_op(header, &sig),
        &provider(ExpirationPolicy::Oidc),
        &two_key_jwks(&login),
    );
    assert!(
        matches!(
            refusal,
            Refusal::Verify(VerifyError::OpSignature(JwsError::BadSignature))
        ),
        "{refusal:?}"
    );
}
