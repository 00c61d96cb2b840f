//! The members of an RSA JWK and its RFC 7638 thumbprint, shared by [`crate::jwk`] and
//! [`crate::gq`] (whose header names the OP's key by this thumbprint) without either importing
//! the other.

use crate::b64;
use rsa::traits::PublicKeyParts as _;
use sha2::{Digest as _, Sha256};

/// `(n, e)`, base64url of their minimal big-endian bytes.
pub(crate) fn members(key: &rsa::PublicKey) -> (String, String) {
    let minimal = |value: &rsa::BoxedUint| {
        let bytes = value.to_be_bytes();
        let first = bytes
            .iter()
            .position(|byte| *byte != 0)
            .unwrap_or(bytes.len());
        b64::encode_url(bytes.get(first..).unwrap_or_default())
    };
    (minimal(key.n().as_ref()), minimal(key.e()))
}

/// The RFC 7638 thumbprint input: the required members in lexicographic order.
pub(crate) fn thumbprint_input(key: &rsa::PublicKey) -> String {
    let (n, e) = members(key);
    format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#)
}

/// The RFC 7638 SHA-256 thumbprint, base64url.
pub(crate) fn thumbprint(key: &rsa::PublicKey) -> String {
    b64::encode_url(Sha256::digest(thumbprint_input(key).as_bytes()))
}
