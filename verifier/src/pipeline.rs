//! `%u %k %t` in, one `cert-authority` line or a denial out (behaviour.md §2.4, wire-format.md
//! §6.4). Every failure is a [`Denial`] saying exactly what failed; nothing here prints.

use crate::deadline::Deadline;
use crate::http::LazyHttp;
use crate::jwks_cache::{CacheSettings, Freshness, JwksCache, KeysError, Notes};
use opk_core::pktoken::{PkToken, PkTokenError};
use opk_core::sshcert::{CertError, OpksshCertificate};
use opk_core::verify::{Provider, VerifiedPkToken, VerifyError};
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

/// The certificate types opkssh issues; any other `%t` is refused before any I/O.
pub const CERT_TYPES: [&str; 2] = [
    "ecdsa-sha2-nistp256-cert-v01@openssh.com",
    "ssh-ed25519-cert-v01@openssh.com",
];

/// What sshd hands over.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// `%u`: the account being logged into.
    pub principal: &'a str,
    /// `%k`: the certificate, base64.
    pub key_base64: &'a str,
    /// `%t`: the certificate type.
    pub key_type: &'a str,
}

/// Everything a verify needs besides the request.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The providers file, one entry per issuer.
    pub providers: Vec<Provider>,
    /// The discovery/JWKS cache.
    pub cache: CacheSettings,
    /// `env_vars` from `/etc/opk/config.yml` (proxy settings reach the HTTP client this way).
    pub env: BTreeMap<String, String>,
    /// The whole verify's time budget (default 10 s).
    pub budget: Duration,
}

/// Why a login was denied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denial {
    /// `%t` is not an opkssh certificate type.
    #[error("key type `{0}` is not an opkssh certificate type")]
    NotACertificateType(String),
    /// The certificate could not be parsed or is not self-signed.
    #[error("certificate: {0}")]
    Certificate(CertError),
    /// The `openpubkey-pkt` extension failed deserialization.
    #[error("openpubkey-pkt extension in cert failed deserialization: {0}")]
    PkToken(PkTokenError),
    /// No providers-file row has this issuer.
    #[error("unrecognized issuer: {issuer}, issuers known: {known:?}")]
    UnknownIssuer {
        /// The token's `iss`.
        issuer: String,
        /// The configured issuers.
        known: Vec<String>,
    },
    /// The OP's keys could not be had.
    #[error("failed to get OP public key: {0}")]
    Keys(KeysError),
    /// The PK token did not verify.
    #[error("{0}")]
    Verify(VerifyError),
    /// The certificate key is not the key the PK token commits to.
    #[error("public key 'upk' in the PK token does not match the certificate key")]
    KeyNotUpk,
    /// A certificate principal could be used to inject options into the sshd line (#597).
    #[error("cert contains invalid principal {0:?}")]
    InvalidPrincipal(String),
    /// The policy allowed nobody with this identity to be this principal.
    #[error("{0}")]
    Policy(String),
    /// The deadline passed.
    #[error("verify took longer than its deadline")]
    Deadline,
}

/// A verified certificate, waiting for the policy decision.
#[derive(Debug)]
pub struct Verified {
    /// The certificate.
    pub certificate: OpksshCertificate,
    /// The PK token, verified.
    pub token: VerifiedPkToken,
    /// Claims from the userinfo endpoint, when the certificate carried an access token and the
    /// endpoint answered for the same subject.
    pub userinfo: Option<serde_json::Map<String, serde_json::Value>>,
    /// How the OP keys were obtained.
    pub freshness: Freshness,
}

/// The one line sshd gets on an allow. Only [`authorize`] makes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizedKeysLine(String);

impl std::fmt::Display for AuthorizedKeysLine {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(&self.0)
    }
}

/// Runs every check up to the policy: certificate type (before any I/O), parsing,
/// self-signature, PK token, issuer, OP keys (cache first), token verification, key = upk,
/// then userinfo when an access token is present.
///
/// # Errors
/// The [`Denial`] naming the first failed check.
pub fn verify(
    request: &Request<'_>,
    settings: &Settings,
    now: SystemTime,
    notes: &mut Notes,
) -> Result<Verified, Denial> {
    if !CERT_TYPES.contains(&request.key_type) {
        return Err(Denial::NotACertificateType(request.key_type.to_owned()));
    }
    let deadline = Deadline::after(settings.budget);
    let certificate = OpksshCertificate::from_type_and_base64(request.key_type, request.key_base64)
        .map_err(Denial::Certificate)?;
    certificate
        .verify_self_signature()
        .map_err(Denial::Certificate)?;
    let token = PkToken::from_compact(certificate.pk_token().map_err(Denial::Certificate)?)
        .map_err(Denial::PkToken)?;
    let issuer = token.claims().issuer();
    let provider = settings
        .providers
        .iter()
        .find(|provider| provider.issuer() == issuer)
        .ok_or_else(|| Denial::UnknownIssuer {
            issuer: issuer.to_owned(),
            known: settings
                .providers
                .iter()
                .map(|provider| provider.issuer().to_owned())
                .collect(),
        })?;

    let http = LazyHttp::new(&settings.env);
    let cache = JwksCache::new(&settings.cache, &http);
    let kid = token.op_key_id();
    let keys = cache
        .keys_for(provider.issuer(), kid.as_deref(), now, &deadline, notes)
        .map_err(Denial::Keys)?;
    let verified = token
        .verify_at(now, provider, &keys.jwks)
        .map_err(Denial::Verify)?;
    if !certificate.matches_upk(verified.upk()) {
        return Err(Denial::KeyNotUpk);
    }
    if deadline.passed() {
        return Err(Denial::Deadline);
    }
    let userinfo = match (
        certificate.access_token(),
        keys.userinfo_endpoint.as_deref(),
    ) {
        (Some(access_token), Some(endpoint)) => {
            userinfo(&http, endpoint, access_token, &verified, &deadline, notes)
        }
        _ => None,
    };
    Ok(Verified {
        certificate,
        token: verified,
        userinfo,
        freshness: keys.freshness,
    })
}

/// The userinfo lookup is optional, as in Go: any failure is noted and ignored.
fn userinfo(
    http: &LazyHttp<'_>,
    endpoint: &str,
    access_token: &str,
    verified: &VerifiedPkToken,
    deadline: &Deadline,
    notes: &mut Notes,
) -> Option<serde_json::Map<String, serde_json::Value>> {
    let body = match http
        .client()
        .and_then(|client| client.get(endpoint, Some(access_token), deadline))
    {
        Ok(body) => body,
        Err(error) => {
            notes.push(format!("userinfo not used: {error}"));
            return None;
        }
    };
    match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(serde_json::Value::Object(claims))
            if claims.get("sub").and_then(serde_json::Value::as_str)
                == Some(verified.claims().subject()) =>
        {
            Some(claims)
        }
        _ => {
            notes.push("userinfo not used: not a JSON object for the token's subject".into());
            None
        }
    }
}

/// Turns a policy allow into the sshd line: every certificate principal must pass the
/// allowlist; the key is the certificate's signature key (its own key: the certificate is
/// self-signed, so sshd checks possession of it).
///
/// # Errors
/// [`Denial::InvalidPrincipal`].
pub fn authorize(verified: &Verified) -> Result<AuthorizedKeysLine, Denial> {
    let principals = verified.certificate.principals();
    if let Some(bad) = principals
        .iter()
        .find(|principal| !policy::is_safe_principal(principal))
    {
        return Err(Denial::InvalidPrincipal(bad.clone()));
    }
    let key = verified.certificate.signature_key_line();
    Ok(AuthorizedKeysLine(if principals.is_empty() {
        format!("cert-authority {key}")
    } else {
        format!(
            "cert-authority,principals=\"{}\" {key}",
            principals.join(",")
        )
    }))
}
