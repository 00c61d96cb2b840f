//! Footgun policy rows (#589/#596, PR #593) and policy files that anyone but root could have
//! written (symlinked, world- or group-writable, another owner).

use crate::*;
use policy::perms::PermError;
use policy::{AuthIdFile, ConfigDir, DenyLists, FileErrorKind, PolicyInput, evaluate_rows};
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

fn claims(email: &str) -> serde_json::Map<String, Value> {
    serde_json::json!({
        "iss": ISSUER, "sub": "user-1", "aud": CLIENT_ID, "email": email,
        "email_verified": true, "groups": ["ops"]
    })
    .as_object()
    .unwrap()
    .clone()
}

fn allowed(auth_id: &str, email: &str, principal: &str, deny: &DenyLists) -> bool {
    let path = Path::new("/etc/opk/auth_id");
    let rows = AuthIdFile::parse(auth_id.as_bytes(), path)
        .for_principal(principal)
        .into_rows();
    let input = PolicyInput::danger_from_claims(claims(email), principal);
    evaluate_rows(
        &input,
        deny,
        Path::new("/etc/opk/config.yml"),
        &rows,
        &[path.to_path_buf()],
    )
    .decision
    .is_allow()
}

fn denied(auth_id: &str, email: &str) {
    assert!(
        !allowed(auth_id, email, "root", &DenyLists::default()),
        "{auth_id:?} let {email} in"
    );
}

/// Control: the honest row lets the honest user in, so the denials below are the rules.
#[test]
fn control_an_exact_row_allows() {
    assert!(allowed(
        &format!("root alice@example.com {ISSUER}\n"),
        "alice@example.com",
        "root",
        &DenyLists::default()
    ));
}

/// #589: an empty suffix matched everyone.
#[test]
fn row_email_suffix_empty() {
    denied(
        &format!("root oidc-match-end:email: {ISSUER}\n"),
        "mallory@evil.example",
    );
}

/// #596: a suffix without `@` matched other domains ending the same way.
#[test]
fn row_email_suffix_without_at() {
    denied(
        &format!("root oidc-match-end:email:example.com {ISSUER}\n"),
        "mallory@evilexample.com",
    );
}

#[test]
fn row_bare_oidc_claim_prefix() {
    denied(
        &format!("root oidc: {ISSUER}\nroot oidc:groups {ISSUER}\nroot oidc:groups: {ISSUER}\n"),
        "mallory@evil.example",
    );
}

/// PR #593: malformed `oidc:` rows crashed Go's verify; here they match nobody.
#[test]
fn row_malformed_claims() {
    denied(
        &format!(
            "root oidc:::: {ISSUER}\nroot \"oidc:\"groups\":\" {ISSUER}\nroot oidc:\"\" {ISSUER}\n"
        ),
        "mallory@evil.example",
    );
}

#[test]
fn row_email_is_not_a_prefix_match() {
    denied(
        &format!("root alice@example.com {ISSUER}\n"),
        "alice@example.com.evil.org",
    );
}

#[test]
fn row_for_another_issuer_spelling() {
    denied(
        "root alice@example.com https://op.example/\nroot alice@example.com https://OP.example\n",
        "alice@example.com",
    );
}

#[test]
fn row_for_another_principal() {
    assert!(!allowed(
        &format!("alice alice@example.com {ISSUER}\n"),
        "alice@example.com",
        "root",
        &DenyLists::default()
    ));
}

/// An email that is itself a rule never matches (an OP that lets users pick their email).
#[test]
fn email_claim_spelled_like_a_rule() {
    denied(
        &format!("root oidc-match-end:email:@example.com {ISSUER}\n"),
        "oidc-match-end:email:@example.com",
    );
}

/// The deny lists win over a matching row, whatever the letter case.
#[test]
fn deny_listed_email_with_a_matching_row() {
    let deny = DenyLists {
        emails: vec!["ALICE@example.com".into()],
        users: Vec::new(),
    };
    assert!(!allowed(
        &format!("root alice@example.com {ISSUER}\n"),
        "alice@example.com",
        "root",
        &deny
    ));
}

fn config_dir(mode: u32, owner: Option<u32>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in [
        ("auth_id", format!("root alice@example.com {ISSUER}\n")),
        ("providers", format!("{ISSUER} {CLIENT_ID} 24h\n")),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        if let Some(uid) = owner {
            std::os::unix::fs::chown(&path, Some(uid), None).unwrap();
        }
    }
    dir
}

fn perm_error(result: Result<impl std::fmt::Debug, policy::FileError>) -> PermError {
    match result.map_err(|error| error.kind) {
        Err(FileErrorKind::Permissions(error)) => error,
        other => panic!("ATTACK ACCEPTED: {other:?}"),
    }
}

#[test]
fn auth_id_world_writable() {
    let dir = config_dir(0o666, None);
    assert!(matches!(
        perm_error(ConfigDir::new(dir.path()).load_system_policy()),
        PermError::Mode { .. }
    ));
}

#[test]
fn providers_group_writable() {
    let dir = config_dir(0o660, None);
    assert!(matches!(
        perm_error(ConfigDir::new(dir.path()).load_providers()),
        PermError::Mode { .. }
    ));
}

#[test]
fn auth_id_owned_by_another_user() {
    let dir = config_dir(0o640, Some(65534));
    assert!(matches!(
        perm_error(ConfigDir::new(dir.path()).load_system_policy()),
        PermError::Owner { .. }
    ));
}

/// `/etc/opk/auth_id` a symlink to a file a user controls.
#[test]
fn auth_id_symlinked_to_a_user_file() {
    let dir = config_dir(0o640, None);
    let user_file = dir.path().join("user-owned");
    std::fs::write(&user_file, format!("root mallory@evil.example {ISSUER}\n")).unwrap();
    std::fs::set_permissions(&user_file, std::fs::Permissions::from_mode(0o640)).unwrap();
    std::os::unix::fs::chown(&user_file, Some(65534), None).unwrap();
    let auth_id = dir.path().join("auth_id");
    std::fs::remove_file(&auth_id).unwrap();
    std::os::unix::fs::symlink(&user_file, &auth_id).unwrap();
    assert!(matches!(
        perm_error(ConfigDir::new(dir.path()).load_system_policy()),
        PermError::Owner { .. } | PermError::Symlink
    ));
}

/// `/etc/opk/providers` replaced by a FIFO or a directory: refused, no hang.
#[test]
fn providers_not_a_regular_file() {
    let dir = config_dir(0o640, None);
    let providers = dir.path().join("providers");
    std::fs::remove_file(&providers).unwrap();
    std::fs::create_dir(&providers).unwrap();
    std::fs::set_permissions(&providers, std::fs::Permissions::from_mode(0o640)).unwrap();
    assert!(ConfigDir::new(dir.path()).load_providers().is_err());
}
