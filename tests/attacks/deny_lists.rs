//! `deny_emails` and the userinfo endpoint (review finding 3). `auth_id` rows also match the
//! claims the userinfo endpoint returns for the certificate's access token, so a denied user
//! could present an ID token without `email` plus an access token whose userinfo names them,
//! and `root oidc-match-end:email:@corp.com` would let them in. Through the real binary,
//! with a real userinfo endpoint on loopback. Stricter than Go, which has the same hole.

use crate::binary::{Host, gate};
use opkssh_tests::e2e::{self, AKC_USER, IssuerServer};
use opkssh_tests::mint::mint_with_access_token;
use serde_json::json;
use std::os::unix::fs::PermissionsExt as _;

/// An ID token without `email`; the userinfo endpoint answers `bad@corp.com` for its `sub`.
fn host() -> Host {
    let server = IssuerServer::start_custom().unwrap();
    let issuer = server.issuer().to_owned();
    let minted = mint_with_access_token(
        &issuer,
        "attack-client",
        "bad@corp.com",
        Some("access-token-of-bad"),
        |claims| {
            claims.as_object_mut().unwrap().remove("email");
            claims["sub"] = json!("sub-bad");
        },
    )
    .unwrap();
    let discovery = json!({
        "issuer": issuer,
        "jwks_uri": format!("{issuer}/jwks.json"),
        "userinfo_endpoint": format!("{issuer}{}", e2e::USERINFO_PATH),
    });
    server.set_documents(
        discovery.to_string().as_bytes(),
        minted.jwks_json.as_bytes(),
    );
    server.set_userinfo(
        json!({"sub": "sub-bad", "email": "bad@corp.com", "email_verified": true})
            .to_string()
            .as_bytes(),
    );
    let host = Host::serving(server, minted);
    host.write_etc(
        "auth_id",
        &format!("alice oidc-match-end:email:@corp.com {issuer}\n"),
    );
    host
}

#[test]
fn deny_emails_control_userinfo_email_matches_the_row() {
    if !gate() {
        return;
    }
    let (allowed, log) = host().verify();
    assert!(allowed, "{log}");
    assert!(log.contains("matched the userinfo claims"), "{log}");
}

#[test]
fn deny_emails_bypass_through_userinfo_email() {
    if !gate() {
        return;
    }
    e2e::ensure_users();
    let host = host();
    let config = host.etc().join("config.yml");
    std::fs::write(&config, "deny_emails:\n  - BAD@corp.com\n").unwrap();
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o640)).unwrap();
    std::os::unix::fs::chown(&config, Some(0), Some(e2e::group_id(AKC_USER))).unwrap();
    host.denied_with("denied email BAD@corp.com (from userinfo)");
}
