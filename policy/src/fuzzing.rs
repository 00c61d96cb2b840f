//! Fuzzing shims, always compiled (as `opk_core::fuzzing`), so `cargo test` runs the same
//! bodies the fuzz targets `providers_file` and `auth_id_file` run. Each must return without
//! panicking for any input.

use std::path::Path;

/// Parses bytes as a providers file, and audits them.
pub fn providers_file(data: &[u8]) {
    let path = Path::new("/etc/opk/providers");
    let _ = crate::Providers::parse(data, path);
    let _ = crate::Providers::audit(data, path);
}

/// Parses bytes as an `auth_id` file, audits it, plans an `add` on it, and matches every row
/// against fixed claims.
pub fn auth_id_file(data: &[u8]) {
    let path = Path::new("/etc/opk/auth_id");
    let file = crate::AuthIdFile::parse(data, path);
    let _ = crate::audit::audit_policy(
        data,
        &["https://accounts.google.com".to_owned()],
        Some("root"),
    );
    let _ = crate::edit::plan_add(
        data,
        "root",
        "alice@example.com",
        "https://accounts.google.com",
    );
    let claims = serde_json::json!({
        "iss": "https://accounts.google.com", "sub": "123", "email": "alice@example.com",
        "groups": ["ops"], "email_verified": true
    });
    if let Some(object) = claims.as_object() {
        let set = crate::ClaimSet::from_object(object);
        for row in file.rows() {
            let _ = crate::match_identity(&row.identity, &set);
            let _ = crate::rule::lint_identity(&row.identity);
            let _ = crate::rule::lint_principal(&row.principal);
        }
    }
}

/// Parses bytes as `/etc/opk/config.yml` and as a `policy.d` plugin file (both YAML).
pub fn yaml_configs(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(config) = crate::ServerConfig::parse(text, Path::new("/etc/opk/config.yml")) {
        let _ = config.deny_lists();
    }
    let _ = crate::plugin::PluginConfig::parse(text, Path::new("/etc/opk/policy.d/x.yml"));
}
