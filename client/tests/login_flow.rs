//! The login flow as a library against the demo OP: a refresh appends a checked ID token that
//! verifies under `oidc_refreshed` and moves the expiry forward; an OP error on the callback
//! fails the login with the OP's words and an error page.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)] // test code: a panic is a failure

use opk_client::demo_op::{DemoOp, DemoUser};
use opk_client::login::{self, BrowserProvider, Session};
use opk_core::sshcert::{UserKeyType, generate_user_key};
use opk_core::verify::{ExpirationPolicy, Provider};
use opk_net::http::HttpClient;
use std::time::{Duration, SystemTime};

fn provider(op: &DemoOp, scopes: &str) -> BrowserProvider {
    BrowserProvider {
        issuer: op.issuer().to_owned(),
        client_id: op.client_id().to_owned(),
        client_secret: None,
        scopes: scopes.into(),
        prompt: "consent".into(),
        access_type: "offline".into(),
        redirect_uris: vec!["http://localhost:0/login-callback".into()],
        remote_redirect_uri: None,
    }
}

/// Follows redirects; returns the last status and body.
fn browse(url: &str) -> (u16, String) {
    let agent = ureq::Agent::config_builder()
        .max_redirects(0)
        .http_status_as_error(false)
        .build()
        .new_agent();
    let mut url = url.to_owned();
    loop {
        let mut response = agent.get(&url).call().unwrap();
        if let Some(location) = response.headers().get("location") {
            url = location.to_str().unwrap().to_owned();
            continue;
        }
        let status = response.status().as_u16();
        return (status, response.body_mut().read_to_string().unwrap());
    }
}

fn run_login(
    provider: &BrowserProvider,
) -> (Result<Session, login::LoginError>, Option<(u16, String)>) {
    let http = HttpClient::new(&Default::default());
    let key = generate_user_key(UserKeyType::Ecdsa).unwrap();
    let mut browser = None;
    let mut opener = |url: &str| {
        let url = url.to_owned();
        browser = Some(std::thread::spawn(move || browse(&url)));
    };
    let result = login::login(provider, key, &http, &mut opener, Duration::from_secs(20));
    (result, browser.map(|handle| handle.join().unwrap()))
}

#[test]
fn refresh_appends_a_checked_token_that_oidc_refreshed_accepts() {
    let op = DemoOp::start(0, "flow-client", DemoUser::default()).unwrap();
    let (session, page) = run_login(&provider(&op, "openid email"));
    let mut session = session.unwrap();
    let (status, body) = page.unwrap();
    assert_eq!(status, 200);
    assert!(body.contains("You may now close this window."));
    assert!(session.can_refresh());
    assert!(session.pk_token.refreshed_id_token().is_none());
    let first_expiry = login::current_expiry(&session.pk_token).unwrap();

    std::thread::sleep(Duration::from_millis(1100));
    let http = HttpClient::new(&Default::default());
    login::refresh(&mut session, &http).unwrap();
    let (_, refreshed) = session.pk_token.refreshed_id_token().unwrap();
    assert_eq!(refreshed.subject(), "demo-user");
    // The next wait is read from the refreshed token's payload (Go reads its header).
    assert!(login::current_expiry(&session.pk_token).unwrap() > first_expiry);
    // Compact form: `<pk token>.<refreshed ID token>`.
    let compact = session.pk_token.to_compact();
    assert_eq!(compact.matches('.').count(), 3, "{compact}");

    let jwks = opk_core::jwk::Jwks::from_json(op.jwks_json().as_bytes()).unwrap();
    let verifier = Provider::new(op.issuer(), op.client_id(), ExpirationPolicy::OidcRefreshed);
    session
        .pk_token
        .verify_at(SystemTime::now(), &verifier, &jwks)
        .unwrap();
    // A second refresh works with the rotated refresh token.
    login::refresh(&mut session, &http).unwrap();
}

#[test]
fn an_op_error_on_the_callback_fails_the_login_with_the_ops_words() {
    let op = DemoOp::start(0, "flow-client", DemoUser::default()).unwrap();
    // No `openid` scope: the demo OP answers the callback with error=invalid_scope.
    let (result, page) = run_login(&provider(&op, "email"));
    let error = result.unwrap_err().to_string();
    assert!(
        error.contains("invalid_scope") && error.contains("openid is required"),
        "{error}"
    );
    let (status, body) = page.unwrap();
    assert_eq!(status, 500);
    assert!(body.contains("opkssh login failed"), "{body}");
    // Nothing was redeemed at the token endpoint.
    assert!(!op.request_counts().contains_key("/token"));
}

#[test]
fn a_wrong_issuer_in_discovery_is_refused_before_the_browser() {
    let op = DemoOp::start(0, "flow-client", DemoUser::default()).unwrap();
    let mut wrong = provider(&op, "openid");
    wrong.issuer = op.issuer().replace("localhost", "127.0.0.1");
    let (result, page) = run_login(&wrong);
    let error = result.unwrap_err().to_string();
    assert!(error.contains("discovery document names issuer"), "{error}");
    assert!(page.is_none(), "the browser must not be opened");
}
