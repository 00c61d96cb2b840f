//! Principal templates (`* %u@example.com <issuer>`, issue 18) through the real `opkssh
//! verify`: one catch-all row lets each person into their own account, and must let nobody
//! into an account that only looks like theirs. The logins are for the e2e harness's people
//! ([`LOGIN_USER`], a real account with a uid at or above `UID_MIN`).

use crate::binary::{Host, gate};
use opkssh_tests::e2e::{self, IssuerServer, LOGIN_USER};
use opkssh_tests::mint::mint_with_access_token;
use serde_json::json;

/// A host whose login is for `email`, with the template row as its only `auth_id` row.
fn template_host(email: &str) -> Host {
    let host = Host::with_claims(|claims| claims["email"] = json!(email));
    host.write_etc(
        "auth_id",
        &format!("* %u@example.com {}\n", host.server.issuer()),
    );
    host
}

/// verify as `principal` lets the login in; returns the log.
fn allowed_as(host: &Host, principal: &str) -> String {
    let (allowed, log) = host.verify_as(principal, &["--log-level", "debug"]);
    assert!(allowed, "control denied as {principal}\n{log}");
    log
}

/// verify as `principal` refuses the login, and the log says `needle`; returns the log.
fn denied_as(host: &Host, principal: &str, needle: &str) -> String {
    let (allowed, log) = host.verify_as(principal, &["--log-level", "debug"]);
    assert!(!allowed, "ATTACK ACCEPTED as {principal}\n{log}");
    assert!(log.contains(needle), "expected {needle:?} in\n{log}");
    log
}

/// `Alice` and `ALICE` can be other people's accounts than `alice`: a token for
/// `e2euser@example.com` gets `e2euser` and nothing spelled like it.
#[test]
fn template_account_name_in_another_case() {
    if !gate() {
        return;
    }
    e2e::ensure_users();
    let host = template_host(&format!("{LOGIN_USER}@example.com"));
    allowed_as(&host, LOGIN_USER);
    for principal in ["E2euser", "E2EUSER", "e2eUser"] {
        denied_as(
            &host,
            principal,
            "in the case of the account name, which is compared exactly",
        );
    }
}

/// The provider's spelling of the email does not pick another account either: a token for
/// `E2EUSER@example.com` is not `e2euser`. The domain still ignores case.
#[test]
fn template_token_email_in_another_case() {
    if !gate() {
        return;
    }
    e2e::ensure_users();
    let upper = template_host(&format!("{}@example.com", LOGIN_USER.to_uppercase()));
    denied_as(
        &upper,
        LOGIN_USER,
        "in the case of the account name, which is compared exactly",
    );
    let domain = template_host(&format!("{LOGIN_USER}@EXAMPLE.com"));
    allowed_as(&domain, LOGIN_USER);
}

/// One catch-all row is "everyone gets their own account": not root, not a system account,
/// not the account verify runs as. Refused at info level (the verify summary line) and in
/// `explain`, naming the row and the rule; a row naming the account still grants it.
fn refused_through_a_template_granted_by_a_row(principal: &str, rule: &str) {
    let host = template_host(&format!("{principal}@example.com"));
    let issuer = host.server.issuer().to_owned();
    let row = format!("{}:1", host.etc().join("auth_id").display());
    let (allowed, log) = host.verify_as(principal, &[]);
    assert!(!allowed, "ATTACK ACCEPTED as {principal}\n{log}");
    let summary = format!("template row {row} refused: {rule}");
    assert!(
        log.lines()
            .any(|line| line.contains("failed to verify: deny") && line.contains(&summary)),
        "expected {summary:?} in the summary line of\n{log}"
    );

    let certificate = host.certificate_file();
    let explain = host.opkssh(&[
        "explain",
        "--config-dir",
        host.etc().to_str().unwrap(),
        "--cache-dir",
        host.dir.path().join("cache").to_str().unwrap(),
        principal,
        certificate.to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&explain.stdout);
    let step = format!(
        "fail  auth_id row {row}: %u@example.com (template, %u = {principal}: {principal}@example.com) matched the id token claims (email {principal}@example.com matches {principal}@example.com), but {principal} is refused: {rule}"
    );
    assert!(text.contains(&step), "expected {step:?} in\n{text}");

    host.write_etc(
        "auth_id",
        &format!("* %u@example.com {issuer}\n{principal} {principal}@example.com {issuer}\n"),
    );
    allowed_as(&host, principal);
}

#[test]
fn template_grants_root() {
    if !gate() {
        return;
    }
    refused_through_a_template_granted_by_a_row("root", "a template never grants root");
}

#[test]
fn template_grants_a_system_account() {
    if !gate() {
        return;
    }
    let uid_min = policy::login_defs::uid_min();
    let daemon = nix::unistd::User::from_name("daemon").unwrap().unwrap();
    refused_through_a_template_granted_by_a_row(
        "daemon",
        &format!(
            "a template never grants a system account (uid {}, below UID_MIN {uid_min} of /etc/login.defs)",
            daemon.uid
        ),
    );
}

/// `nobody` (the overflow uid 65534) is above `UID_MIN`, yet no person's account.
#[test]
fn template_grants_nobody() {
    if !gate() {
        return;
    }
    refused_through_a_template_granted_by_a_row(
        "nobody",
        "a template never grants nobody's account (uid 65534)",
    );
}

/// `opksshuser` holds the `readhome` sudo rule.
#[test]
fn template_grants_the_verify_account() {
    if !gate() {
        return;
    }
    e2e::ensure_users();
    refused_through_a_template_granted_by_a_row(
        e2e::AKC_USER,
        "a template never grants the account opkssh verify runs as",
    );
}

/// A template names an account by a token's email; an account that is not there is not
/// granted (and home policies, plugins and sshd never see a made-up name through one).
#[test]
fn template_grants_an_account_that_does_not_exist() {
    if !gate() {
        return;
    }
    let host = template_host("nobody-has-this-account@example.com");
    denied_as(
        &host,
        "nobody-has-this-account",
        "a template never grants an account that does not exist",
    );
}

/// A template turns any email into an account, so an email the provider itself calls
/// unverified (`false`, or the string `"false"`) grants nothing through one.
#[test]
fn template_email_verified_false() {
    if !gate() {
        return;
    }
    e2e::ensure_users();
    for verified in [json!(false), json!("false")] {
        let host = Host::with_claims(|claims| {
            claims["email"] = json!(format!("{LOGIN_USER}@example.com"));
            claims["email_verified"] = verified.clone();
        });
        host.write_etc(
            "auth_id",
            &format!("* %u@example.com {}\n", host.server.issuer()),
        );
        denied_as(
            &host,
            LOGIN_USER,
            "but the ID Token sets email_verified to false: a template never grants on an unverified email",
        );
    }
}

/// Control: Entra ID sends no `email_verified`, so a missing claim still matches, with the
/// warning naming the email and the token it came from.
#[test]
fn template_email_verified_missing_control() {
    if !gate() {
        return;
    }
    e2e::ensure_users();
    let host = Host::with_claims(|claims| {
        claims["email"] = json!(format!("{LOGIN_USER}@example.com"));
        claims.as_object_mut().unwrap().remove("email_verified");
    });
    host.write_etc(
        "auth_id",
        &format!("* %u@example.com {}\n", host.server.issuer()),
    );
    let log = allowed_as(&host, LOGIN_USER);
    let warning = format!(
        "matched on email \"{LOGIN_USER}@example.com\" but the ID Token has no email_verified claim"
    );
    assert!(log.contains(&warning), "expected {warning:?} in\n{log}");
}

/// An ID token for another address, and a userinfo response (for the certificate's access
/// token) naming [`LOGIN_USER`] with `verified` as its `email_verified`, if any.
fn userinfo_host(verified: Option<serde_json::Value>) -> Host {
    let server = IssuerServer::start_custom().unwrap();
    let issuer = server.issuer().to_owned();
    let minted = mint_with_access_token(
        &issuer,
        "attack-client",
        "someone@old.example",
        Some("access-token-of-e2euser"),
        |claims| claims["sub"] = json!("sub-e2euser"),
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
    let mut userinfo = json!({"sub": "sub-e2euser", "email": format!("{LOGIN_USER}@example.com")});
    if let Some(verified) = verified {
        userinfo["email_verified"] = verified;
    }
    server.set_userinfo(userinfo.to_string().as_bytes());
    let host = Host::serving(server, minted);
    host.write_etc("auth_id", &format!("* %u@example.com {issuer}\n"));
    host
}

/// A template matched through the userinfo email: the summary line names that email and
/// where it came from, not the ID token's email, and so does the `email_verified` warning.
#[test]
fn template_matched_through_userinfo_is_logged_as_the_userinfo_email() {
    if !gate() {
        return;
    }
    e2e::ensure_users();
    let host = userinfo_host(None);
    let issuer = host.server.issuer().to_owned();
    let log = allowed_as(&host, LOGIN_USER);
    let summary = format!(
        "allow principal={LOGIN_USER} identity={LOGIN_USER}@example.com (from userinfo) issuer={issuer} "
    );
    assert!(log.contains(&summary), "expected {summary:?} in\n{log}");
    let warning = format!(
        "matched on email \"{LOGIN_USER}@example.com\" but the userinfo response has no email_verified claim"
    );
    assert!(log.contains(&warning), "expected {warning:?} in\n{log}");
}

/// The userinfo response calling its email unverified refuses the template too.
#[test]
fn template_userinfo_email_verified_false() {
    if !gate() {
        return;
    }
    e2e::ensure_users();
    denied_as(
        &userinfo_host(Some(json!(false))),
        LOGIN_USER,
        "but the userinfo response sets email_verified to false: a template never grants on an unverified email",
    );
}
