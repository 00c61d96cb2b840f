//! `opk_client::check`: each way a key and certificate can be unusable, and the choice among
//! several default key files. Certificates are made here with a throwaway "OP" key; the
//! check reads them, it does not verify them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use opk_client::check::{Problem, check, check_one, default_candidates};
use opk_client::files::write_atomic;
use opk_core::b64;
use opk_core::cic::CicHeader;
use opk_core::jws::{Jws, SigningKey};
use opk_core::pktoken::PkToken;
use opk_core::sshcert::{
    CertComment, CertificateRequest, Principals, UserKeyType, build_certificate, generate_user_key,
    private_key_to_openssh,
};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const NOW: i64 = 1_800_000_000;

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(NOW.unsigned_abs())
}

fn pk_token(user_key: &SigningKey, exp: i64) -> PkToken {
    let op_key = generate_user_key(UserKeyType::Ecdsa).unwrap();
    let cic = CicHeader::generate(user_key, &[]).unwrap();
    let payload = serde_json::json!({
        "iss": "https://op.example", "sub": "alice", "aud": "client", "iat": exp - 3600,
        "exp": exp, "nonce": cic.commitment(), "email": "alice@example.com",
    });
    let op = Jws::sign(
        r#"{"alg":"ES256","kid":"k","typ":"JWT"}"#,
        &b64::encode_url(payload.to_string()),
        &op_key,
    )
    .unwrap();
    let cic_jws = cic.sign(op.payload_segment(), user_key).unwrap();
    PkToken::from_signatures(op, cic_jws).unwrap()
}

/// Writes `<key>` and `<key>-cert.pub` as `opkssh login -i` does, the token expiring at `exp`.
fn write_pair(key_path: &Path, exp: i64) {
    let key = generate_user_key(UserKeyType::Ecdsa).unwrap();
    let token = pk_token(&key, exp).to_compact();
    let certificate = build_certificate(CertificateRequest {
        key: &key,
        key_id: "alice@example.com",
        principals: Principals::Default,
        pk_token: &token,
        access_token: None,
    })
    .unwrap();
    write_atomic(
        key_path,
        private_key_to_openssh(&key).unwrap().as_bytes(),
        0o600,
    )
    .unwrap();
    std::fs::write(cert_of(key_path), certificate.to_line(CertComment::Default)).unwrap();
}

fn cert_of(key: &Path) -> PathBuf {
    PathBuf::from(format!("{}-cert.pub", key.display()))
}

#[test]
fn a_valid_certificate_names_its_identity_and_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("id");
    write_pair(&key, NOW + 3600);
    let usable = check_one(&key, Duration::from_secs(60), now()).unwrap();
    assert_eq!(usable.key, key);
    assert_eq!(usable.certificate, cert_of(&key));
    assert_eq!(usable.identity, "alice@example.com");
    assert_eq!(usable.issuer, "https://op.example");
    assert_eq!(usable.expires_at, NOW + 3600);
    assert_eq!(usable.privacy_unchecked, None);
}

/// ssh refuses a key of the user's that the group or others may read, so check does too, and
/// `opkssh check || opkssh login` writes a private one.
#[cfg(unix)]
#[test]
fn a_key_others_can_read_is_refused_as_ssh_refuses_it() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("id");
    write_pair(&key, NOW + 3600);
    opk_os::file::set_mode(&key, 0o640).unwrap();
    let Err(Problem::KeyNotPrivate { key: reported, why }) = check_one(&key, Duration::ZERO, now())
    else {
        panic!("{:?}", check_one(&key, Duration::ZERO, now()));
    };
    assert_eq!(reported, key);
    assert!(why.starts_with("its mode is 0640"), "{why}");
    // Among several keys, the one that got furthest is reported: privacy is checked before
    // the expiry, so an expired private key beats it, and it beats a foreign certificate.
    let other = dir.path().join("other");
    write_pair(&other, NOW - 10);
    assert_eq!(
        check(&[key.clone(), other.clone()], Duration::ZERO, now())
            .unwrap_err()
            .code(),
        "expired"
    );
    std::fs::write(cert_of(&other), "not a certificate").unwrap();
    assert_eq!(
        check(&[other, key.clone()], Duration::ZERO, now())
            .unwrap_err()
            .code(),
        "key_not_private"
    );
    opk_os::file::set_mode(&key, 0o600).unwrap();
    assert!(check_one(&key, Duration::ZERO, now()).is_ok());
}

#[test]
fn expired_and_expiring_certificates_say_when() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("id");
    write_pair(&key, NOW + 3600);
    assert_eq!(
        check_one(&key, Duration::from_secs(3600), now()),
        Err(Problem::ExpiresWithin {
            certificate: cert_of(&key),
            at: NOW + 3600,
            within: Duration::from_secs(3600),
        })
    );
    assert!(check_one(&key, Duration::from_secs(3599), now()).is_ok());
    write_pair(&key, NOW - 1);
    assert_eq!(
        check_one(&key, Duration::ZERO, now()),
        Err(Problem::Expired {
            certificate: cert_of(&key),
            at: NOW - 1,
        })
    );
}

#[test]
fn missing_files_and_foreign_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("id");
    assert_eq!(
        check_one(&key, Duration::ZERO, now()),
        Err(Problem::MissingKey {
            searched: vec![key.clone()]
        })
    );
    write_pair(&key, NOW + 3600);
    std::fs::remove_file(cert_of(&key)).unwrap();
    assert_eq!(
        check_one(&key, Duration::ZERO, now()).unwrap_err().code(),
        "missing_certificate"
    );
    // A plain public key where the certificate should be.
    std::fs::write(
        cert_of(&key),
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl me\n",
    )
    .unwrap();
    assert_eq!(
        check_one(&key, Duration::ZERO, now()).unwrap_err().code(),
        "not_opkssh"
    );
    // Someone else's certificate beside this key.
    let other = dir.path().join("other");
    write_pair(&other, NOW + 3600);
    std::fs::copy(cert_of(&other), cert_of(&key)).unwrap();
    match check_one(&key, Duration::ZERO, now()) {
        Err(Problem::NotOpkssh { why, .. }) => {
            assert!(
                why.starts_with("it is not the certificate of the key"),
                "{why}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn among_the_default_keys_the_longest_valid_one_wins_else_the_closest_problem() {
    let home = tempfile::tempdir().unwrap();
    let ssh = home.path().join(".ssh");
    std::fs::create_dir(&ssh).unwrap();
    let candidates = default_candidates(home.path());
    assert_eq!(candidates[0], ssh.join("id_ecdsa"));
    assert_eq!(candidates.len(), 4);
    assert_eq!(
        check(&candidates, Duration::ZERO, now()),
        Err(Problem::MissingKey {
            searched: candidates.clone()
        })
    );
    // The user's own key, no certificate: reported as such when nothing better is there.
    std::fs::write(ssh.join("id_ecdsa"), "not a key").unwrap();
    assert_eq!(
        check(&candidates, Duration::ZERO, now())
            .unwrap_err()
            .code(),
        "missing_certificate"
    );
    write_pair(&ssh.join("id_ed25519"), NOW - 10);
    assert_eq!(
        check(&candidates, Duration::ZERO, now())
            .unwrap_err()
            .code(),
        "expired"
    );
    write_pair(&ssh.join("id_ecdsa_sk"), NOW + 100);
    write_pair(&ssh.join("id_ed25519_sk"), NOW + 900);
    let usable = check(&candidates, Duration::from_secs(60), now()).unwrap();
    assert_eq!(usable.key, ssh.join("id_ed25519_sk"));
}
