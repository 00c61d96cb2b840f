//! What a policy plugin is handed (upstream #601): every list in an `OPKSSH_PLUGIN_*` variable
//! is JSON written by an encoder, so a claim can neither add list items nor lose its quotes,
//! backslashes, newlines or control characters on the way. Through the real binary, with a
//! plugin that parses the variables as JSON (node, as the test OP needs it anyway).

use crate::binary::{Host, gate};
use serde_json::{Value, json};
use std::path::PathBuf;

fn node() -> PathBuf {
    let output = std::process::Command::new("sh")
        .args(["-c", "command -v node"])
        .output()
        .unwrap();
    let path = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    assert!(!path.is_empty(), "node is needed for the plugin scripts");
    PathBuf::from(path)
}

/// A plugin that allows exactly the tokens with the group `admins`.
fn admins_only() -> String {
    format!(
        "#!{}\nconst groups = JSON.parse(process.env.OPKSSH_PLUGIN_GROUPS || '[]');\n\
         process.stdout.write(groups.includes('admins') ? 'allow' : 'deny');\n",
        node().display()
    )
}

/// No `auth_id` row lets anyone in: only the plugin can.
fn host_with_groups(groups: Value) -> Host {
    let host = Host::with_claims(|claims| claims["groups"] = groups);
    host.write_etc("auth_id", "");
    host.install_plugin("admins-only", &admins_only());
    host
}

#[test]
fn plugin_input_control_admins_group_is_allowed_by_the_plugin() {
    if !gate() {
        return;
    }
    let (allowed, log) = host_with_groups(json!(["dev", "admins"])).verify();
    assert!(allowed, "{log}");
    assert!(log.contains("Access granted by policy plugin"), "{log}");
}

#[test]
fn plugin_input_group_named_x_quote_comma_admins_is_one_group() {
    if !gate() {
        return;
    }
    let host = host_with_groups(json!(["x\",\"admins"]));
    host.denied_with("allowed: (false)");
    host.denied_with("policyOutput: (deny)");
}

#[test]
fn plugin_input_group_with_backslash_quote_cannot_close_the_list() {
    if !gate() {
        return;
    }
    // `x\` then `","admins`: a joiner that escaped quotes but not backslashes would still split.
    let host = host_with_groups(json!(["x\\", "\",\"admins"]));
    host.denied_with("policyOutput: (deny)");
}

/// Quotes, backslashes, newlines and control characters in every string claim a plugin sees
/// arrive exactly as the OP signed them.
#[test]
fn plugin_input_every_claim_arrives_intact() {
    if !gate() {
        return;
    }
    let odd = "q\"b\\n\nr\rt\tc\u{1}e\u{1b}[2Kd\u{7f}u\u{2028}";
    let host = Host::with_claims(|claims| {
        claims["sub"] = json!(format!("sub-{odd}"));
        claims["email"] = json!(format!("{odd}@example.com"));
        claims["jti"] = json!(format!("jti-{odd}"));
        claims["groups"] = json!([odd, "plain", "\",\"admins"]);
        claims["aud"] = json!(["attack-client", odd]);
    });
    host.write_etc("auth_id", "");
    let dump = host.dir.path().join("plugin-env.json");
    host.install_plugin(
        "dump",
        &format!(
            "#!{}\nrequire('fs').writeFileSync({:?}, JSON.stringify(process.env));\n\
             process.stdout.write('deny');\n",
            node().display(),
            dump.display().to_string()
        ),
    );
    let (allowed, log) = host.verify();
    assert!(!allowed, "{log}");
    let env: Value = serde_json::from_str(&std::fs::read_to_string(&dump).unwrap()).unwrap();
    let var = |name: &str| {
        env[format!("OPKSSH_PLUGIN_{name}")]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(var("SUB"), format!("sub-{odd}"));
    assert_eq!(var("EMAIL"), format!("{odd}@example.com"));
    assert_eq!(var("JTI"), format!("jti-{odd}"));
    let groups: Value = serde_json::from_str(&var("GROUPS")).unwrap();
    assert_eq!(groups, json!([odd, "plain", "\",\"admins"]));
    let audience: Value = serde_json::from_str(&var("AUD")).unwrap();
    assert_eq!(audience, json!(["attack-client", odd]));
}
