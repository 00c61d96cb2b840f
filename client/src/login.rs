//! The client side of an OpenPubkey login (wire-format.md §3.3, §3.5, §5.6, §5.9): discovery,
//! the authorization-code flow with PKCE (S256), state and the CIC commitment as `nonce`
//! through the loopback listener, the ID token checked (signature, issuer, audience, nonce,
//! times) before anything is used, the CIC signature, the PK token verified locally under the
//! 24-hour policy as Go does, and refreshes.
//!
//! The protocol pieces are `opk_core::oidc`, `cic` and `pktoken`; this module sends the
//! requests. Nothing here prints a token: the caller decides what to show.

use crate::callback::{CallbackError, CallbackServer, Outcome};
use opk_core::cic::CicHeader;
use opk_core::jwk::Jwks;
use opk_core::jws::{Jws, SigningKey};
use opk_core::oidc::{self, AuthorizationRequest, OidcError, ProviderMetadata, TokenResponse};
use opk_core::pktoken::PkToken;
use opk_core::verify::{ExpirationPolicy, Provider};
use opk_net::deadline::Deadline;
use opk_net::http::{FetchError, HttpClient};
use std::time::{Duration, SystemTime};
use zeroize::Zeroizing;

/// How long one network step of the login may take.
pub(crate) const NETWORK_BUDGET: Duration = Duration::from_secs(30);

/// Why a login or refresh failed.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// The loopback listener.
    #[error(transparent)]
    Callback(#[from] CallbackError),
    /// A request to the OP.
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// The OP's answer or the ID token.
    #[error(transparent)]
    Oidc(#[from] OidcError),
    /// A step of the device flow.
    #[error(transparent)]
    Device(#[from] opk_core::device::DeviceError),
    /// Anything else, said in words.
    #[error("{0}")]
    Other(String),
}

impl LoginError {
    pub(crate) fn other(message: impl std::fmt::Display) -> Self {
        Self::Other(message.to_string())
    }
}

/// A browser (authorization-code) provider, resolved from the config, env or flags.
#[derive(Clone, PartialEq, Eq)]
pub struct BrowserProvider {
    /// The issuer, exactly as the ID token's `iss` must be.
    pub issuer: String,
    /// The client ID (the token's `aud`).
    pub client_id: String,
    /// The client secret (Google's public "secret"), or none.
    pub client_secret: Option<String>,
    /// Space-separated scopes.
    pub scopes: String,
    /// The `prompt` parameter (`consent` by default; empty: not sent).
    pub prompt: String,
    /// The `access_type` parameter (`offline` by default; empty: not sent).
    pub access_type: String,
    /// Loopback redirect URIs tried in order.
    pub redirect_uris: Vec<String>,
    /// A redirect URI sent to the OP in place of the local one (`--remote-redirect-uri`).
    pub remote_redirect_uri: Option<String>,
}

impl std::fmt::Debug for BrowserProvider {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("BrowserProvider")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "<set>"),
            )
            .field("scopes", &self.scopes)
            .field("redirect_uris", &self.redirect_uris)
            .finish_non_exhaustive()
    }
}

/// A finished login: what the certificate needs, and what a refresh needs.
pub struct Session {
    /// The provider.
    pub provider: BrowserProvider,
    /// Its discovery document.
    pub metadata: ProviderMetadata,
    /// Its key set as of the login (refetched when a refresh names another key).
    pub jwks: Jwks,
    /// The user key (= `upk`).
    pub key: SigningKey,
    /// The PK token.
    pub pk_token: PkToken,
    /// The OAuth access token, if the OP returned one.
    pub access_token: Option<Zeroizing<String>>,
    /// The refresh token, kept in memory only.
    refresh_token: Option<Zeroizing<String>>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Session")
            .field("issuer", &self.metadata.issuer)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Whether the OP gave a refresh token.
    pub fn can_refresh(&self) -> bool {
        self.refresh_token.is_some()
    }
}

/// The discovery URL of an issuer (a trailing `/` is not doubled, as zitadel does).
pub fn discovery_url(issuer: &str) -> String {
    format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    )
}

/// Fetches and checks the discovery document, then the key set.
///
/// # Errors
/// [`LoginError`] for the fetch or a document for another issuer.
pub fn discover(http: &HttpClient, issuer: &str) -> Result<(ProviderMetadata, Jwks), LoginError> {
    let deadline = Deadline::after(NETWORK_BUDGET);
    let document = http.get(&discovery_url(issuer), None, &deadline)?;
    let metadata = ProviderMetadata::from_json(&document, issuer)?;
    let jwks = fetch_jwks(http, &metadata)?;
    Ok((metadata, jwks))
}

fn fetch_jwks(http: &HttpClient, metadata: &ProviderMetadata) -> Result<Jwks, LoginError> {
    let deadline = Deadline::after(NETWORK_BUDGET);
    let body = http.get(&metadata.jwks_uri, None, &deadline)?;
    Jwks::from_json(&body)
        .map_err(|error| LoginError::other(format!("the provider's JWKS is malformed: {error}")))
}

/// Runs the browser login with `key` as the user key.
///
/// `open_browser` gets the local `/login` URL once the listener is up; it prints it and opens
/// a browser (or, in the demo and tests, answers the login itself). The listener waits at
/// most `timeout` for the callback.
///
/// # Errors
/// [`LoginError`] for the first failed step; nothing is written by this function.
pub fn login(
    provider: &BrowserProvider,
    key: SigningKey,
    http: &HttpClient,
    open_browser: &mut dyn FnMut(&str),
    timeout: Duration,
) -> Result<Session, LoginError> {
    let (metadata, jwks) = discover(http, &provider.issuer)?;
    let cic = CicHeader::generate(&key, &[]).map_err(LoginError::other)?;
    let server = CallbackServer::bind(&provider.redirect_uris)?;
    let redirect_uri = provider
        .remote_redirect_uri
        .clone()
        .filter(|uri| !uri.is_empty())
        .unwrap_or_else(|| server.redirect_uri());
    let request = AuthorizationRequest::new(
        &metadata,
        &provider.client_id,
        &redirect_uri,
        &provider.scopes,
        cic.commitment(),
        &[
            ("prompt", provider.prompt.as_str()),
            ("access_type", provider.access_type.as_str()),
        ],
    );
    open_browser(&server.login_url());

    let outcome = server.serve(request.url(), timeout, |query| {
        let code = match request.code_from_callback(query) {
            Ok(code) => code,
            // Someone else's (or a stale) callback: keep waiting for ours.
            Err(OidcError::StateMismatch) => {
                return Outcome::Ignore("The state does not match this login.".into());
            }
            Err(error) => return Outcome::Failed(LoginError::from(error)),
        };
        match exchange(provider, &metadata, &jwks, &request, &code, http) {
            Ok(tokens) => Outcome::Done(tokens),
            Err(error) => Outcome::Failed(error),
        }
    })?;
    let (tokens, jwks, id_token) = outcome?;
    bind(provider, metadata, jwks, key, &cic, id_token, &tokens)
}

/// The end of every OIDC login, once the ID token passed its checks (nonce = the commitment
/// included): the CIC signed over its payload, the PK token built and verified locally.
pub(crate) fn bind(
    provider: &BrowserProvider,
    metadata: ProviderMetadata,
    jwks: Jwks,
    key: SigningKey,
    cic: &CicHeader,
    id_token: Jws,
    tokens: &TokenResponse,
) -> Result<Session, LoginError> {
    let cic_jws = cic
        .sign(id_token.payload_segment(), &key)
        .map_err(LoginError::other)?;
    let pk_token = PkToken::from_signatures(id_token, cic_jws).map_err(LoginError::other)?;
    check_locally(&pk_token, &provider.issuer, &provider.client_id, &jwks)?;
    Ok(Session {
        provider: provider.clone(),
        metadata,
        jwks,
        key,
        pk_token,
        access_token: tokens.access_token.clone().map(Zeroizing::new),
        refresh_token: tokens.refresh_token.clone().map(Zeroizing::new),
    })
}

/// The code exchange and the ID-token checks (§5.9).
fn exchange(
    provider: &BrowserProvider,
    metadata: &ProviderMetadata,
    jwks: &Jwks,
    request: &AuthorizationRequest,
    code: &str,
    http: &HttpClient,
) -> Result<(TokenResponse, Jwks, Jws), LoginError> {
    let body = Zeroizing::new(request.token_request_body(
        code,
        &provider.client_id,
        provider.client_secret.as_deref(),
    ));
    let tokens = post_token(http, &metadata.token_endpoint, &body)?;
    let (jwks, id_token) = check_with_refetch(
        http,
        metadata,
        jwks,
        &tokens.id_token,
        &provider.client_id,
        Some(request.nonce()),
    )?;
    Ok((tokens, jwks, id_token))
}

fn post_token(http: &HttpClient, endpoint: &str, body: &str) -> Result<TokenResponse, LoginError> {
    let deadline = Deadline::after(NETWORK_BUDGET);
    let (status, answer) = http.post_form(endpoint, body, &deadline)?;
    match TokenResponse::from_json(&answer) {
        Ok(tokens) if status == 200 => Ok(tokens),
        Ok(_) => Err(LoginError::other(format!(
            "the token endpoint answered HTTP {status}"
        ))),
        Err(OidcError::TokenResponse(_)) if status != 200 => Err(LoginError::other(format!(
            "the token endpoint answered HTTP {status}"
        ))),
        Err(error) => Err(error.into()),
    }
}

/// Checks an ID token against the key set, fetching the set once more if the token names a
/// key it does not have (the OP rotated since discovery).
pub(crate) fn check_with_refetch(
    http: &HttpClient,
    metadata: &ProviderMetadata,
    jwks: &Jwks,
    id_token: &str,
    client_id: &str,
    nonce: Option<&str>,
) -> Result<(Jwks, Jws), LoginError> {
    let now = SystemTime::now();
    match oidc::check_id_token(id_token, &metadata.issuer, client_id, nonce, jwks, now) {
        Ok(jws) => Ok((jwks.clone(), jws)),
        Err(first) => {
            let kid = Jws::parse(id_token)
                .ok()
                .and_then(|jws| jws.header_str("kid").map(str::to_owned));
            if kid.is_some_and(|kid| jwks.find(Some(&kid)).is_err()) {
                let fresh = fetch_jwks(http, metadata)?;
                let jws = oidc::check_id_token(
                    id_token,
                    &metadata.issuer,
                    client_id,
                    nonce,
                    &fresh,
                    now,
                )?;
                Ok((fresh, jws))
            } else {
                Err(first.into())
            }
        }
    }
}

/// Go verifies the new PK token with the provider's verifier under the default 24-hour policy
/// before writing anything (§3.3 step 7).
fn check_locally(
    pk_token: &PkToken,
    issuer: &str,
    client_id: &str,
    jwks: &Jwks,
) -> Result<(), LoginError> {
    let provider = Provider::new(issuer, client_id, ExpirationPolicy::MaxAge24h);
    pk_token
        .verify_at(SystemTime::now(), &provider, jwks)
        .map(|_| ())
        .map_err(|error| LoginError::other(format!("the new PK token does not verify: {error}")))
}

/// Refreshes the ID token with the refresh token (§5.6): the fresh token is checked
/// (signature, issuer, audience, times; no nonce, as Go) and appended to the PK token; the
/// original OP and CIC signatures stay. A rotated refresh token replaces the old one.
///
/// # Errors
/// No refresh token, or any failed step.
pub fn refresh(session: &mut Session, http: &HttpClient) -> Result<(), LoginError> {
    let Some(refresh_token) = session.refresh_token.as_ref() else {
        return Err(LoginError::other(
            "the provider gave no refresh token, so the ID token cannot be refreshed",
        ));
    };
    let body = Zeroizing::new(oidc::refresh_request_body(
        refresh_token,
        &session.provider.client_id,
        session.provider.client_secret.as_deref(),
    ));
    let tokens = post_token(http, &session.metadata.token_endpoint, &body)?;
    let (jwks, fresh) = check_with_refetch(
        http,
        &session.metadata,
        &session.jwks,
        &tokens.id_token,
        &session.provider.client_id,
        None,
    )?;
    let claims = session.pk_token.claims();
    let fresh_claims = opk_core::claims::Claims::from_segment(fresh.payload_segment())
        .map_err(LoginError::other)?;
    if fresh_claims.subject() != claims.subject() {
        return Err(LoginError::other(
            "the refreshed ID token is for another subject",
        ));
    }
    session.pk_token = session
        .pk_token
        .clone()
        .with_refreshed_id_token(fresh)
        .map_err(LoginError::other)?;
    session.jwks = jwks;
    if let Some(token) = tokens.refresh_token.clone() {
        session.refresh_token = Some(Zeroizing::new(token));
    }
    if let Some(token) = tokens.access_token.clone() {
        session.access_token = Some(Zeroizing::new(token));
    }
    Ok(())
}

/// The shortest wait between two ID tokens under `--auto-refresh`: a provider whose tokens
/// live under a minute, or that hands back a token about to expire, is asked again no sooner.
pub const MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(10);
/// The longest wait the back-off reaches while the provider keeps handing back tokens that
/// expire within [`MIN_REFRESH_INTERVAL`].
pub const MAX_REFRESH_BACKOFF: Duration = Duration::from_secs(300);
/// How long before `exp` a refresh is due, as in Go.
const REFRESH_LEAD_SECS: i64 = 60;

/// When `--auto-refresh` asks for the next ID token: a minute before the current one expires
/// (as Go), never sooner than [`MIN_REFRESH_INTERVAL`] after the last one, and, while the
/// provider keeps handing back tokens that expire within that interval (or none with an
/// `exp`), after a wait that doubles each time up to [`MAX_REFRESH_BACKOFF`]. A token that
/// lives longer than the interval starts the back-off over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshSchedule {
    /// The wait after the next token that expires within the minimum interval.
    backoff: Duration,
}

impl Default for RefreshSchedule {
    fn default() -> Self {
        Self {
            backoff: MIN_REFRESH_INTERVAL,
        }
    }
}

impl RefreshSchedule {
    /// How long to wait before the next refresh, given the `exp` of the token just obtained
    /// ([`current_expiry`]) and the time now, both in seconds since the epoch.
    pub fn next_wait(&mut self, expiry: Option<i64>, now: i64) -> Duration {
        let remaining = expiry.map(|expiry| expiry.saturating_sub(now));
        let minimum = i64::try_from(MIN_REFRESH_INTERVAL.as_secs()).unwrap_or(i64::MAX);
        match remaining {
            Some(remaining) if remaining > minimum => {
                self.backoff = MIN_REFRESH_INTERVAL;
                let due = u64::try_from(remaining.saturating_sub(REFRESH_LEAD_SECS)).unwrap_or(0);
                Duration::from_secs(due).max(MIN_REFRESH_INTERVAL)
            }
            _ => {
                let wait = self.backoff;
                self.backoff = self.backoff.saturating_mul(2).min(MAX_REFRESH_BACKOFF);
                wait
            }
        }
    }
}

/// The `exp` that governs the next refresh: the refreshed ID token's, if there is one, else
/// the original's. Go reads the refreshed token's *header* here and so never advances
/// (wire-format.md §6.3); this reads its payload.
pub fn current_expiry(pk_token: &PkToken) -> Option<i64> {
    match pk_token.refreshed_id_token() {
        Some((_, claims)) => claims.expires_at(),
        None => pk_token.claims().expires_at(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn waits(schedule: &mut RefreshSchedule, lifetimes: &[Option<i64>]) -> Vec<u64> {
        lifetimes
            .iter()
            .map(|lifetime| {
                schedule
                    .next_wait(lifetime.map(|lifetime| NOW + lifetime), NOW)
                    .as_secs()
            })
            .collect()
    }

    #[test]
    fn refresh_comes_a_minute_before_exp() {
        let mut schedule = RefreshSchedule::default();
        assert_eq!(waits(&mut schedule, &[Some(3600), Some(75)]), [3540, 15]);
    }

    #[test]
    fn short_lived_tokens_wait_the_minimum_interval() {
        let mut schedule = RefreshSchedule::default();
        assert_eq!(
            waits(&mut schedule, &[Some(20), Some(61), Some(11), Some(20)]),
            [10, 10, 10, 10]
        );
    }

    #[test]
    fn tokens_near_expiry_back_off_until_a_good_one() {
        let mut schedule = RefreshSchedule::default();
        let near = [
            Some(5),
            Some(0),
            Some(-30),
            None,
            Some(10),
            Some(2),
            Some(1),
            Some(3),
        ];
        assert_eq!(
            waits(&mut schedule, &near),
            [10, 20, 40, 80, 160, 300, 300, 300]
        );
        assert_eq!(waits(&mut schedule, &[Some(3600), Some(5)]), [3540, 10]);
    }
}
