//! The OpenPubkey wire format as opkssh uses it, byte-compatible with the Go implementation.
//!
//! This crate is the protocol core: it parses, builds and verifies JWS, JWK sets, PK tokens,
//! CICs, GQ256 proofs and opkssh SSH certificates. It takes everything as arguments (time,
//! key sets, randomness) and does no file, network or environment I/O; `verifier` and
//! `opkssh-cli` decide those. The contract is `docs/wire-format.md` of the shared folder.
//!
//! # Differences from Go
//! Where Go is lenient in a way that can hurt, this crate is stricter, and says so at the
//! line that decides:
//! - a PK token must have exactly one OP and one CIC signature (Go keeps the last OP
//!   signature and crashes on a missing CIC);
//! - a refreshed ID token is verified (signature, issuer, audience, subject), not only read;
//! - a payload that spells a standard claim in another letter case (`ISS`) is refused;
//! - a token whose `iat` is more than 5 minutes in the future is refused (Go has no such
//!   check; a future `iat` would stretch a max-age policy);
//! - inputs over 64 KiB are refused before parsing (certificate lines over 256 KiB);
//! - a certificate must re-encode to exactly the bytes received, be self-signed and carry a
//!   subject key that is a valid P-256 point or Ed25519 key; `%k` must be canonical base64.

#![forbid(unsafe_code)]
#![deny(unused_must_use)]
#![warn(missing_docs)]

pub mod authorized_keys;
pub mod b64;
pub mod cic;
pub mod claims;
pub mod device;
pub mod escape;
pub mod external;
pub mod fuzzing;
pub mod gojson;
pub mod gq;
pub mod jwk;
pub mod jws;
pub mod oidc;
pub mod pktoken;
mod rsa_jwk;
pub mod sshcert;
pub mod verify;
