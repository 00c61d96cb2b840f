//! The device login (`opkssh login --device`, RFC 8628) for machines without a browser: the
//! user opens a page and types a code on any other device, while this process polls the token
//! endpoint. The user key is bound exactly as in the browser login: the device authorization
//! request carries the CIC commitment as `nonce`, and the ID token must come back with it
//! (besides the signature, issuer, audience and time checks) before a PK token is built. An OP
//! that drops the nonce from device-flow tokens (Google and Entra do) gets a clear refusal,
//! never an unbound token.
//!
//! The protocol pieces are `opk_core::device`; this module sends the requests and sleeps.
//! Nothing here prints: the caller shows [`instructions`].

use crate::login::{self, BrowserProvider, LoginError, NETWORK_BUDGET, Session};
use opk_core::cic::CicHeader;
use opk_core::claims::Claims;
use opk_core::device::{self, DeviceAuthorization, DeviceError, PollSchedule};
use opk_core::jwk::Jwks;
use opk_core::jws::{Jws, SigningKey};
use opk_core::oidc::{self, ProviderMetadata, TokenResponse};
use opk_net::deadline::Deadline;
use opk_net::http::{FetchError, HttpClient};
use qrcode::render::unicode::Dense1x2;
use std::time::{Duration, Instant, SystemTime};
use zeroize::Zeroizing;

/// Runs the device login with `key` as the user key. `show` gets the device authorization once
/// the provider has answered (to print [`instructions`]); polling then goes on until the user
/// approves or refuses, the code expires, or `timeout` passes.
///
/// # Errors
/// [`LoginError`] for the first failed step: no device endpoint, a refused request,
/// [`DeviceError::AccessDenied`], [`DeviceError::Expired`], an ID token that fails a check,
/// [`DeviceError::NonceIgnored`]. Nothing is written by this function.
pub fn login(
    provider: &BrowserProvider,
    key: SigningKey,
    http: &HttpClient,
    show: &mut dyn FnMut(&DeviceAuthorization),
    timeout: Option<Duration>,
) -> Result<Session, LoginError> {
    let (metadata, jwks) = login::discover(http, &provider.issuer)?;
    let endpoint = metadata
        .device_authorization_endpoint
        .clone()
        .ok_or_else(|| DeviceError::Unsupported {
            issuer: provider.issuer.clone(),
        })?;
    let cic = CicHeader::generate(&key, &[]).map_err(LoginError::other)?;
    let request = Zeroizing::new(device::authorization_request_body(
        &provider.client_id,
        &provider.scopes,
        cic.commitment(),
        provider.client_secret.as_deref(),
    ));
    let (status, answer) = http.post_form(&endpoint, &request, &Deadline::after(NETWORK_BUDGET))?;
    let authorization = DeviceAuthorization::from_response(status, &answer)?;
    let issued = Instant::now();
    show(&authorization);

    let poll = Zeroizing::new(
        authorization.token_request_body(&provider.client_id, provider.client_secret.as_deref()),
    );
    let schedule = PollSchedule::new(&authorization, timeout);
    let tokens = poll_until_done(http, &metadata.token_endpoint, &poll, schedule, issued)?;
    let (jwks, id_token) = check_bound_id_token(
        http,
        &metadata,
        &jwks,
        &tokens.id_token,
        &provider.client_id,
        cic.commitment(),
    )?;
    login::bind(provider, metadata, jwks, key, &cic, id_token, &tokens)
}

/// Polls the token endpoint on `schedule` until it answers with tokens or a final error.
/// Connection failures back off and are retried until the code's lifetime ends (RFC 8628
/// §3.5), so a network blip during a long wait does not throw away an approval.
fn poll_until_done(
    http: &HttpClient,
    token_endpoint: &str,
    body: &str,
    mut schedule: PollSchedule,
    issued: Instant,
) -> Result<TokenResponse, LoginError> {
    let mut last_failure: Option<FetchError> = None;
    loop {
        let wait = match schedule.wait_before_poll(issued.elapsed()) {
            Ok(wait) => wait,
            Err(out_of_time) => {
                return Err(match last_failure {
                    Some(failure) => LoginError::other(format!(
                        "{out_of_time}; the last poll of the token endpoint failed: {failure}"
                    )),
                    None => out_of_time.into(),
                });
            }
        };
        std::thread::sleep(wait);
        match http.post_form(token_endpoint, body, &Deadline::after(NETWORK_BUDGET)) {
            Ok((status, answer)) => {
                last_failure = None;
                if let Some(tokens) = schedule.take_answer(status, &answer)? {
                    return Ok(tokens);
                }
            }
            Err(failure @ (FetchError::Timeout(_) | FetchError::Transport { .. })) => {
                schedule.connection_failed();
                last_failure = Some(failure);
            }
            Err(failure) => return Err(failure.into()),
        }
    }
}

/// The browser login's ID-token checks, in two steps so that a provider that drops the nonce
/// gets its own message: first signature (refetching the key set for an unknown `kid`),
/// issuer, audience and times; then all of them again with `nonce` = the commitment.
fn check_bound_id_token(
    http: &HttpClient,
    metadata: &ProviderMetadata,
    jwks: &Jwks,
    id_token: &str,
    client_id: &str,
    commitment: &str,
) -> Result<(Jwks, Jws), LoginError> {
    let (jwks, _) = login::check_with_refetch(http, metadata, jwks, id_token, client_id, None)?;
    match oidc::check_id_token(
        id_token,
        &metadata.issuer,
        client_id,
        Some(commitment),
        &jwks,
        SystemTime::now(),
    ) {
        Ok(checked) => Ok((jwks, checked)),
        Err(error) => {
            let has_nonce = Jws::parse(id_token)
                .ok()
                .and_then(|jws| Claims::from_segment(jws.payload_segment()).ok())
                .is_some_and(|claims| claims.nonce().is_some());
            if has_nonce {
                Err(error.into())
            } else {
                Err(DeviceError::NonceIgnored {
                    issuer: metadata.issuer.clone(),
                }
                .into())
            }
        }
    }
}

/// What the user is told: the page, the code, the page with the code in it, and (with `qr`)
/// a QR code of the latter, then how long the code lasts.
pub fn instructions(authorization: &DeviceAuthorization, qr: bool) -> String {
    let mut text = format!(
        "To log in, open this page in a browser on any device:\n  {}\nand enter the code: {}\n",
        authorization.verification_uri, authorization.user_code
    );
    if let Some(complete) = &authorization.verification_uri_complete {
        text.push_str(&format!(
            "\nOr open this link, which has the code in it:\n  {complete}\n"
        ));
    }
    if qr && let Some(code) = qr_code(authorization.qr_target()) {
        text.push('\n');
        text.push_str(&code);
        text.push('\n');
    }
    text.push_str(&format!(
        "\nWaiting for the login to be approved (the code expires in {})...",
        human_duration(authorization.expires_in)
    ));
    text
}

/// A QR code of `text` in Unicode half blocks, two modules per character cell, with the quiet
/// zone. Light modules are the drawn ones, so it reads on the usual dark-background terminal.
/// `None` if the text does not fit a QR code.
pub fn qr_code(text: &str) -> Option<String> {
    let code =
        qrcode::QrCode::with_error_correction_level(text.as_bytes(), qrcode::EcLevel::M).ok()?;
    Some(
        code.render::<Dense1x2>()
            .dark_color(Dense1x2::Light)
            .light_color(Dense1x2::Dark)
            .quiet_zone(true)
            .build(),
    )
}

fn human_duration(duration: Duration) -> String {
    let secs = duration.as_secs();
    if secs >= 120 && secs.is_multiple_of(60) {
        format!("{} minutes", secs / 60)
    } else {
        format!("{secs} seconds")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use super::*;

    fn authorization(complete: bool) -> DeviceAuthorization {
        let complete = if complete {
            r#","verification_uri_complete":"https://op.example/device?user_code=WDJB-MJHT""#
        } else {
            ""
        };
        let body = format!(
            r#"{{"device_code":"SECRET-DEVICE-CODE","user_code":"WDJB-MJHT","verification_uri":"https://op.example/device"{complete},"expires_in":600}}"#
        );
        DeviceAuthorization::from_response(200, body.as_bytes()).unwrap()
    }

    #[test]
    fn instructions_name_the_page_and_code_never_the_device_code() {
        let text = instructions(&authorization(true), false);
        assert_eq!(
            text,
            "To log in, open this page in a browser on any device:\n  https://op.example/device\n\
             and enter the code: WDJB-MJHT\n\nOr open this link, which has the code in it:\n  \
             https://op.example/device?user_code=WDJB-MJHT\n\nWaiting for the login to be \
             approved (the code expires in 10 minutes)..."
        );
        let with_qr = instructions(&authorization(true), true);
        assert!(with_qr.contains('\u{2588}'), "{with_qr}");
        assert!(!with_qr.contains("SECRET-DEVICE-CODE"));
        assert!(!instructions(&authorization(false), false).contains("Or open this link"));
    }

    /// The drawing is the QR matrix itself: every module maps to the upper or lower half of one
    /// cell, light modules drawn, with a four-module light border.
    #[test]
    fn qr_code_cells_match_the_matrix() {
        let url = "https://op.example/device?user_code=WDJB-MJHT";
        let drawn = qr_code(url).unwrap();
        let code = qrcode::QrCode::with_error_correction_level(url, qrcode::EcLevel::M).unwrap();
        let width = code.width();
        // Coordinates in the drawing, quiet zone included.
        let light = |x: usize, y: usize| {
            let inside = (4..width + 4).contains(&x) && (4..width + 4).contains(&y);
            !inside || code[(x - 4, y - 4)] == qrcode::Color::Light
        };
        let lines: Vec<Vec<char>> = drawn.lines().map(|line| line.chars().collect()).collect();
        let side = width + 8;
        assert_eq!(lines.len(), side.div_ceil(2));
        for (row, line) in lines.iter().enumerate() {
            assert_eq!(line.len(), side);
            for (column, cell) in line.iter().enumerate() {
                let top = light(column, 2 * row);
                let bottom = 2 * row + 1 < side && light(column, 2 * row + 1);
                let expected = match (top, bottom) {
                    (true, true) => '\u{2588}',
                    (true, false) => '\u{2580}',
                    (false, true) => '\u{2584}',
                    (false, false) => ' ',
                };
                assert_eq!(*cell, expected, "row {row} column {column}");
            }
        }
        assert!(qr_code(&"x".repeat(8000)).is_none());
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human_duration(Duration::from_secs(1800)), "30 minutes");
        assert_eq!(human_duration(Duration::from_secs(90)), "90 seconds");
    }
}
