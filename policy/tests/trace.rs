#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
//! The decision trace: every deny-list check and `auth_id` row gets a step saying what it
//! compared and how it came out, with file and line; the deciding step is among them.

use policy::{
    AuthIdFile, Check, DenyLists, MatchKind, Outcome, PolicyInput, Step, TraceSource, evaluate_rows,
};
use serde_json::json;
use std::path::{Path, PathBuf};

const ISSUER: &str = "https://op.example";

fn input(claims: serde_json::Value, principal: &str) -> PolicyInput<'static> {
    PolicyInput::danger_from_claims(claims.as_object().unwrap().clone(), principal)
}

fn alice() -> serde_json::Value {
    json!({"iss": ISSUER, "sub": "sub-1", "email": "alice@example.com", "email_verified": true,
           "groups": ["ops", "dev"]})
}

fn evaluate(claims: serde_json::Value, auth_id: &str) -> (policy::Evaluation, PathBuf) {
    let path = PathBuf::from("/etc/opk/auth_id");
    let file = AuthIdFile::parse(auth_id.as_bytes(), &path);
    let evaluation = evaluate_rows(
        &input(claims, "alice"),
        &DenyLists::default(),
        Path::new("/etc/opk/config.yml"),
        file.rows(),
        std::slice::from_ref(&path),
    );
    (evaluation, path)
}

fn rendered(steps: &[Step]) -> Vec<String> {
    steps.iter().map(ToString::to_string).collect()
}

#[test]
fn every_row_says_why_and_the_match_names_its_line() {
    let (evaluation, path) = evaluate(
        alice(),
        &format!(
            "root alice@example.com {ISSUER}\n\
             alice alice@example.com https://other.example\n\
             alice oidc:groups:admins {ISSUER}\n\
             alice bob@example.com {ISSUER}\n\
             alice oidc:groups:ops {ISSUER}\n"
        ),
    );
    let trace = evaluation.decision.trace();
    assert!(evaluation.decision.is_allow());
    assert_eq!(
        rendered(&trace.steps),
        [
            "pass  deny lists /etc/opk/config.yml: neither email \"alice@example.com\" nor principal alice is in deny_emails (0) or deny_users (0)",
            "skip  auth_id row /etc/opk/auth_id:1: principal root != alice",
            "skip  auth_id row /etc/opk/auth_id:2: issuer https://other.example != https://op.example",
            "fail  auth_id row /etc/opk/auth_id:3: oidc:groups:admins does not match (id token: claim groups is [ops, dev], without admins)",
            "fail  auth_id row /etc/opk/auth_id:4: bob@example.com does not match (id token: email alice@example.com != bob@example.com, sub sub-1 != bob@example.com)",
            "pass  auth_id claim match /etc/opk/auth_id:5: policy alice oidc:groups:ops https://op.example matched the id token claims: claim groups contains ops",
        ]
    );
    // The deciding step is the last one here, and the one-line form is unchanged.
    let last = trace.steps.last().unwrap();
    assert_eq!(last.outcome, Outcome::Pass);
    assert_eq!(trace.check, Check::Row(MatchKind::Claim));
    assert_eq!(
        trace.source,
        TraceSource::Row(policy::Location::line(&path, 5))
    );
    assert_eq!(last.detail, trace.detail);
    assert_eq!(trace.deciding_step(Outcome::Pass), *last);
    assert_eq!(
        evaluation.decision.to_string(),
        format!(
            "allow: {} [auth_id claim match: /etc/opk/auth_id:5]",
            trace.detail
        )
    );
}

#[test]
fn a_denial_ends_with_the_reason_and_missing_claims_are_named() {
    let mut claims = alice();
    claims.as_object_mut().unwrap().remove("groups");
    claims["email_verified"] = false.into();
    let (evaluation, _) = evaluate(
        claims.clone(),
        &format!("alice oidc:groups:admins {ISSUER}\nalice oidc:email_verified:true {ISSUER}\n"),
    );
    let steps = rendered(&evaluation.decision.trace().steps);
    assert!(!evaluation.decision.is_allow());
    assert_eq!(
        steps[1],
        "fail  auth_id row /etc/opk/auth_id:1: oidc:groups:admins does not match (id token: claim groups not present (needs admins))"
    );
    assert_eq!(
        steps[2],
        "fail  auth_id row /etc/opk/auth_id:2: oidc:email_verified:true does not match (id token: claim email_verified is [false], without true)"
    );
    assert!(steps[3].starts_with(
        "fail  no matching policy /etc/opk/auth_id: no policy to allow alice@example.com"
    ));
    assert_eq!(evaluation.decision.trace().check, Check::NoMatch);

    // An email rule still matches an unverified email (as in Go), and the step says so.
    let (evaluation, _) = evaluate(claims, &format!("alice alice@example.com {ISSUER}\n"));
    assert!(evaluation.decision.is_allow());
    assert!(
        evaluation.decision.trace().detail.ends_with(
            "email alice@example.com matches; email alice@example.com not verified (email_verified false): a warning, not a denial, as in Go"
        ),
        "{}",
        evaluation.decision.trace().detail
    );
}

#[test]
fn a_deny_list_hit_is_the_last_step() {
    let path = PathBuf::from("/etc/opk/auth_id");
    let file = AuthIdFile::parse(
        format!("alice alice@example.com {ISSUER}\n").as_bytes(),
        &path,
    );
    let evaluation = evaluate_rows(
        &input(alice(), "alice"),
        &DenyLists {
            emails: vec!["ALICE@example.com".into()],
            users: Vec::new(),
        },
        Path::new("/etc/opk/config.yml"),
        file.rows(),
        std::slice::from_ref(&path),
    );
    assert_eq!(
        rendered(&evaluation.decision.trace().steps),
        ["fail  deny_emails /etc/opk/config.yml: denied email ALICE@example.com"]
    );
}
