#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
//! Property tests: the policy parsers and the matcher take any input without panicking, and
//! quoting round-trips through the table parser.

use policy::rule::{ClaimSet, Identity, match_identity};
use policy::{AuthIdFile, PolicyInput, Providers, ServerConfig, evaluate_rows};
use proptest::prelude::*;
use std::path::Path;

fn table_text() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            Just("'".to_owned()),
            Just("\"".to_owned()),
            Just("\\".to_owned()),
            Just("#".to_owned()),
            Just(" ".to_owned()),
            Just("\n".to_owned()),
            Just("\r\n".to_owned()),
            Just("oidc:".to_owned()),
            Just("oidc-match-end:email:".to_owned()),
            Just("repo:".to_owned()),
            Just("[".to_owned()),
            Just("*".to_owned()),
            Just("https://a".to_owned()),
            Just("24h".to_owned()),
            "[a-z@.:/]{0,8}",
            any::<String>(),
        ],
        0..24,
    )
    .prop_map(|parts| parts.concat())
}

proptest! {
    #[test]
    fn table_parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256), text in table_text()) {
        let path = Path::new("/etc/opk/x");
        let _ = policy::table::parse(&bytes);
        let _ = Providers::parse(&bytes, path);
        let _ = Providers::audit(text.as_bytes(), path);
        let _ = AuthIdFile::parse(text.as_bytes(), path);
        let _ = policy::audit::audit_policy(text.as_bytes(), &["https://a".to_owned()], Some("root"));
        let _ = policy::edit::plan_add(text.as_bytes(), "root", "a@b", "https://a");
        let _ = ServerConfig::parse(&text, path);
        let _ = policy::plugin::PluginConfig::parse(&text, path);
        policy::fuzzing::providers_file(&bytes);
        policy::fuzzing::auth_id_file(&bytes);
        policy::fuzzing::auth_id_file(text.as_bytes());
    }

    #[test]
    fn quoting_round_trips(words in proptest::collection::vec("[^\n\r#]{0,12}", 1..4)) {
        let refs: Vec<&str> = words.iter().map(String::as_str).collect();
        let line = policy::table::join(&refs);
        let split = policy::table::split(&line).unwrap();
        prop_assert_eq!(split, words);
    }

    #[test]
    fn matcher_never_panics(attribute in table_text(), email in table_text(), sub in table_text(), group in table_text()) {
        let claims = serde_json::json!({
            "iss": "https://a", "sub": sub, "email": email, "groups": [group, 1, null, {"k": [true]}],
            "n": 1.5e300, "email_verified": "maybe"
        });
        let object = claims.as_object().unwrap().clone();
        let _ = Identity::parse(&attribute);
        let _ = match_identity(&attribute, &ClaimSet::from_object(&object));
        let _ = policy::rule::lint_identity(&attribute);
        let _ = policy::rule::is_safe_principal(&attribute);
        let file = AuthIdFile::parse(format!("root {} https://a\n", policy::table::quote(&attribute)).as_bytes(), Path::new("/a"));
        let input = PolicyInput::danger_from_claims(object, "root").with_userinfo(email.clone());
        let evaluation = evaluate_rows(&input, &policy::DenyLists::default(), Path::new("/c"), file.rows(), &[]);
        prop_assert!(!evaluation.decision.to_string().contains('\n'));
        let _ = policy::plugin::environment(&input);
    }
}
