//! Principal templates (`* %u@example.com <issuer>`, issue 18) through the real `opkssh
//! verify`: one catch-all row lets each person into their own account, and must let nobody
//! into an account that only looks like theirs. The logins are for the e2e harness's people
//! ([`LOGIN_USER`], a real account with a uid at or above `UID_MIN`).

use crate::binary::{Host, gate};
use opkssh_tests::e2e::{self, LOGIN_USER};
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
