//! Certificates made by opk-core, from user key to `cert-authority` material, verify through
//! the same chain as the Go ones, for every OP signature kind and user key type.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)] // test code: a panic is a failure

use opk_core::b64;
use opk_core::cic::CicHeader;
use opk_core::gq;
use opk_core::jwk::{Jwk, Jwks};
use opk_core::jws::{Jws, SigningKey};
use opk_core::pktoken::PkToken;
use opk_core::sshcert::{
    CertComment, CertificateRequest, OpksshCertificate, Principals, UserKeyType, build_certificate,
    generate_user_key,
};
use opk_core::verify::{ExpirationPolicy, Provider};
use std::time::SystemTime;

const ISSUER: &str = "http://localhost:18299";
const CLIENT_ID: &str = "opkssh-test-client";

fn op_key() -> SigningKey {
    SigningKey::Rsa(Box::new(
        rsa::PrivateKey::new(&mut rand_core::UnwrapErr(getrandom::SysRng), 2048).unwrap(),
    ))
}

fn make_certificate(user_key: &SigningKey, op_key: &SigningKey, use_gq: bool) -> String {
    let cic = CicHeader::generate(user_key, &[]).unwrap();
    let payload = serde_json::json!({
        "iss": ISSUER, "sub": "me", "aud": CLIENT_ID, "exp": 4_102_444_800_i64, "iat": 1_795_666_534,
        "nonce": cic.commitment(), "email": "zoe@example.com", "email_verified": true
    });
    let id_token = Jws::sign(
        r#"{"alg":"RS256","kid":"kid-0","typ":"JWT"}"#,
        &b64::encode_url(payload.to_string()),
        op_key,
    )
    .unwrap();
    let op = if use_gq {
        let rsa_key = match op_key.public_key() {
            opk_core::jwk::PublicKey::Rsa(key) => key,
            _ => unreachable!(),
        };
        Jws::parse(&gq::sign_id_token(&id_token.to_compact(), &rsa_key, &[]).unwrap()).unwrap()
    } else {
        id_token
    };
    let cic_jws = cic.sign(op.payload_segment(), user_key).unwrap();
    let token = PkToken::from_signatures(op, cic_jws).unwrap();
    let certificate = build_certificate(CertificateRequest {
        key: user_key,
        key_id: "zoe@example.com",
        principals: Principals::Default,
        pk_token: &token.to_compact(),
        access_token: None,
    })
    .unwrap();
    certificate.to_line(CertComment::Default)
}

#[test]
fn our_certificates_pass_the_verify_chain() {
    let op_key = op_key();
    let jwks = Jwks::from_keys(vec![Jwk::new(
        op_key.public_key(),
        Some("kid-0".into()),
        Some(op_key.algorithm()),
    )]);
    let jwks = Jwks::from_json(jwks.to_json().as_bytes()).unwrap();
    let provider = Provider::new(ISSUER, CLIENT_ID, ExpirationPolicy::Oidc);
    for kind in [UserKeyType::Ecdsa, UserKeyType::Ed25519] {
        for use_gq in [false, true] {
            let user_key = generate_user_key(kind).unwrap();
            let line = make_certificate(&user_key, &op_key, use_gq);
            // Written as `-i` writes it: "<type> <b64> openpubkey", no newline (§6.3).
            assert!(line.ends_with(" openpubkey") && !line.ends_with('\n'));
            let certificate = OpksshCertificate::from_line(&line).unwrap();
            assert_eq!(certificate.cert_type_name(), kind.cert_type_name());
            certificate.verify_self_signature().unwrap();
            let token = PkToken::from_compact(certificate.pk_token().unwrap()).unwrap();
            let verified = token
                .verify_at(SystemTime::now(), &provider, &jwks)
                .unwrap();
            assert!(certificate.matches_upk(verified.upk()));
            assert_eq!(verified.claims().email(), Some("zoe@example.com"));
            if use_gq {
                assert_eq!(token.op().header_str("alg"), Some("GQ256"));
            }
        }
    }
}
