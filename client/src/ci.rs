//! CI/CD logins (behaviour.md §2.2.2, wire-format.md §3.5, §4): GitHub and Forgejo Actions
//! fetch an ID token whose `aud` is the CIC commitment from the runner's token endpoint; GitLab
//! CI reads one from `$OPENPUBKEY_JWT` and binds the commitment through the GQ header's `cic`.
//! Both are GQ256-signed so the OP's RSA signature, a bearer credential, never leaves the job.

use crate::login::{LoginError, discover};
use opk_core::cic::CicHeader;
use opk_core::gq;
use opk_core::jwk::PublicKey;
use opk_core::jws::{Jws, SigningKey};
use opk_core::oidc::{form_body, form_decode};
use opk_core::pktoken::PkToken;
use opk_core::verify::{Commitment, ExpirationPolicy, Provider};
use opk_net::deadline::Deadline;
use opk_net::http::HttpClient;
use std::time::{Duration, SystemTime};

/// The `aud` prefix GitLab CI tokens for opkssh carry.
pub const GITLAB_AUDIENCE_PREFIX: &str = "OPENPUBKEY-PKTOKEN:";

/// `request_url` with `audience=<commitment>` replacing any `audience`, the query re-encoded
/// with sorted keys (Go's `url.Values.Encode`).
pub fn actions_token_url(request_url: &str, commitment: &str) -> String {
    let (base, query) = request_url.split_once('?').unwrap_or((request_url, ""));
    let mut pairs: Vec<(String, String)> = form_decode(query)
        .into_iter()
        .filter(|(name, _)| name != "audience")
        .collect();
    pairs.push(("audience".into(), commitment.to_owned()));
    pairs.sort();
    let borrowed: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    format!("{base}?{}", form_body(&borrowed))
}

fn rsa_key_for(
    http: &HttpClient,
    issuer: &str,
    id_token: &str,
) -> Result<rsa::PublicKey, LoginError> {
    let (_, jwks) = discover(http, issuer)?;
    let jws = Jws::parse(id_token)
        .map_err(|error| LoginError::Other(format!("the CI ID token is malformed: {error}")))?;
    let jwk = jwks
        .find(jws.header_str("kid"))
        .map_err(|error| LoginError::Other(format!("the CI ID token's key: {error}")))?;
    match jwk.key() {
        PublicKey::Rsa(key) => Ok(key.clone()),
        _ => Err(LoginError::Other(
            "the CI provider does not sign with RSA, so its token cannot be GQ-signed".into(),
        )),
    }
}

fn assemble(key: &SigningKey, cic: &CicHeader, gq_token: &str) -> Result<PkToken, LoginError> {
    let op = Jws::parse(gq_token).map_err(|error| LoginError::Other(error.to_string()))?;
    let cic_jws = cic
        .sign(op.payload_segment(), key)
        .map_err(|error| LoginError::Other(error.to_string()))?;
    PkToken::from_signatures(op, cic_jws).map_err(|error| LoginError::Other(error.to_string()))
}

fn check_locally(
    pk_token: &PkToken,
    provider: &Provider,
    http: &HttpClient,
) -> Result<(), LoginError> {
    let (_, jwks) = discover(http, provider.issuer())?;
    pk_token
        .verify_at(SystemTime::now(), provider, &jwks)
        .map(|_| ())
        .map_err(|error| LoginError::Other(format!("the new PK token does not verify: {error}")))
}

/// GitHub or Forgejo Actions.
///
/// # Errors
/// Any failed request or check.
pub fn login_actions(
    issuer: &str,
    request_url: &str,
    request_token: &str,
    key: &SigningKey,
    http: &HttpClient,
) -> Result<PkToken, LoginError> {
    let cic =
        CicHeader::generate(key, &[]).map_err(|error| LoginError::Other(error.to_string()))?;
    let url = actions_token_url(request_url, cic.commitment());
    let body = http.get(
        &url,
        Some(request_token),
        &Deadline::after(Duration::from_secs(30)),
    )?;
    let value: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|_| LoginError::Other("the Actions token endpoint did not answer JSON".into()))?;
    let id_token = value
        .get("value")
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| LoginError::Other("the Actions token endpoint gave no `value`".into()))?;
    let rsa = rsa_key_for(http, issuer, id_token)?;
    let gq_token = gq::sign_id_token(id_token, &rsa, &[])
        .map_err(|error| LoginError::Other(format!("GQ signing failed: {error}")))?;
    let provider = Provider::new(
        issuer,
        crate::client_config::CI_CLIENT_ID,
        ExpirationPolicy::MaxAge24h,
    );
    let pk_token = assemble(key, &cic, &gq_token)?;
    check_locally(&pk_token, &provider, http)?;
    Ok(pk_token)
}

/// GitLab CI: the token is `$OPENPUBKEY_JWT`.
///
/// # Errors
/// No token, or any failed request or check.
pub fn login_gitlab(
    issuer: &str,
    id_token: Option<&str>,
    key: &SigningKey,
    http: &HttpClient,
) -> Result<PkToken, LoginError> {
    let id_token = id_token.filter(|token| !token.is_empty()).ok_or_else(|| {
        LoginError::Other(
            "OPENPUBKEY_JWT is not set: request it in .gitlab-ci.yml with `id_tokens: \
             OPENPUBKEY_JWT: aud: OPENPUBKEY-PKTOKEN:<anything>`"
                .into(),
        )
    })?;
    let cic =
        CicHeader::generate(key, &[]).map_err(|error| LoginError::Other(error.to_string()))?;
    let rsa = rsa_key_for(http, issuer, id_token)?;
    let gq_token = gq::sign_id_token(id_token, &rsa, &[("cic", cic.commitment())])
        .map_err(|error| LoginError::Other(format!("GQ signing failed: {error}")))?;
    let provider = Provider::new(
        issuer,
        crate::client_config::CI_CLIENT_ID,
        ExpirationPolicy::MaxAge24h,
    )
    .with_commitment(Commitment::GqBound {
        audience_prefix: GITLAB_AUDIENCE_PREFIX.into(),
    });
    let pk_token = assemble(key, &cic, &gq_token)?;
    check_locally(&pk_token, &provider, http)?;
    Ok(pk_token)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn audience_replaced_and_query_sorted() {
        assert_eq!(
            actions_token_url(
                "https://x.example/idtoken?z=1&audience=old&api-version=2.0",
                "C+/="
            ),
            "https://x.example/idtoken?api-version=2.0&audience=C%2B%2F%3D&z=1"
        );
        assert_eq!(
            actions_token_url("https://x/t", "c"),
            "https://x/t?audience=c"
        );
    }
}
