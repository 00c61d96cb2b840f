//! Identity files as OpenSSH reads them: modes, contents, and `ssh-keygen` agreeing with us.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)] // test code: a panic is a failure

use opk_client::files::{write_atomic, write_identity};
use opk_core::sshcert::{
    CertComment, CertificateRequest, OpksshCertificate, Principals, UserKeyType, build_certificate,
    generate_user_key, private_key_from_openssh,
};
use opk_os::private_file::Privacy;
use std::os::unix::fs::PermissionsExt as _;
use std::process::Command;

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

fn ssh_keygen() -> Command {
    assert!(
        std::path::Path::new("/usr/bin/ssh-keygen").exists(),
        "ssh-keygen is missing: install openssh-client"
    );
    Command::new("/usr/bin/ssh-keygen")
}

#[test]
fn identity_files_have_go_modes_and_openssh_reads_them() {
    let dir = tempfile::tempdir().unwrap();
    for kind in [UserKeyType::Ecdsa, UserKeyType::Ed25519] {
        let key = generate_user_key(kind).unwrap();
        let certificate = build_certificate(CertificateRequest {
            key: &key,
            key_id: "alice@example.com",
            principals: Principals::Default,
            pk_token: "not-verified-here",
            access_token: None,
        })
        .unwrap();
        let key_path = dir.path().join(kind.flag_name());
        // An existing looser file must not keep its mode (dependencies.md pitfall 4).
        std::fs::write(&key_path, "old").unwrap();
        std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let written = write_identity(&key_path, &key, &certificate, CertComment::Default).unwrap();
        assert_eq!(written.key_privacy, Privacy::Private);
        let certificate_path = written.certificate;

        assert_eq!(mode(&key_path), 0o600);
        assert_eq!(mode(&certificate_path), 0o644);
        let pem = std::fs::read_to_string(&key_path).unwrap();
        assert!(
            pem.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----\n")
                && pem.ends_with("-----END OPENSSH PRIVATE KEY-----\n")
        );
        assert_eq!(
            private_key_from_openssh(&pem).unwrap().public_key(),
            key.public_key()
        );
        let line = std::fs::read_to_string(&certificate_path).unwrap();
        assert!(line.ends_with(" openpubkey"), "{line}");
        assert_eq!(
            OpksshCertificate::from_line(&line).unwrap().as_bytes(),
            certificate.as_bytes()
        );

        // OpenSSH derives the same public key from our private key file...
        let output = ssh_keygen()
            .arg("-y")
            .arg("-f")
            .arg(&key_path)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let derived = String::from_utf8(output.stdout).unwrap();
        assert_eq!(
            derived.split_whitespace().nth(1),
            Some(certificate.signature_key_line().split(' ').nth(1).unwrap())
        );
        // ...and reads the certificate as valid forever.
        let output = ssh_keygen()
            .arg("-L")
            .arg("-f")
            .arg(&certificate_path)
            .output()
            .unwrap();
        let listing = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success()
                && listing.contains("Valid: forever")
                && listing.contains("opkssh-wildcard"),
            "{listing}"
        );
        // No temporary files are left behind.
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(Result::ok)
            .filter(|entry| entry.file_name().to_string_lossy().contains(".tmp"))
            .collect();
        assert!(leftovers.is_empty());
    }
}

#[test]
fn atomic_write_replaces_content_and_mode() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    write_atomic(&path, b"one", 0o600).unwrap();
    write_atomic(&path, b"two", 0o640).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"two");
    assert_eq!(mode(&path), 0o640);
    assert!(write_atomic(&dir.path().join("missing/f"), b"x", 0o600).is_err());
}

fn certificate_for(key: &opk_core::jws::SigningKey) -> OpksshCertificate {
    build_certificate(CertificateRequest {
        key,
        key_id: "alice@example.com",
        principals: Principals::Default,
        pk_token: "not-verified-here",
        access_token: None,
    })
    .unwrap()
}

/// A login killed between its two renames leaves its new key beside its old certificate; the
/// next login takes the name back (the key file carries opkssh's comment). A key the user made
/// with `ssh-keygen` beside a stale opkssh certificate is never taken.
#[test]
fn a_torn_opkssh_pair_is_reused_and_a_users_own_key_is_not() {
    use opk_client::placement::choose_default;
    let dir = tempfile::tempdir().unwrap();
    let ssh = dir.path();
    let id_ecdsa = ssh.join("id_ecdsa");
    let old = generate_user_key(UserKeyType::Ecdsa).unwrap();
    write_identity(
        &id_ecdsa,
        &old,
        &certificate_for(&old),
        CertComment::Default,
    )
    .unwrap();
    assert_eq!(choose_default(ssh, UserKeyType::Ecdsa).unwrap(), id_ecdsa);

    // The torn pair: a new opkssh key file, the old certificate.
    let new = generate_user_key(UserKeyType::Ecdsa).unwrap();
    let pem = opk_core::sshcert::private_key_to_openssh(&new).unwrap();
    write_atomic(&id_ecdsa, pem.as_bytes(), 0o600).unwrap();
    assert_eq!(choose_default(ssh, UserKeyType::Ecdsa).unwrap(), id_ecdsa);

    // The user's own key in the same name: skipped, so the next default name is chosen.
    std::fs::remove_file(&id_ecdsa).unwrap();
    let keygen = ssh_keygen()
        .args(["-q", "-t", "ecdsa", "-N", "", "-f"])
        .arg(&id_ecdsa)
        .output()
        .unwrap();
    assert!(keygen.status.success(), "{keygen:?}");
    assert_eq!(
        choose_default(ssh, UserKeyType::Ecdsa).unwrap(),
        ssh.join("id_ecdsa_sk")
    );
}
