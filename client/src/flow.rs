//! One login from a resolved provider to a certificate: the OIDC part (browser, device or CI
//! identity) through [`log_in`], then [`certificate`]. What a person must see goes through
//! [`Progress`]; nothing here prints.

use crate::client_config::ProviderKind;
use crate::login::{BrowserProvider, LoginError, Session};
use crate::{ci, device, login};
use opk_core::claims::Claims;
use opk_core::device::DeviceAuthorization;
use opk_core::escape;
use opk_core::jws::SigningKey;
use opk_core::pktoken::PkToken;
use opk_core::sshcert::{
    CertError, CertificateRequest, OpksshCertificate, Principals, build_certificate,
};
use opk_net::http::HttpClient;
use serde_json::Value;
use std::time::Duration;

/// What a login needs a person for, told to whoever runs it (the `opkssh` command prints it).
pub trait Progress {
    /// The browser must visit `url` (the OP's authorization page through the local listener):
    /// open it, or say where to go.
    fn open_url(&mut self, url: &str);

    /// Device flow: the page to open on another device and the code to enter there.
    fn device_code(&mut self, authorization: &DeviceAuthorization) {
        let _ = authorization;
    }
}

/// A closure is enough when only the browser step matters.
impl<F: FnMut(&str)> Progress for F {
    fn open_url(&mut self, url: &str) {
        self(url);
    }
}

/// How a person logs in with a browser provider (CI identities need no person).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Authorization code on a loopback callback, giving up after `timeout`.
    Browser {
        /// How long to wait for the browser.
        timeout: Duration,
    },
    /// Device authorization: a code entered on any device, until it expires or `timeout`.
    Device {
        /// An earlier limit than the code's expiry.
        timeout: Option<Duration>,
    },
}

/// The OIDC part's result, whichever the provider kind.
pub struct Identity {
    /// The user key the PK token commits to.
    pub key: SigningKey,
    /// The PK token (ID token, OP signature, CIC signature by `key`).
    pub pk_token: PkToken,
    /// What a refresh needs; none for CI identities.
    pub session: Option<Session>,
}

/// Logs in with `kind`, the PK token committing to `key`. CI kinds ignore `flow`.
///
/// # Errors
/// [`LoginError`] for the first failed step.
pub fn log_in(
    kind: &ProviderKind,
    key: SigningKey,
    flow: Flow,
    http: &HttpClient,
    progress: &mut dyn Progress,
) -> Result<Identity, LoginError> {
    let session = match (kind, flow) {
        (ProviderKind::Browser(provider), Flow::Device { timeout }) => {
            let mut show = |authorization: &DeviceAuthorization| {
                progress.device_code(authorization);
            };
            device::login(provider, key.clone(), http, &mut show, timeout)?
        }
        (ProviderKind::Browser(provider), Flow::Browser { timeout }) => {
            let mut opener = |url: &str| progress.open_url(url);
            login::login(provider, key.clone(), http, &mut opener, timeout)?
        }
        (
            ProviderKind::Actions {
                issuer,
                request_url,
                request_token,
            },
            _,
        ) => {
            return Ok(Identity {
                pk_token: ci::login_actions(issuer, request_url, request_token, &key, http)?,
                key,
                session: None,
            });
        }
        (ProviderKind::GitlabCi { issuer }, _) => {
            return Ok(Identity {
                pk_token: ci::login_gitlab(
                    issuer,
                    std::env::var("OPENPUBKEY_JWT").ok().as_deref(),
                    &key,
                    http,
                )?,
                key,
                session: None,
            });
        }
    };
    Ok(Identity {
        key,
        pk_token: session.pk_token.clone(),
        session: Some(session),
    })
}

/// The provider's issuer.
pub fn issuer_of(kind: &ProviderKind) -> &str {
    match kind {
        ProviderKind::Browser(BrowserProvider { issuer, .. })
        | ProviderKind::Actions { issuer, .. }
        | ProviderKind::GitlabCi { issuer } => issuer,
    }
}

/// The HTTP client a login uses, with the process's proxy settings. An unusable proxy
/// variable fails only the requests that would go through it ([`opk_net::http::FetchError::Proxy`]).
pub fn http_client_from_env() -> HttpClient {
    let env: std::collections::BTreeMap<String, String> = std::env::vars().collect();
    HttpClient::new(&env)
}

/// The opkssh certificate for `key` carrying `pk_token`: key ID the email, principals
/// `opkssh-wildcard` unless given (blank entries dropped), the access token if asked.
///
/// # Errors
/// [`CertError`] when the key or the token cannot be encoded.
pub fn certificate(
    key: &SigningKey,
    pk_token: &PkToken,
    principals: Option<&[String]>,
    access_token: Option<&str>,
) -> Result<OpksshCertificate, CertError> {
    let principals = match principals {
        None => Principals::Default,
        Some(list) => Principals::List(
            list.iter()
                .map(|principal| principal.trim().to_owned())
                .filter(|principal| !principal.is_empty())
                .collect(),
        ),
    };
    let compact = pk_token.to_compact();
    build_certificate(CertificateRequest {
        key,
        key_id: pk_token.claims().email().unwrap_or_default(),
        principals,
        pk_token: &compact,
        access_token,
    })
}

/// The `aud` as one string (the first entry of an array).
pub fn audience_string(claims: &Claims) -> String {
    match claims.object().get("aud") {
        Some(Value::String(aud)) => aud.clone(),
        Some(Value::Array(list)) => list
            .first()
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        _ => String::new(),
    }
}

/// Go's `IdentityString`, each claim escaped ([`escape::line`]): the OP chooses them, and a
/// control or line break in one must not redraw the terminal or add a line.
pub fn identity_string(claims: &Claims) -> String {
    let audience = audience_string(claims);
    let audience = escape::line(&audience);
    let subject = escape::line(claims.subject());
    let issuer = escape::line(claims.issuer());
    match claims.email() {
        Some(email) => format!(
            "Email, sub, issuer, audience: \n{} {subject} {issuer} {audience}",
            escape::line(email)
        ),
        None => format!(
            "WARNING: Email claim is missing from ID token. Policies based on email will not \
             work.\nCheck if your client ID has the email scope configured in ~/.opk/config.yml \
             (scopes: openid email).\nSub, issuer, audience: \n{subject} {issuer} {audience}"
        ),
    }
}

/// Go's `PrettyIdToken`: a fixed subset of claims, indented JSON, with the characters a
/// terminal acts on that JSON leaves raw (C1, bidi controls) escaped ([`escape::json`]).
pub fn pretty_id_token(claims: &Claims) -> String {
    const SHOWN: [&str; 12] = [
        "iss",
        "sub",
        "exp",
        "iat",
        "email",
        "nonce",
        "preferred_username",
        "given_name",
        "family_name",
        "groups",
        "scopes",
        "cnf",
    ];
    let object = claims.object();
    let lines: Vec<String> = SHOWN
        .iter()
        .filter_map(|name| {
            object.get(*name).map(|value| {
                let rendered = serde_json::to_string_pretty(value).unwrap_or_default();
                let rendered = escape::json(&rendered).replace('\n', "\n  ");
                format!("  \"{name}\": {rendered}")
            })
        })
        .collect();
    format!("{{\n{}\n}}", lines.join(",\n"))
}
