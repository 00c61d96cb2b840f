//! A small OpenID provider for `opkssh demo` and tests, on a loopback port in this process:
//! discovery, JWKS, an authorization endpoint that consents at once for its one user (302 to
//! the redirect URI with code and state), a token endpoint (code with PKCE S256, refresh
//! token) issuing RS256 ID tokens with the client's nonce, and userinfo.
//!
//! Its paths follow the layout of the interop vectors (`<issuer>/jwks.json`), so the folder
//! `opkssh demo --out` writes can be served the same way. It is not an OP to deploy: one
//! user, no login page, no persistence.

use crate::httpd::{self, Request, Response};
use opk_core::b64;
use opk_core::jwk::{Jwk, Jwks};
use opk_core::jws::{Algorithm, Jws, SigningKey};
use opk_core::oidc::form_decode;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{SystemTime, UNIX_EPOCH};

/// The demo's user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoUser {
    /// `sub`.
    pub subject: String,
    /// `email`.
    pub email: String,
    /// `groups`.
    pub groups: Vec<String>,
}

impl Default for DemoUser {
    fn default() -> Self {
        Self {
            subject: "demo-user".into(),
            email: "demo@example.com".into(),
            groups: vec!["ssh-users".into()],
        }
    }
}

/// What was asked at `/authorize`, kept until the code is redeemed.
#[derive(Debug, Clone)]
struct Grant {
    client_id: String,
    redirect_uri: String,
    nonce: Option<String>,
    challenge: String,
}

#[derive(Debug, Default)]
struct State {
    grants: BTreeMap<String, Grant>,
    refresh_tokens: BTreeMap<String, Grant>,
    access_tokens: BTreeMap<String, ()>,
    requests: BTreeMap<String, u64>,
}

struct Shared {
    issuer: String,
    client_id: String,
    key: SigningKey,
    kid: String,
    user: DemoUser,
    id_token_ttl: i64,
    state: Mutex<State>,
    stop: AtomicBool,
}

/// A running demo OP; stops when dropped.
pub struct DemoOp {
    shared: Arc<Shared>,
    address: SocketAddr,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for DemoOp {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("DemoOp")
            .field("issuer", &self.shared.issuer)
            .finish_non_exhaustive()
    }
}

fn random_token() -> String {
    let mut bytes = [0_u8; 24];
    rand_core::Rng::fill_bytes(&mut rand_core::UnwrapErr(getrandom::SysRng), &mut bytes);
    b64::encode_url(bytes)
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            i64::try_from(since.as_secs()).unwrap_or(i64::MAX)
        })
}

impl DemoOp {
    /// Starts the OP on `127.0.0.1:<port>` (0: any free port) with a fresh RSA-2048 key. The
    /// issuer is `http://localhost:<port>`.
    ///
    /// # Errors
    /// Key generation or bind failure, as text.
    pub fn start(port: u16, client_id: &str, user: DemoUser) -> Result<Self, String> {
        let rsa = rsa::PrivateKey::new(&mut rand_core::UnwrapErr(getrandom::SysRng), 2048)
            .map_err(|error| format!("generating the demo OP's RSA key: {error}"))?;
        Self::start_with_key(port, client_id, user, SigningKey::Rsa(Box::new(rsa)), 3600)
    }

    /// As [`DemoOp::start`] with a given signing key (RS256 or ES256) and ID-token lifetime.
    ///
    /// # Errors
    /// Bind failure, as text.
    pub fn start_with_key(
        port: u16,
        client_id: &str,
        user: DemoUser,
        key: SigningKey,
        id_token_ttl: i64,
    ) -> Result<Self, String> {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .map_err(|error| format!("binding the demo OP on 127.0.0.1:{port}: {error}"))?;
        let address = listener
            .local_addr()
            .map_err(|error| format!("demo OP address: {error}"))?;
        let mut kid_bytes = [0_u8; 8];
        rand_core::Rng::fill_bytes(&mut rand_core::UnwrapErr(getrandom::SysRng), &mut kid_bytes);
        let shared = Arc::new(Shared {
            issuer: format!("http://localhost:{}", address.port()),
            client_id: client_id.to_owned(),
            key,
            kid: hex::encode(kid_bytes),
            user,
            id_token_ttl,
            state: Mutex::new(State::default()),
            stop: AtomicBool::new(false),
        });
        let worker = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("demo-op".into())
            .spawn(move || {
                for stream in listener.incoming() {
                    if worker.stop.load(Ordering::SeqCst) {
                        break;
                    }
                    if let Ok(stream) = stream {
                        worker.serve(&stream);
                    }
                }
            })
            .map_err(|error| format!("starting the demo OP thread: {error}"))?;
        Ok(Self {
            shared,
            address,
            thread: Some(thread),
        })
    }

    /// `http://localhost:<port>`.
    pub fn issuer(&self) -> &str {
        &self.shared.issuer
    }

    /// The client ID it issues tokens for.
    pub fn client_id(&self) -> &str {
        &self.shared.client_id
    }

    /// Its user.
    pub fn user(&self) -> &DemoUser {
        &self.shared.user
    }

    /// The JWKS document (`/jwks.json`).
    pub fn jwks_json(&self) -> String {
        self.shared.jwks_json()
    }

    /// The discovery document (`/.well-known/openid-configuration`).
    pub fn discovery_json(&self) -> String {
        self.shared.discovery_json()
    }

    /// The signing algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.shared.key.algorithm()
    }

    /// How many requests each path got.
    pub fn request_counts(&self) -> BTreeMap<String, u64> {
        self.shared
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .requests
            .clone()
    }

    /// Stops the server thread.
    pub fn stop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect(self.address);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for DemoOp {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Shared {
    fn discovery_json(&self) -> String {
        let issuer = &self.issuer;
        let document = json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{issuer}/authorize"),
            "token_endpoint": format!("{issuer}/token"),
            "jwks_uri": format!("{issuer}/jwks.json"),
            "userinfo_endpoint": format!("{issuer}/userinfo"),
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": [self.key.algorithm().as_str()],
            "code_challenge_methods_supported": ["S256"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "scopes_supported": ["openid", "email", "profile", "offline_access"],
        });
        serde_json::to_string_pretty(&document).unwrap_or_default()
    }

    fn jwks_json(&self) -> String {
        Jwks::from_keys(vec![Jwk::new(
            self.key.public_key(),
            Some(self.kid.clone()),
            Some(self.key.algorithm()),
        )])
        .to_json()
    }

    fn serve(&self, stream: &TcpStream) {
        let response = match httpd::read_request(stream) {
            Ok(request) => {
                *self
                    .state
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .requests
                    .entry(request.path.clone())
                    .or_default() += 1;
                self.route(&request)
            }
            Err(_) => Response::json(400, r#"{"error":"invalid_request"}"#),
        };
        let _ = response.write_to(stream);
    }

    fn route(&self, request: &Request) -> Response {
        match (request.method.as_str(), request.path.as_str()) {
            ("GET", "/.well-known/openid-configuration") => {
                Response::json(200, self.discovery_json())
            }
            ("GET", "/jwks.json") => Response::json(200, self.jwks_json()),
            ("GET", "/authorize") => self.authorize(&request.query),
            ("POST", "/token") => self.token(&String::from_utf8_lossy(&request.body)),
            ("GET", "/userinfo") => self.userinfo(request.header("authorization")),
            _ => Response::json(404, r#"{"error":"not_found"}"#),
        }
    }

    fn authorize(&self, query: &str) -> Response {
        let params: BTreeMap<String, String> = form_decode(query).into_iter().collect();
        let get = |name: &str| params.get(name).cloned().unwrap_or_default();
        let redirect_uri = get("redirect_uri");
        // Like a real OP: a bad client or redirect URI is an error page, never a redirect.
        if get("client_id") != self.client_id {
            return Response::html(400, "invalid_client", "Unknown client_id.");
        }
        if crate::callback::RedirectUri::parse(&redirect_uri).is_err() {
            return Response::html(400, "invalid_redirect_uri", "Only loopback redirect URIs.");
        }
        let fail = |error: &str, description: &str| {
            Response::redirect(&format!(
                "{redirect_uri}?error={error}&error_description={}&state={}",
                opk_core::oidc::form_encode(description),
                opk_core::oidc::form_encode(&get("state"))
            ))
        };
        if get("response_type") != "code" {
            return fail("unsupported_response_type", "only code");
        }
        if get("code_challenge_method") != "S256" || get("code_challenge").is_empty() {
            return fail("invalid_request", "PKCE with S256 is required");
        }
        if !get("scope").split(' ').any(|scope| scope == "openid") {
            return fail("invalid_scope", "openid is required");
        }
        let code = random_token();
        let grant = Grant {
            client_id: get("client_id"),
            redirect_uri: redirect_uri.clone(),
            nonce: params.get("nonce").cloned(),
            challenge: get("code_challenge"),
        };
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .grants
            .insert(code.clone(), grant);
        Response::redirect(&format!(
            "{redirect_uri}?code={code}&state={}&iss={}",
            opk_core::oidc::form_encode(&get("state")),
            opk_core::oidc::form_encode(&self.issuer)
        ))
    }

    fn token(&self, body: &str) -> Response {
        let params: BTreeMap<String, String> = form_decode(body).into_iter().collect();
        let get = |name: &str| params.get(name).cloned().unwrap_or_default();
        let error = |code: &str| Response::json(400, json!({ "error": code }).to_string());
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let grant = match get("grant_type").as_str() {
            "authorization_code" => {
                let Some(grant) = state.grants.remove(&get("code")) else {
                    return error("invalid_grant");
                };
                let challenge = b64::encode_url(Sha256::digest(get("code_verifier").as_bytes()));
                if challenge != grant.challenge
                    || get("redirect_uri") != grant.redirect_uri
                    || get("client_id") != grant.client_id
                {
                    return error("invalid_grant");
                }
                grant
            }
            "refresh_token" => {
                let Some(grant) = state.refresh_tokens.remove(&get("refresh_token")) else {
                    return error("invalid_grant");
                };
                if get("client_id") != grant.client_id {
                    return error("invalid_grant");
                }
                grant
            }
            _ => return error("unsupported_grant_type"),
        };
        let Ok(id_token) = self.id_token(grant.nonce.as_deref()) else {
            return Response::json(500, r#"{"error":"server_error"}"#);
        };
        let access_token = random_token();
        let refresh_token = random_token();
        state.access_tokens.insert(access_token.clone(), ());
        state.refresh_tokens.insert(refresh_token.clone(), grant);
        Response::json(
            200,
            json!({
                "access_token": access_token,
                "token_type": "Bearer",
                "expires_in": 3600,
                "refresh_token": refresh_token,
                "id_token": id_token,
                "scope": "openid email profile",
            })
            .to_string(),
        )
    }

    fn id_token(&self, nonce: Option<&str>) -> Result<String, opk_core::jws::JwsError> {
        let issued = now();
        let mut payload = json!({
            "iss": self.issuer,
            "sub": self.user.subject,
            "aud": self.client_id,
            "iat": issued,
            "exp": issued.saturating_add(self.id_token_ttl),
            "email": self.user.email,
            "email_verified": true,
            "groups": self.user.groups,
        });
        if let (Some(nonce), Value::Object(object)) = (nonce, &mut payload) {
            object.insert("nonce".into(), nonce.into());
        }
        let header = json!({ "alg": self.key.algorithm().as_str(), "kid": self.kid, "typ": "JWT" });
        let jws = Jws::sign(
            &opk_core::gojson::to_string(&header),
            &b64::encode_url(payload.to_string()),
            &self.key,
        )?;
        Ok(jws.to_compact())
    }

    fn userinfo(&self, authorization: Option<&str>) -> Response {
        let token = authorization.and_then(|value| value.strip_prefix("Bearer "));
        let known = token.is_some_and(|token| {
            self.state
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .access_tokens
                .contains_key(token)
        });
        if !known {
            return Response::json(401, r#"{"error":"invalid_token"}"#);
        }
        Response::json(
            200,
            json!({
                "sub": self.user.subject,
                "email": self.user.email,
                "email_verified": true,
                "groups": self.user.groups,
            })
            .to_string(),
        )
    }
}
