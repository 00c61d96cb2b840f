//! Fetching discovery documents, JWKS and userinfo: bounded in time and size, no redirects,
//! https only (plain http only for loopback test issuers).

use crate::deadline::Deadline;
use crate::proxy::{ProxyConfig, ProxySetting};
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
    /// The proxy `url` would go through is not a usable proxy URL. Its value is not shown
    /// (it may hold a password); the variable is named instead.
    #[error(
        "{url} would go through the proxy in {variable}, which is not a usable http or https proxy URL (value not shown)"
    )]
    Proxy {
        /// The variable holding the proxy (`HTTPS_PROXY`, `https_proxy`, …).
        variable: String,
        /// The URL that was not fetched.
        url: String,
    },
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
pub struct HttpClient {
    agent: ureq::Agent,
    proxy_config: ProxyConfig,
    /// Each configured proxy, parsed once; `None` when its value is not a usable proxy URL.
    proxies: Vec<(ProxySetting, Option<ureq::Proxy>)>,
}

/// A proxy as it may be shown: scheme, host and port, never the user or password. `None` when
/// the value is not a usable proxy URL, which is then shown by its variable only.
pub fn shown_proxy(setting: &ProxySetting) -> Option<String> {
    parse_proxy(setting.value()).map(|proxy| shown(&proxy))
}

fn shown(proxy: &ureq::Proxy) -> String {
    let scheme = proxy.uri().scheme_str().unwrap_or("http");
    format!("{scheme}://{}:{}", proxy.host(), proxy.port())
}

/// The value as ureq reads it, when it is an http or https proxy address and nothing more.
/// A path or query means a character such as `/`, `?` or `#` in the password cut the address
/// short (ureq would then take part of the credentials for the host), so such a value is
/// refused, not guessed at. SOCKS is refused too: this build of ureq has no SOCKS support and
/// would connect directly.
fn parse_proxy(value: &str) -> Option<ureq::Proxy> {
    let proxy = ureq::Proxy::new(value).ok()?;
    let http = matches!(
        proxy.protocol(),
        ureq::ProxyProtocol::Http | ureq::ProxyProtocol::Https
    );
    let uri = proxy.uri();
    let bare = uri.query().is_none() && matches!(uri.path(), "" | "/") && !value.contains('#');
    (http && bare).then_some(proxy)
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let proxies: Vec<(&str, Option<String>)> = self
            .proxies
            .iter()
            .map(|(setting, proxy)| (setting.variable(), proxy.as_ref().map(shown)))
            .collect();
        f.debug_struct("HttpClient")
            .field("proxy_config", &self.proxy_config)
            .field("proxies", &proxies)
            .finish_non_exhaustive()
    }
}

impl HttpClient {
    /// A client that picks a proxy per request as Go's `http.ProxyFromEnvironment` does
    /// ([`crate::proxy`]) from `env`: on a server, the process environment overlaid with
    /// `env_vars` from `/etc/opk/config.yml` (sshd strips the environment, so the config file
    /// is where a proxy is set).
    ///
    /// A proxy value that is not a usable proxy URL fails only the requests that would go
    /// through it ([`FetchError::Proxy`]). Go would ignore it and connect directly; refusing
    /// instead keeps those requests from leaving by a route the admin did not choose, while
    /// requests the proxy would not carry (loopback, `NO_PROXY`) go ahead.
    pub fn new(env: &BTreeMap<String, String>) -> Self {
        let proxy_config = ProxyConfig::from_env(env);
        let proxies = proxy_config
            .proxies()
            .map(|setting| (setting.clone(), parse_proxy(setting.value())))
            .collect();
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
        Self {
            agent,
            proxy_config,
            proxies,
        }
    }

    /// The proxy for `url` (`None` to connect directly), and how to name it in an error.
    ///
    /// # Errors
    /// [`FetchError::Proxy`] when `url` would go through a proxy that is not usable.
    fn proxy_for(&self, url: &str) -> Result<Option<(ureq::Proxy, String)>, FetchError> {
        let Some(chosen) = self.proxy_config.proxy_for(url) else {
            return Ok(None);
        };
        let parsed = self
            .proxies
            .iter()
            .find(|(setting, _)| setting == chosen)
            .and_then(|(_, proxy)| proxy.clone());
        match parsed {
            Some(proxy) => {
                let name = format!("the proxy {} in {}", shown(&proxy), chosen.variable());
                Ok(Some((proxy, name)))
            }
            None => Err(FetchError::Proxy {
                variable: chosen.variable().to_owned(),
                url: url.to_owned(),
            }),
        }
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
        let (proxy, via) = self.proxy_for(url)?.unzip();
        let mut request = self
            .agent
            .get(url)
            .config()
            .timeout_global(Some(budget))
            .proxy(proxy)
            .build();
        if let Some(token) = bearer {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        let transport = transport_error(url, via.as_deref());
        let mut response = request.call().map_err(&transport)?;
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
            .map_err(&transport)
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
        let (proxy, via) = self.proxy_for(url)?.unzip();
        let transport = transport_error(url, via.as_deref());
        let mut response = self
            .agent
            .post(url)
            .config()
            .timeout_global(Some(budget))
            .proxy(proxy)
            .build()
            .header("Content-Type", "application/x-www-form-urlencoded")
            .header("Accept", "application/json")
            .send(body.as_bytes())
            .map_err(&transport)?;
        let status = response.status().as_u16();
        let bytes = response
            .body_mut()
            .with_config()
            .limit(MAX_BODY)
            .read_to_vec()
            .map_err(&transport)?;
        Ok((status, bytes))
    }
}

/// Maps ureq's failure for `url` to ours; a transport failure names the proxy it went
/// through (`via`, scheme, host and port only), since that is often where it failed.
fn transport_error<'a>(
    url: &'a str,
    via: Option<&'a str>,
) -> impl Fn(ureq::Error) -> FetchError + 'a {
    move |error| match error {
        ureq::Error::Timeout(_) => FetchError::Timeout(url.to_owned()),
        ureq::Error::BodyExceedsLimit(_) => FetchError::TooLarge(url.to_owned()),
        other => FetchError::Transport {
            url: url.to_owned(),
            reason: match via {
                Some(via) => format!("{other} (through {via})"),
                None => other.to_string(),
            },
        },
    }
}

/// An HTTP client built on first use, so a verify answered from the cache never sets up TLS.
#[derive(Debug)]
pub struct LazyHttp<'a> {
    env: &'a BTreeMap<String, String>,
    client: std::cell::OnceCell<HttpClient>,
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
    pub fn client(&self) -> &HttpClient {
        self.client.get_or_init(|| HttpClient::new(self.env))
    }
}

#[cfg(test)]
mod tests {
    use super::{FetchError, HttpClient, allowed_url, shown_proxy};
    use crate::deadline::Deadline;
    use crate::proxy::ProxyConfig;
    use std::collections::BTreeMap;
    use std::time::Duration;

    const PASSWORD: &str = "S3cretPassw0rd";

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect()
    }

    /// Proxy values ureq cannot use, or could use only by taking part of the password for the
    /// host: another scheme, a space, and each character that ends the authority early.
    const UNUSABLE: [&str; 7] = [
        "socks5://proxyuser:S3cretPassw0rd@127.0.0.1:1",
        "ftp://proxyuser:S3cretPassw0rd@proxy.corp:3128",
        "http://proxyuser:S3cret Passw0rd@proxy.corp:3128",
        "http://proxyuser:S3cret/Passw0rd@proxy.corp:3128",
        "http://proxyuser:S3cret?Passw0rd@proxy.corp:3128",
        "http://proxyuser:S3cret#Passw0rd@proxy.corp:3128",
        "http://proxyuser:S3cretPassw0rd@proxy.corp:3128/some/path",
    ];

    #[track_caller]
    fn assert_no_credentials(what: &str, text: &str) {
        for secret in [PASSWORD, "S3cret", "Passw0rd", "proxyuser"] {
            assert!(!text.contains(secret), "{what} shows {secret:?}: {text}");
        }
    }

    #[test]
    fn an_unusable_proxy_fails_only_the_requests_it_would_carry() {
        let deadline = Deadline::after(Duration::from_secs(5));
        for value in UNUSABLE {
            for variable in ["HTTPS_PROXY", "https_proxy"] {
                let client = HttpClient::new(&env(&[(variable, value)]));
                assert_no_credentials("Debug", &format!("{client:?}"));
                let url = "https://issuer.example/.well-known/openid-configuration";
                let error = client.get(url, None, &deadline).unwrap_err();
                assert_eq!(
                    error,
                    FetchError::Proxy {
                        variable: variable.to_owned(),
                        url: url.to_owned()
                    },
                    "{value}"
                );
                let message = error.to_string();
                assert_no_credentials("the error", &message);
                assert!(message.contains(variable), "{message}");
                let posted = client.post_form(url, "a=b", &deadline).unwrap_err();
                assert!(matches!(posted, FetchError::Proxy { .. }), "{posted:?}");
                // Loopback is never proxied, so it goes ahead (port 1 answers nothing: the
                // connection was tried).
                let direct = client
                    .get("https://127.0.0.1:1/x", None, &deadline)
                    .unwrap_err();
                assert!(
                    matches!(&direct, FetchError::Transport { reason, .. } if !reason.contains("proxy")),
                    "{direct:?}"
                );
            }
        }
    }

    #[test]
    fn a_proxy_is_shown_as_scheme_host_and_port_only() {
        let shown = |value: &str| {
            let config = ProxyConfig::from_env(&env(&[("HTTPS_PROXY", value)]));
            config.proxies().next().and_then(shown_proxy)
        };
        assert_eq!(
            shown("http://proxyuser:S3cretPassw0rd@proxy.corp:3128").as_deref(),
            Some("http://proxy.corp:3128")
        );
        assert_eq!(
            shown("proxyuser:S3cretPassw0rd@proxy.corp:3128").as_deref(),
            Some("http://proxy.corp:3128")
        );
        assert_eq!(
            shown("http://proxy.corp:3128/").as_deref(),
            Some("http://proxy.corp:3128")
        );
        assert_eq!(
            shown("https://proxyuser:S3cretPassw0rd@proxy.corp:8443").as_deref(),
            Some("https://proxy.corp:8443")
        );
        assert_eq!(
            shown("http://proxy.corp").as_deref(),
            Some("http://proxy.corp:80")
        );
        for value in UNUSABLE {
            assert_eq!(shown(value), None, "{value}");
        }
        // An unencoded `@` in the password: the host is what follows the last one.
        if let Some(shown) = shown("http://proxyuser:S3cret@Passw0rd@proxy.corp:3128") {
            assert_no_credentials("the shown proxy", &shown);
        }
    }

    #[test]
    fn a_transport_failure_names_the_proxy_without_its_credentials() {
        let client = HttpClient::new(&env(&[(
            "HTTPS_PROXY",
            "http://proxyuser:S3cretPassw0rd@127.0.0.1:1",
        )]));
        assert_no_credentials("Debug", &format!("{client:?} {client:#?}"));
        let deadline = Deadline::after(Duration::from_secs(5));
        let error = client
            .get("https://issuer.example/x", None, &deadline)
            .unwrap_err();
        let message = error.to_string();
        assert!(matches!(error, FetchError::Transport { .. }), "{error:?}");
        assert!(
            message.contains("through the proxy http://127.0.0.1:1 in HTTPS_PROXY"),
            "{message}"
        );
        assert_no_credentials("the error", &message);
    }

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
