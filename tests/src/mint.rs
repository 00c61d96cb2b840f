//! Minting a login without an OP: an ES256 "OP" key, a user key, a PK token for any issuer and
//! the opkssh certificate around it. For tests that need a token for an issuer they serve
//! themselves (fault injection, storms, kill loops).

use anyhow::{Result, anyhow};
use opk_core::b64;
use opk_core::cic::CicHeader;
use opk_core::jwk::{Jwk, Jwks};
use opk_core::jws::{Jws, SigningKey};
use opk_core::pktoken::PkToken;
use opk_core::sshcert::{
    CertComment, CertificateRequest, Principals, UserKeyType, build_certificate, generate_user_key,
};
use std::time::{SystemTime, UNIX_EPOCH};

/// The key id the minted OP key is published under.
pub const KID: &str = "mint-key";

/// A minted login.
pub struct Minted {
    /// The OP's signing key.
    pub op_key: SigningKey,
    /// The user's key (the certificate's key).
    pub user_key: SigningKey,
    /// The certificate line `<type> <base64>\n`.
    pub cert_line: String,
    /// The JWKS document publishing the OP key.
    pub jwks_json: String,
}

impl Minted {
    /// `(%t, %k)` as sshd passes them.
    pub fn type_and_base64(&self) -> (&str, &str) {
        let line = self.cert_line.trim_end();
        line.split_once(' ').unwrap_or((line, ""))
    }

    /// The discovery document for `issuer`, with its JWKS at `<issuer>/jwks.json`.
    pub fn discovery_json(issuer: &str) -> String {
        serde_json::json!({"issuer": issuer, "jwks_uri": format!("{issuer}/jwks.json")}).to_string()
    }
}

/// A login at `issuer` for `email`, valid for an hour from now, certificate with the default
/// principal.
///
/// # Errors
/// Key generation or signing failed.
pub fn mint(issuer: &str, client_id: &str, email: &str) -> Result<Minted> {
    mint_with(issuer, client_id, email, |_| {})
}

/// [`mint`] with the ID-token claims edited before the OP signs them (`groups`, an old `iat`,
/// a `nonce` that does not commit to the CIC…).
///
/// # Errors
/// Key generation or signing failed.
pub fn mint_with(
    issuer: &str,
    client_id: &str,
    email: &str,
    edit: impl FnOnce(&mut serde_json::Value),
) -> Result<Minted> {
    mint_with_access_token(issuer, client_id, email, None, edit)
}

/// [`mint_with`], the certificate also carrying `access_token` (the `openpubkey-act`
/// extension verify sends to the userinfo endpoint).
///
/// # Errors
/// Key generation or signing failed.
pub fn mint_with_access_token(
    issuer: &str,
    client_id: &str,
    email: &str,
    access_token: Option<&str>,
    edit: impl FnOnce(&mut serde_json::Value),
) -> Result<Minted> {
    let op_key = generate_user_key(UserKeyType::Ecdsa)?;
    let user_key = generate_user_key(UserKeyType::Ecdsa)?;
    let now = i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs())?;
    let cic = CicHeader::generate(&user_key, &[]).map_err(|error| anyhow!("{error}"))?;
    let mut payload = serde_json::json!({
        "iss": issuer, "sub": format!("sub-{email}"), "aud": client_id, "iat": now,
        "exp": now + 3600, "nonce": cic.commitment(), "email": email, "email_verified": true
    });
    edit(&mut payload);
    let op = Jws::sign(
        &format!(r#"{{"alg":"ES256","kid":"{KID}","typ":"JWT"}}"#),
        &b64::encode_url(payload.to_string()),
        &op_key,
    )?;
    let cic_jws = cic.sign(op.payload_segment(), &user_key)?;
    let token = PkToken::from_signatures(op, cic_jws)?;
    let certificate = build_certificate(CertificateRequest {
        key: &user_key,
        key_id: email,
        principals: Principals::Default,
        pk_token: &token.to_compact(),
        access_token,
    })?;
    let jwks_json = Jwks::from_keys(vec![Jwk::new(
        op_key.public_key(),
        Some(KID.into()),
        Some(op_key.algorithm()),
    )])
    .to_json();
    Ok(Minted {
        op_key,
        user_key,
        cert_line: certificate.to_line(CertComment::None),
        jwks_json,
    })
}
