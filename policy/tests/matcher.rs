#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
//! The matcher conformance table in `tests/data/matcher.json`, and the #597 principal table.

use policy::{AuthIdFile, DenyLists, PolicyInput, evaluate_rows, is_safe_principal};
use serde_json::Value;
use std::path::{Path, PathBuf};

fn data(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn strings(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .map(|item| item.as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn matcher_table() {
    let table = data("matcher.json");
    let cases = table["cases"].as_array().unwrap();
    assert!(cases.len() >= 60, "the table lost cases");
    let auth_path = PathBuf::from("/etc/opk/auth_id");
    let config_path = PathBuf::from("/etc/opk/config.yml");
    let mut failures = Vec::new();
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let principal = case["principal"].as_str().unwrap();
        let file = AuthIdFile::parse(case["auth_id"].as_str().unwrap().as_bytes(), &auth_path);
        let claims = case["claims"].as_object().unwrap().clone();
        let mut input = PolicyInput::danger_from_claims(claims, principal);
        if let Some(userinfo) = case.get("userinfo").and_then(Value::as_str) {
            input = input.with_userinfo(userinfo.to_owned());
        }
        let deny = DenyLists {
            emails: strings(case.get("deny").and_then(|deny| deny.get("emails"))),
            users: strings(case.get("deny").and_then(|deny| deny.get("users"))),
        };
        let evaluation = evaluate_rows(
            &input,
            &deny,
            &config_path,
            file.rows(),
            std::slice::from_ref(&auth_path),
        );
        let decision = &evaluation.decision;
        let trace = decision.trace();
        let mut problems = Vec::new();
        let expect_allow = case["expect"].as_str().unwrap() == "allow";
        if decision.is_allow() != expect_allow {
            problems.push(format!("decision {decision}"));
        }
        if let Some(check) = case.get("check").and_then(Value::as_str)
            && trace.check.to_string() != check
        {
            problems.push(format!("check {} (want {check})", trace.check));
        }
        if let Some(line) = case.get("line").and_then(Value::as_u64) {
            let got = match &trace.source {
                policy::TraceSource::Row(location) => location.line,
                _ => None,
            };
            if got != Some(usize::try_from(line).unwrap()) {
                problems.push(format!("line {got:?} (want {line})"));
            }
        }
        if let Some(detail) = case.get("detail").and_then(Value::as_str)
            && !trace.detail.contains(detail)
        {
            problems.push(format!("detail {:?} lacks {detail:?}", trace.detail));
        }
        for note in strings(case.get("notes")) {
            if !evaluation.notes.iter().any(|line| line.contains(&note)) {
                problems.push(format!("notes {:?} lack {note:?}", evaluation.notes));
            }
        }
        if let Some(absent) = case.get("no_notes").and_then(Value::as_str)
            && evaluation.notes.iter().any(|line| line.contains(absent))
        {
            problems.push(format!("notes {:?} contain {absent:?}", evaluation.notes));
        }
        // Every decision renders as one log line naming where it came from.
        let line = decision.to_string();
        if line.contains('\n') || !line.contains('[') {
            problems.push(format!("log line {line:?}"));
        }
        if !problems.is_empty() {
            failures.push(format!("{name}: {}", problems.join("; ")));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn principal_allowlist_table() {
    let table = data("principals.json");
    for principal in strings(table.get("accept")) {
        assert!(is_safe_principal(&principal), "should accept {principal:?}");
    }
    for principal in strings(table.get("reject")) {
        assert!(
            !is_safe_principal(&principal),
            "should reject {principal:?}"
        );
    }
}
