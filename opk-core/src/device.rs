//! The OAuth 2.0 device authorization grant (RFC 8628) as data: the device authorization
//! request with the CIC commitment as `nonce`, its answer, the token polls, and the polling
//! schedule (`interval`, `authorization_pending`, `slow_down`, `access_denied`,
//! `expired_token`, the code's lifetime). The ID token that ends the flow is checked exactly as
//! in the authorization-code flow (`oidc::check_id_token` with the commitment as nonce), so the
//! result is a PK token, never a bare bearer token. Sending requests and sleeping is the
//! caller's job.

use crate::oidc::{OidcError, TokenResponse, check_provider_url, form_body};
use serde_json::Value;
use std::time::Duration;
use zeroize::Zeroizing;

/// The `grant_type` of a device-code token request (RFC 8628 §3.4).
pub const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// The poll interval when the provider names none (RFC 8628 §3.2).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);

/// What `slow_down` adds to the interval, for that poll and all later ones (RFC 8628 §3.5).
pub const SLOW_DOWN_STEP: Duration = Duration::from_secs(5);

/// The longest interval a provider may ask for; a larger one is taken as this.
pub const MAX_INTERVAL: Duration = Duration::from_secs(60);

/// The longest a login waits for approval, whatever `expires_in` says (Google's codes live
/// 30 minutes, Entra's 15).
pub const MAX_LIFETIME: Duration = Duration::from_secs(3600);

/// Why a device login failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeviceError {
    /// The discovery document names no `device_authorization_endpoint`.
    #[error("provider {issuer} does not support the device flow")]
    Unsupported {
        /// The issuer.
        issuer: String,
    },
    /// The device authorization answer is not what RFC 8628 §3.2 describes.
    #[error("device authorization response is malformed: {0}")]
    Malformed(String),
    /// The device authorization endpoint answered with an OAuth error.
    #[error("the provider refused the device authorization: {error}{}", describe(description.as_deref()))]
    AuthorizationRefused {
        /// The `error` code.
        error: String,
        /// `error_description`, if any.
        description: Option<String>,
    },
    /// The user refused the login on the provider's pages (`access_denied`).
    #[error("access denied: the login was refused at the provider{}", describe(description.as_deref()))]
    AccessDenied {
        /// `error_description`, if any.
        description: Option<String>,
    },
    /// The code expired before the user approved (`expired_token`, or its lifetime passed).
    #[error(
        "the device code expired after {after_secs} s before the login was approved; run \
         `opkssh login --device` again"
    )]
    Expired {
        /// The code's lifetime as used here.
        after_secs: u64,
    },
    /// `--timeout` passed before the user approved.
    #[error("gave up waiting for the device login after {after_secs} s (--timeout)")]
    TimedOut {
        /// The timeout.
        after_secs: u64,
    },
    /// An answer of the token endpoint that ends the flow.
    #[error(transparent)]
    Token(#[from] OidcError),
    /// The ID token passed every check but lacks the `nonce` sent with the device
    /// authorization: the provider does not bind device-flow tokens to a key (Google and Entra
    /// do not), and an unbound token is never used.
    #[error(
        "provider {issuer} left the nonce out of its device-flow ID token, so the token is not \
         bound to your key and opkssh refuses it; log in without --device with this provider"
    )]
    NonceIgnored {
        /// The issuer.
        issuer: String,
    },
    /// The token endpoint answered a status without an OAuth error body.
    #[error("the token endpoint answered HTTP {0}")]
    Status(u16),
}

fn describe(description: Option<&str>) -> String {
    description
        .map(|text| format!(" ({})", sanitize(text)))
        .unwrap_or_default()
}

/// Provider text shown to a person: control characters (terminal escapes) become `?`.
fn sanitize(text: &str) -> String {
    text.chars()
        .map(|character| {
            if character.is_control() {
                '?'
            } else {
                character
            }
        })
        .collect()
}

/// The form body of the device authorization request: `client_id`, `scope`, `nonce` (the CIC
/// commitment) and the client secret when the provider config has one.
pub fn authorization_request_body(
    client_id: &str,
    scopes: &str,
    nonce: &str,
    client_secret: Option<&str>,
) -> String {
    let mut pairs = vec![
        ("client_id", client_id),
        ("scope", scopes),
        ("nonce", nonce),
    ];
    if let Some(secret) = client_secret.filter(|secret| !secret.is_empty()) {
        pairs.push(("client_secret", secret));
    }
    form_body(&pairs)
}

/// The device authorization endpoint's answer (RFC 8628 §3.2).
#[derive(Clone, PartialEq, Eq)]
pub struct DeviceAuthorization {
    device_code: Zeroizing<String>,
    /// The code the user types.
    pub user_code: String,
    /// Where the user goes.
    pub verification_uri: String,
    /// The same page with the code filled in, if the provider offers one.
    pub verification_uri_complete: Option<String>,
    /// How long the codes are valid, capped at [`MAX_LIFETIME`].
    pub expires_in: Duration,
    /// How long to wait between polls, [`DEFAULT_INTERVAL`] if not given, at most
    /// [`MAX_INTERVAL`].
    pub interval: Duration,
}

impl std::fmt::Debug for DeviceAuthorization {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The device code is what the poller proves itself with: never in logs.
        formatter
            .debug_struct("DeviceAuthorization")
            .field("user_code", &self.user_code)
            .field("verification_uri", &self.verification_uri)
            .field("expires_in", &self.expires_in)
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

impl DeviceAuthorization {
    /// Reads the answer of the device authorization endpoint. The user code and the URLs are
    /// shown to a person, so control, bidi and invisible characters in the code are refused,
    /// the URLs must be visible ASCII and `https://` (or `http://` to a loopback host, for
    /// test providers), and `verification_uri_complete` (drawn as the QR code) must be on the
    /// same scheme, host and port as `verification_uri`. Google's `verification_url` is taken
    /// for a missing `verification_uri`.
    ///
    /// # Errors
    /// [`DeviceError::AuthorizationRefused`] for an OAuth error body,
    /// [`DeviceError::Malformed`] naming the field otherwise.
    pub fn from_response(status: u16, body: &[u8]) -> Result<Self, DeviceError> {
        let malformed = |reason: &str| DeviceError::Malformed(reason.to_owned());
        let Ok(value) = serde_json::from_slice::<Value>(body) else {
            return Err(if status == 200 {
                malformed("not JSON")
            } else {
                malformed(&format!("HTTP {status} without a JSON body"))
            });
        };
        let text = |name: &str| value.get(name).and_then(Value::as_str).map(str::to_owned);
        if let Some(error) = text("error") {
            return Err(DeviceError::AuthorizationRefused {
                error: sanitize(&error),
                description: text("error_description"),
            });
        }
        if status != 200 {
            return Err(malformed(&format!("HTTP {status} without an OAuth error")));
        }
        let device_code = text("device_code")
            .filter(|code| !code.is_empty())
            .ok_or_else(|| malformed("no device_code"))?;
        let user_code = text("user_code")
            .filter(|code| !code.is_empty())
            .ok_or_else(|| malformed("no user_code"))?;
        if user_code.chars().any(hides_or_reorders) || user_code.len() > 64 {
            return Err(malformed(
                "user_code is not a short printable code (control, bidi or invisible characters)",
            ));
        }
        let verification_uri = text("verification_uri")
            .or_else(|| text("verification_url"))
            .ok_or_else(|| malformed("no verification_uri"))?;
        check_shown_url(&verification_uri, "verification_uri")?;
        let verification_uri_complete = text("verification_uri_complete");
        if let Some(url) = &verification_uri_complete {
            check_shown_url(url, "verification_uri_complete")?;
            // The QR code is not read by the person before it is followed: it must lead to
            // the site whose address is printed next to the code.
            let (shown, complete) = (origin(&verification_uri), origin(url));
            if !shown.eq_ignore_ascii_case(complete) {
                return Err(DeviceError::Malformed(format!(
                    "verification_uri_complete is on {complete}, not on {shown} where \
                     verification_uri is"
                )));
            }
        }
        let seconds = |name: &str| value.get(name).map(|field| field.as_u64().ok_or(()));
        let expires_in = match seconds("expires_in") {
            Some(Ok(secs)) if secs > 0 => Duration::from_secs(secs).min(MAX_LIFETIME),
            Some(_) => return Err(malformed("expires_in is not a positive integer")),
            None => return Err(malformed("no expires_in")),
        };
        let interval = match seconds("interval") {
            None => DEFAULT_INTERVAL,
            Some(Ok(secs)) => Duration::from_secs(secs.max(1)).min(MAX_INTERVAL),
            Some(Err(_)) => return Err(malformed("interval is not a non-negative integer")),
        };
        Ok(Self {
            device_code: Zeroizing::new(device_code),
            user_code,
            verification_uri,
            verification_uri_complete,
            expires_in,
            interval,
        })
    }

    /// The form body of one poll of the token endpoint.
    pub fn token_request_body(&self, client_id: &str, client_secret: Option<&str>) -> String {
        let mut pairs = vec![
            ("grant_type", DEVICE_CODE_GRANT),
            ("device_code", self.device_code.as_str()),
            ("client_id", client_id),
        ];
        if let Some(secret) = client_secret.filter(|secret| !secret.is_empty()) {
            pairs.push(("client_secret", secret));
        }
        form_body(&pairs)
    }

    /// The page to show as a QR code: the one with the code in it, if offered.
    pub fn qr_target(&self) -> &str {
        self.verification_uri_complete
            .as_deref()
            .unwrap_or(&self.verification_uri)
    }
}

/// The URLs shown to a person follow the rule of every provider URL (https, or http to a
/// loopback host; visible ASCII only, so no bidi control or look-alike letter reorders or
/// disguises them) and stay short.
fn check_shown_url(url: &str, field: &str) -> Result<(), DeviceError> {
    if let Err(problem) = check_provider_url(url) {
        return Err(DeviceError::Malformed(format!("{field} {problem}")));
    }
    if url.len() > 2048 {
        return Err(DeviceError::Malformed(format!(
            "{field} is over 2048 bytes"
        )));
    }
    Ok(())
}

/// `scheme://authority` of a URL that passed [`check_provider_url`].
fn origin(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |index| index.saturating_add(3));
    let end = url
        .get(after_scheme..)
        .and_then(|rest| rest.find(['/', '?', '#']))
        .map_or(url.len(), |index| index.saturating_add(after_scheme));
    url.get(..end).unwrap_or(url)
}

/// Characters that must not be in a code a person reads and types: controls, and the
/// formatting characters that reorder (bidi embeddings, overrides, isolates and marks) or
/// hide (zero-width spaces and joiners, the BOM) what is displayed.
fn hides_or_reorders(character: char) -> bool {
    character.is_control()
        || matches!(
            character,
            '\u{061c}'
                | '\u{200b}'..='\u{200f}'
                | '\u{2028}'..='\u{202e}'
                | '\u{2060}'..='\u{206f}'
                | '\u{feff}'
        )
}

/// When to poll and what each answer means (RFC 8628 §3.4-3.5), without clocks: the caller
/// passes the time elapsed since the device authorization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollSchedule {
    interval: Duration,
    lifetime: Duration,
    cut_by_timeout: bool,
}

impl PollSchedule {
    /// Polls every `interval` of the authorization until its `expires_in`, or until `timeout`
    /// if that comes first.
    pub fn new(authorization: &DeviceAuthorization, timeout: Option<Duration>) -> Self {
        let lifetime = authorization.expires_in;
        match timeout {
            Some(timeout) if timeout < lifetime => Self {
                interval: authorization.interval,
                lifetime: timeout,
                cut_by_timeout: true,
            },
            _ => Self {
                interval: authorization.interval,
                lifetime,
                cut_by_timeout: false,
            },
        }
    }

    /// The current interval.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// How long to wait before the next poll, `elapsed` after the device authorization: the
    /// interval, or what is left of the lifetime if that is less (one last poll at the end).
    ///
    /// # Errors
    /// [`DeviceError::Expired`] or [`DeviceError::TimedOut`] once the lifetime has passed.
    pub fn wait_before_poll(&self, elapsed: Duration) -> Result<Duration, DeviceError> {
        let left = self.lifetime.saturating_sub(elapsed);
        if left.is_zero() {
            return Err(self.out_of_time());
        }
        Ok(self.interval.min(left))
    }

    /// A poll could not reach the token endpoint (connection failure or timeout): the
    /// interval doubles, up to [`MAX_INTERVAL`] (RFC 8628 §3.5).
    pub fn connection_failed(&mut self) {
        self.interval = self.interval.saturating_mul(2).min(MAX_INTERVAL);
    }

    fn out_of_time(&self) -> DeviceError {
        let after_secs = self.lifetime.as_secs();
        if self.cut_by_timeout {
            DeviceError::TimedOut { after_secs }
        } else {
            DeviceError::Expired { after_secs }
        }
    }

    /// Takes one answer of the token endpoint: the tokens, `None` to poll again
    /// (`authorization_pending`; `slow_down`, which also adds [`SLOW_DOWN_STEP`] to the
    /// interval), or the error that ends the flow.
    ///
    /// # Errors
    /// [`DeviceError::AccessDenied`], [`DeviceError::Expired`], [`DeviceError::Token`] for any
    /// other OAuth error or a malformed answer, [`DeviceError::Status`].
    pub fn take_answer(
        &mut self,
        status: u16,
        body: &[u8],
    ) -> Result<Option<TokenResponse>, DeviceError> {
        match TokenResponse::from_json(body) {
            Ok(tokens) if status == 200 => Ok(Some(tokens)),
            Ok(_) => Err(DeviceError::Status(status)),
            Err(OidcError::Refused { error, description }) => match error.as_str() {
                "authorization_pending" => Ok(None),
                "slow_down" => {
                    self.interval = self.interval.saturating_add(SLOW_DOWN_STEP);
                    Ok(None)
                }
                "access_denied" => Err(DeviceError::AccessDenied { description }),
                "expired_token" => Err(DeviceError::Expired {
                    after_secs: self.lifetime.as_secs(),
                }),
                _ => Err(DeviceError::Token(OidcError::Refused {
                    error: sanitize(&error),
                    description: description.map(|text| sanitize(&text)),
                })),
            },
            Err(_) if status != 200 => Err(DeviceError::Status(status)),
            Err(error) => Err(error.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use super::*;
    use crate::oidc::form_decode;

    const ANSWER: &[u8] = br#"{"device_code":"DEVCODE","user_code":"WDJB-MJHT","verification_uri":"https://op.example/device","verification_uri_complete":"https://op.example/device?user_code=WDJB-MJHT","expires_in":1800,"interval":5}"#;

    fn authorization() -> DeviceAuthorization {
        DeviceAuthorization::from_response(200, ANSWER).unwrap()
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn request_bodies_carry_the_commitment_and_the_code() {
        let body = authorization_request_body("cid", "openid email", "COMMIT", Some("s"));
        assert_eq!(
            form_decode(&body),
            [
                ("client_id", "cid"),
                ("scope", "openid email"),
                ("nonce", "COMMIT"),
                ("client_secret", "s")
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
        assert!(!authorization_request_body("cid", "openid", "N", Some("")).contains("secret"));
        let poll = authorization().token_request_body("cid", None);
        assert_eq!(
            poll,
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code&\
             device_code=DEVCODE&client_id=cid"
        );
    }

    #[test]
    fn authorization_answer_fields() {
        let auth = authorization();
        assert_eq!(auth.user_code, "WDJB-MJHT");
        assert_eq!(auth.expires_in, secs(1800));
        assert_eq!(auth.interval, secs(5));
        assert_eq!(
            auth.qr_target(),
            "https://op.example/device?user_code=WDJB-MJHT"
        );
        assert!(!format!("{auth:?}").contains("DEVCODE"));

        // No interval: 5 s. Google's verification_url. No complete URI: the QR shows the page.
        let google = br#"{"device_code":"d","user_code":"ABC-DEF","verification_url":"https://www.google.com/device","expires_in":1800}"#;
        let auth = DeviceAuthorization::from_response(200, google).unwrap();
        assert_eq!(auth.interval, DEFAULT_INTERVAL);
        assert_eq!(auth.qr_target(), "https://www.google.com/device");
        // Absurd values are capped.
        let long = br#"{"device_code":"d","user_code":"A","verification_uri":"http://localhost:9/device","expires_in":999999,"interval":600}"#;
        let auth = DeviceAuthorization::from_response(200, long).unwrap();
        assert_eq!(
            (auth.expires_in, auth.interval),
            (MAX_LIFETIME, MAX_INTERVAL)
        );
    }

    #[test]
    fn authorization_answer_refusals() {
        let refused = DeviceAuthorization::from_response(
            400,
            br#"{"error":"invalid_scope","error_description":"bad"}"#,
        );
        assert_eq!(
            refused,
            Err(DeviceError::AuthorizationRefused {
                error: "invalid_scope".into(),
                description: Some("bad".into())
            })
        );
        let cases: [(&[u8], &str); 8] = [
            (b"<html>", "not JSON"),
            (br#"{"user_code":"A","verification_uri":"https://op/d","expires_in":9}"#, "no device_code"),
            (br#"{"device_code":"d","verification_uri":"https://op/d","expires_in":9}"#, "no user_code"),
            (br#"{"device_code":"d","user_code":"A\u001b[2J","verification_uri":"https://op/d","expires_in":9}"#, "printable"),
            (br#"{"device_code":"d","user_code":"A","verification_uri":"http://evil.example/d","expires_in":9}"#, "https"),
            (br#"{"device_code":"d","user_code":"A","verification_uri":"https://op/d","verification_uri_complete":"https://op/d?x=\u0007","expires_in":9}"#, "control"),
            (br#"{"device_code":"d","user_code":"A","verification_uri":"https://op/d"}"#, "no expires_in"),
            (br#"{"device_code":"d","user_code":"A","verification_uri":"https://op/d","expires_in":9,"interval":"5"}"#, "interval"),
        ];
        for (body, reason) in cases {
            match DeviceAuthorization::from_response(200, body) {
                Err(DeviceError::Malformed(text)) => assert!(text.contains(reason), "{text}"),
                other => panic!("{other:?} for {}", String::from_utf8_lossy(body)),
            }
        }
        let hostile: [(&str, &str); 6] = [
            (
                r#""user_code":"WDJB\u202e-MJHT","verification_uri":"https://op/d""#,
                "user_code is not a short printable code",
            ),
            (
                r#""user_code":"WDJB\u200b-MJHT","verification_uri":"https://op/d""#,
                "user_code is not a short printable code",
            ),
            (
                r#""user_code":"A","verification_uri":"https://op/\u202ed""#,
                "verification_uri has a space, a control character",
            ),
            (
                r#""user_code":"A","verification_uri":"https://op/d","verification_uri_complete":"https://evil.example/d?user_code=A""#,
                "verification_uri_complete is on https://evil.example, not on https://op where verification_uri is",
            ),
            (
                r#""user_code":"A","verification_uri":"https://op/d","verification_uri_complete":"https://op:8443/d?user_code=A""#,
                "not on https://op where",
            ),
            (
                r#""user_code":"A","verification_uri":"https://op/d","verification_uri_complete":"https://op@evil.example/d""#,
                "verification_uri_complete has a user name before its host",
            ),
        ];
        for (fields, reason) in hostile {
            let body = format!(r#"{{"device_code":"d",{fields},"expires_in":9}}"#);
            match DeviceAuthorization::from_response(200, body.as_bytes()) {
                Err(DeviceError::Malformed(text)) => assert!(text.contains(reason), "{text}"),
                other => panic!("{other:?} for {body}"),
            }
        }
        // Same site, letter case aside: accepted.
        let same = br#"{"device_code":"d","user_code":"A","verification_uri":"https://OP.example/d","verification_uri_complete":"https://op.example/d?user_code=A","expires_in":9}"#;
        assert!(DeviceAuthorization::from_response(200, same).is_ok());
        assert!(matches!(
            DeviceAuthorization::from_response(500, b"oops"),
            Err(DeviceError::Malformed(text)) if text.contains("HTTP 500")
        ));
    }

    #[test]
    fn pending_polls_again_at_the_same_interval() {
        let mut schedule = PollSchedule::new(&authorization(), None);
        assert_eq!(schedule.wait_before_poll(secs(0)), Ok(secs(5)));
        let pending = br#"{"error":"authorization_pending","error_description":"wait"}"#;
        assert_eq!(schedule.take_answer(400, pending), Ok(None));
        assert_eq!(schedule.interval(), secs(5));
        assert_eq!(schedule.wait_before_poll(secs(5)), Ok(secs(5)));
    }

    #[test]
    fn slow_down_adds_five_seconds_each_time() {
        let mut schedule = PollSchedule::new(&authorization(), None);
        let slow = br#"{"error":"slow_down"}"#;
        assert_eq!(schedule.take_answer(400, slow), Ok(None));
        assert_eq!(schedule.interval(), secs(10));
        assert_eq!(schedule.wait_before_poll(secs(5)), Ok(secs(10)));
        assert_eq!(schedule.take_answer(400, slow), Ok(None));
        assert_eq!(schedule.wait_before_poll(secs(15)), Ok(secs(15)));
        // A pending answer afterwards keeps the slower pace.
        assert_eq!(
            schedule.take_answer(400, br#"{"error":"authorization_pending"}"#),
            Ok(None)
        );
        assert_eq!(schedule.interval(), secs(15));
    }

    #[test]
    fn connection_failures_back_off_to_a_minute() {
        let mut schedule = PollSchedule::new(&authorization(), None);
        schedule.connection_failed();
        assert_eq!(schedule.interval(), secs(10));
        for _ in 0..5 {
            schedule.connection_failed();
        }
        assert_eq!(schedule.interval(), MAX_INTERVAL);
    }

    #[test]
    fn the_lifetime_bounds_the_polls() {
        let schedule = PollSchedule::new(&authorization(), None);
        // Three seconds left: one last poll then, not five seconds later.
        assert_eq!(schedule.wait_before_poll(secs(1797)), Ok(secs(3)));
        assert_eq!(
            schedule.wait_before_poll(secs(1800)),
            Err(DeviceError::Expired { after_secs: 1800 })
        );
        // --timeout shorter than the code's lifetime says so.
        let cut = PollSchedule::new(&authorization(), Some(secs(60)));
        assert_eq!(
            cut.wait_before_poll(secs(61)),
            Err(DeviceError::TimedOut { after_secs: 60 })
        );
        // --timeout longer than the lifetime changes nothing.
        let long = PollSchedule::new(&authorization(), Some(secs(7200)));
        assert_eq!(long, schedule);
    }

    #[test]
    fn final_answers() {
        let mut schedule = PollSchedule::new(&authorization(), None);
        let expired = schedule.take_answer(400, br#"{"error":"expired_token"}"#);
        assert_eq!(expired, Err(DeviceError::Expired { after_secs: 1800 }));
        let denied = schedule
            .take_answer(
                400,
                br#"{"error":"access_denied","error_description":"End-User aborted interaction"}"#,
            )
            .unwrap_err();
        assert_eq!(
            denied.to_string(),
            "access denied: the login was refused at the provider (End-User aborted interaction)"
        );
        assert!(matches!(
            schedule.take_answer(400, br#"{"error":"invalid_grant"}"#),
            Err(DeviceError::Token(OidcError::Refused { error, .. })) if error == "invalid_grant"
        ));
        assert_eq!(
            schedule.take_answer(502, b"<html>bad gateway</html>"),
            Err(DeviceError::Status(502))
        );
        assert_eq!(
            schedule.take_answer(500, br#"{"id_token":"a.b.c"}"#),
            Err(DeviceError::Status(500))
        );
        assert!(matches!(
            schedule.take_answer(200, br#"{"access_token":"x"}"#),
            Err(DeviceError::Token(OidcError::TokenResponse(_)))
        ));
        let tokens = schedule
            .take_answer(200, br#"{"id_token":"a.b.c","refresh_token":"r"}"#)
            .unwrap()
            .unwrap();
        assert_eq!(tokens.id_token, "a.b.c");
        // A provider's description cannot drive the terminal.
        let hostile = schedule
            .take_answer(
                400,
                b"{\"error\":\"access_denied\",\"error_description\":\"\\u001b[31mred\"}",
            )
            .unwrap_err();
        assert!(!hostile.to_string().contains('\u{1b}'), "{hostile}");
    }
}
