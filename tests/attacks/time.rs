//! Expired and future tokens under each expiration policy, and refreshed ID tokens that are
//! not what they claim (§5.5, §5.6).

use crate::*;

fn refuse_at(login: &Login, compact: &str, policy: ExpirationPolicy, when: i64) -> VerifyError {
    let token = PkToken::from_compact(compact).unwrap();
    match token.verify_at(at(when), &provider(policy), &login.jwks()) {
        Err(error) => error,
        Ok(_) => panic!("ATTACK ACCEPTED at {when} under {policy}"),
    }
}

#[test]
fn expired_under_oidc() {
    let login = Login::new().sound();
    let error = refuse_at(&login, &login.compact(), ExpirationPolicy::Oidc, EXP + 1);
    assert!(
        matches!(
            error,
            VerifyError::Expired {
                policy: ExpirationPolicy::Oidc,
                deadline: EXP,
                ..
            }
        ),
        "{error:?}"
    );
}

#[test]
fn too_old_under_each_max_age_policy() {
    let login = Login::new().sound();
    for (policy, age) in [
        (ExpirationPolicy::MaxAge12h, 12 * 3600),
        (ExpirationPolicy::MaxAge24h, 24 * 3600),
        (ExpirationPolicy::MaxAge48h, 48 * 3600),
        (ExpirationPolicy::MaxAge1Week, 7 * 24 * 3600),
    ] {
        let error = refuse_at(&login, &login.compact(), policy, IAT + age + 1);
        assert!(
            matches!(error, VerifyError::Expired { deadline, .. } if deadline == IAT + age),
            "{policy}: {error:?}"
        );
    }
}

/// A far-future `exp` does not extend a max-age policy, which counts from `iat`.
#[test]
fn far_future_exp_does_not_rescue_an_old_iat() {
    let login = Login::new().sound();
    let compact = login.mint_edited(|p| p["exp"] = (IAT + 10 * 365 * 86400).into());
    let error = refuse_at(
        &login,
        &compact,
        ExpirationPolicy::MaxAge24h,
        IAT + 24 * 3600 + 1,
    );
    assert!(matches!(error, VerifyError::Expired { .. }), "{error:?}");
}

/// An `iat` in the future would stretch a max-age window beyond its length.
#[test]
fn future_iat_under_max_age() {
    let login = Login::new().sound();
    let compact = login.mint_edited(|p| p["iat"] = (IAT + 30 * 86400).into());
    let error = refuse_at(&login, &compact, ExpirationPolicy::MaxAge24h, IAT + 60);
    assert!(
        matches!(error, VerifyError::IssuedInFuture { .. }),
        "{error:?}"
    );
}

#[test]
fn future_iat_under_oidc() {
    let login = Login::new().sound();
    let compact = login.mint_edited(|p| p["iat"] = (IAT + 3600).into());
    let error = refuse_at(&login, &compact, ExpirationPolicy::Oidc, IAT + 60);
    assert!(
        matches!(error, VerifyError::IssuedInFuture { .. }),
        "{error:?}"
    );
}

#[test]
fn exp_zero_or_negative() {
    let login = Login::new().sound();
    for exp in [0, -1, i64::MIN] {
        let compact = login.mint_edited(|p| p["exp"] = exp.into());
        let error = refuse_at(&login, &compact, ExpirationPolicy::Oidc, IAT + 60);
        assert!(
            matches!(error, VerifyError::MissingTime("exp")),
            "{exp}: {error:?}"
        );
    }
}

#[test]
fn exp_missing_under_oidc() {
    let login = Login::new().sound();
    let compact = login.mint_edited(|p| {
        p.as_object_mut().unwrap().remove("exp");
    });
    let error = refuse_at(&login, &compact, ExpirationPolicy::Oidc, IAT + 60);
    assert!(
        matches!(error, VerifyError::MissingTime("exp")),
        "{error:?}"
    );
}

#[test]
fn iat_missing_or_negative_under_max_age() {
    let login = Login::new().sound();
    for iat in [Some(0), Some(-86400), None] {
        let compact = login.mint_edited(|p| match iat {
            Some(iat) => p["iat"] = iat.into(),
            None => {
                p.as_object_mut().unwrap().remove("iat");
            }
        });
        let error = refuse_at(&login, &compact, ExpirationPolicy::MaxAge12h, IAT + 60);
        assert!(
            matches!(error, VerifyError::MissingTime("iat")),
            "{iat:?}: {error:?}"
        );
    }
}

/// `iat` near `i64::MAX`: the deadline overflows; it must not wrap into the past or future.
#[test]
fn iat_overflowing_the_deadline() {
    let login = Login::new().sound();
    let compact = login.mint_edited(|p| p["iat"] = (i64::MAX - 10).into());
    let token = PkToken::from_compact(&compact).unwrap();
    let result = token.verify_at(
        at(IAT + 60),
        &provider(ExpirationPolicy::MaxAge1Week),
        &login.jwks(),
    );
    assert!(
        matches!(
            result,
            Err(VerifyError::TimeOverflow | VerifyError::IssuedInFuture { .. })
        ),
        "{result:?}"
    );
}

#[test]
fn expired_under_oidc_refreshed_without_a_refreshed_token() {
    let login = Login::new().sound();
    let error = refuse_at(
        &login,
        &login.compact(),
        ExpirationPolicy::OidcRefreshed,
        EXP + 1,
    );
    assert!(matches!(error, VerifyError::Expired { .. }), "{error:?}");
}

fn refreshed(login: &Login, key: &SigningKey, edit: impl FnOnce(&mut Value)) -> String {
    let mut payload = login.payload.clone();
    payload["iat"] = (EXP - 60).into();
    payload["exp"] = (EXP + 3600).into();
    payload.as_object_mut().unwrap().remove("nonce");
    edit(&mut payload);
    let fresh = sign(&op_header(key), &payload, key);
    format!("{}.{}", login.compact(), fresh.to_compact())
}

#[test]
fn refreshed_token_of_another_subject() {
    let login = Login::new().sound();
    let compact = refreshed(&login, &login.op_key, |p| p["sub"] = "admin".into());
    let error = refuse_at(&login, &compact, ExpirationPolicy::OidcRefreshed, EXP + 60);
    assert!(
        matches!(error, VerifyError::RefreshedMismatch("sub differs")),
        "{error:?}"
    );
}

#[test]
fn refreshed_token_signed_by_another_key() {
    let login = Login::new().sound();
    let compact = refreshed(&login, &es_key(), |_| {});
    let error = refuse_at(&login, &compact, ExpirationPolicy::OidcRefreshed, EXP + 60);
    assert!(matches!(error, VerifyError::Refreshed(_)), "{error:?}");
}

#[test]
fn refreshed_token_from_another_issuer() {
    let login = Login::new().sound();
    let compact = refreshed(&login, &login.op_key, |p| {
        p["iss"] = "https://evil.example".into()
    });
    let error = refuse_at(&login, &compact, ExpirationPolicy::OidcRefreshed, EXP + 60);
    assert!(
        matches!(error, VerifyError::Refreshed(ref inner) if matches!(**inner, VerifyError::IssuerMismatch { .. })),
        "{error:?}"
    );
}

#[test]
fn refreshed_token_for_another_client() {
    let login = Login::new().sound();
    let compact = refreshed(&login, &login.op_key, |p| p["aud"] = "client-2".into());
    let error = refuse_at(&login, &compact, ExpirationPolicy::OidcRefreshed, EXP + 60);
    assert!(
        matches!(error, VerifyError::Refreshed(ref inner) if matches!(**inner, VerifyError::AudienceMismatch(_))),
        "{error:?}"
    );
}

#[test]
fn refreshed_token_issued_before_the_original() {
    let login = Login::new().sound();
    let compact = refreshed(&login, &login.op_key, |p| p["iat"] = (IAT - 1).into());
    let error = refuse_at(&login, &compact, ExpirationPolicy::OidcRefreshed, EXP + 60);
    assert!(
        matches!(error, VerifyError::RefreshedMismatch(_)),
        "{error:?}"
    );
}

#[test]
fn refreshed_token_itself_expired() {
    let login = Login::new().sound();
    let compact = refreshed(&login, &login.op_key, |_| {});
    let error = refuse_at(
        &login,
        &compact,
        ExpirationPolicy::OidcRefreshed,
        EXP + 3601,
    );
    assert!(matches!(error, VerifyError::Expired { .. }), "{error:?}");
}

#[test]
fn refreshed_token_with_alg_none() {
    let login = Login::new().sound();
    let mut payload = login.payload.clone();
    payload["exp"] = (EXP + 3600).into();
    let fresh = format!(
        "{}.{}.",
        b64::encode_url(r#"{"alg":"none","typ":"JWT"}"#),
        b64::encode_url(payload.to_string())
    );
    let compact = format!("{}.{fresh}", login.compact());
    let error = refuse_at(&login, &compact, ExpirationPolicy::OidcRefreshed, EXP + 60);
    assert!(matches!(error, VerifyError::Refreshed(_)), "{error:?}");
}
