//! `%u %k %t` in, one `cert-authority` line or a denial out (behaviour.md §2.4, wire-format.md
//! §6.4). Every failure is a [`Denial`] saying exactly what failed; nothing here prints.
//!
//! Each check also records a [`Step`] (what it checked, where, how it came out), the first
//! part of the decision trace that `verify` logs and `explain` prints.

use crate::deadline::Deadline;
use crate::http::LazyHttp;
use crate::jwks_cache::{CacheSettings, Freshness, IssuerKeys, JwksCache, KeysError, Notes};
use opk_core::pktoken::{PkToken, PkTokenError};
use opk_core::sshcert::{CertError, OpksshCertificate};
use opk_core::verify::{
    Commitment, ExpirationPolicy, Provider, VerifiedPkToken, VerifyCheck, VerifyError,
};
use opk_os::time::rfc3339;
use policy::{Check, Location, Step, TraceSource};
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
#[derive(Clone)]
pub struct Settings {
    /// The providers file, one entry per issuer.
    pub providers: Vec<Provider>,
    /// Where each provider was configured (`provider_locations[i]` is the providers row of
    /// `providers[i]`), named in the trace; empty when the providers come from elsewhere.
    pub provider_locations: Vec<Location>,
    /// The discovery/JWKS cache.
    pub cache: CacheSettings,
    /// The proxy variables of the environment, overlaid with `env_vars` from
    /// `/etc/opk/config.yml` (how admins give verify a proxy).
    pub env: BTreeMap<String, String>,
    /// The whole verify's time budget (default 10 s).
    pub budget: Duration,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Self {
            providers,
            provider_locations,
            cache,
            env,
            budget,
        } = self;
        // The variables' names only: a proxy URL can hold a password.
        f.debug_struct("Settings")
            .field("providers", providers)
            .field("provider_locations", provider_locations)
            .field("cache", cache)
            .field("env", &env.keys().collect::<Vec<_>>())
            .field("budget", budget)
            .finish()
    }
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
    let mut steps = Vec::new();
    check_key_type(request.key_type, &mut steps)?;
    verify_certificate(request, settings, now, notes, &mut steps)
}

/// `%t` must be an opkssh certificate type; anything else (the bare key ssh offers before its
/// certificate) is refused before any file or network access.
///
/// # Errors
/// [`Denial::NotACertificateType`].
pub fn check_key_type(key_type: &str, steps: &mut Vec<Step>) -> Result<(), Denial> {
    if CERT_TYPES.contains(&key_type) {
        steps.push(Step::pass(
            Check::CertificateType,
            TraceSource::Certificate,
            key_type,
        ));
        return Ok(());
    }
    let denial = Denial::NotACertificateType(key_type.to_owned());
    steps.push(Step::fail(
        Check::CertificateType,
        TraceSource::Certificate,
        denial.to_string(),
    ));
    Err(denial)
}

/// [`verify`] after [`check_key_type`]: every later check, each recorded in `steps`; on a
/// denial the last step is the one that failed.
///
/// # Errors
/// The [`Denial`] naming the first failed check.
pub fn verify_certificate(
    request: &Request<'_>,
    settings: &Settings,
    now: SystemTime,
    notes: &mut Notes,
    steps: &mut Vec<Step>,
) -> Result<Verified, Denial> {
    let mut record = Recorder { steps };
    let deadline = Deadline::after(settings.budget);
    let certificate = record.certificate(
        Check::Certificate,
        OpksshCertificate::from_type_and_base64(request.key_type, request.key_base64)
            .map_err(Denial::Certificate),
        |certificate| {
            format!(
                "key {}, key id {:?}, principals [{}]",
                certificate.fingerprint(),
                certificate.key_id(),
                certificate.principals().join(", ")
            )
        },
    )?;
    record.certificate(
        Check::SelfSignature,
        certificate
            .verify_self_signature()
            .map_err(Denial::Certificate),
        |()| "signed by its own key".to_owned(),
    )?;
    let token = record.certificate(
        Check::PkToken,
        certificate
            .pk_token()
            .map_err(Denial::Certificate)
            .and_then(|compact| PkToken::from_compact(compact).map_err(Denial::PkToken)),
        describe_token,
    )?;
    let issuer = token.claims().issuer();
    let Some((index, provider)) = settings
        .providers
        .iter()
        .enumerate()
        .find(|(_, provider)| provider.issuer() == issuer)
    else {
        let denial = Denial::UnknownIssuer {
            issuer: issuer.to_owned(),
            known: settings
                .providers
                .iter()
                .map(|provider| provider.issuer().to_owned())
                .collect(),
        };
        return Err(record.fail(Check::Provider, providers_files(settings), denial));
    };
    let row = settings
        .provider_locations
        .get(index)
        .map_or(TraceSource::Certificate, |location| {
            TraceSource::Row(location.clone())
        });
    record.pass(
        Check::Provider,
        row.clone(),
        format!(
            "issuer {issuer}, client id {}, expiration policy {}",
            provider.client_id(),
            provider.expiration()
        ),
    );

    let http = LazyHttp::new(&settings.env);
    let cache = JwksCache::new(&settings.cache, &http);
    let kid = token.op_key_id();
    let keys = match cache.keys_for(provider.issuer(), kid.as_deref(), now, &deadline, notes) {
        Ok(keys) => keys,
        Err(error) => {
            return Err(record.fail(
                Check::OpKeys,
                TraceSource::Issuer(issuer.to_owned()),
                Denial::Keys(error),
            ));
        }
    };
    record.pass(
        Check::OpKeys,
        TraceSource::Issuer(issuer.to_owned()),
        describe_keys(&keys, kid.as_deref()),
    );
    let source = |check: VerifyCheck| match check {
        VerifyCheck::Expiration | VerifyCheck::Audience => row.clone(),
        _ => TraceSource::Certificate,
    };
    let verified = match token.verify_at(now, provider, &keys.jwks) {
        Ok(verified) => {
            for check in VerifyCheck::ORDER {
                let step = describe_check(check, &token, provider, &keys, source(check), now);
                record.steps.push(step);
            }
            verified
        }
        Err(error) => {
            let failed = error.check();
            for check in VerifyCheck::ORDER
                .into_iter()
                .take_while(|check| *check != failed)
            {
                let step = describe_check(check, &token, provider, &keys, source(check), now);
                record.steps.push(step);
            }
            record.steps.push(Step::fail(
                Check::Token(failed),
                source(failed),
                describe_failure(&error),
            ));
            return Err(Denial::Verify(error));
        }
    };
    if !certificate.matches_upk(verified.upk()) {
        return Err(record.fail(Check::Upk, TraceSource::Certificate, Denial::KeyNotUpk));
    }
    record.pass(
        Check::Upk,
        TraceSource::Certificate,
        "the certificate key is the key the PK token commits to",
    );
    if deadline.passed() {
        return Err(record.fail(Check::Deadline, TraceSource::Certificate, Denial::Deadline));
    }
    let userinfo = match (
        certificate.access_token(),
        keys.userinfo_endpoint.as_deref(),
    ) {
        (Some(access_token), Some(endpoint)) => {
            let source = TraceSource::Issuer(issuer.to_owned());
            match userinfo(&http, endpoint, access_token, &verified, &deadline) {
                Ok(claims) => {
                    record.pass(
                        Check::Userinfo,
                        source,
                        format!(
                            "claims for sub {} from {endpoint}",
                            verified.claims().subject()
                        ),
                    );
                    Some(claims)
                }
                Err(reason) => {
                    let reason = format!("userinfo not used: {reason}");
                    record.skip(Check::Userinfo, source, reason.clone());
                    notes.push(reason);
                    None
                }
            }
        }
        (None, _) => {
            record.skip(
                Check::Userinfo,
                TraceSource::Certificate,
                "no access token in the certificate",
            );
            None
        }
        (Some(_), None) => {
            record.skip(
                Check::Userinfo,
                TraceSource::Issuer(issuer.to_owned()),
                "the provider has no userinfo endpoint",
            );
            None
        }
    };
    Ok(Verified {
        certificate,
        token: verified,
        userinfo,
        freshness: keys.freshness,
    })
}

/// Appends steps as the checks run.
struct Recorder<'a> {
    steps: &'a mut Vec<Step>,
}

impl Recorder<'_> {
    fn pass(&mut self, check: Check, source: TraceSource, detail: impl Into<String>) {
        self.steps.push(Step::pass(check, source, detail));
    }

    fn skip(&mut self, check: Check, source: TraceSource, detail: impl Into<String>) {
        self.steps.push(Step::skip(check, source, detail));
    }

    /// Records the denial as the failed step and hands it back.
    fn fail(&mut self, check: Check, source: TraceSource, denial: Denial) -> Denial {
        // The check already says "certificate"; the error alone reads better after it.
        let detail = match &denial {
            Denial::Certificate(error) => error.to_string(),
            other => other.to_string(),
        };
        self.steps.push(Step::fail(check, source, detail));
        denial
    }

    /// Records a check on the certificate either way.
    fn certificate<T>(
        &mut self,
        check: Check,
        result: Result<T, Denial>,
        describe: impl FnOnce(&T) -> String,
    ) -> Result<T, Denial> {
        match result {
            Ok(value) => {
                self.pass(check, TraceSource::Certificate, describe(&value));
                Ok(value)
            }
            Err(denial) => Err(self.fail(check, TraceSource::Certificate, denial)),
        }
    }
}

/// The providers files named by the settings, for a denial about all of them.
fn providers_files(settings: &Settings) -> TraceSource {
    let mut paths: Vec<std::path::PathBuf> = Vec::new();
    for location in &settings.provider_locations {
        if !paths.contains(&location.path) {
            paths.push(location.path.clone());
        }
    }
    TraceSource::Files(paths)
}

/// The token's identity, as `verify` logs it: never the token itself.
fn describe_token(token: &PkToken) -> String {
    let claims = token.claims();
    let email = claims
        .email()
        .map_or_else(String::new, |email| format!(", email {email}"));
    format!(
        "iss {}, sub {}{email}, OP alg {}, kid {}",
        claims.issuer(),
        claims.subject(),
        token
            .op()
            .algorithm()
            .map_or_else(|_| "?".to_owned(), |alg| alg.to_string()),
        token.op_key_id().as_deref().unwrap_or("none"),
    )
}

fn describe_keys(keys: &IssuerKeys, kid: Option<&str>) -> String {
    let from = match keys.freshness {
        Freshness::Cached => "from the cache".to_owned(),
        Freshness::Fetched => "fetched from the provider".to_owned(),
        Freshness::FetchedByPeer => "fetched by another verify just now".to_owned(),
        Freshness::Stale { age_seconds } => {
            format!("provider unreachable, cached keys {age_seconds} s old used")
        }
    };
    format!(
        "{from}, keys: {}, token kid {}",
        keys.jwks.keys().len(),
        kid.unwrap_or("none")
    )
}

/// A check of [`PkToken::verify_at`] that held, with what it compared.
fn describe_check(
    check: VerifyCheck,
    token: &PkToken,
    provider: &Provider,
    keys: &IssuerKeys,
    source: TraceSource,
    now: SystemTime,
) -> Step {
    let claims = token.claims();
    let pass = |detail: String| Step::pass(Check::Token(check), source.clone(), detail);
    match check {
        VerifyCheck::ClientSignature => pass(format!(
            "the CIC is signed ({}) with the key it names (upk)",
            token.cic_claims().algorithm()
        )),
        VerifyCheck::Issuer => pass(format!("iss {} is the provider's issuer", claims.issuer())),
        VerifyCheck::Audience => match provider.commitment() {
            Commitment::Nonce => pass(format!("aud contains client id {}", provider.client_id())),
            Commitment::Audience | Commitment::GqBound { .. } => Step::skip(
                Check::Token(check),
                source,
                "client id not checked: this provider commits through aud",
            ),
        },
        VerifyCheck::OpSignature => {
            let kid = token.op_key_id();
            pass(format!(
                "{} signature verifies with JWKS key {} (keys: {})",
                token
                    .op()
                    .algorithm()
                    .map_or_else(|_| "?".to_owned(), |alg| alg.to_string()),
                kid.as_deref().unwrap_or("(no kid)"),
                keys.jwks.keys().len()
            ))
        }
        VerifyCheck::Commitment => pass(
            match provider.commitment() {
                Commitment::Nonce => "nonce commits to the CIC",
                Commitment::Audience => "aud commits to the CIC",
                Commitment::GqBound { .. } => "the GQ header's cic commits to the CIC",
            }
            .to_owned(),
        ),
        VerifyCheck::RefreshedToken => match token.refreshed_id_token() {
            Some(_) => pass("the refreshed ID token verifies and is for the same subject".into()),
            None => Step::skip(Check::Token(check), source, "no refreshed ID token"),
        },
        VerifyCheck::Expiration => pass(describe_expiration(token, provider.expiration(), now)),
    }
}

fn describe_expiration(token: &PkToken, policy: ExpirationPolicy, now: SystemTime) -> String {
    let claims = token.claims();
    let now = rfc3339(unix_seconds(now));
    let date = |seconds: Option<i64>| seconds.map_or_else(|| "?".to_owned(), rfc3339);
    match policy {
        ExpirationPolicy::Never => "policy never: no time check".to_owned(),
        ExpirationPolicy::Oidc => format!(
            "policy oidc: exp {} is after now {now}",
            date(claims.expires_at())
        ),
        ExpirationPolicy::OidcRefreshed => format!(
            "policy oidc_refreshed: exp {} (or the refreshed token's) is after now {now}",
            date(claims.expires_at())
        ),
        ExpirationPolicy::MaxAge12h
        | ExpirationPolicy::MaxAge24h
        | ExpirationPolicy::MaxAge48h
        | ExpirationPolicy::MaxAge1Week => format!(
            "policy {policy}: issued {}, within {policy} of now {now}",
            date(claims.issued_at())
        ),
    }
}

/// The failed check, with dates where the error has Unix seconds.
fn describe_failure(error: &VerifyError) -> String {
    match error {
        VerifyError::Expired {
            policy,
            deadline,
            now,
        } => format!(
            "token expired under policy {policy}: valid until {}, now {}",
            rfc3339(*deadline),
            rfc3339(*now)
        ),
        VerifyError::IssuedInFuture { iat, now } => format!(
            "token issued in the future: iat {}, now {}",
            rfc3339(*iat),
            rfc3339(*now)
        ),
        other => other.to_string(),
    }
}

fn unix_seconds(now: SystemTime) -> i64 {
    now.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| {
            i64::try_from(since.as_secs()).unwrap_or(i64::MAX)
        })
}

/// The userinfo lookup is optional, as in Go: any failure is a reason to go without it.
fn userinfo(
    http: &LazyHttp<'_>,
    endpoint: &str,
    access_token: &str,
    verified: &VerifiedPkToken,
    deadline: &Deadline,
) -> Result<serde_json::Map<String, serde_json::Value>, String> {
    let body = http
        .client()
        .get(endpoint, Some(access_token), deadline)
        .map_err(|error| error.to_string())?;
    match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(serde_json::Value::Object(claims))
            if claims.get("sub").and_then(serde_json::Value::as_str)
                == Some(verified.claims().subject()) =>
        {
            Ok(claims)
        }
        _ => Err("not a JSON object for the token's subject".to_owned()),
    }
}

/// Turns a policy allow into the sshd line: every certificate principal must pass the
/// allowlist; the key is the certificate's signature key (its own key: the certificate is
/// self-signed, so sshd checks possession of it).
///
/// # Errors
/// [`Denial::InvalidPrincipal`].
pub fn authorize(verified: &Verified) -> Result<AuthorizedKeysLine, Denial> {
    authorize_traced(verified, &mut Vec::new())
}

/// [`authorize`], recording the principal check in `steps`.
///
/// # Errors
/// [`Denial::InvalidPrincipal`].
pub fn authorize_traced(
    verified: &Verified,
    steps: &mut Vec<Step>,
) -> Result<AuthorizedKeysLine, Denial> {
    let principals = verified.certificate.principals();
    if let Some(bad) = principals
        .iter()
        .find(|principal| !policy::is_safe_principal(principal))
    {
        let denial = Denial::InvalidPrincipal(bad.clone());
        steps.push(Step::fail(
            Check::CertPrincipals,
            TraceSource::Certificate,
            denial.to_string(),
        ));
        return Err(denial);
    }
    steps.push(Step::pass(
        Check::CertPrincipals,
        TraceSource::Certificate,
        format!("[{}] are safe to pass to sshd", principals.join(", ")),
    ));
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

#[cfg(test)]
mod tests {
    use super::Settings;
    use crate::jwks_cache::CacheSettings;
    use std::time::Duration;

    #[test]
    fn debug_names_the_proxy_variables_and_never_their_values() {
        let settings = Settings {
            providers: Vec::new(),
            provider_locations: Vec::new(),
            cache: CacheSettings::new("/var/cache/opkssh".into()),
            env: [(
                "HTTPS_PROXY".to_owned(),
                "http://proxyuser:S3cretPassw0rd@proxy.corp:3128".to_owned(),
            )]
            .into(),
            budget: Duration::from_secs(10),
        };
        let shown = format!("{settings:?}");
        assert!(shown.contains("HTTPS_PROXY"), "{shown}");
        assert!(!shown.contains("S3cret"), "{shown}");
    }
}
