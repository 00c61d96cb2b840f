//! Tokens made by opk-core verify in opk-core, and their bytes are laid out as the spec says
//! (wire-format.md §2.2, §3.1, §3.4), checked by recomputing everything independently.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)] // test code: a panic is a failure

use opk_core::b64;
use opk_core::cic::CicHeader;
use opk_core::jwk::{Jwk, Jwks};
use opk_core::jws::{Algorithm, Jws, SigningKey};
use opk_core::pktoken::PkToken;
use opk_core::verify::{Commitment, ExpirationPolicy, Provider, VerifyError};
use p256::elliptic_curve::Generate as _;
use sha3::Digest as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const ISSUER: &str = "https://op.example";
const CLIENT_ID: &str = "client-1";
const IAT: i64 = 1_795_666_534;

fn rsa_op_key() -> SigningKey {
    let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
    SigningKey::Rsa(Box::new(rsa::PrivateKey::new(&mut rng, 2048).unwrap()))
}

fn id_token(op_key: &SigningKey, nonce: &str, exp: i64) -> Jws {
    let payload = serde_json::json!({
        "iss": ISSUER, "sub": "user-1", "aud": CLIENT_ID, "exp": exp, "iat": IAT,
        "nonce": nonce, "email": "alice@example.com", "email_verified": true
    });
    let header = format!(
        r#"{{"alg":"{}","kid":"op-key","typ":"JWT"}}"#,
        op_key.algorithm()
    );
    Jws::sign(&header, &b64::encode_url(payload.to_string()), op_key).unwrap()
}

fn jwks_for(op_key: &SigningKey) -> Jwks {
    Jwks::from_keys(vec![Jwk::new(
        op_key.public_key(),
        Some("op-key".into()),
        Some(op_key.algorithm()),
    )])
}

fn login(user_key: &SigningKey, op_key: &SigningKey, exp: i64) -> PkToken {
    let cic = CicHeader::generate(user_key, &[]).unwrap();
    let op = id_token(op_key, cic.commitment(), exp);
    let cic_jws = cic.sign(op.payload_segment(), user_key).unwrap();
    PkToken::from_signatures(op, cic_jws).unwrap()
}

fn at(seconds: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(u64::try_from(seconds).unwrap())
}

#[test]
fn made_tokens_verify_and_are_laid_out_as_specified() {
    let op_keys = [
        rsa_op_key(),
        SigningKey::EcdsaP256(p256::ecdsa::SigningKey::generate()),
    ];
    let user_keys = [
        SigningKey::EcdsaP256(p256::ecdsa::SigningKey::generate()),
        SigningKey::Ed25519(ed25519_dalek::SigningKey::generate(
            &mut rand_core::UnwrapErr(getrandom::SysRng),
        )),
    ];
    for op_key in &op_keys {
        for user_key in &user_keys {
            let token = login(user_key, op_key, IAT + 3600);
            let provider = Provider::new(ISSUER, CLIENT_ID, ExpirationPolicy::Oidc);
            let verified = token
                .verify_at(at(IAT + 60), &provider, &jwks_for(op_key))
                .unwrap();
            assert_eq!(verified.upk(), &user_key.public_key());

            // Compact layout: payload:opHdr:opSig:cicHdr:cicSig, no trailing colon.
            let compact = token.to_compact();
            let parts: Vec<&str> = compact.split(':').collect();
            assert_eq!(parts.len(), 5);
            assert_eq!(parts[0], token.payload_segment());
            assert!(!compact.ends_with(':') && !compact.contains('.'));
            assert_eq!(PkToken::from_compact(&compact).unwrap(), token);

            // The CIC header is canonical JSON with exactly alg, rz, typ, upk, and its
            // SHA3-256 is the nonce the OP signed.
            let cic_header = b64::decode_url_strict(parts[3]).unwrap();
            let cic_text = String::from_utf8(cic_header.clone()).unwrap();
            let alg = user_key.algorithm().as_str();
            assert!(
                cic_text.starts_with(&format!(r#"{{"alg":"{alg}","rz":""#)),
                "{cic_text}"
            );
            let value: serde_json::Value = serde_json::from_slice(&cic_header).unwrap();
            let rz = value["rz"].as_str().unwrap();
            assert_eq!(rz.len(), 64);
            assert!(
                rz.bytes()
                    .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte))
            );
            assert_eq!(value["typ"], "CIC");
            assert_eq!(value["upk"]["alg"], alg);
            assert_eq!(value.as_object().unwrap().len(), 4);
            let nonce = b64::encode_url(sha3::Sha3_256::digest(&cic_header));
            assert_eq!(token.claims().nonce(), Some(nonce.as_str()));

            // JSON form round trip.
            assert_eq!(PkToken::from_json(&token.to_json()).unwrap(), token);
        }
    }
}

#[test]
fn expiration_policies() {
    let op_key = SigningKey::EcdsaP256(p256::ecdsa::SigningKey::generate());
    let user_key = SigningKey::EcdsaP256(p256::ecdsa::SigningKey::generate());
    let token = login(&user_key, &op_key, IAT + 3600);
    let jwks = jwks_for(&op_key);
    let check = |policy: ExpirationPolicy, now: i64| {
        token.verify_at(at(now), &Provider::new(ISSUER, CLIENT_ID, policy), &jwks)
    };
    assert!(check(ExpirationPolicy::Oidc, IAT + 3600).is_ok());
    assert!(matches!(
        check(ExpirationPolicy::Oidc, IAT + 3601),
        Err(VerifyError::Expired { .. })
    ));
    // Max-age policies look at iat and ignore exp.
    assert!(check(ExpirationPolicy::MaxAge12h, IAT + 12 * 3600).is_ok());
    assert!(matches!(
        check(ExpirationPolicy::MaxAge12h, IAT + 12 * 3600 + 1),
        Err(VerifyError::Expired { .. })
    ));
    assert!(check(ExpirationPolicy::MaxAge24h, IAT + 24 * 3600).is_ok());
    assert!(check(ExpirationPolicy::MaxAge48h, IAT + 48 * 3600).is_ok());
    assert!(check(ExpirationPolicy::MaxAge1Week, IAT + 7 * 24 * 3600).is_ok());
    assert!(matches!(
        check(ExpirationPolicy::MaxAge1Week, IAT + 7 * 24 * 3600 + 1),
        Err(VerifyError::Expired { .. })
    ));
    assert!(check(ExpirationPolicy::Never, i64::from(i32::MAX)).is_ok());
    assert!(matches!(
        check(ExpirationPolicy::OidcRefreshed, IAT + 3601),
        Err(VerifyError::Expired { .. })
    ));
}

#[test]
fn refreshed_token_extends_oidc_refreshed_and_must_be_genuine() {
    let op_key = SigningKey::EcdsaP256(p256::ecdsa::SigningKey::generate());
    let user_key = SigningKey::EcdsaP256(p256::ecdsa::SigningKey::generate());
    let jwks = jwks_for(&op_key);
    let provider = Provider::new(ISSUER, CLIENT_ID, ExpirationPolicy::OidcRefreshed);
    let token = login(&user_key, &op_key, IAT + 3600);
    let fresh = id_token(&op_key, "", IAT + 7200);
    let refreshed = token
        .clone()
        .with_refreshed_id_token(fresh.clone())
        .unwrap();
    assert!(
        refreshed
            .to_compact()
            .ends_with(&format!(".{}", fresh.to_compact()))
    );
    assert_eq!(
        PkToken::from_compact(&refreshed.to_compact()).unwrap(),
        refreshed
    );
    assert!(
        refreshed
            .verify_at(at(IAT + 7000), &provider, &jwks)
            .is_ok()
    );
    assert!(matches!(
        refreshed.verify_at(at(IAT + 7201), &provider, &jwks),
        Err(VerifyError::Expired { .. })
    ));

    // Signed by another key: refused even while the original is still valid.
    let other = SigningKey::EcdsaP256(p256::ecdsa::SigningKey::generate());
    let forged = token
        .with_refreshed_id_token(id_token(&other, "", IAT + 7200))
        .unwrap();
    assert!(matches!(
        forged.verify_at(at(IAT + 60), &provider, &jwks),
        Err(VerifyError::Refreshed(_))
    ));
}

#[test]
fn wrong_provider_settings_are_refused() {
    let op_key = SigningKey::EcdsaP256(p256::ecdsa::SigningKey::generate());
    let user_key = SigningKey::Ed25519(ed25519_dalek::SigningKey::from_bytes(&[3; 32]));
    let token = login(&user_key, &op_key, IAT + 3600);
    let jwks = jwks_for(&op_key);
    let now = at(IAT);
    let result = token.verify_at(
        now,
        &Provider::new(&format!("{ISSUER}/"), CLIENT_ID, ExpirationPolicy::Oidc),
        &jwks,
    );
    assert!(matches!(result, Err(VerifyError::IssuerMismatch { .. })));
    let result = token.verify_at(
        now,
        &Provider::new(ISSUER, "client-2", ExpirationPolicy::Oidc),
        &jwks,
    );
    assert!(matches!(result, Err(VerifyError::AudienceMismatch(_))));
    // A JWKS entry without alg means RS256, which an EC key cannot be (§5.4).
    let no_alg = Jwks::from_keys(vec![Jwk::new(
        op_key.public_key(),
        Some("op-key".into()),
        None,
    )]);
    let result = token.verify_at(
        now,
        &Provider::new(ISSUER, CLIENT_ID, ExpirationPolicy::Oidc),
        &no_alg,
    );
    assert!(matches!(
        result,
        Err(VerifyError::KeyAlgorithmMismatch {
            token_alg: Algorithm::Es256,
            ..
        })
    ));
    // A nonce that commits to another key.
    let other_cic = CicHeader::generate(&user_key, &[]).unwrap();
    let op = id_token(&op_key, other_cic.commitment(), IAT + 3600);
    let cic = CicHeader::generate(&user_key, &[]).unwrap();
    let mismatched = PkToken::from_signatures(
        op.clone(),
        cic.sign(op.payload_segment(), &user_key).unwrap(),
    )
    .unwrap();
    let result = mismatched.verify_at(
        now,
        &Provider::new(ISSUER, CLIENT_ID, ExpirationPolicy::Oidc),
        &jwks,
    );
    assert_eq!(result.err(), Some(VerifyError::CommitmentMismatch("nonce")));
}

fn rsa_public(op_key: &SigningKey) -> rsa::PublicKey {
    match op_key.public_key() {
        opk_core::jwk::PublicKey::Rsa(key) => key,
        _ => panic!("not an RSA key"),
    }
}

fn signed_token(op_key: &SigningKey, issuer: &str, aud: serde_json::Value) -> Jws {
    let payload = serde_json::json!({"iss": issuer, "sub": "repo:acme/app:ref:refs/heads/main", "aud": aud, "exp": IAT + 3600, "iat": IAT});
    Jws::sign(
        r#"{"alg":"RS256","kid":"op-key","typ":"JWT"}"#,
        &b64::encode_url(payload.to_string()),
        op_key,
    )
    .unwrap()
}

/// GitHub and Forgejo Actions: the commitment is `aud`, and only GQ256 is accepted (§3.5).
#[test]
fn audience_commitment_requires_gq() {
    const GITHUB: &str = "https://token.actions.githubusercontent.com";
    let op_key = rsa_op_key();
    let user_key = SigningKey::EcdsaP256(p256::ecdsa::SigningKey::generate());
    let jwks = jwks_for(&op_key);
    let provider = Provider::new(GITHUB, "unused-client-id", ExpirationPolicy::Oidc);
    let cic = CicHeader::generate(&user_key, &[]).unwrap();
    let id_token = signed_token(&op_key, GITHUB, cic.commitment().into());
    let gq_token = Jws::parse(
        &opk_core::gq::sign_id_token(&id_token.to_compact(), &rsa_public(&op_key), &[]).unwrap(),
    )
    .unwrap();
    let assemble = |op: Jws| {
        PkToken::from_signatures(
            op.clone(),
            cic.sign(op.payload_segment(), &user_key).unwrap(),
        )
        .unwrap()
    };
    assert!(
        assemble(gq_token)
            .verify_at(at(IAT), &provider, &jwks)
            .is_ok()
    );
    assert_eq!(
        assemble(id_token)
            .verify_at(at(IAT), &provider, &jwks)
            .err(),
        Some(VerifyError::GqRequired)
    );
    // An array aud never satisfies the aud commitment (openpubkey#373 panicked here).
    let array = signed_token(&op_key, GITHUB, serde_json::json!([cic.commitment()]));
    let array_gq = Jws::parse(
        &opk_core::gq::sign_id_token(&array.to_compact(), &rsa_public(&op_key), &[]).unwrap(),
    )
    .unwrap();
    assert_eq!(
        assemble(array_gq)
            .verify_at(at(IAT), &provider, &jwks)
            .err(),
        Some(VerifyError::CommitmentMismatch("aud"))
    );
}

/// GitLab CI: the commitment is the GQ header's `cic`, covered by the GQ signature since
/// openpubkey v0.25 (#379), and `aud` carries the `OPENPUBKEY-PKTOKEN:` prefix.
#[test]
fn gq_bound_commitment() {
    const GITLAB: &str = "https://gitlab.example";
    let op_key = rsa_op_key();
    let user_key = SigningKey::Ed25519(ed25519_dalek::SigningKey::from_bytes(&[5; 32]));
    let jwks = jwks_for(&op_key);
    let provider = Provider::new(GITLAB, "unused", ExpirationPolicy::Oidc).with_commitment(
        Commitment::GqBound {
            audience_prefix: "OPENPUBKEY-PKTOKEN:".into(),
        },
    );
    let cic = CicHeader::generate(&user_key, &[]).unwrap();
    let id_token = signed_token(&op_key, GITLAB, "OPENPUBKEY-PKTOKEN:project-1".into());
    let gq_with = |commitment: &str| {
        let op = Jws::parse(
            &opk_core::gq::sign_id_token(
                &id_token.to_compact(),
                &rsa_public(&op_key),
                &[("cic", commitment)],
            )
            .unwrap(),
        )
        .unwrap();
        PkToken::from_signatures(
            op.clone(),
            cic.sign(op.payload_segment(), &user_key).unwrap(),
        )
        .unwrap()
    };
    assert!(
        gq_with(cic.commitment())
            .verify_at(at(IAT), &provider, &jwks)
            .is_ok()
    );
    let other = CicHeader::generate(&user_key, &[]).unwrap();
    assert_eq!(
        gq_with(other.commitment())
            .verify_at(at(IAT), &provider, &jwks)
            .err(),
        Some(VerifyError::CommitmentMismatch("gq header cic"))
    );
    // Swapping the outer header's cic after signing breaks the GQ signature (#379).
    let genuine = gq_with(other.commitment());
    let swapped_header = {
        let mut header = genuine.op().header().clone();
        header.insert("cic".into(), cic.commitment().into());
        b64::encode_url(serde_json::Value::Object(header).to_string())
    };
    let swapped = Jws::from_segments(
        &swapped_header,
        genuine.payload_segment(),
        genuine.op().signature_segment(),
    )
    .unwrap();
    let swapped = PkToken::from_signatures(
        swapped,
        cic.sign(genuine.payload_segment(), &user_key).unwrap(),
    )
    .unwrap();
    assert!(matches!(
        swapped.verify_at(at(IAT), &provider, &jwks),
        Err(VerifyError::OpSignature(_))
    ));
}

/// Each failure names the check that failed, and the checks are listed in the order
/// `verify_at` makes them: a token failing two checks reports the earlier one.
#[test]
fn failures_name_their_check_in_verify_order() {
    use opk_core::verify::VerifyCheck;
    let op_key = SigningKey::EcdsaP256(p256::ecdsa::SigningKey::generate());
    let user_key = SigningKey::EcdsaP256(p256::ecdsa::SigningKey::generate());
    let token = login(&user_key, &op_key, IAT + 3600);
    let jwks = jwks_for(&op_key);
    let other_jwks = jwks_for(&SigningKey::EcdsaP256(p256::ecdsa::SigningKey::generate()));
    let provider =
        |issuer: &str, client_id: &str| Provider::new(issuer, client_id, ExpirationPolicy::Oidc);
    let failed = |provider: Provider, jwks: &Jwks, now: i64| {
        token
            .verify_at(at(now), &provider, jwks)
            .unwrap_err()
            .check()
    };
    let late = IAT + 7200;
    // Each row also fails every later check (expired), and reports only its own.
    for (provider, jwks, expected) in [
        (
            provider("https://other.example", CLIENT_ID),
            &jwks,
            VerifyCheck::Issuer,
        ),
        (provider(ISSUER, "client-2"), &jwks, VerifyCheck::Audience),
        (
            provider(ISSUER, CLIENT_ID),
            &other_jwks,
            VerifyCheck::OpSignature,
        ),
        (provider(ISSUER, CLIENT_ID), &jwks, VerifyCheck::Expiration),
    ] {
        assert_eq!(failed(provider, jwks, late), expected);
    }
    // A nonce that commits to another CIC, checked after the OP signature, before expiration.
    let op = id_token(
        &op_key,
        CicHeader::generate(&user_key, &[]).unwrap().commitment(),
        IAT + 3600,
    );
    let cic = CicHeader::generate(&user_key, &[]).unwrap();
    let mismatched = PkToken::from_signatures(
        op.clone(),
        cic.sign(op.payload_segment(), &user_key).unwrap(),
    )
    .unwrap();
    assert_eq!(
        mismatched
            .verify_at(at(late), &provider(ISSUER, CLIENT_ID), &jwks)
            .unwrap_err()
            .check(),
        VerifyCheck::Commitment
    );
    // A forged refreshed token fails before expiration is looked at.
    let forged = token
        .clone()
        .with_refreshed_id_token(id_token(
            &SigningKey::EcdsaP256(p256::ecdsa::SigningKey::generate()),
            "",
            IAT + 7200,
        ))
        .unwrap();
    let refreshed_provider = Provider::new(ISSUER, CLIENT_ID, ExpirationPolicy::OidcRefreshed);
    assert_eq!(
        forged
            .verify_at(at(late), &refreshed_provider, &jwks)
            .unwrap_err()
            .check(),
        VerifyCheck::RefreshedToken
    );
}
