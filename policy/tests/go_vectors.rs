#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
//! The policy on real PK tokens: every Go-made accept vector is verified with opk-core
//! against a provider from a providers file, and the `VerifiedPkToken` goes through
//! `PolicyInput::new` and the enforcer on a temporary config tree.

use opk_core::jwk::Jwks;
use opk_core::pktoken::PkToken;
use policy::{Check, ConfigDir, Enforcer, HomeAccess, PolicyInput, Providers};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

fn vectors() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors/go-opkssh/accept")
}

fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file))
        .unwrap_or_else(|error| panic!("{}: {error}", dir.join(file).display()))
        .trim_end()
        .to_owned()
}

fn write(path: &Path, content: &str) {
    std::fs::write(path, content).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o640)).unwrap();
}

#[test]
fn go_tokens_through_providers_and_policy() {
    let mut seen = 0;
    let mut names: Vec<_> = std::fs::read_dir(vectors())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    names.sort();
    for dir in names {
        let meta: serde_json::Value = serde_json::from_str(&read(&dir, "meta.json")).unwrap();
        let issuer = read(&dir, "issuer.txt");
        let client_id = read(&dir, "client_id.txt");
        let expiration = meta["expiration_policy"].as_str().unwrap_or("oidc");
        let email = meta["email"].as_str().unwrap_or_default();

        let tree = tempfile::tempdir().unwrap();
        let root = tree.path();
        let providers_text = format!("{issuer} {client_id} {expiration}\n");
        write(&root.join("providers"), &providers_text);
        let providers =
            Providers::parse(providers_text.as_bytes(), &root.join("providers")).unwrap();

        let token = PkToken::from_compact(&read(&dir, "pktoken.compact")).unwrap();
        let provider = providers
            .lookup(token.claims().issuer())
            .unwrap_or_else(|| panic!("{}: no provider", dir.display()));
        let jwks = Jwks::from_json(read(&dir, "jwks.json").as_bytes()).unwrap();
        let verified = token
            .verify_at(SystemTime::now(), provider, &jwks)
            .unwrap_or_else(|error| panic!("{}: {error}", dir.display()));

        // A sub row always exists; an email row where the token has an email.
        let sub = verified.claims().subject().to_owned();
        let mut auth_id = format!(
            "# vector {}\nbob {} {issuer}\n",
            dir.display(),
            policy::table::quote(&sub)
        );
        if !email.is_empty() {
            auth_id.push_str(&format!("alice {email} {issuer}\n"));
        }
        write(&root.join("auth_id"), &auth_id);
        let enforcer = Enforcer::new(ConfigDir::new(root))
            .with_home_access(HomeAccess::Skip)
            .without_plugins();

        let bob = enforcer.evaluate(&PolicyInput::new(&verified, "bob"));
        assert_eq!(
            bob.decision.trace().check.to_string(),
            "auth_id sub match",
            "{}: {bob:?}",
            dir.display()
        );
        if !email.is_empty() {
            let alice = enforcer.evaluate(&PolicyInput::new(&verified, "alice"));
            assert!(alice.decision.is_allow(), "{}: {alice:?}", dir.display());
            assert!(
                alice
                    .decision
                    .to_string()
                    .contains(&format!("{}:3", root.join("auth_id").display())),
                "{}",
                alice.decision
            );
        }
        let carol = enforcer.evaluate(&PolicyInput::new(&verified, "carol"));
        assert_eq!(carol.decision.trace().check, Check::NoMatch);
        assert!(carol.decision.to_string().starts_with(&format!(
            "deny: no policy to allow {email} with (issuer={issuer}) to assume carol"
        )));

        // The plugin environment from a real token carries the token itself.
        let env = policy::plugin::environment(&PolicyInput::new(&verified, "bob")).unwrap();
        assert_eq!(env["OPKSSH_PLUGIN_PKT"], verified.token().to_compact());
        assert_eq!(env["OPKSSH_PLUGIN_IDT"], verified.token().op().to_compact());
        assert!(env["OPKSSH_PLUGIN_UPK"].len() > 20);
        assert_eq!(env["OPKSSH_PLUGIN_ISS"], issuer);
        seen += 1;
    }
    assert!(seen >= 10, "only {seen} vectors");
}
