//! Fetching discovery documents, JWKS and userinfo: bounded in time and size, no redirects,
//! https only (plain http only for loopback test issuers).

use crate::deadline::Deadline;
use crate::proxy::ProxyConfig;
use std::collections::BTreeMap;
use std::time::Duration;

/// The largest response accepted (a JWKS is a few KB; a discovery document about 2 KB).
pub const MAX_BODY: u64 = 1024 * 1024;

/// Cap of any single request, within the verify deadline.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a fetch failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// The URL is not https, nor plain http to localhost or 127.0.0.1.
    #[error("refusing non-https url {0}")]
    InsecureUrl(String),
    /// The deadline passed before or during the request.
    #[error("timed out fetching {0}")]
    Timeout(String),
    /// A non-200 status, a redirect included.
    #[error("{url} answered HTTP {status}")]
    Status {
        /// The URL.
        url: String,
        /// The status code.
        status: u16,
    },
    /// The body is over [`MAX_BODY`].
    #[error("{0} answered with a body over {MAX_BODY} bytes")]
    TooLarge(String),
    /// Connection, TLS or protocol failure.
    #[error("fetching {url}: {reason}")]
    Transport {
        /// The URL.
        url: String,
        /// What failed.
        reason: String,
    },
    /// The proxy setting is not a valid proxy URL.
    #[error("invalid proxy setting {0}")]
    Proxy(String),
}

/// Whether a URL may be fetched: `https://…`, or `http://localhost[:port]/…` and
/// `http://127.0.0.1[:port]/…` for test issuers. Userinfo in the authority is refused, so
/// `http://localhost@evil.example` cannot pass as loopback (openpubkey#375).
pub fn allowed_url(url: &str) -> bool {
    if let Some(rest) = url.strip_prefix("https://") {
        return !rest.is_empty() && !authority(rest).contains('@');
    }
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let authority = authority(rest);
    if authority.contains('@') {
        return false;
    }
    let host = match authority.rsplit_once(':') {
        Some((host, port))
            if !port.is_empty() && port.bytes().all(|byte| byte.is_ascii_digit()) =>
        {
            host
        }
        Some(_) => return false,
        None => authority,
    };
    host == "localhost" || host == "127.0.0.1"
}

fn authority(rest: &str) -> &str {
    rest.split(['/', '?', '#']).next().unwrap_or_default()
}

/// A blocking HTTP client for one verify process.
#[derive(Debug)]
pub struct HttpClient {
    agent: ureq::Agent,
    proxy_config: ProxyConfig,
    /// Each configured proxy, parsed once.
    proxies: Vec<(String, ureq::Proxy)>,
}

impl HttpClient {
    /// A client that picks a proxy per request as Go's `http.ProxyFromEnvironment` does
    /// ([`crate::proxy`]) from `env`: on a server, the process environment overlaid with
    /// `env_vars` from `/etc/opk/config.yml` (sshd strips the environment, so the config file
    /// is where a proxy is set).
    ///
    /// # Errors
    /// An unparsable proxy URL. Go would ignore it and connect directly; refusing instead
    /// keeps requests from leaving by a route the admin did not choose.
    pub fn new(env: &BTreeMap<String, String>) -> Result<Self, FetchError> {
        let proxy_config = ProxyConfig::from_env(env);
        let proxies = proxy_config
            .proxies()
            .map(|value| {
                ureq::Proxy::new(value)
                    .map(|proxy| (value.to_owned(), proxy))
                    .map_err(|_| FetchError::Proxy(value.to_owned()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let tls = ureq::tls::TlsConfig::builder()
            .root_certs(ureq::tls::RootCerts::PlatformVerifier)
            .build();
        let agent = ureq::Agent::config_builder()
            // Chosen per request; ureq's own reading of the environment differs from Go's.
            .proxy(None)
            .max_redirects(0)
            .http_status_as_error(false)
            .tls_config(tls)
            .user_agent(concat!("opkssh-rs/", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent();
        Ok(Self {
            agent,
            proxy_config,
            proxies,
        })
    }

    /// The proxy for `url`, or `None` to connect directly.
    fn proxy_for(&self, url: &str) -> Option<ureq::Proxy> {
        let chosen = self.proxy_config.proxy_for(url)?;
        self.proxies
            .iter()
            .find(|(value, _)| value == chosen)
            .map(|(_, proxy)| proxy.clone())
    }

    /// GETs `url` (with an optional bearer token) and returns the body of a 200 answer.
    ///
    /// # Errors
    /// [`FetchError`].
    pub fn get(
        &self,
        url: &str,
        bearer: Option<&str>,
        deadline: &Deadline,
    ) -> Result<Vec<u8>, FetchError> {
        if !allowed_url(url) {
            return Err(FetchError::InsecureUrl(url.to_owned()));
        }
        let budget = deadline.cap(REQUEST_TIMEOUT);
        if budget.is_zero() {
            return Err(FetchError::Timeout(url.to_owned()));
        }
        let mut request = self
            .agent
            .get(url)
            .config()
            .timeout_global(Some(budget))
            .proxy(self.proxy_for(url))
            .build();
        if let Some(token) = bearer {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        let transport = |error: ureq::Error| match error {
            ureq::Error::Timeout(_) => FetchError::Timeout(url.to_owned()),
            ureq::Error::BodyExceedsLimit(_) => FetchError::TooLarge(url.to_owned()),
            other => FetchError::Transport {
                url: url.to_owned(),
                reason: other.to_string(),
            },
        };
        let mut response = request.call().map_err(transport)?;
        let status = response.status().as_u16();
        if status != 200 {
            return Err(FetchError::Status {
                url: url.to_owned(),
                status,
            });
        }
        response
            .body_mut()
            .with_config()
            .limit(MAX_BODY)
            .read_to_vec()
            .map_err(transport)
    }
}

impl HttpClient {
    /// POSTs a form body (`application/x-www-form-urlencoded`) and returns the status and the
    /// body, whatever the status: an OAuth token endpoint answers errors as JSON with 400.
    /// Used by `opkssh login` for the code exchange and refreshes; the body is never logged
    /// (it carries codes and tokens).
    ///
    /// # Errors
    /// [`FetchError`] for the URL, the deadline, the transport or the size.
    pub fn post_form(
        &self,
        url: &str,
        body: &str,
        deadline: &Deadline,
    ) -> Result<(u16, Vec<u8>), FetchError> {
        if !allowed_url(url) {
            return Err(FetchError::InsecureUrl(url.to_owned()));
        }
        let budget = deadline.cap(REQUEST_TIMEOUT);
        if budget.is_zero() {
            return Err(FetchError::Timeout(url.to_owned()));
        }
        let transport = |error: ureq::Error| match error {
            ureq::Error::Timeout(_) => FetchError::Timeout(url.to_owned()),
            ureq::Error::BodyExceedsLimit(_) => FetchError::TooLarge(url.to_owned()),
            other => FetchError::Transport {
                url: url.to_owned(),
                reason: other.to_string(),
            },
        };
        let mut response = self
            .agent
            .post(url)
            .config()
            .timeout_global(Some(budget))
            .proxy(self.proxy_for(url))
            .build()
            .header("Content-Type", "application/x-www-form-urlencoded")
            .header("Accept", "application/json")
            .send(body.as_bytes())
            .map_err(transport)?;
        let status = response.status().as_u16();
        let bytes = response
            .body_mut()
            .with_config()
            .limit(MAX_BODY)
            .read_to_vec()
            .map_err(transport)?;
        Ok((status, bytes))
    }
}

/// An HTTP client built on first use, so a verify answered from the cache never sets up TLS.
#[derive(Debug)]
pub struct LazyHttp<'a> {
    env: &'a BTreeMap<String, String>,
    client: std::cell::OnceCell<Result<HttpClient, FetchError>>,
}

impl<'a> LazyHttp<'a> {
    /// A client to be built from `env` when first needed.
    pub fn new(env: &'a BTreeMap<String, String>) -> Self {
        Self {
            env,
            client: std::cell::OnceCell::new(),
        }
    }

    /// The client.
    ///
    /// # Errors
    /// The proxy setting is invalid.
    pub fn client(&self) -> Result<&HttpClient, FetchError> {
        self.client
            .get_or_init(|| HttpClient::new(self.env))
            .as_ref()
            .map_err(Clone::clone)
    }
}

#[cfg(test)]
mod tests {
    use super::allowed_url;

    #[test]
    fn only_https_or_loopback_http() {
        for url in [
            "https://accounts.google.com/.well-known/openid-configuration",
            "http://localhost:18201/jwks.json",
            "http://127.0.0.1/x",
            "http://localhost",
        ] {
            assert!(allowed_url(url), "{url}");
        }
        for url in [
            "http://example.com/",
            "http://localhost.attacker.com/",
            "http://localhost@attacker.com/",
            "https://user@host/",
            "http://127.0.0.1.nip.io/",
            "http://localhost:80x/",
            "ftp://localhost/",
            "file:///etc/passwd",
            "https://",
            "HTTP://localhost/",
        ] {
            assert!(!allowed_url(url), "{url}");
        }
    }
}
