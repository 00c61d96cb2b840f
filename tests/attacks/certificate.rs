//! The SSH certificate around the token: key = upk, self-signature, type confusion, encoding
//! tricks. Through `verifier::pipeline::verify` with a prepared cache (no network).

use crate::cache::{CacheDir, pipeline};
use crate::*;
use opk_core::sshcert::CertError;
use verifier::pipeline::Denial;

/// Mallory puts Alice's complete PK token into a certificate for Mallory's own key.
#[test]
fn pk_token_in_a_certificate_for_another_key() {
    let alice = Login::new().sound();
    let mallory = es_key();
    let cert = certificate_for(&mallory, &alice.compact(), Principals::Default);
    let cache = CacheDir::for_login(&alice);
    let denial = pipeline(&cache, &cert.to_line(opk_core::sshcert::CertComment::None)).unwrap_err();
    assert_eq!(denial, Denial::KeyNotUpk);
}

/// Same, across key types: an Ed25519 certificate carrying an ECDSA user's token.
#[test]
fn pk_token_in_a_certificate_of_another_key_type() {
    let alice = Login::new().sound();
    let cert = certificate_for(&ed_key(), &alice.compact(), Principals::Default);
    let cache = CacheDir::for_login(&alice);
    let denial = pipeline(&cache, &cert.to_line(opk_core::sshcert::CertComment::None)).unwrap_err();
    assert_eq!(denial, Denial::KeyNotUpk);
}

fn blob_line(cert: &OpksshCertificate, edit: impl FnOnce(&mut Vec<u8>)) -> String {
    let mut blob = cert.as_bytes().to_vec();
    edit(&mut blob);
    format!("{} {}", cert.cert_type_name(), b64::encode_std(blob))
}

#[test]
fn certificate_signature_bit_flip() {
    let login = Login::new().sound();
    let cert = login.certificate(Principals::Default);
    let line = blob_line(&cert, |blob| {
        let last = blob.len() - 3;
        blob[last] ^= 1;
    });
    let cache = CacheDir::for_login(&login);
    let denial = pipeline(&cache, &line).unwrap_err();
    assert!(
        matches!(
            denial,
            Denial::Certificate(
                CertError::BadSignature | CertError::Decode(_) | CertError::NonCanonical
            )
        ),
        "{denial:?}"
    );
}

/// The principals edited after signing (e.g. `opkssh-wildcard` → `root`).
#[test]
fn certificate_principal_edited_after_signing() {
    let login = Login::new().sound();
    let cert = login.certificate(Principals::List(vec!["alice".into()]));
    let line = blob_line(&cert, |blob| {
        let at = blob.windows(5).position(|w| w == b"alice").unwrap();
        blob[at..at + 5].copy_from_slice(b"admin");
    });
    let denial = pipeline(&CacheDir::for_login(&login), &line).unwrap_err();
    assert_eq!(denial, Denial::Certificate(CertError::BadSignature));
}

#[test]
fn certificate_with_trailing_bytes() {
    let login = Login::new().sound();
    let line = blob_line(&login.certificate(Principals::Default), |blob| {
        blob.extend_from_slice(&[0, 0, 0, 0])
    });
    let denial = pipeline(&CacheDir::for_login(&login), &line).unwrap_err();
    assert!(matches!(denial, Denial::Certificate(_)), "{denial:?}");
}

/// `%t` says Ed25519 while the blob is an ECDSA certificate.
#[test]
fn certificate_type_word_differs_from_the_blob() {
    let login = Login::new().sound();
    let cert = login.certificate(Principals::Default);
    let line = format!(
        "ssh-ed25519-cert-v01@openssh.com {}",
        b64::encode_std(cert.as_bytes())
    );
    let denial = pipeline(&CacheDir::for_login(&login), &line).unwrap_err();
    assert!(
        matches!(denial, Denial::Certificate(CertError::TypeMismatch { .. })),
        "{denial:?}"
    );
}

/// A plain key (the bare-key fallback of sshd): refused before any I/O.
#[test]
fn plain_public_key_instead_of_a_certificate() {
    let login = Login::new().sound();
    let cert = login.certificate(Principals::Default);
    let line = cert.signature_key_line();
    let denial = pipeline(&CacheDir::for_login(&login), &line).unwrap_err();
    assert!(
        matches!(denial, Denial::NotACertificateType(_)),
        "{denial:?}"
    );
}

#[test]
fn certificate_base64_not_canonical() {
    let login = Login::new().sound();
    let line = login
        .certificate(Principals::Default)
        .to_line(opk_core::sshcert::CertComment::None);
    let (kind, b64) = line.trim_end().split_once(' ').unwrap();
    for bad in [
        format!("{b64}="),
        b64.replace('+', "-"),
        format!(" {b64}"),
        b64.trim_end_matches('=').to_owned(),
    ] {
        if bad == b64 {
            continue;
        }
        let denial = pipeline(&CacheDir::for_login(&login), &format!("{kind} {bad}")).unwrap_err();
        assert!(matches!(denial, Denial::Certificate(_)), "{denial:?}");
    }
}
