//! The OpenID Connect client side, as data: provider metadata from discovery, the authorization
//! request with PKCE (S256), state and the CIC commitment as nonce, the token response, and the
//! checks a client makes on the ID token before anything is written (wire-format.md §3.3, §5.9).
//! Sending requests is the caller's job.

use crate::b64;
use crate::claims::{Audience, Claims};
use crate::jwk::Jwks;
use crate::jws::{Algorithm, Jws};
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use std::time::{SystemTime, UNIX_EPOCH};
use subtle::ConstantTimeEq as _;

/// Why an OIDC step failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OidcError {
    /// The discovery document is not JSON or lacks a required endpoint.
    #[error("discovery document is malformed: {0}")]
    Discovery(&'static str),
    /// An endpoint of the discovery document breaks the rules an issuer URL follows.
    #[error("discovery document's {field} `{}` {problem}", shown_url(url))]
    Endpoint {
        /// The document's member (`authorization_endpoint`, `jwks_uri`, …).
        field: &'static str,
        /// Its value.
        url: String,
        /// Which rule it breaks.
        problem: UrlProblem,
    },
    /// The discovery document is for another issuer.
    #[error("discovery document names issuer `{found}`, expected `{expected}`")]
    IssuerMismatch {
        /// Configured.
        expected: String,
        /// Found.
        found: String,
    },
    /// The token endpoint's answer is not a token response.
    #[error("token response is malformed: {0}")]
    TokenResponse(String),
    /// The OP answered with an OAuth error. Both texts are the OP's (or whoever reached the
    /// callback) and are kept as sent: whoever shows this error escapes it
    /// ([`crate::escape::line`]), once, where it is shown.
    #[error(
        "the OpenID provider refused: {error}{}",
        description.as_deref().map(|text| format!(" ({text})")).unwrap_or_default()
    )]
    Refused {
        /// The `error` code.
        error: String,
        /// `error_description`, if any.
        description: Option<String>,
    },
    /// The callback's `state` is not ours.
    #[error("callback state does not match the request")]
    StateMismatch,
    /// The ID token failed a client-side check.
    #[error("id token: {0}")]
    IdToken(String),
}

/// Why a URL given by the provider is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UrlProblem {
    /// A space, a control character, or anything outside visible ASCII (a URL on the wire is
    /// ASCII; CR and LF would split the `Location` header it is sent in, bidi controls reorder
    /// what a person reads).
    #[error("has a space, a control character or a character outside visible ASCII")]
    Unprintable,
    /// Neither `https://<host>` nor plain `http://` to `localhost` or `127.0.0.1`.
    #[error("is not https:// (plain http:// is allowed only to localhost and 127.0.0.1)")]
    NotHttps,
    /// `user@` before the host, which makes `http://localhost@evil.example` look local.
    #[error("has a user name before its host")]
    UserInfo,
    /// A `#fragment`, which an endpoint must not have (RFC 6749 §3.1, §3.2) and which would
    /// swallow the parameters appended to it.
    #[error("has a fragment (#)")]
    Fragment,
}

/// The rule for every URL a provider hands the client, the issuer's own rule: `https://` with
/// a host, or plain `http://` to `localhost` or `127.0.0.1` (test providers), with an optional
/// numeric port; visible ASCII only, and no user name before the host.
///
/// # Errors
/// The [`UrlProblem`] found first.
pub fn check_provider_url(url: &str) -> Result<(), UrlProblem> {
    if url.is_empty() || !url.bytes().all(|byte| byte.is_ascii_graphic()) {
        return Err(UrlProblem::Unprintable);
    }
    let (rest, https) = match (url.strip_prefix("https://"), url.strip_prefix("http://")) {
        (Some(rest), _) => (rest, true),
        (None, Some(rest)) => (rest, false),
        (None, None) => return Err(UrlProblem::NotHttps),
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err(UrlProblem::UserInfo);
    }
    let host = match authority.rsplit_once(':') {
        Some((host, port))
            if !port.is_empty() && port.bytes().all(|byte| byte.is_ascii_digit()) =>
        {
            host
        }
        // An IPv6 literal's colons, or a port that is not a number.
        Some(_) if https && authority.ends_with(']') => authority,
        Some(_) => return Err(UrlProblem::NotHttps),
        None => authority,
    };
    let allowed = if https {
        !host.is_empty()
    } else {
        matches!(host, "localhost" | "127.0.0.1")
    };
    if allowed {
        Ok(())
    } else {
        Err(UrlProblem::NotHttps)
    }
}

/// A provider's URL in an error message, cut to a readable length (escaped where the message is
/// shown, like every text from outside).
fn shown_url(url: &str) -> String {
    const SHOWN: usize = 200;
    let mut shown: String = url.chars().take(SHOWN).collect();
    if url.chars().count() > SHOWN {
        shown.push_str("...");
    }
    shown
}

/// What discovery says about a provider (`/.well-known/openid-configuration`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderMetadata {
    /// The issuer, equal to the configured one.
    pub issuer: String,
    /// Where the browser goes.
    pub authorization_endpoint: String,
    /// Where codes and refresh tokens are exchanged.
    pub token_endpoint: String,
    /// The key set.
    pub jwks_uri: String,
    /// Userinfo, if offered.
    pub userinfo_endpoint: Option<String>,
    /// The device authorization endpoint (RFC 8628), if offered.
    pub device_authorization_endpoint: Option<String>,
}

impl ProviderMetadata {
    /// Parses a discovery document and checks that it is for `issuer`, exactly, and that each
    /// endpoint it names follows [`check_provider_url`] without a fragment: the authorization
    /// endpoint goes into the `Location` header of the local `/login` redirect, and the others
    /// are sent codes, tokens and device codes.
    ///
    /// # Errors
    /// [`OidcError::Discovery`], [`OidcError::IssuerMismatch`], [`OidcError::Endpoint`].
    pub fn from_json(bytes: &[u8], issuer: &str) -> Result<Self, OidcError> {
        let document: Value =
            serde_json::from_slice(bytes).map_err(|_| OidcError::Discovery("not JSON"))?;
        let text = |name: &'static str| {
            document
                .get(name)
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        let found = text("issuer").ok_or(OidcError::Discovery("no issuer"))?;
        if found != issuer {
            return Err(OidcError::IssuerMismatch {
                expected: issuer.to_owned(),
                found,
            });
        }
        let endpoint = |field: &'static str| -> Result<Option<String>, OidcError> {
            let Some(url) = text(field) else {
                return Ok(None);
            };
            let problem = match check_provider_url(&url) {
                Err(problem) => Some(problem),
                Ok(()) if url.contains('#') => Some(UrlProblem::Fragment),
                Ok(()) => None,
            };
            match problem {
                Some(problem) => Err(OidcError::Endpoint {
                    field,
                    url,
                    problem,
                }),
                None => Ok(Some(url)),
            }
        };
        Ok(Self {
            issuer: found,
            authorization_endpoint: endpoint("authorization_endpoint")?
                .ok_or(OidcError::Discovery("no authorization_endpoint"))?,
            token_endpoint: endpoint("token_endpoint")?
                .ok_or(OidcError::Discovery("no token_endpoint"))?,
            jwks_uri: endpoint("jwks_uri")?.ok_or(OidcError::Discovery("no jwks_uri"))?,
            userinfo_endpoint: endpoint("userinfo_endpoint")?,
            device_authorization_endpoint: endpoint("device_authorization_endpoint")?,
        })
    }
}

/// Draws `count` random bytes from the OS.
fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0_u8; N];
    rand_core::Rng::fill_bytes(&mut rand_core::UnwrapErr(getrandom::SysRng), &mut bytes);
    bytes
}

/// A PKCE pair (RFC 7636, S256).
#[derive(Clone, PartialEq, Eq)]
pub struct Pkce {
    verifier: String,
}

impl std::fmt::Debug for Pkce {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("Pkce(..)")
    }
}

impl Pkce {
    /// 32 random bytes as the verifier (43 characters).
    pub fn generate() -> Self {
        Self {
            verifier: b64::encode_url(random_bytes::<32>()),
        }
    }

    /// The verifier, sent with the code.
    pub fn verifier(&self) -> &str {
        &self.verifier
    }

    /// `B64U(SHA-256(verifier))`, sent in the authorization request.
    pub fn challenge(&self) -> String {
        b64::encode_url(Sha256::digest(self.verifier.as_bytes()))
    }
}

/// Percent-encodes for `application/x-www-form-urlencoded` and query strings: unreserved
/// characters stay, everything else is `%XX`.
pub fn form_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Encodes `name=value` pairs joined by `&`.
pub fn form_body(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(name, value)| format!("{}={}", form_encode(name), form_encode(value)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Decodes a query string or form body into pairs (`+` is a space).
pub fn form_decode(text: &str) -> Vec<(String, String)> {
    text.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(name), percent_decode(value))
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while let Some(&byte) = bytes.get(index) {
        let hex = bytes
            .get(index + 1..index + 3)
            .and_then(|pair| std::str::from_utf8(pair).ok())
            .and_then(|pair| u8::from_str_radix(pair, 16).ok());
        match (byte, hex) {
            (b'%', Some(decoded)) => {
                out.push(decoded);
                index += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                index += 1;
            }
            _ => {
                out.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One authorization-code login in progress: what the callback must match and what the code
/// exchange must send.
#[derive(Debug, Clone)]
pub struct AuthorizationRequest {
    url: String,
    state: String,
    nonce: String,
    pkce: Pkce,
    redirect_uri: String,
}

impl AuthorizationRequest {
    /// Builds the request: `response_type=code`, the scopes, a random state, `nonce` = the CIC
    /// commitment, PKCE S256, and the extra parameters (opkssh sends `prompt=consent` and
    /// `access_type=offline`).
    pub fn new(
        metadata: &ProviderMetadata,
        client_id: &str,
        redirect_uri: &str,
        scopes: &str,
        nonce: &str,
        extra: &[(&str, &str)],
    ) -> Self {
        let pkce = Pkce::generate();
        let state = b64::encode_url(random_bytes::<16>());
        let challenge = pkce.challenge();
        let mut pairs: Vec<(&str, &str)> = vec![
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", redirect_uri),
            ("scope", scopes),
            ("state", &state),
            ("nonce", nonce),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ];
        pairs.extend(extra.iter().filter(|(value, _)| !value.is_empty()).copied());
        let separator = if metadata.authorization_endpoint.contains('?') {
            '&'
        } else {
            '?'
        };
        let url = format!(
            "{}{separator}{}",
            metadata.authorization_endpoint,
            form_body(&pairs)
        );
        Self {
            url,
            state: state.clone(),
            nonce: nonce.to_owned(),
            pkce,
            redirect_uri: redirect_uri.to_owned(),
        }
    }

    /// The URL the browser opens.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The nonce (the CIC commitment).
    pub fn nonce(&self) -> &str {
        &self.nonce
    }

    /// Reads the callback's query string: nothing unless `state` matches, then the OP's error
    /// or the code.
    ///
    /// `state` comes first because anything on this machine, and any page the browser opens,
    /// can send a request to the callback: an `error` without this login's state is a stray
    /// request, not the OP's answer, and must not end the login.
    ///
    /// # Errors
    /// [`OidcError::StateMismatch`], then [`OidcError::Refused`].
    pub fn code_from_callback(&self, query: &str) -> Result<String, OidcError> {
        let pairs = form_decode(query);
        let get = |name: &str| {
            pairs
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.clone())
        };
        let state_matches = get("state")
            .is_some_and(|state| bool::from(state.as_bytes().ct_eq(self.state.as_bytes())));
        if !state_matches {
            return Err(OidcError::StateMismatch);
        }
        if let Some(error) = get("error") {
            return Err(OidcError::Refused {
                error,
                description: get("error_description"),
            });
        }
        get("code")
            .filter(|code| !code.is_empty())
            .ok_or(OidcError::TokenResponse("callback has no code".into()))
    }

    /// The form body of the code exchange.
    pub fn token_request_body(
        &self,
        code: &str,
        client_id: &str,
        client_secret: Option<&str>,
    ) -> String {
        let mut pairs = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", self.redirect_uri.as_str()),
            ("client_id", client_id),
            ("code_verifier", self.pkce.verifier()),
        ];
        if let Some(secret) = client_secret.filter(|secret| !secret.is_empty()) {
            pairs.push(("client_secret", secret));
        }
        form_body(&pairs)
    }
}

/// The form body of a refresh (RFC 6749 §6).
pub fn refresh_request_body(
    refresh_token: &str,
    client_id: &str,
    client_secret: Option<&str>,
) -> String {
    let mut pairs = vec![
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token),
        ("client_id", client_id),
    ];
    if let Some(secret) = client_secret.filter(|secret| !secret.is_empty()) {
        pairs.push(("client_secret", secret));
    }
    form_body(&pairs)
}

/// The token endpoint's answer.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenResponse {
    /// The ID token, compact.
    pub id_token: String,
    /// The access token, if any.
    pub access_token: Option<String>,
    /// The refresh token, if any.
    pub refresh_token: Option<String>,
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Tokens are secrets: never in logs.
        formatter.write_str("TokenResponse(..)")
    }
}

impl TokenResponse {
    /// Parses a token response, or the OAuth error it carries.
    ///
    /// # Errors
    /// [`OidcError::Refused`], [`OidcError::TokenResponse`].
    pub fn from_json(bytes: &[u8]) -> Result<Self, OidcError> {
        let value: Value = serde_json::from_slice(bytes)
            .map_err(|_| OidcError::TokenResponse("not JSON".into()))?;
        let text = |name: &str| value.get(name).and_then(Value::as_str).map(str::to_owned);
        if let Some(error) = text("error") {
            return Err(OidcError::Refused {
                error,
                description: text("error_description"),
            });
        }
        Ok(Self {
            id_token: text("id_token").ok_or(OidcError::TokenResponse("no id_token".into()))?,
            access_token: text("access_token"),
            refresh_token: text("refresh_token"),
        })
    }
}

/// OpenID Connect Core §3.1.3.7 points 4 and 5, as Go's login (zitadel) applies them: `azp`,
/// when present, must be our client id (a token issued to another client that lists us among
/// its audiences is not ours to use), and an `aud` with several values must say in `azp` which
/// of them the token was issued to.
fn check_authorized_party(claims: &Claims, client_id: &str) -> Result<(), String> {
    match claims.object().get("azp") {
        None => match claims.audience() {
            Audience::Many(audiences) if audiences.len() > 1 => Err(
                "audience has several values and no azp says which client it was issued to".into(),
            ),
            _ => Ok(()),
        },
        Some(Value::String(azp)) if azp == client_id => Ok(()),
        Some(Value::String(azp)) => {
            Err(format!("azp `{azp}` is another client than `{client_id}`"))
        }
        Some(_) => Err("azp is not a string".into()),
    }
}

/// Client-side checks of a fresh ID token before it is used (zitadel's, §5.9): signature from
/// the provider's JWKS, `iss`, `aud` contains the client id, `azp` (if any) is the client id,
/// not expired (60 s allowance), issued no later than a minute from now, and, when given,
/// `nonce` equals ours.
///
/// # Errors
/// [`OidcError::IdToken`] naming the check.
pub fn check_id_token(
    id_token: &str,
    issuer: &str,
    client_id: &str,
    expected_nonce: Option<&str>,
    jwks: &Jwks,
    now: SystemTime,
) -> Result<Jws, OidcError> {
    let fail = |reason: String| OidcError::IdToken(reason);
    let jws = Jws::parse(id_token).map_err(|error| fail(error.to_string()))?;
    let claims =
        Claims::from_segment(jws.payload_segment()).map_err(|error| fail(error.to_string()))?;
    let algorithm = jws.algorithm().map_err(|error| fail(error.to_string()))?;
    if algorithm == Algorithm::Gq256 {
        return Err(fail("the provider returned a GQ256 token".into()));
    }
    let jwk = jwks
        .find(jws.header_str("kid"))
        .map_err(|error| fail(error.to_string()))?;
    if jwk.algorithm() != Some(algorithm) {
        return Err(fail(format!("jwks key is not for {algorithm}")));
    }
    jws.verify(jwk.key())
        .map_err(|error| fail(error.to_string()))?;
    if claims.issuer() != issuer {
        return Err(fail(format!(
            "issuer `{}` is not `{issuer}`",
            claims.issuer()
        )));
    }
    if !claims.audience().contains_client_id(client_id) {
        return Err(fail(format!("audience does not contain `{client_id}`")));
    }
    check_authorized_party(&claims, client_id).map_err(fail)?;
    let now = now.duration_since(UNIX_EPOCH).map_or(0, |since| {
        i64::try_from(since.as_secs()).unwrap_or(i64::MAX)
    });
    match claims.expires_at() {
        Some(exp) if exp.saturating_add(60) > now => {}
        _ => return Err(fail("expired or without exp".into())),
    }
    if claims
        .issued_at()
        .is_some_and(|iat| iat > now.saturating_add(60))
    {
        return Err(fail("issued in the future".into()));
    }
    if let Some(expected) = expected_nonce {
        let matches = claims
            .nonce()
            .is_some_and(|nonce| bool::from(nonce.as_bytes().ct_eq(expected.as_bytes())));
        if !matches {
            return Err(fail("nonce does not match the key commitment".into()));
        }
    }
    Ok(jws)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7636 appendix B.
    #[test]
    fn pkce_s256_rfc7636_vector() {
        let pkce = Pkce {
            verifier: "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk".into(),
        };
        assert_eq!(
            pkce.challenge(),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        assert_eq!(Pkce::generate().verifier().len(), 43);
    }

    #[test]
    fn form_encoding_round_trips() {
        let text = "a b&c=d/é~_.-+%";
        assert_eq!(form_encode(text), "a%20b%26c%3Dd%2F%C3%A9~_.-%2B%25");
        assert_eq!(
            form_decode(&form_body(&[("k", text)])),
            vec![("k".to_owned(), text.to_owned())]
        );
        assert_eq!(
            form_decode("a=1+2&b"),
            vec![
                ("a".to_owned(), "1 2".to_owned()),
                ("b".to_owned(), String::new())
            ]
        );
        assert_eq!(
            form_decode("x=%zz%4"),
            vec![("x".to_owned(), "%zz%4".to_owned())]
        );
    }

    #[test]
    fn authorization_request_and_callback() {
        let metadata = ProviderMetadata {
            issuer: "http://localhost:1".into(),
            authorization_endpoint: "http://localhost:1/auth".into(),
            token_endpoint: "http://localhost:1/token".into(),
            jwks_uri: "http://localhost:1/jwks".into(),
            userinfo_endpoint: None,
            device_authorization_endpoint: None,
        };
        let request = AuthorizationRequest::new(
            &metadata,
            "cid",
            "http://localhost:3000/login-callback",
            "openid email",
            "NONCE",
            &[("prompt", "consent"), ("access_type", "offline")],
        );
        let url = request.url();
        assert!(url.starts_with("http://localhost:1/auth?response_type=code&client_id=cid&redirect_uri=http%3A%2F%2Flocalhost%3A3000%2Flogin-callback&scope=openid%20email&state="));
        assert!(
            url.contains("&nonce=NONCE&code_challenge=")
                && url.ends_with("&code_challenge_method=S256&prompt=consent&access_type=offline")
        );
        let state = form_decode(url.split_once('?').unwrap().1)
            .into_iter()
            .find(|(k, _)| k == "state")
            .unwrap()
            .1;
        assert_eq!(
            request.code_from_callback(&format!("code=abc&state={state}&iss=x")),
            Ok("abc".into())
        );
        assert_eq!(
            request.code_from_callback("code=abc&state=other"),
            Err(OidcError::StateMismatch)
        );
        // Without this login's state an error is somebody else's request, not the OP's answer.
        assert_eq!(
            request.code_from_callback("error=access_denied&error_description=no+way"),
            Err(OidcError::StateMismatch)
        );
        let refused = request.code_from_callback(&format!(
            "error=access_denied&error_description=no%1B%5B2K%0Dway&state={state}"
        ));
        assert_eq!(
            refused,
            Err(OidcError::Refused {
                error: "access_denied".into(),
                description: Some("no\x1b[2K\rway".into())
            })
        );
        assert_eq!(
            crate::escape::line(&refused.unwrap_err().to_string()),
            "the OpenID provider refused: access_denied (no\\x1b[2K\\rway)"
        );
        let body = request.token_request_body("abc", "cid", None);
        assert!(
            body.starts_with("grant_type=authorization_code&code=abc&redirect_uri=")
                && body.contains("&code_verifier=")
        );
    }

    #[test]
    fn discovery_and_token_response() {
        let doc = br#"{"issuer":"https://op","authorization_endpoint":"https://op/a","token_endpoint":"https://op/t","jwks_uri":"https://op/k"}"#;
        assert!(ProviderMetadata::from_json(doc, "https://op").is_ok());
        assert!(matches!(
            ProviderMetadata::from_json(doc, "https://op/"),
            Err(OidcError::IssuerMismatch { .. })
        ));
        assert_eq!(
            TokenResponse::from_json(br#"{"id_token":"a.b.c","refresh_token":"r"}"#)
                .map(|r| r.refresh_token),
            Ok(Some("r".into()))
        );
        assert!(matches!(
            TokenResponse::from_json(br#"{"error":"invalid_grant"}"#),
            Err(OidcError::Refused { .. })
        ));
        assert!(TokenResponse::from_json(br#"{"access_token":"x"}"#).is_err());
    }

    #[test]
    fn azp_must_be_our_client() {
        use crate::jwk::Jwk;
        use crate::sshcert::{UserKeyType, generate_user_key};
        let key = generate_user_key(UserKeyType::Ecdsa).unwrap();
        let jwks = Jwks::from_keys(vec![Jwk::new(
            key.public_key(),
            Some("k".into()),
            Some(key.algorithm()),
        )]);
        let now = SystemTime::now();
        let seconds = i64::try_from(now.duration_since(UNIX_EPOCH).unwrap().as_secs()).unwrap();
        let check = |aud: Value, azp: Option<Value>| {
            let mut claims = serde_json::json!({
                "iss": "https://op", "sub": "s", "aud": aud, "iat": seconds,
                "exp": seconds + 600, "nonce": "n"
            });
            if let Some(azp) = azp {
                claims["azp"] = azp;
            }
            let token = Jws::sign(
                r#"{"alg":"ES256","kid":"k"}"#,
                &b64::encode_url(claims.to_string()),
                &key,
            )
            .unwrap()
            .to_compact();
            check_id_token(&token, "https://op", "cid", Some("n"), &jwks, now)
                .map(|_| ())
                .map_err(|error| crate::escape::line(&error.to_string()).into_owned())
        };
        use serde_json::json;
        assert_eq!(check(json!("cid"), None), Ok(()));
        assert_eq!(check(json!("cid"), Some(json!("cid"))), Ok(()));
        assert_eq!(check(json!(["cid", "api"]), Some(json!("cid"))), Ok(()));
        assert_eq!(check(json!(["cid"]), None), Ok(()));
        assert_eq!(
            check(json!("cid"), Some(json!("other\u{1b}"))),
            Err("id token: azp `other\\x1b` is another client than `cid`".into())
        );
        assert_eq!(
            check(json!(["other", "cid"]), Some(json!("other"))),
            Err("id token: azp `other` is another client than `cid`".into())
        );
        assert_eq!(
            check(json!(["cid", "other"]), None),
            Err(
                "id token: audience has several values and no azp says which client it was \
                 issued to"
                    .into()
            )
        );
        assert_eq!(
            check(json!("cid"), Some(json!(["cid"]))),
            Err("id token: azp is not a string".into())
        );
    }

    #[test]
    fn discovery_endpoints_follow_the_issuer_rules() {
        let document = |field: &str, url: &str| {
            let mut value = serde_json::json!({
                "issuer": "http://localhost:8080",
                "authorization_endpoint": "http://localhost:8080/auth?tenant=a",
                "token_endpoint": "http://127.0.0.1:8080/token",
                "jwks_uri": "https://keys.example/jwks",
                "userinfo_endpoint": "https://[2001:db8::1]:8443/userinfo",
                "device_authorization_endpoint": "https://op.example/device",
            });
            value[field] = serde_json::json!(url);
            value.to_string()
        };
        let parse = |field: &str, url: &str| {
            ProviderMetadata::from_json(document(field, url).as_bytes(), "http://localhost:8080")
        };
        assert!(parse("jwks_uri", "https://keys.example/jwks").is_ok());
        let refused = [
            (
                "http://localhost:8080/auth\r\nSet-Cookie: a=b",
                UrlProblem::Unprintable,
            ),
            (
                "https://op.example/a\u{202e}gnp.exe",
                UrlProblem::Unprintable,
            ),
            ("https://op.example/a b", UrlProblem::Unprintable),
            ("http://evil.example/auth", UrlProblem::NotHttps),
            ("http://localhost.evil.example/auth", UrlProblem::NotHttps),
            ("http://localhost:80x/auth", UrlProblem::NotHttps),
            ("ftp://op.example/auth", UrlProblem::NotHttps),
            ("https:///auth", UrlProblem::NotHttps),
            ("", UrlProblem::Unprintable),
            ("http://localhost@evil.example/auth", UrlProblem::UserInfo),
            ("https://op.example/auth#x", UrlProblem::Fragment),
        ];
        for field in [
            "authorization_endpoint",
            "token_endpoint",
            "jwks_uri",
            "userinfo_endpoint",
            "device_authorization_endpoint",
        ] {
            for (url, problem) in refused {
                match parse(field, url) {
                    Err(OidcError::Endpoint {
                        field: named,
                        problem: found,
                        ..
                    }) => assert_eq!((named, found), (field, problem), "{url:?}"),
                    other => panic!("{field} {url:?}: {other:?}"),
                }
            }
        }
        // The message names the field and the value, which is shown through the one escaping
        // rule where the message is shown.
        let message = parse("authorization_endpoint", "http://localhost:8080/a\r\nX: y")
            .unwrap_err()
            .to_string();
        assert_eq!(
            crate::escape::line(&message),
            "discovery document's authorization_endpoint `http://localhost:8080/a\\r\\nX: y` \
             has a space, a control character or a character outside visible ASCII"
        );
    }
}
