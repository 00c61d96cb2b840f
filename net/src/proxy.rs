//! Which proxy a request goes through, decided as Go's `http.ProxyFromEnvironment` decides it
//! (golang.org/x/net/http/httpproxy: `FromEnvironment`, `useProxy`, `config.init`), so that a
//! fleet's `env_vars` in `/etc/opk/config.yml` mean the same to this binary as to Go's:
//!
//! - `HTTPS_PROXY` (else `https_proxy`) for https URLs, `HTTP_PROXY` (else `http_proxy`) for
//!   http URLs; an empty value counts as unset. `ALL_PROXY` is not read (Go ignores it).
//! - `localhost` and loopback addresses never go through a proxy.
//! - `NO_PROXY` (else `no_proxy`): a comma-separated list. `*` turns the proxy off; an IP or
//!   a CIDR matches IP hosts; `example.com` matches it and its subdomains, `.example.com` and
//!   `*.example.com` only subdomains; each of these may carry `:port`.
//!
//! A proxy value can hold a password (`http://user:password@proxy:3128`), so it is never shown:
//! [`ProxySetting`]'s `Debug` names only the variable it came from.
//!
//! One difference: Go refuses `HTTP_PROXY` for http URLs when `REQUEST_METHOD` is set (CGI);
//! verify never runs as CGI and only fetches http from loopback, which is never proxied anyway.

use std::collections::BTreeMap;
use std::net::IpAddr;

/// The variables [`ProxyConfig::from_env`] reads, for callers that gather them from the
/// process environment.
pub const VARIABLES: [&str; 6] = [
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "NO_PROXY",
    "no_proxy",
];

/// The proxy variables of this process's environment overlaid with `env_vars`: what Go's
/// verify sees after it has set `env_vars` into its environment.
pub fn process_env_with(env_vars: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut env: BTreeMap<String, String> = VARIABLES
        .iter()
        .filter_map(|name| Some(((*name).to_owned(), std::env::var(name).ok()?)))
        .collect();
    env.extend(env_vars.iter().map(|(k, v)| (k.clone(), v.clone())));
    env
}

/// The proxy settings of one process.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxyConfig {
    http: Option<ProxySetting>,
    https: Option<ProxySetting>,
    bypass: Vec<Bypass>,
}

/// One proxy variable that is set: its name and its value as written.
#[derive(Clone, PartialEq, Eq)]
pub struct ProxySetting {
    variable: &'static str,
    value: String,
}

impl ProxySetting {
    /// The variable the value came from (`HTTPS_PROXY`, `https_proxy`, …), which is what a
    /// message names when the value itself cannot be shown.
    pub fn variable(&self) -> &'static str {
        self.variable
    }

    /// The value as written, credentials included: for parsing, never for showing.
    pub fn value(&self) -> &str {
        &self.value
    }
}

impl std::fmt::Debug for ProxySetting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxySetting")
            .field("variable", &self.variable)
            .finish_non_exhaustive()
    }
}

/// One `NO_PROXY` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Bypass {
    All,
    Cidr {
        network: IpAddr,
        prefix: u8,
    },
    Ip {
        ip: IpAddr,
        port: Option<String>,
    },
    Domain {
        /// Always starts with `.`.
        suffix: String,
        port: Option<String>,
        /// The entry had no leading `.` (or `*.`): the bare domain matches too.
        exact_too: bool,
    },
}

impl ProxyConfig {
    /// The settings in `env`, which holds the process environment overlaid with `env_vars`.
    pub fn from_env(env: &BTreeMap<String, String>) -> Self {
        let any = |upper: &'static str, lower: &'static str| {
            [upper, lower].into_iter().find_map(|variable| {
                env.get(variable)
                    .filter(|value| !value.is_empty())
                    .map(|value| ProxySetting {
                        variable,
                        value: value.clone(),
                    })
            })
        };
        Self {
            http: any("HTTP_PROXY", "http_proxy"),
            https: any("HTTPS_PROXY", "https_proxy"),
            bypass: any("NO_PROXY", "no_proxy")
                .map(|list| parse_no_proxy(list.value()))
                .unwrap_or_default(),
        }
    }

    /// The proxies that may be used (the https one, then the http one).
    pub fn proxies(&self) -> impl Iterator<Item = &ProxySetting> {
        self.https.iter().chain(self.http.iter())
    }

    /// The proxy for `url`, or `None` to connect directly.
    pub fn proxy_for(&self, url: &str) -> Option<&ProxySetting> {
        let (scheme, rest) = url.split_once("://")?;
        let proxy = match scheme {
            "https" => self.https.as_ref()?,
            "http" => self.http.as_ref()?,
            _ => return None,
        };
        let (host, port) = host_and_port(rest, scheme)?;
        self.use_proxy(host, port).then_some(proxy)
    }

    fn use_proxy(&self, host: &str, port: &str) -> bool {
        if host == "localhost" {
            return false;
        }
        let ip = host.parse::<IpAddr>().ok().map(canonical);
        if ip.is_some_and(|ip| ip.is_loopback()) {
            return false;
        }
        let host = host.trim().to_ascii_lowercase();
        !self.bypass.iter().any(|entry| match entry {
            Bypass::All => true,
            Bypass::Cidr { network, prefix } => {
                ip.is_some_and(|ip| in_network(ip, *network, *prefix))
            }
            Bypass::Ip { ip: entry, port: p } => {
                ip.is_some_and(|ip| ip == *entry) && port_matches(p.as_deref(), port)
            }
            Bypass::Domain {
                suffix,
                port: p,
                exact_too,
            } => {
                ip.is_none()
                    && (host.ends_with(suffix.as_str())
                        || (*exact_too && suffix.get(1..) == Some(host.as_str())))
                    && port_matches(p.as_deref(), port)
            }
        })
    }
}

fn port_matches(entry: Option<&str>, port: &str) -> bool {
    entry.is_none_or(|entry| entry == port)
}

/// The host (brackets and userinfo removed) and port (the scheme's default if absent) of the
/// authority after `scheme://`, as Go's `canonicalAddr` gives them.
fn host_and_port<'a>(rest: &'a str, scheme: &str) -> Option<(&'a str, &'a str)> {
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let authority = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let default_port = if scheme == "https" { "443" } else { "80" };
    if let Some(bracketed) = authority.strip_prefix('[') {
        let (host, after) = bracketed.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(port) if !port.is_empty() => port,
            _ => default_port,
        };
        return Some((host, port));
    }
    Some(match authority.rsplit_once(':') {
        Some((host, port)) if !port.is_empty() => (host, port),
        Some((host, _)) => (host, default_port),
        None => (authority, default_port),
    })
}

/// Go's `config.init` over the `NO_PROXY` list.
fn parse_no_proxy(list: &str) -> Vec<Bypass> {
    let mut entries = Vec::new();
    for entry in list.split(',') {
        let entry = entry.trim().to_ascii_lowercase();
        if entry.is_empty() {
            continue;
        }
        if entry == "*" {
            return vec![Bypass::All];
        }
        if let Some((network, prefix)) = parse_cidr(&entry) {
            entries.push(Bypass::Cidr { network, prefix });
            continue;
        }
        let (host, port) = match split_host_port(&entry) {
            Some(("", _)) => continue,
            Some((host, port)) => (host, Some(port.to_owned()).filter(|p| !p.is_empty())),
            None => (entry.as_str(), None),
        };
        if let Ok(ip) = host.parse::<IpAddr>() {
            entries.push(Bypass::Ip {
                ip: canonical(ip),
                port,
            });
            continue;
        }
        let host = host
            .strip_prefix('*')
            .filter(|h| h.starts_with('.'))
            .unwrap_or(host);
        if host.is_empty() {
            continue;
        }
        let (suffix, exact_too) = match host.strip_prefix('.') {
            Some(_) => (host.to_owned(), false),
            None => (format!(".{host}"), true),
        };
        entries.push(Bypass::Domain {
            suffix,
            port,
            exact_too,
        });
    }
    entries
}

/// Go's `net.SplitHostPort`: `host:port` or `[v6]:port`; `None` without a port separator
/// or with a bare IPv6 address.
fn split_host_port(text: &str) -> Option<(&str, &str)> {
    if let Some(bracketed) = text.strip_prefix('[') {
        let (host, after) = bracketed.split_once(']')?;
        return Some((host, after.strip_prefix(':')?));
    }
    let (host, port) = text.rsplit_once(':')?;
    (!host.contains(':')).then_some((host, port))
}

fn parse_cidr(text: &str) -> Option<(IpAddr, u8)> {
    let (address, prefix) = text.split_once('/')?;
    let address: IpAddr = address.parse().ok()?;
    // Go's ParseCIDR takes decimal digits only, no sign and no leading `+`.
    if prefix.is_empty() || !prefix.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    let prefix: u8 = prefix.parse().ok()?;
    let max = if address.is_ipv4() { 32 } else { 128 };
    (prefix <= max).then_some((address, prefix))
}

/// An IPv4-mapped IPv6 address is its IPv4 address, as Go's `net.IP` treats it.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

fn in_network(ip: IpAddr, network: IpAddr, prefix: u8) -> bool {
    match (ip, canonical(network)) {
        (IpAddr::V4(ip), IpAddr::V4(network)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            u32::from(ip) & mask == u32::from(network) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(network)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            u128::from(ip) & mask == u128::from(network) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::{ProxyConfig, ProxySetting};
    use std::collections::BTreeMap;

    const P: &str = "http://proxy.corp:3128";

    fn config(pairs: &[(&str, &str)]) -> ProxyConfig {
        let env: BTreeMap<String, String> = pairs
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect();
        ProxyConfig::from_env(&env)
    }

    fn with_no_proxy(no_proxy: &str) -> ProxyConfig {
        config(&[("HTTPS_PROXY", P), ("NO_PROXY", no_proxy)])
    }

    #[track_caller]
    fn proxied(config: &ProxyConfig, url: &str) {
        assert_eq!(
            config.proxy_for(url).map(ProxySetting::value),
            Some(P),
            "{url} should use the proxy"
        );
    }

    #[track_caller]
    fn direct(config: &ProxyConfig, url: &str) {
        assert_eq!(config.proxy_for(url), None, "{url} should go direct");
    }

    #[test]
    fn the_scheme_picks_the_variable() {
        let https_only = config(&[("HTTPS_PROXY", P)]);
        proxied(
            &https_only,
            "https://accounts.google.com/.well-known/openid-configuration",
        );
        direct(&https_only, "http://example.com/");
        let http_only = config(&[("HTTP_PROXY", P)]);
        direct(&http_only, "https://accounts.google.com/");
        proxied(&http_only, "http://example.com/");
        direct(&config(&[]), "https://accounts.google.com/");
        direct(&https_only, "ftp://example.com/");
    }

    #[test]
    fn upper_case_wins_and_empty_is_unset() {
        let both = config(&[("HTTPS_PROXY", P), ("https_proxy", "http://other:1")]);
        proxied(&both, "https://example.com/");
        let lower = config(&[("HTTPS_PROXY", ""), ("https_proxy", P)]);
        proxied(&lower, "https://example.com/");
        let lower_http = config(&[("http_proxy", P)]);
        proxied(&lower_http, "http://example.com/");
        let lower_no_proxy = config(&[("HTTPS_PROXY", P), ("no_proxy", "example.com")]);
        direct(&lower_no_proxy, "https://example.com/");
        let upper_no_proxy_wins = config(&[
            ("HTTPS_PROXY", P),
            ("NO_PROXY", "other.com"),
            ("no_proxy", "example.com"),
        ]);
        proxied(&upper_no_proxy_wins, "https://example.com/");
    }

    #[test]
    fn all_proxy_is_not_read() {
        direct(&config(&[("ALL_PROXY", P)]), "https://example.com/");
        direct(&config(&[("all_proxy", P)]), "https://example.com/");
    }

    #[test]
    fn loopback_is_never_proxied() {
        let config = config(&[("HTTPS_PROXY", P), ("HTTP_PROXY", P)]);
        for url in [
            "http://localhost:8080/x",
            "https://localhost/",
            "http://127.0.0.1:9/",
            "http://127.3.4.5/",
            "https://[::1]:443/",
            "https://[::ffff:127.0.0.1]/",
        ] {
            direct(&config, url);
        }
        // Go compares "localhost" before lower-casing, and a name is not an address.
        proxied(&config, "https://LOCALHOST/");
        proxied(&config, "https://localhost.example.com/");
        proxied(&config, "https://0.0.0.0/");
    }

    #[test]
    fn no_proxy_star_turns_the_proxy_off() {
        for list in ["*", "example.com, *", " * "] {
            let config = with_no_proxy(list);
            direct(&config, "https://anything.example.net/");
            direct(&config, "https://10.1.2.3/");
        }
        // `*` only counts as a whole entry.
        proxied(&with_no_proxy("*example.com"), "https://example.net/");
    }

    #[test]
    fn a_bare_domain_matches_itself_and_its_subdomains() {
        let config = with_no_proxy("example.com");
        direct(&config, "https://example.com/");
        direct(&config, "https://idp.example.com/x");
        direct(&config, "https://a.b.example.com/");
        direct(&config, "https://IDP.Example.COM/");
        proxied(&config, "https://badexample.com/");
        proxied(&config, "https://example.com.evil.net/");
        proxied(&config, "https://example.org/");
    }

    #[test]
    fn a_leading_dot_or_star_dot_matches_only_subdomains() {
        for list in [".example.com", "*.example.com"] {
            let config = with_no_proxy(list);
            direct(&config, "https://idp.example.com/");
            proxied(&config, "https://example.com/");
            proxied(&config, "https://badexample.com/");
        }
    }

    #[test]
    fn entries_are_trimmed_and_lower_cased() {
        let config = with_no_proxy(" Example.COM , ,other.org");
        direct(&config, "https://idp.example.com/");
        direct(&config, "https://other.org/");
    }

    #[test]
    fn a_port_narrows_an_entry() {
        let config = with_no_proxy("example.com:8443");
        direct(&config, "https://example.com:8443/");
        proxied(&config, "https://example.com/");
        proxied(&config, "https://example.com:443/");
        let default_port = with_no_proxy("example.com:443");
        direct(&default_port, "https://example.com/");
        let ip_port = with_no_proxy("10.0.0.1:8443");
        direct(&ip_port, "https://10.0.0.1:8443/");
        proxied(&ip_port, "https://10.0.0.1/");
        let v6_port = with_no_proxy("[2001:db8::1]:443");
        direct(&v6_port, "https://[2001:db8::1]/");
        proxied(&v6_port, "https://[2001:db8::1]:8443/");
    }

    #[test]
    fn addresses_and_networks_match_ip_hosts_only() {
        let ip = with_no_proxy("10.0.0.1");
        direct(&ip, "https://10.0.0.1/");
        direct(&ip, "https://10.0.0.1:8443/");
        proxied(&ip, "https://10.0.0.2/");
        let v6 = with_no_proxy("2001:db8::1");
        direct(&v6, "https://[2001:db8::1]/");
        proxied(&v6, "https://[2001:db8::2]/");
        let cidr = with_no_proxy("10.0.0.0/8,2001:db8::/32");
        direct(&cidr, "https://10.200.3.4/");
        direct(&cidr, "https://[2001:db8:ffff::9]/");
        proxied(&cidr, "https://11.0.0.1/");
        proxied(&cidr, "https://[2001:db9::1]/");
        let zero = with_no_proxy("0.0.0.0/0");
        direct(&zero, "https://203.0.113.7/");
        // A name is not matched by an address entry, even one it would resolve to.
        proxied(&cidr, "https://ten.example.com/");
        // A domain entry does not match an IP host.
        let domain = with_no_proxy("1.2.3.4.example");
        proxied(&domain, "https://1.2.3.4/");
        // Not a CIDR (bad prefix), and then not an address either: a domain that matches no IP.
        let bad = with_no_proxy("10.0.0.0/33");
        proxied(&bad, "https://10.0.0.1/");
    }

    #[test]
    fn userinfo_is_not_the_host() {
        let config = with_no_proxy("example.com");
        proxied(&config, "https://example.com@evil.net/");
        let config = self::config(&[("HTTPS_PROXY", P)]);
        proxied(&config, "https://localhost@evil.net/");
    }

    #[test]
    fn proxies_lists_the_configured_ones() {
        let both = config(&[("HTTPS_PROXY", P), ("http_proxy", "http://h:1")]);
        let listed = both
            .proxies()
            .map(|proxy| (proxy.variable(), proxy.value()))
            .collect::<Vec<_>>();
        assert_eq!(listed, [("HTTPS_PROXY", P), ("http_proxy", "http://h:1")]);
    }

    #[test]
    fn debug_names_the_variable_and_never_the_value() {
        let config = config(&[
            (
                "HTTPS_PROXY",
                "http://proxyuser:S3cretPassw0rd@proxy.corp:3128",
            ),
            (
                "http_proxy",
                "ftp://proxyuser:S3cretPassw0rd@proxy.corp:3128",
            ),
        ]);
        let shown = format!("{config:?} {config:#?}");
        assert!(!shown.contains("S3cretPassw0rd"), "{shown}");
        assert!(!shown.contains("proxyuser"), "{shown}");
        assert!(
            shown.contains("HTTPS_PROXY") && shown.contains("http_proxy"),
            "{shown}"
        );
    }
}
