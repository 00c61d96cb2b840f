//! A proxy URL in `env_vars` that holds a password and does not parse: through the real
//! `opkssh verify` and `opkssh explain`, the password must reach neither the log (which fleets
//! ship to their log systems) nor stderr nor `explain`; a loopback issuer, which is never
//! proxied, must still be allowed, and an issuer the proxy would carry denied with a reason
//! that names the variable. Gated like the e2e tests (`OPKSSH_E2E=1`).

use crate::binary::{Host, gate};
use opkssh_tests::e2e;
use opkssh_tests::mint::mint_with;

const PASSWORD: &str = "S3cretPassw0rd";

/// Proxy values Go's and our parsers refuse: another scheme, and an unencoded space in the
/// password.
const UNPARSABLE: [&str; 2] = [
    "ftp://proxyuser:S3cretPassw0rd@proxy.corp:3128",
    "http://proxyuser:S3cret Passw0rd@proxy.corp:3128",
];

/// A non-loopback issuer: its keys would be fetched through `HTTPS_PROXY`.
const REMOTE_ISSUER: &str = "https://opk-issuer.test";

/// Writes `config.yml` (root:opksshuser 0640, as verify requires) setting both proxy
/// variables to `proxy`.
fn set_proxy(host: &Host, proxy: &str) {
    e2e::ensure_users();
    host.write_etc(
        "config.yml",
        &format!("env_vars:\n  HTTPS_PROXY: \"{proxy}\"\n  HTTP_PROXY: \"{proxy}\"\n"),
    );
    std::os::unix::fs::chown(
        host.etc().join("config.yml"),
        Some(0),
        Some(e2e::group_id(e2e::AKC_USER)),
    )
    .unwrap();
}

/// Everything verify and explain wrote: the log at debug level, verify's stdout and stderr,
/// explain's stdout and stderr. Returns (verify allowed, explain allowed, all of it).
fn verify_and_explain(host: &Host) -> (bool, bool, String) {
    let (output, log) = host.verify_output(&["--log-level", "debug"]);
    let certificate = host.certificate_file();
    let etc = host.etc();
    let cache = host.dir.path().join("cache");
    let explain = host.opkssh(&[
        "explain",
        "--config-dir",
        etc.to_str().unwrap(),
        "--cache-dir",
        cache.to_str().unwrap(),
        "alice",
        certificate.to_str().unwrap(),
    ]);
    let shown = format!(
        "log:\n{log}\nverify stdout:\n{}\nverify stderr:\n{}\nexplain stdout:\n{}\nexplain stderr:\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&explain.stdout),
        String::from_utf8_lossy(&explain.stderr),
    );
    (output.status.success(), explain.status.success(), shown)
}

#[track_caller]
fn assert_no_password(shown: &str) {
    for secret in [PASSWORD, "S3cret", "Passw0rd", "proxyuser"] {
        assert!(
            !shown.contains(secret),
            "PROXY CREDENTIAL SHOWN ({secret})\n{shown}"
        );
    }
}

/// The loopback issuer is reached directly, as Go reaches it: a proxy that does not parse
/// is no reason to deny it, and its password appears nowhere.
#[test]
fn proxy_unparsable_url_with_a_password_and_a_loopback_issuer() {
    if !gate() {
        return;
    }
    for proxy in UNPARSABLE {
        let host = Host::new();
        set_proxy(&host, proxy);
        let (verified, explained, shown) = verify_and_explain(&host);
        assert_no_password(&shown);
        assert!(verified && explained, "{proxy}: loopback denied\n{shown}");
    }
}

/// An issuer the proxy would carry: denied, and the reason names `HTTPS_PROXY` and says the
/// URL is not valid, without showing it.
#[test]
fn proxy_unparsable_url_with_a_password_and_an_issuer_behind_it() {
    if !gate() {
        return;
    }
    for proxy in UNPARSABLE {
        let mut host = Host::new();
        host.minted =
            mint_with(REMOTE_ISSUER, "attack-client", "alice@example.com", |_| {}).unwrap();
        host.write_etc(
            "providers",
            &format!("{REMOTE_ISSUER} attack-client oidc\n"),
        );
        host.write_etc(
            "auth_id",
            &format!("alice alice@example.com {REMOTE_ISSUER}\n"),
        );
        set_proxy(&host, proxy);
        let (verified, explained, shown) = verify_and_explain(&host);
        assert_no_password(&shown);
        assert!(!verified && !explained, "{proxy}: ATTACK ACCEPTED\n{shown}");
        let reason = format!(
            "{REMOTE_ISSUER}/.well-known/openid-configuration would go through the proxy in \
             HTTPS_PROXY, which is not a usable http or https proxy URL (value not shown)"
        );
        let log = shown.split("verify stdout:").next().unwrap_or_default();
        assert!(
            log.contains(&reason),
            "{proxy}: expected {reason:?} in\n{shown}"
        );
        let explain = shown.split("explain stdout:").nth(1).unwrap_or_default();
        assert!(
            explain.contains(&reason),
            "{proxy}: expected {reason:?} in\n{shown}"
        );
    }
}
