//! The certificate of `opkssh agent` over time: log in, present the certificate through
//! [`Shared`], refresh the ID token before it expires and re-issue the certificate with it,
//! stop presenting it at expiry when that fails, and log in again when asked.
//!
//! # When it refreshes
//! A token that lives `L` (from `iat`, or from when it arrived, to `exp`) is refreshed
//! [`refresh_margin`]`(L)` before its `exp`: a third of its lifetime, and never less than
//! [`MIN_REFRESH_MARGIN`] (10 s). A one-hour token is refreshed at 40 minutes, a 30-second one
//! at 20 seconds. Two refresh attempts are at least [`MIN_REFRESH_GAP`] apart, so a provider
//! that hands back a token about to expire is not asked in a busy loop.
//!
//! A failed refresh is tried again, after a third of what is left (at least 5 s, at most
//! 5 minutes), until the token expires; the certificate is presented meanwhile, since it is
//! still good. At `exp` the certificate is released (the agent lists nothing of opkssh's), and
//! the host is told once ([`Event::Expired`]). Nothing is tried again after that: a new login
//! happens only when a client asks (the login extension, which `opkssh agent --login` and
//! SIGUSR1 send), never by itself, since it needs a person at a browser.
//!
//! The agent's clock is the wall clock, re-read at least every [`MAX_WAIT`]: a laptop that slept
//! through the expiry releases the certificate when it wakes, not a sleep's length later.
//!
//! Nothing here prints: what a person should see goes to the host ([`Report`]), and what
//! `opkssh agent --status` shows is the [`Status`] set on [`Shared`]. Neither ever carries a
//! token or a key.

use crate::agent_certificates::identity_comment;
use crate::agent_server::{Held, Shared};
use crate::login::{self, LoginError, Session, current_expiry};
use crate::{Identity, Progress};
use opk_core::claims::Claims;
use opk_core::device::DeviceAuthorization;
use opk_core::jws::SigningKey;
use opk_core::pktoken::PkToken;
use opk_core::sshcert::OpksshCertificate;
use opk_net::http::HttpClient;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The shortest time before `exp` that a refresh is due.
pub const MIN_REFRESH_MARGIN: Duration = Duration::from_secs(10);
/// The shortest time between two refresh attempts.
pub const MIN_REFRESH_GAP: Duration = Duration::from_secs(5);
/// The longest wait before trying a failed refresh again.
pub const MAX_RETRY_WAIT: Duration = Duration::from_secs(300);
/// The longest the loop sleeps before it looks at the wall clock again.
pub const MAX_WAIT: Duration = Duration::from_secs(30);

/// How long before `exp` a token that lives `lifetime` is refreshed: a third of the lifetime,
/// at least [`MIN_REFRESH_MARGIN`].
pub fn refresh_margin(lifetime: Duration) -> Duration {
    (lifetime / 3).max(MIN_REFRESH_MARGIN)
}

/// When (seconds since the epoch) the token valid from `issued_at` to `expires_at` is due for
/// a refresh; it arrived at `received_at`, which stands in for a missing or later-than-`exp`
/// `iat`, and for an `iat` in the future (the provider's clock ahead of ours).
pub fn refresh_due(issued_at: Option<i64>, expires_at: i64, received_at: i64) -> i64 {
    let start = issued_at
        .filter(|issued_at| *issued_at <= expires_at && *issued_at <= received_at)
        .unwrap_or(received_at);
    let lifetime = u64::try_from(expires_at.saturating_sub(start)).unwrap_or(0);
    let margin = refresh_margin(Duration::from_secs(lifetime)).as_secs();
    expires_at.saturating_sub(i64::try_from(margin).unwrap_or(i64::MAX))
}

/// When to try again after a refresh failed at `now`, for a token that expires at
/// `expires_at`: after a third of what is left, within [`MIN_REFRESH_GAP`] and
/// [`MAX_RETRY_WAIT`].
pub fn retry_at(expires_at: i64, now: i64) -> i64 {
    let left = u64::try_from(expires_at.saturating_sub(now)).unwrap_or(0);
    let wait = (left / 3).clamp(MIN_REFRESH_GAP.as_secs(), MAX_RETRY_WAIT.as_secs());
    now.saturating_add(i64::try_from(wait).unwrap_or(i64::MAX))
}

/// What the agent is doing, as `--status` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Started, before the first login.
    #[default]
    Starting,
    /// A login is under way (a URL or a code waits for the person).
    LoggingIn,
    /// A certificate is presented.
    Ready,
    /// The certificate expired and could not be refreshed; nothing is presented.
    Expired,
    /// The last login failed and nothing is presented.
    LoginFailed,
    /// A state this version does not know (from another version's agent).
    #[serde(other)]
    Unknown,
}

impl State {
    /// The word `--status` prints.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::LoggingIn => "logging in",
            Self::Ready => "ready",
            Self::Expired => "expired",
            Self::LoginFailed => "login failed",
            Self::Unknown => "unknown",
        }
    }
}

/// The device-flow prompt of a login under way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DevicePrompt {
    /// The page to open.
    pub verification_uri: String,
    /// The code to enter there.
    pub user_code: String,
    /// The page with the code in it, if the provider offers one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification_uri_complete: Option<String>,
}

/// What the status extension answers (JSON): no token, no key, nothing secret. Read back by
/// `opkssh agent --status`, `opkssh check` and `opkssh ssh`, which treat it as outside data
/// (any program can listen at `SSH_AUTH_SOCK`): every field is optional there and printed
/// escaped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Status {
    /// The agent's process id.
    pub pid: u32,
    /// What it is doing.
    pub state: State,
    /// Whether a certificate is presented now.
    pub holding: bool,
    /// The certificate's identity: the email, or `sub` without one.
    pub identity: Option<String>,
    /// The issuer.
    pub issuer: Option<String>,
    /// When the presented certificate's ID token expires (seconds since the epoch).
    pub expires_at: Option<i64>,
    /// When the next refresh is due, if one will be tried.
    pub next_refresh: Option<i64>,
    /// Whether the provider gave a refresh token.
    pub refreshable: bool,
    /// How many refreshes succeeded since the last login.
    pub refreshes: u64,
    /// When the last login finished (seconds since the epoch).
    pub logged_in_at: Option<i64>,
    /// How many logins succeeded since the agent started.
    pub logins: u64,
    /// What went wrong last (a failed refresh or login), if it still matters.
    pub problem: Option<String>,
    /// The user key: its type and SHA-256 fingerprint.
    pub key: Option<String>,
    /// Whether the user key is held by the upstream ssh-agent (`--agent-key`), not in memory.
    pub key_in_agent: bool,
    /// The browser login's URL while a login waits for it.
    pub login_url: Option<String>,
    /// The device-flow prompt while a login waits for it.
    pub device: Option<DevicePrompt>,
}

impl Status {
    /// The JSON the status extension answers.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads a status answer.
    ///
    /// # Errors
    /// The answer is not a status object.
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }
}

/// What the session tells its host, for a person to read (the `opkssh` command logs each one;
/// [`Event::Expired`] also as a desktop notification).
#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    /// A login starts; `requested` when a client asked for it.
    LoggingIn {
        /// Asked for (login extension or signal), not the first one.
        requested: bool,
    },
    /// A certificate is presented after a login.
    LoggedIn(&'a Status),
    /// The provider gave no refresh token: the certificate goes at `exp`.
    NoRefresh(&'a Status),
    /// The certificate was re-issued with a refreshed ID token.
    Refreshed(&'a Status),
    /// A refresh failed; said for the first failure only, until one succeeds.
    RefreshFailed {
        /// Why.
        error: &'a str,
        /// When the certificate will go unless a retry succeeds.
        expires_at: i64,
    },
    /// The certificate is no longer presented (its ID token expired); said once.
    Expired {
        /// Why it could not be kept.
        reason: &'a str,
    },
    /// A login failed.
    LoginFailed {
        /// Why.
        error: &'a str,
    },
}

/// What the session needs from whoever runs it: the person-facing side of a login
/// ([`Progress`]) and the events.
pub trait Report: Progress {
    /// Something a person should know.
    fn event(&mut self, event: &Event<'_>);
}

/// A login, as the host does it: choose the provider as `opkssh login` would, make or find the
/// user key, and log in through `progress`.
pub trait Login {
    /// One login.
    ///
    /// # Errors
    /// Whatever stopped it, said in words.
    fn log_in(&mut self, progress: &mut dyn Progress) -> Result<Identity, LoginError>;

    /// Whether certificates for `issuer` carry the access token (`--send-access-token`, or
    /// the provider's `send_access_token` in the client config).
    fn send_access_token(&mut self, issuer: &str) -> bool {
        let _ = issuer;
        false
    }
}

/// What the certificate carries besides the PK token (and the access token, which
/// [`Login::send_access_token`] decides).
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// `--principals` (default `opkssh-wildcard`).
    pub principals: Option<Vec<String>>,
}

/// The presented identity and what keeps it fresh.
struct Live {
    key: SigningKey,
    pk_token: PkToken,
    /// What a refresh needs; none for CI identities.
    session: Option<Session>,
    expires_at: Option<i64>,
    next_refresh: Option<i64>,
    /// The first error of a run of failed refreshes.
    failing: Option<String>,
    /// Whether the certificate carries the access token.
    with_access_token: bool,
}

/// Seconds since the epoch now.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            i64::try_from(since.as_secs()).unwrap_or(i64::MAX)
        })
}

/// The claims of the ID token in force: the refreshed one if there is one.
fn current_claims(pk_token: &PkToken) -> &Claims {
    match pk_token.refreshed_id_token() {
        Some((_, claims)) => claims,
        None => pk_token.claims(),
    }
}

/// The session: call [`AgentSession::run`].
pub struct AgentSession<'a> {
    shared: Shared,
    http: &'a HttpClient,
    settings: Settings,
    status: Status,
    live: Option<Live>,
}

impl<'a> AgentSession<'a> {
    /// A session presenting through `shared`, refreshing over `http`.
    pub fn new(shared: Shared, http: &'a HttpClient, settings: Settings) -> Self {
        let status = Status {
            pid: std::process::id(),
            ..Status::default()
        };
        shared.set_status(status.to_json());
        Self {
            shared,
            http,
            settings,
            status,
            live: None,
        }
    }

    /// Logs in, then keeps the certificate fresh until `stop` is set (checked whenever the
    /// loop wakes: at each due refresh or expiry, each login request, and every
    /// [`MAX_WAIT`]). A login request wakes it; so the host sets `stop` and then sends one.
    pub fn run(&mut self, login: &mut dyn Login, report: &mut dyn Report, stop: &AtomicBool) {
        let mut log_in = Some(false);
        while !stop.load(Ordering::SeqCst) {
            if let Some(requested) = log_in.take() {
                self.log_in(login, report, requested);
                // A request sent while the login was under way was answered by it.
                let _ = self.shared.take_login_request();
                continue;
            }
            let now = now();
            if self.expire_if_due(now, report) || self.refresh_if_due(now, report) {
                continue;
            }
            if self.shared.wait_login_request(self.wait(now)) {
                log_in = Some(true);
            }
        }
        self.shared.release();
        self.live = None;
    }

    /// How long to sleep: until the next refresh or expiry, at most [`MAX_WAIT`].
    fn wait(&self, now: i64) -> Duration {
        let next = self
            .live
            .as_ref()
            .and_then(|live| match (live.next_refresh, live.expires_at) {
                (Some(refresh), Some(expiry)) => Some(refresh.min(expiry)),
                (refresh, expiry) => refresh.or(expiry),
            });
        match next {
            Some(at) => Duration::from_secs(u64::try_from(at.saturating_sub(now)).unwrap_or(0))
                .min(MAX_WAIT),
            None => MAX_WAIT,
        }
    }

    fn publish(&self) {
        self.shared.set_status(self.status.to_json());
    }

    fn log_in(&mut self, login: &mut dyn Login, report: &mut dyn Report, requested: bool) {
        report.event(&Event::LoggingIn { requested });
        let previous = self.status.state;
        self.status.state = State::LoggingIn;
        self.publish();
        let identity = {
            let mut prompting = Prompting {
                report: &mut *report,
                shared: &self.shared,
                status: &mut self.status,
            };
            login.log_in(&mut prompting)
        };
        self.status.login_url = None;
        self.status.device = None;
        let started = identity.and_then(|identity| {
            let with_access_token = login.send_access_token(identity.pk_token.claims().issuer());
            self.present(identity, with_access_token)
        });
        match started {
            Ok(()) => {
                let status = self.status.clone();
                report.event(&Event::LoggedIn(&status));
                if !status.refreshable {
                    report.event(&Event::NoRefresh(&status));
                }
            }
            Err(error) => {
                let error = error.to_string();
                // A certificate from before is kept while it is good.
                self.status.state = if self.live.is_some() {
                    State::Ready
                } else if previous == State::Expired {
                    State::Expired
                } else {
                    State::LoginFailed
                };
                self.status.problem = Some(format!("login failed: {error}"));
                self.publish();
                report.event(&Event::LoginFailed { error: &error });
            }
        }
    }

    /// Presents a fresh login's certificate, replacing whatever was presented.
    fn present(&mut self, identity: Identity, with_access_token: bool) -> Result<(), LoginError> {
        let Identity {
            key,
            pk_token,
            session,
        } = identity;
        let access_token = if with_access_token {
            Some(access_token(session.as_ref())?)
        } else {
            None
        };
        let certificate = self.certificate(&key, &pk_token, access_token.as_deref())?;
        let now = now();
        let refreshable = session.as_ref().is_some_and(Session::can_refresh);
        let expires_at = current_expiry(&pk_token);
        let next_refresh = expires_at
            .filter(|_| refreshable)
            .map(|expiry| refresh_due(current_claims(&pk_token).issued_at(), expiry, now));
        let described = describe_key(&certificate);
        self.hold(&key, &pk_token, certificate, expires_at);
        let claims = pk_token.claims();
        self.status = Status {
            pid: std::process::id(),
            state: State::Ready,
            holding: true,
            identity: Some(
                claims
                    .email()
                    .unwrap_or_else(|| claims.subject())
                    .to_owned(),
            ),
            issuer: Some(claims.issuer().to_owned()),
            expires_at,
            next_refresh,
            refreshable,
            refreshes: 0,
            logged_in_at: Some(now),
            logins: self.status.logins.saturating_add(1),
            problem: None,
            key: Some(described),
            key_in_agent: matches!(key, SigningKey::External(_)),
            login_url: None,
            device: None,
        };
        self.publish();
        self.live = Some(Live {
            key,
            pk_token,
            session,
            expires_at,
            next_refresh,
            failing: None,
            with_access_token,
        });
        Ok(())
    }

    fn certificate(
        &self,
        key: &SigningKey,
        pk_token: &PkToken,
        access_token: Option<&str>,
    ) -> Result<OpksshCertificate, LoginError> {
        crate::certificate(
            key,
            pk_token,
            self.settings.principals.as_deref(),
            access_token,
        )
        .map_err(|error| LoginError::Other(format!("cannot make the certificate: {error}")))
    }

    fn hold(
        &self,
        key: &SigningKey,
        pk_token: &PkToken,
        certificate: OpksshCertificate,
        expires_at: Option<i64>,
    ) {
        self.shared.hold(Held {
            key: key.clone(),
            certificate,
            comment: identity_comment(pk_token.claims()),
            expires_at,
        });
    }

    /// Releases the certificate once its ID token has expired; true if it did.
    fn expire_if_due(&mut self, now: i64, report: &mut dyn Report) -> bool {
        let Some(live) = self.live.as_ref() else {
            return false;
        };
        if live.expires_at.is_none_or(|expiry| expiry > now) {
            return false;
        }
        let reason = match (&live.failing, live.session.as_ref()) {
            (Some(error), _) => {
                format!("its ID token expired and the refresh failed: {error}")
            }
            (None, Some(session)) if session.can_refresh() => {
                "its ID token expired before a refresh succeeded".to_owned()
            }
            _ => "its ID token expired and the provider gave no refresh token".to_owned(),
        };
        self.shared.release();
        self.live = None;
        self.status.state = State::Expired;
        self.status.holding = false;
        self.status.next_refresh = None;
        self.status.problem = Some(reason.clone());
        self.publish();
        report.event(&Event::Expired { reason: &reason });
        true
    }

    /// Refreshes when due; true if it tried.
    fn refresh_if_due(&mut self, now: i64, report: &mut dyn Report) -> bool {
        let Some(live) = self.live.as_mut() else {
            return false;
        };
        if live.next_refresh.is_none_or(|due| due > now) {
            return false;
        }
        let Some(session) = live.session.as_mut() else {
            live.next_refresh = None;
            return false;
        };
        let refreshed = login::refresh(session, self.http).map(|()| {
            let pk_token = session.pk_token.clone();
            let access_token = if live.with_access_token {
                session
                    .access_token
                    .as_ref()
                    .map(|token| token.as_str().to_owned())
            } else {
                None
            };
            (pk_token, access_token)
        });
        let reissued = refreshed.and_then(|(pk_token, access_token)| {
            crate::certificate(
                &live.key,
                &pk_token,
                self.settings.principals.as_deref(),
                access_token.as_deref(),
            )
            .map(|certificate| (pk_token, certificate))
            .map_err(|error| LoginError::Other(format!("cannot make the certificate: {error}")))
        });
        let now = self::now();
        match reissued {
            Ok((pk_token, certificate)) => {
                let expires_at = current_expiry(&pk_token);
                let next_refresh = expires_at.map(|expiry| {
                    refresh_due(current_claims(&pk_token).issued_at(), expiry, now)
                        .max(now.saturating_add(gap()))
                });
                self.shared.hold(Held {
                    key: live.key.clone(),
                    certificate,
                    comment: identity_comment(pk_token.claims()),
                    expires_at,
                });
                live.pk_token = pk_token;
                live.expires_at = expires_at;
                live.next_refresh = next_refresh;
                live.failing = None;
                self.status.state = State::Ready;
                self.status.holding = true;
                self.status.expires_at = expires_at;
                self.status.next_refresh = next_refresh;
                self.status.refreshes = self.status.refreshes.saturating_add(1);
                self.status.problem = None;
                self.publish();
                let status = self.status.clone();
                report.event(&Event::Refreshed(&status));
            }
            Err(error) => {
                let error = error.to_string();
                let expires_at = live.expires_at.unwrap_or(now);
                live.next_refresh = Some(retry_at(expires_at, now));
                self.status.next_refresh = live.next_refresh;
                self.status.problem = Some(format!("refresh failed: {error}"));
                let first = live.failing.is_none();
                if first {
                    live.failing = Some(error.clone());
                }
                self.publish();
                if first {
                    report.event(&Event::RefreshFailed {
                        error: &error,
                        expires_at,
                    });
                }
            }
        }
        true
    }
}

/// The session's access token, which the certificate must carry.
fn access_token(session: Option<&Session>) -> Result<String, LoginError> {
    session
        .and_then(|session| session.access_token.as_ref())
        .map(|token| token.as_str().to_owned())
        .ok_or_else(|| {
            LoginError::Other(
                "--send-access-token was requested but the provider returned no access token"
                    .to_owned(),
            )
        })
}

fn gap() -> i64 {
    i64::try_from(MIN_REFRESH_GAP.as_secs()).unwrap_or(i64::MAX)
}

/// `ecdsa-sha2-nistp256 SHA256:…`: what `--status` shows of the key.
fn describe_key(certificate: &OpksshCertificate) -> String {
    format!(
        "{} {}",
        certificate.inner().public_key().algorithm(),
        certificate.fingerprint()
    )
}

/// The host's [`Progress`], with the login's URL or code also put in the status, so that
/// `opkssh agent --login` and `--status` can show it wherever the agent's output goes.
struct Prompting<'r, 's> {
    report: &'r mut dyn Report,
    shared: &'s Shared,
    status: &'s mut Status,
}

impl Progress for Prompting<'_, '_> {
    fn open_url(&mut self, url: &str) {
        self.status.login_url = Some(url.to_owned());
        self.shared.set_status(self.status.to_json());
        self.report.open_url(url);
    }

    fn device_code(&mut self, authorization: &DeviceAuthorization) {
        self.status.device = Some(DevicePrompt {
            verification_uri: authorization.verification_uri.clone(),
            user_code: authorization.user_code.clone(),
            verification_uri_complete: authorization.verification_uri_complete.clone(),
        });
        self.shared.set_status(self.status.to_json());
        self.report.device_code(authorization);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    #[test]
    fn a_third_of_the_lifetime_before_exp_and_never_under_ten_seconds() {
        // One hour: at 40 minutes.
        assert_eq!(refresh_due(Some(NOW), NOW + 3600, NOW), NOW + 2400);
        // 30 s: 10 s before exp, at 20 s.
        assert_eq!(refresh_due(Some(NOW), NOW + 30, NOW), NOW + 20);
        // 12 s: the 10 s floor.
        assert_eq!(refresh_due(Some(NOW), NOW + 12, NOW), NOW + 2);
        // 24 h: 16 h in.
        assert_eq!(refresh_due(Some(NOW), NOW + 86_400, NOW), NOW + 57_600);
    }

    #[test]
    fn a_missing_or_odd_iat_counts_from_arrival() {
        assert_eq!(refresh_due(None, NOW + 30, NOW), NOW + 20);
        // iat after exp, or in our future: from arrival.
        assert_eq!(refresh_due(Some(NOW + 100), NOW + 30, NOW), NOW + 20);
        assert_eq!(refresh_due(Some(NOW + 5), NOW + 35, NOW), NOW + 24);
        // A token that arrived late in its life is due at once (the caller keeps the gap).
        assert_eq!(refresh_due(Some(NOW - 25), NOW + 5, NOW), NOW - 5);
    }

    #[test]
    fn failed_refreshes_retry_after_a_third_of_what_is_left() {
        assert_eq!(retry_at(NOW + 9, NOW), NOW + 5);
        assert_eq!(retry_at(NOW + 30, NOW), NOW + 10);
        assert_eq!(retry_at(NOW + 1200, NOW), NOW + 300);
        assert_eq!(retry_at(NOW - 10, NOW), NOW + 5);
    }

    #[test]
    fn status_round_trips_and_tolerates_other_versions() {
        let status = Status {
            pid: 7,
            state: State::Ready,
            holding: true,
            identity: Some("alice@example.com".into()),
            issuer: Some("https://op.example".into()),
            expires_at: Some(NOW),
            next_refresh: Some(NOW - 10),
            refreshable: true,
            refreshes: 2,
            ..Status::default()
        };
        assert_eq!(Status::from_json(&status.to_json()).ok(), Some(status));
        let other = Status::from_json(r#"{"state":"dreaming","extra":1}"#).ok();
        assert_eq!(other.map(|status| status.state), Some(State::Unknown));
        assert!(Status::from_json("\"ready\"").is_err());
        assert!(Status::from_json("{\"pid\":-1}").is_err());
    }
}
