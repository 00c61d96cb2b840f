#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
//! Principal templates (`* %u@example.com <issuer>`): which rows and principals match, which
//! are refused, and what `explain` and `audit` say about them.

use policy::audit::{self, Status};
use policy::{
    Account, AccountFacts, AuthIdFile, Check, ClaimSource, DenyLists, MatchKind, Outcome,
    PolicyInput, Template, evaluate_rows,
};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

const ISSUER: &str = "https://op.example";

fn claims(email: &str, sub: &str) -> Value {
    json!({"iss": ISSUER, "sub": sub, "email": email, "email_verified": true,
           "groups": ["ssh-alice", "ops"], "preferred_username": "alice"})
}

/// A machine's facts: root, `daemon` (uid 1), the verify account `opksshuser` (uid 998, as
/// `useradd --system` makes it), `ghost` who does not exist, and people from uid 1000 up.
fn facts(principal: &str) -> AccountFacts {
    AccountFacts {
        account: match principal {
            "root" => Account::Uid(0),
            "daemon" => Account::Uid(1),
            "opksshuser" => Account::Uid(998),
            "ghost" => Account::Missing,
            _ => Account::Uid(1001),
        },
        uid_min: 1000,
        verify_accounts: vec!["opksshuser".to_owned()],
        verify_uid: Some(998),
    }
}

fn input(claims: &Value, principal: &str) -> PolicyInput<'static> {
    PolicyInput::danger_from_claims(claims.as_object().unwrap().clone(), principal)
        .with_account_facts(facts(principal))
}

fn evaluate(claims: &Value, principal: &str, auth_id: &str) -> policy::Evaluation {
    let path = PathBuf::from("/etc/opk/auth_id");
    let file = AuthIdFile::parse_for(auth_id.as_bytes(), &path, principal);
    evaluate_rows(
        &input(claims, principal),
        &DenyLists::default(),
        Path::new("/etc/opk/config.yml"),
        file.rows(),
        std::slice::from_ref(&path),
    )
}

fn allows(claims: &Value, principal: &str, identity: &str) -> bool {
    evaluate(claims, principal, &format!("* {identity} {ISSUER}\n"))
        .decision
        .is_allow()
}

#[test]
fn template_rows_admit_exactly_the_named_account() {
    let alice = claims("alice@example.com", "alice-sub");
    // (token, principal, identity, allowed)
    let table: &[(&Value, &str, &str, bool)] = &[
        // Email: the local part is the account.
        (&alice, "alice", "%u@example.com", true),
        (&alice, "bob", "%u@example.com", false),
        (&alice, "root", "%u@example.com", false),
        (&alice, "alic", "%u@example.com", false),
        (&alice, "alice", "%u@example.org", false),
        (&alice, "alice", "%u@sub.example.com", false),
        (&alice, "lice", "a%u@example.com", true),
        (&alice, "alice", "%u.adm@example.com", false),
        // Claims: exact value, with literal text around %u.
        (&alice, "alice", "oidc:preferred_username:%u", true),
        (&alice, "bob", "oidc:preferred_username:%u", false),
        (&alice, "alice", "oidc:groups:ssh-%u", true),
        (&alice, "ops", "oidc:groups:%u", true),
        (&alice, "dev", "oidc:groups:%u", false),
        (&alice, "alice-sub", "oidc:sub:%u", true),
        (&alice, "alice", "oidc:sub:%u", false),
        (&alice, "alice", "oidc:missing:%u", false),
        // An email template never matches on sub, even when sub looks like the email.
        (
            &claims("", "alice@example.com"),
            "alice",
            "%u@example.com",
            false,
        ),
    ];
    for (token, principal, identity, allowed) in table {
        assert_eq!(
            allows(token, principal, identity),
            *allowed,
            "{principal} via {identity} for {token}"
        );
    }
}

#[test]
fn case_rules_follow_email_and_claim_rows() {
    // Email: the account name is compared byte for byte, since `Alice` and `ALICE` can be
    // other people's accounts than `alice`; the rest ignores ASCII case, as email rows do.
    let alice = claims("alice@example.com", "s");
    assert!(allows(&alice, "alice", "%u@example.com"));
    assert!(!allows(&alice, "Alice", "%u@example.com"));
    assert!(!allows(&alice, "ALICE", "%u@example.com"));
    assert!(!allows(
        &claims("ALICE@example.com", "s"),
        "alice",
        "%u@example.com"
    ));
    assert!(!allows(
        &claims("Alice@Example.COM", "s"),
        "alice",
        "%u@example.com"
    ));
    assert!(allows(
        &claims("alice@Example.COM", "s"),
        "alice",
        "%u@example.com"
    ));
    assert!(allows(&alice, "alice", "%u@EXAMPLE.com"));
    assert!(allows(
        &claims("ALICE@example.com", "s"),
        "ALICE",
        "%u@example.com"
    ));
    // ... but no Unicode folding: `ſ` (long s) and the Kelvin sign fold to s and k in email
    // rows; they must not reach the accounts `stan` and `kim`.
    assert!(!allows(
        &claims("ſtan@example.com", "s"),
        "stan",
        "%u@example.com"
    ));
    assert!(!allows(
        &claims("\u{212a}im@example.com", "s"),
        "kim",
        "%u@example.com"
    ));
    // Claims are compared exactly.
    let claim = json!({"iss": ISSUER, "sub": "Alice"});
    assert!(allows(&claim, "Alice", "oidc:sub:%u"));
    assert!(!allows(&claim, "alice", "oidc:sub:%u"));
}

#[test]
fn unsafe_principals_never_match() {
    // Each token's email (or claim) equals the expansion with the unsafe principal, so only
    // the principal check stands between it and a match.
    for principal in [
        "alice@evil.com",
        "a%u",
        "a:b",
        "a b",
        "a\tb",
        "a\nb",
        "a\"b",
        "-alice",
        ".alice",
        "*",
        "",
        "a,b",
        "al*ce",
    ] {
        let email = format!("{principal}@example.com");
        assert!(
            !allows(&claims(&email, "s"), principal, "%u@example.com"),
            "{principal:?}"
        );
        let claim = json!({"iss": ISSUER, "sub": "s", "login": principal});
        assert!(
            !allows(&claim, principal, "oidc:login:%u"),
            "{principal:?} (claim)"
        );
    }
    // The trace says why, naming the row.
    let evaluation = evaluate(
        &claims("a:b@example.com", "s"),
        "a:b",
        &format!("* %u@example.com {ISSUER}\n"),
    );
    let step = &evaluation.decision.trace().steps[1];
    assert_eq!(step.outcome, Outcome::Fail);
    assert_eq!(
        step.to_string(),
        "fail  auth_id row /etc/opk/auth_id:1: template row does not apply: principal \"a:b\" is not a safe account name to put in place of %u"
    );
    // A login's principal is not the admin's mistake: no log warning for it.
    assert!(evaluation.notes.is_empty(), "{:?}", evaluation.notes);
}

#[test]
fn unusable_template_rows_are_refused_with_a_warning() {
    let alice = claims("alice@example.com", "alice");
    for (identity, why) in [
        // `*` without %u would let one identity into every account.
        ("alice@example.com", "has no %u"),
        ("alice", "has no %u"),
        ("oidc:groups:ops", "has no %u"),
        // Forms that cannot hold %u safely.
        ("oidc-match-end:email:%u@example.com", "suffix or glob"),
        ("repo:%u", "suffix or glob"),
        ("%u", "neither an email nor an oidc rule"),
        ("alice@%u", "must be an email with %u in its local part"),
        ("%u@", "must be an email with %u in its local part"),
        (
            "%u@a@example.com",
            "must be an email with %u in its local part",
        ),
        ("oidc:%u:alice", "with %u in the value"),
        ("oidc:groups:x:%u", "exactly three"),
        ("oidc:groups", "has no %u"),
        ("%u%u@example.com", "more than one %u"),
        ("%u%d@example.com", "a `%` other than its %u"),
        ("'%u @example.com'", "white space"),
        (
            "oidc:https://acme.com/groups:%u",
            "quotes around a URL claim name",
        ),
    ] {
        let evaluation = evaluate(&alice, "alice", &format!("* {identity} {ISSUER}\n"));
        assert!(!evaluation.decision.is_allow(), "{identity}");
        let step = &evaluation.decision.trace().steps[1];
        assert_eq!(step.check, Check::Rule, "{identity}");
        assert!(
            step.detail.starts_with("template row refused: ") && step.detail.contains(why),
            "{identity}: {}",
            step.detail
        );
        assert_eq!(evaluation.notes.len(), 1, "{identity}");
        assert!(
            evaluation.notes[0].starts_with("warning: template row refused: ")
                && evaluation.notes[0].ends_with("(/etc/opk/auth_id:1)"),
            "{:?}",
            evaluation.notes
        );
        assert!(
            Template::parse(identity.trim_matches('\'')).is_err(),
            "{identity}"
        );
    }
}

#[test]
fn percent_u_in_a_row_for_one_account_is_refused_not_read_literally() {
    // Go would compare the literal text `%u@example.com` with the email, and that is a
    // valid address; a row for `alice` with %u is a template written wrong.
    let literal = claims("%u@example.com", "s");
    for (identity, token) in [
        ("%u@example.com", &literal),
        ("%u@example.com", &claims("alice@example.com", "s")),
        (
            "oidc:preferred_username:%u",
            &claims("alice@example.com", "s"),
        ),
    ] {
        let evaluation = evaluate(token, "alice", &format!("alice {identity} {ISSUER}\n"));
        assert!(!evaluation.decision.is_allow(), "{identity}");
        let step = &evaluation.decision.trace().steps[1];
        assert_eq!(
            step.detail,
            format!(
                "row refused: identity {identity} contains %u but the principal is alice, not *; only template rows (principal *) replace %u"
            )
        );
        assert_eq!(evaluation.notes.len(), 1);
    }
    // The same row without %u still works as before.
    assert!(
        evaluate(
            &claims("alice@example.com", "s"),
            "alice",
            &format!("alice alice@example.com {ISSUER}\n")
        )
        .decision
        .is_allow()
    );
}

#[test]
fn explain_says_the_row_was_a_template_and_what_it_expanded_to() {
    let evaluation = evaluate(
        &claims("alice@example.com", "alice-sub"),
        "alice",
        &format!(
            "* %u@example.com https://other.example\n\
             * oidc:groups:admin-%u {ISSUER}\n\
             * %u@example.com {ISSUER}\n"
        ),
    );
    assert!(evaluation.decision.is_allow());
    let steps: Vec<String> = evaluation
        .decision
        .trace()
        .steps
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        steps[1..],
        [
            "skip  auth_id row /etc/opk/auth_id:1: issuer https://other.example != https://op.example",
            "fail  auth_id row /etc/opk/auth_id:2: oidc:groups:admin-%u (template, %u = alice: oidc:groups:admin-alice) does not match (id token: claim groups is [ssh-alice, ops], without admin-alice)",
            "pass  auth_id email match /etc/opk/auth_id:3: policy * %u@example.com (template, %u = alice: alice@example.com) https://op.example matched the id token claims: email alice@example.com matches alice@example.com",
        ]
    );
    assert_eq!(
        evaluation.decision.trace().check,
        Check::Row(MatchKind::Email)
    );
}

#[test]
fn template_rows_match_userinfo_claims_too() {
    let path = PathBuf::from("/etc/opk/auth_id");
    let file = AuthIdFile::parse(format!("* %u@example.com {ISSUER}\n").as_bytes(), &path);
    let input = input(&json!({"iss": ISSUER, "sub": "s"}), "alice");
    let evaluate = |userinfo: &str| {
        evaluate_rows(
            &input.clone().with_userinfo(userinfo.to_owned()),
            &DenyLists::default(),
            Path::new("/etc/opk/config.yml"),
            file.rows(),
            std::slice::from_ref(&path),
        )
    };
    assert!(
        evaluate(r#"{"sub":"s","email":"alice@example.com"}"#)
            .decision
            .is_allow()
    );
    assert!(
        !evaluate(r#"{"sub":"s","email":"bob@example.com"}"#)
            .decision
            .is_allow()
    );
    // The decision says which claims let the login in, for the log's identity; the warning
    // names the userinfo email and the userinfo response.
    let evaluation = evaluate(r#"{"sub":"s","email":"alice@example.com"}"#);
    let policy::Decision::Allow { source, .. } = evaluation.decision else {
        panic!("denied");
    };
    assert_eq!(source, ClaimSource::Userinfo);
    assert_eq!(
        evaluation.notes,
        [
            "warning: policy \"alice@example.com\" matched on email \"alice@example.com\" but the userinfo response has no email_verified claim, consider matching on sub instead (/etc/opk/auth_id:1)"
        ]
    );
    // Unverified at userinfo: no template grants.
    let evaluation =
        evaluate(r#"{"sub":"s","email":"alice@example.com","email_verified":"false"}"#);
    assert!(!evaluation.decision.is_allow());
    assert!(
        evaluation.decision.trace().steps[1].detail.contains(
            "userinfo: email alice@example.com matches alice@example.com, but the userinfo response sets email_verified to false: a template never grants on an unverified email"
        ),
        "{:?}",
        evaluation.decision.trace().steps
    );
}

#[test]
fn templates_do_not_grant_on_an_email_the_id_token_calls_unverified() {
    for verified in [json!(false), json!("false")] {
        let mut token = claims("alice@example.com", "s");
        token["email_verified"] = verified.clone();
        let evaluation = evaluate(&token, "alice", &format!("* %u@example.com {ISSUER}\n"));
        assert!(!evaluation.decision.is_allow(), "{verified}");
        // An explicit row for the same email keeps Go's warning-only rule.
        let evaluation = evaluate(
            &token,
            "alice",
            &format!("alice alice@example.com {ISSUER}\n"),
        );
        assert!(evaluation.decision.is_allow(), "{verified}");
        assert_eq!(evaluation.notes.len(), 1);
    }
    let mut token = claims("alice@example.com", "s");
    token.as_object_mut().unwrap().remove("email_verified");
    let evaluation = evaluate(&token, "alice", &format!("* %u@example.com {ISSUER}\n"));
    assert!(evaluation.decision.is_allow());
    let policy::Decision::Allow { source, .. } = evaluation.decision else {
        panic!("denied");
    };
    assert_eq!(source, ClaimSource::IdToken);
    assert_eq!(
        evaluation.notes,
        [
            "warning: policy \"alice@example.com\" matched on email \"alice@example.com\" but the ID Token has no email_verified claim, consider matching on sub instead (/etc/opk/auth_id:1)"
        ]
    );
}

#[test]
fn deny_users_still_wins_over_a_template() {
    let path = PathBuf::from("/etc/opk/auth_id");
    let file = AuthIdFile::parse(format!("* %u@example.com {ISSUER}\n").as_bytes(), &path);
    let token = claims("root@example.com", "s");
    let evaluation = evaluate_rows(
        &input(&token, "root"),
        &DenyLists {
            emails: Vec::new(),
            users: vec!["root".to_owned()],
        },
        Path::new("/etc/opk/config.yml"),
        file.rows(),
        std::slice::from_ref(&path),
    );
    assert_eq!(evaluation.decision.trace().check, Check::DenyUser);
}

#[test]
fn parse_for_keeps_template_rows_past_the_other_principals() {
    let path = Path::new("/etc/opk/auth_id");
    let mut text = String::new();
    for index in 0..100 {
        text.push_str(&format!("user{index} u{index}@example.com {ISSUER}\n"));
    }
    text.push_str(&format!("* %u@example.com {ISSUER}\n"));
    text.push_str(&format!("'*' oidc:sub:%u {ISSUER}\n"));
    let file = AuthIdFile::parse_for(text.as_bytes(), path, "alice");
    let templates: Vec<_> = file
        .rows()
        .iter()
        .filter(|row| row.principal == "*")
        .map(|row| row.location.line)
        .collect();
    assert_eq!(templates, [Some(101), Some(102)]);
    // Template rows do not use up the budget of other principals' rows listed for explain.
    assert_eq!(
        file.unlisted(),
        100 - policy::auth_id::LISTED_OTHER_PRINCIPALS
    );
    assert!(
        evaluate(&claims("alice@example.com", "s"), "alice", &text)
            .decision
            .is_allow()
    );
}

#[test]
fn a_home_template_row_applies_to_its_owner_only() {
    let path = Path::new("/home/alice/.opk/auth_id");
    let text = format!("* %u@example.com {ISSUER}\nbob bob@example.com {ISSUER}\n");
    let home = AuthIdFile::parse_for(text.as_bytes(), path, "alice").for_principal("alice");
    assert_eq!(home.rows().len(), 1);
    assert_eq!(home.rows()[0].principal, "*");
    // The enforcer reads only the home of the account being logged into, so the template's
    // %u is always the owner: alice's token gets in as alice...
    let evaluate_home = |email: &str| {
        evaluate_rows(
            &input(&claims(email, "s"), "alice"),
            &DenyLists::default(),
            Path::new("/etc/opk/config.yml"),
            home.rows(),
            &[path.to_path_buf()],
        )
    };
    assert!(evaluate_home("alice@example.com").decision.is_allow());
    // ... and nobody else's token gets in through alice's file.
    assert!(!evaluate_home("bob@example.com").decision.is_allow());
}

#[test]
fn audit_understands_template_rows() {
    let issuers = vec![ISSUER.to_owned()];
    let content = format!(
        "* %u@example.com {ISSUER}\n\
         * alice@example.com {ISSUER}\n\
         alice %u@example.com {ISSUER}\n\
         * oidc-match-end:email:%u@example.com {ISSUER}\n\
         * oidc:sub:%u {ISSUER}\n"
    );
    let rows = audit::audit_policy(content.as_bytes(), &issuers, None);
    let statuses: Vec<_> = rows.iter().map(|row| row.status).collect();
    assert_eq!(
        statuses,
        [
            Status::Success,
            Status::Error,
            Status::Error,
            Status::Error,
            Status::Success
        ]
    );
    assert_eq!(rows[0].reason, "issuer matches provider entry");
    assert_eq!(
        rows[0].hints,
        [
            "template row: %u is the account logged into, e.g. login alice needs identity alice@example.com"
        ]
    );
    assert_eq!(
        rows[1].reason,
        "principal * makes a template row, but identity \"alice@example.com\" has no %u, so a * row would let that one identity into every account; verify never matches it"
    );
    assert_eq!(
        rows[2].reason,
        "identity \"%u@example.com\" contains %u but the principal is \"alice\", not *: %u is only replaced in template rows (principal *), so verify never matches this row"
    );
    assert!(
        rows[3].reason.contains("suffix or glob"),
        "{}",
        rows[3].reason
    );
    assert!(
        rows[4].hints[0].ends_with("needs identity oidc:sub:alice"),
        "{:?}",
        rows[4].hints
    );

    // In a home policy a template row is not "another account's row".
    let home = audit::audit_policy(
        format!("* %u@example.com {ISSUER}\nbob b@example.com {ISSUER}\n").as_bytes(),
        &issuers,
        Some("alice"),
    );
    assert_eq!(home[0].status, Status::Success);
    assert!(
        home[0].hints.contains(
            &"in a home policy a template row only applies to its owner alice".to_owned()
        )
    );
    assert_eq!(home[1].status, Status::Warning);
}

#[test]
fn templates_never_grant_root_system_accounts_or_the_verify_account() {
    let template = format!("* %u@example.com {ISSUER}\n");
    for (principal, why) in [
        ("root", "a template never grants root"),
        (
            "daemon",
            "a template never grants a system account (uid 1, below UID_MIN 1000 of /etc/login.defs)",
        ),
        (
            "opksshuser",
            "a template never grants the account opkssh verify runs as",
        ),
        (
            "ghost",
            "a template never grants an account that does not exist",
        ),
    ] {
        let token = claims(&format!("{principal}@example.com"), "s");
        let evaluation = evaluate(&token, principal, &template);
        assert!(!evaluation.decision.is_allow(), "{principal}");
        // explain names the row and the rule that refused it...
        let step = &evaluation.decision.trace().steps[1];
        assert_eq!(step.outcome, Outcome::Fail);
        let shown = step.to_string();
        assert!(
            shown.starts_with(&format!(
                "fail  auth_id row /etc/opk/auth_id:1: %u@example.com (template, %u = {principal}: {principal}@example.com) matched the id token claims (email {principal}@example.com matches {principal}@example.com), but {principal} is refused: {why}"
            )),
            "{shown}"
        );
        // ... and so does the deciding step, which verify logs at info level.
        let trace = evaluation.decision.trace();
        assert_eq!(trace.check, Check::NoMatch);
        assert!(
            trace
                .detail
                .contains(&format!("; template row /etc/opk/auth_id:1 refused: {why}")),
            "{}",
            trace.detail
        );
        // The refused match's email_verified warning is moot.
        assert!(evaluation.notes.is_empty(), "{:?}", evaluation.notes);

        // A row naming the account still grants it, even after the template.
        let explicit = format!("{template}{principal} {principal}@example.com {ISSUER}\n");
        let evaluation = evaluate(&token, principal, &explicit);
        assert!(evaluation.decision.is_allow(), "{principal} explicit");
        assert_eq!(
            evaluation.decision.trace().check,
            Check::Row(MatchKind::Email)
        );
    }
    // Another name for uid 0 is root too.
    let toor = PolicyInput::danger_from_claims(
        claims("toor@example.com", "s").as_object().unwrap().clone(),
        "toor",
    )
    .with_account_facts(AccountFacts {
        account: Account::Uid(0),
        ..facts("toor")
    });
    let path = PathBuf::from("/etc/opk/auth_id");
    let file = AuthIdFile::parse(template.as_bytes(), &path);
    let evaluation = evaluate_rows(
        &toor,
        &DenyLists::default(),
        Path::new("/etc/opk/config.yml"),
        file.rows(),
        std::slice::from_ref(&path),
    );
    assert!(!evaluation.decision.is_allow());
    // A row for someone else still reads as not matching, not as refused.
    let evaluation = evaluate(&claims("alice@example.com", "s"), "root", &template);
    assert!(
        evaluation.decision.trace().steps[1]
            .detail
            .ends_with("does not match (id token: email alice@example.com != root@example.com)"),
        "{:?}",
        evaluation.decision.trace().steps
    );
}

#[test]
fn without_account_facts_no_template_grants() {
    let path = PathBuf::from("/etc/opk/auth_id");
    let file = AuthIdFile::parse(format!("* %u@example.com {ISSUER}\n").as_bytes(), &path);
    let token = claims("alice@example.com", "s");
    let evaluation = evaluate_rows(
        &PolicyInput::danger_from_claims(token.as_object().unwrap().clone(), "alice"),
        &DenyLists::default(),
        Path::new("/etc/opk/config.yml"),
        file.rows(),
        std::slice::from_ref(&path),
    );
    assert!(!evaluation.decision.is_allow());
    assert!(
        evaluation.decision.trace().detail.ends_with(
            "refused: a template grants no account it cannot look up (no account facts were given to the policy)"
        ),
        "{}",
        evaluation.decision.trace().detail
    );
}
