//! Cache poisoning: a JWKS cache entry the verifier did not write (another owner, writable by
//! others, a symlink, an entry for another issuer) is never trusted. Runs the verifier's
//! pipeline in-process against an issuer whose network is dead (127.0.0.1:9), so a trusted
//! entry would be the only way in.

use crate::*;
use opk_core::sshcert::CertComment;
use sha2::Digest as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;
use verifier::jwks_cache::{CacheSettings, KeysError};
use verifier::pipeline::{Denial, Request, Settings, authorize, verify};

/// Nothing listens here: a fetch fails at once.
pub const DEAD_ISSUER: &str = "http://127.0.0.1:9";

pub struct CacheDir {
    pub dir: tempfile::TempDir,
    pub provider: Provider,
    pub notes: std::cell::RefCell<Vec<String>>,
}

fn jwks_json(jwks: &Jwks) -> String {
    jwks.to_json()
}

impl CacheDir {
    /// A cache holding a fresh, verifier-written entry with the login's JWKS.
    pub fn for_login(login: &Login) -> Self {
        let issuer = login.payload["iss"].as_str().unwrap().to_owned();
        let cache = Self::empty(&issuer);
        cache.write_entry(&issuer, &jwks_json(&login.jwks()));
        cache
    }

    pub fn empty(issuer: &str) -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
            provider: Provider::new(issuer, CLIENT_ID, ExpirationPolicy::Oidc),
            notes: std::cell::RefCell::new(Vec::new()),
        }
    }

    pub fn entry_path(&self, issuer: &str) -> PathBuf {
        let digest = hex::encode(sha2::Sha256::digest(issuer.as_bytes()));
        self.dir.path().join(format!("{}.json", &digest[..32]))
    }

    /// Writes an entry (as the verifier would: 0600, owned by us) at `issuer`'s path, naming
    /// `entry_issuer` inside.
    pub fn write_entry_named(&self, path_issuer: &str, entry_issuer: &str, jwks: &str) -> PathBuf {
        let path = self.entry_path(path_issuer);
        let fetched_at = u64::try_from(IAT + 60).unwrap();
        let entry = serde_json::json!({
            "issuer": entry_issuer, "fetched_at": fetched_at,
            "jwks_uri": format!("{entry_issuer}/jwks.json"), "userinfo_endpoint": null,
            "jwks": jwks, "kid_refresh_at": fetched_at
        });
        std::fs::write(&path, entry.to_string()).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        path
    }

    pub fn write_entry(&self, issuer: &str, jwks: &str) -> PathBuf {
        self.write_entry_named(issuer, issuer, jwks)
    }
}

/// `opkssh verify alice <line>` through the pipeline and the sshd line.
pub fn pipeline(cache: &CacheDir, line: &str) -> Result<String, Denial> {
    let line = line.trim_end();
    let (key_type, key_base64) = line.split_once(' ').unwrap_or((line, ""));
    let key_base64 = key_base64.split(' ').next().unwrap_or_default();
    let settings = Settings {
        providers: vec![cache.provider.clone()],
        provider_locations: Vec::new(),
        cache: CacheSettings::new(cache.dir.path().to_path_buf()),
        env: std::collections::BTreeMap::new(),
        budget: Duration::from_secs(10),
    };
    let request = Request {
        principal: "alice",
        key_base64,
        key_type,
    };
    let mut notes = Vec::new();
    let result = verify(&request, &settings, now(), &mut notes)
        .and_then(|verified| authorize(&verified).map(|line| line.to_string()));
    cache.notes.borrow_mut().extend(notes);
    result
}

/// The attacker's setup: a token signed by the attacker's "OP" key for the dead issuer, and a
/// cache entry that would vouch for that key.
fn attacker_login() -> Login {
    Login::with(es_key(), es_key(), |p| p["iss"] = DEAD_ISSUER.into())
}

fn line(login: &Login) -> String {
    login
        .certificate(Principals::Default)
        .to_line(CertComment::None)
}

fn assert_unreachable_denial(denial: &Denial) {
    assert!(
        matches!(denial, Denial::Keys(KeysError::Fetch(_))),
        "{denial:?}"
    );
}

/// Control: the same entry written correctly is used, so the refusals below are the checks.
#[test]
fn control_a_verifier_written_entry_is_trusted() {
    let login = attacker_login();
    let cache = CacheDir::for_login(&login);
    assert!(
        pipeline(&cache, &line(&login))
            .unwrap()
            .starts_with("cert-authority,principals=\"opkssh-wildcard\" ")
    );
}

#[test]
fn cache_file_written_by_another_user() {
    let login = attacker_login();
    let cache = CacheDir::for_login(&login);
    let path = cache.entry_path(DEAD_ISSUER);
    std::os::unix::fs::chown(&path, Some(65534), Some(65534)).unwrap();
    assert_unreachable_denial(&pipeline(&cache, &line(&login)).unwrap_err());
    assert!(
        cache
            .notes
            .borrow()
            .iter()
            .any(|note| note.contains("ignored")),
        "{:?}",
        cache.notes.borrow()
    );
}

#[test]
fn cache_file_world_writable() {
    let login = attacker_login();
    let cache = CacheDir::for_login(&login);
    std::fs::set_permissions(
        cache.entry_path(DEAD_ISSUER),
        std::fs::Permissions::from_mode(0o666),
    )
    .unwrap();
    assert_unreachable_denial(&pipeline(&cache, &line(&login)).unwrap_err());
}

#[test]
fn cache_file_group_writable() {
    let login = attacker_login();
    let cache = CacheDir::for_login(&login);
    std::fs::set_permissions(
        cache.entry_path(DEAD_ISSUER),
        std::fs::Permissions::from_mode(0o620),
    )
    .unwrap();
    assert_unreachable_denial(&pipeline(&cache, &line(&login)).unwrap_err());
}

/// The entry is a symlink to a well-formed, correctly owned file elsewhere.
#[test]
fn cache_file_is_a_symlink() {
    let login = attacker_login();
    let cache = CacheDir::for_login(&login);
    let path = cache.entry_path(DEAD_ISSUER);
    let elsewhere = cache.dir.path().join("planted.json");
    std::fs::rename(&path, &elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &path).unwrap();
    assert_unreachable_denial(&pipeline(&cache, &line(&login)).unwrap_err());
}

/// The cache folder itself is writable by others (anyone could have planted the entry).
#[test]
fn cache_folder_world_writable() {
    let login = attacker_login();
    let cache = CacheDir::for_login(&login);
    std::fs::set_permissions(cache.dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let denial = pipeline(&cache, &line(&login)).unwrap_err();
    std::fs::set_permissions(cache.dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    assert_unreachable_denial(&denial);
}

/// A well-formed entry naming another issuer, placed at this issuer's file name.
#[test]
fn cache_entry_for_another_issuer() {
    let login = attacker_login();
    let cache = CacheDir::empty(DEAD_ISSUER);
    cache.write_entry_named(
        DEAD_ISSUER,
        "https://other.example",
        &jwks_json(&login.jwks()),
    );
    assert_unreachable_denial(&pipeline(&cache, &line(&login)).unwrap_err());
    assert!(
        cache
            .notes
            .borrow()
            .iter()
            .any(|note| note.contains("another issuer")),
        "{:?}",
        cache.notes.borrow()
    );
}

/// The JWKS of another issuer cached under this issuer's name: the token (signed by this
/// issuer's real key) finds no key with its kid, or a key that does not verify it.
#[test]
fn cache_holding_the_jwks_of_another_issuer() {
    let login = Login::with(es_key(), es_key(), |p| p["iss"] = DEAD_ISSUER.into());
    let other = Login::new();
    let cache = CacheDir::empty(DEAD_ISSUER);
    cache.write_entry(DEAD_ISSUER, &jwks_json(&other.jwks()));
    let denial = pipeline(&cache, &line(&login)).unwrap_err();
    assert!(
        matches!(
            denial,
            Denial::Verify(VerifyError::OpSignature(_) | VerifyError::KeyLookup(_))
                | Denial::Keys(_)
        ),
        "{denial:?}"
    );
}

/// A truncated entry (a writer killed mid-write) is ignored, not half-read.
#[test]
fn cache_file_truncated() {
    let login = attacker_login();
    let cache = CacheDir::for_login(&login);
    let path = cache.entry_path(DEAD_ISSUER);
    let text = std::fs::read(&path).unwrap();
    std::fs::write(&path, &text[..text.len() / 2]).unwrap();
    assert_unreachable_denial(&pipeline(&cache, &line(&login)).unwrap_err());
}
