//! User keys held outside this process: in an ssh-agent (OpenSSH's, Secretive's Secure Enclave
//! keys, a YubiKey PIV agent, 1Password's), which signs on request and never hands out the
//! private half.
//!
//! A holder signs the way an ssh-agent answers `SSH_AGENTC_SIGN_REQUEST` with no flags: it
//! returns an SSH signature blob, `string algorithm ‖ string signature` (RFC 4253 §6.6). Both
//! signatures opkssh makes with the user key come from that one operation, because the
//! algorithms are the same and only the encodings differ (wire-format.md §7 item 16):
//!
//! | key | SSH signature (agent, certificate) | JWS signature (CIC) |
//! | --- | --- | --- |
//! | P-256 | `ecdsa-sha2-nistp256`: `mpint r ‖ mpint s` over SHA-256 (RFC 5656 §3.1.2) | ES256: fixed 32-byte `r ‖ s` over SHA-256 (RFC 7518 §3.4) |
//! | Ed25519 | `ssh-ed25519`: the 64 bytes (RFC 8709 §6) | EdDSA: the same 64 bytes (RFC 8037 §3.1) |
//!
//! So the CIC's signature is the agent's signature over the JWS signing input, re-encoded, and
//! the certificate's self-signature is the agent's signature over the certificate's signed
//! part, re-encoded canonically. The bytes around them (CIC header, upk, PK token, certificate
//! fields) are built by the same code as for an in-memory key.
//!
//! A holder's answer is outside data. It is parsed with bounds checks, and the signature is
//! verified under the key's public half before it is used: a confused or hostile agent can make
//! a login fail, but it cannot put a signature into a PK token or certificate that a verifier
//! (ours or Go's) would refuse.

use crate::jwk::PublicKey;
use crate::jws::Algorithm;
use crate::sshcert::WireReader;
use signature::Verifier as _;
use std::sync::Arc;

/// The SSH name of a P-256 signature (and key).
const ECDSA_P256: &str = "ecdsa-sha2-nistp256";
/// The SSH name of an Ed25519 signature (and key).
const ED25519: &str = "ssh-ed25519";

/// Why a signature by the user key could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    /// The holder of the key (an ssh-agent) failed or refused; its own description.
    #[error("{0}")]
    Holder(String),
    /// The holder's answer is not an SSH signature blob of the key's algorithm.
    #[error("the signature from {holder} is malformed: {reason}")]
    Malformed {
        /// Who signed ([`ExternalSigner::describe`]).
        holder: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The holder signed with another algorithm than its key's.
    #[error("{holder} signed with `{got}` instead of `{expected}`")]
    WrongAlgorithm {
        /// Who signed.
        holder: String,
        /// The algorithm name in the answer (an excerpt).
        got: String,
        /// The algorithm of the key.
        expected: &'static str,
    },
    /// The holder's signature does not verify under the key's public half: it was made by
    /// another key, or over other data.
    #[error("the signature from {0} does not verify under its public key")]
    BadSignature(String),
    /// The key type cannot be a user key held elsewhere (RSA).
    #[error("{0} keys cannot sign as opkssh user keys")]
    UnsupportedKey(&'static str),
    /// An in-memory signing operation failed.
    #[error("the signature could not be computed")]
    Failed,
}

/// Something that holds a user key (P-256 or Ed25519) and signs with it on request.
///
/// Implemented by `opk_client::agent_key` for a key in an ssh-agent. An implementation only
/// moves bytes: [`ExternalKey`] parses and checks what it returns.
pub trait ExternalSigner: Send + Sync {
    /// Signs `data` as an ssh-agent answers a sign request with no flags: the SSH signature
    /// blob `string algorithm ‖ string signature`, over `data` itself (the holder hashes it
    /// as its algorithm requires).
    ///
    /// # Errors
    /// [`SignError::Holder`] with the holder's reason (unreachable, refused, timed out).
    fn sign_ssh(&self, data: &[u8]) -> Result<Vec<u8>, SignError>;

    /// Names the key and its holder for messages and logs, e.g. `the ssh-agent key
    /// SHA256:…`. Never secret.
    fn describe(&self) -> String;
}

/// A user key whose private half is held by an [`ExternalSigner`]; the
/// [`crate::jws::SigningKey::External`] variant.
#[derive(Clone)]
pub struct ExternalKey {
    public: PublicKey,
    signer: Arc<dyn ExternalSigner>,
}

impl std::fmt::Debug for ExternalKey {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ExternalKey")
            .field("algorithm", &self.algorithm())
            .field("holder", &self.signer.describe())
            .finish()
    }
}

/// A signature by the held key, parsed and verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HeldSignature {
    /// ECDSA P-256 over SHA-256.
    EcdsaP256(p256::ecdsa::Signature),
    /// Ed25519.
    Ed25519(ed25519_dalek::Signature),
}

impl ExternalKey {
    /// A key with public half `public`, signed for by `signer`.
    ///
    /// # Errors
    /// [`SignError::UnsupportedKey`] for an RSA key: opkssh user keys are P-256 or Ed25519.
    pub fn new(public: PublicKey, signer: Arc<dyn ExternalSigner>) -> Result<Self, SignError> {
        match public {
            PublicKey::EcdsaP256(_) | PublicKey::Ed25519(_) => Ok(Self { public, signer }),
            PublicKey::Rsa(_) => Err(SignError::UnsupportedKey("RSA")),
        }
    }

    /// The public half.
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// ES256 for P-256, EdDSA for Ed25519.
    pub fn algorithm(&self) -> Algorithm {
        match self.public {
            PublicKey::Ed25519(_) => Algorithm::EdDsa,
            // RSA is refused by `new`; ES256 is what a non-Ed25519 user key signs with.
            PublicKey::EcdsaP256(_) | PublicKey::Rsa(_) => Algorithm::Es256,
        }
    }

    /// Who holds the key ([`ExternalSigner::describe`]).
    pub fn describe(&self) -> String {
        self.signer.describe()
    }

    /// The JWS signature over `message`: ES256's fixed 64-byte `r ‖ s`, or EdDSA's 64 bytes.
    ///
    /// # Errors
    /// [`SignError`]: the holder failed, or its answer is malformed or does not verify.
    pub fn sign_jws(&self, message: &[u8]) -> Result<Vec<u8>, SignError> {
        Ok(match self.sign_verified(message)? {
            HeldSignature::EcdsaP256(signature) => signature.to_bytes().to_vec(),
            HeldSignature::Ed25519(signature) => signature.to_bytes().to_vec(),
        })
    }

    /// Has the holder sign `message`, parses its answer and verifies it under the public key.
    pub(crate) fn sign_verified(&self, message: &[u8]) -> Result<HeldSignature, SignError> {
        let blob = self.signer.sign_ssh(message)?;
        let holder = || self.signer.describe();
        let signature = parse_ssh_signature(&blob, &self.public).map_err(|error| match error {
            BlobError::Malformed(reason) => SignError::Malformed {
                holder: holder(),
                reason,
            },
            BlobError::WrongAlgorithm { got, expected } => SignError::WrongAlgorithm {
                holder: holder(),
                got,
                expected,
            },
        })?;
        let verified = match (&self.public, &signature) {
            (PublicKey::EcdsaP256(key), HeldSignature::EcdsaP256(signature)) => {
                key.verify(message, signature).is_ok()
            }
            (PublicKey::Ed25519(key), HeldSignature::Ed25519(signature)) => {
                key.verify_strict(message, signature).is_ok()
            }
            _ => false,
        };
        if verified {
            Ok(signature)
        } else {
            Err(SignError::BadSignature(holder()))
        }
    }
}

/// What is wrong with a signature blob, before the holder is named.
#[derive(Debug, Clone, PartialEq, Eq)]
enum BlobError {
    Malformed(&'static str),
    WrongAlgorithm { got: String, expected: &'static str },
}

/// Parses an SSH signature blob for a signature by `key`: the algorithm must be the key's, the
/// signature field well formed, and nothing may follow either.
fn parse_ssh_signature(blob: &[u8], key: &PublicKey) -> Result<HeldSignature, BlobError> {
    let mut reader = WireReader::new(blob);
    let name = reader
        .string()
        .ok_or(BlobError::Malformed("no algorithm name"))?;
    let body = reader
        .string()
        .ok_or(BlobError::Malformed("no signature field"))?;
    if !reader.is_empty() {
        return Err(BlobError::Malformed("bytes after the signature"));
    }
    let expected = match key {
        PublicKey::EcdsaP256(_) => ECDSA_P256,
        PublicKey::Ed25519(_) => ED25519,
        PublicKey::Rsa(_) => return Err(BlobError::Malformed("an RSA key signs nothing here")),
    };
    if name != expected.as_bytes() {
        return Err(BlobError::WrongAlgorithm {
            got: crate::sshcert::excerpt(name),
            expected,
        });
    }
    match key {
        PublicKey::Ed25519(_) => ed25519_dalek::Signature::from_slice(body)
            .map(HeldSignature::Ed25519)
            .map_err(|_| BlobError::Malformed("an Ed25519 signature is not 64 bytes")),
        PublicKey::EcdsaP256(_) | PublicKey::Rsa(_) => {
            let mut fields = WireReader::new(body);
            let r = fields.string().ok_or(BlobError::Malformed("no r value"))?;
            let s = fields.string().ok_or(BlobError::Malformed("no s value"))?;
            if !fields.is_empty() {
                return Err(BlobError::Malformed("bytes after the s value"));
            }
            let mut fixed = [0_u8; 64];
            let (r_half, s_half) = fixed.split_at_mut(32);
            p256_scalar_from_mpint(r, r_half)?;
            p256_scalar_from_mpint(s, s_half)?;
            p256::ecdsa::Signature::from_slice(&fixed)
                .map(HeldSignature::EcdsaP256)
                .map_err(|_| BlobError::Malformed("r or s is zero or not below the group order"))
        }
    }
}

/// Writes the SSH `mpint` `bytes` (RFC 4251 §5) into `out` as a fixed-width big-endian number,
/// left-padded with zeros: JWS's form of an ECDSA value (RFC 7518 §3.4).
///
/// An mpint is minimal two's complement: a value with its top bit set gets one zero byte in
/// front (33 bytes for a large P-256 value), and one with leading zero bytes loses them (31 or
/// fewer). OpenSSH writes it that way; leading zeros beyond that are accepted and stripped, as
/// OpenSSH's own reader does. A negative value (top bit set, no zero in front) and more than
/// `out.len()` significant bytes are refused.
fn p256_scalar_from_mpint(bytes: &[u8], out: &mut [u8]) -> Result<(), BlobError> {
    if bytes.first().is_some_and(|byte| byte & 0x80 != 0) {
        return Err(BlobError::Malformed("a negative ECDSA signature value"));
    }
    let start = bytes
        .iter()
        .position(|byte| *byte != 0)
        .unwrap_or(bytes.len());
    let digits = bytes.get(start..).unwrap_or_default();
    let offset = out
        .len()
        .checked_sub(digits.len())
        .ok_or(BlobError::Malformed(
            "an ECDSA signature value longer than 32 bytes",
        ))?;
    out.fill(0);
    for (slot, digit) in out.iter_mut().skip(offset).zip(digits) {
        *slot = *digit;
    }
    Ok(())
}

/// Test holders for the modules that sign with a held key.
#[cfg(test)]
pub(crate) mod testing {
    use super::{ExternalKey, ExternalSigner, SignError};
    use crate::jws::SigningKey;
    use ssh_key::encoding::Encode as _;
    use std::sync::Arc;

    /// Holds an in-memory key and answers as an ssh-agent does, encoding with ssh-key (not
    /// with this crate's code), or fails with `failure`.
    pub(crate) struct AgentLike {
        key: SigningKey,
        failure: Option<SignError>,
    }

    impl ExternalSigner for AgentLike {
        fn sign_ssh(&self, data: &[u8]) -> Result<Vec<u8>, SignError> {
            if let Some(failure) = &self.failure {
                return Err(failure.clone());
            }
            let signature = match &self.key {
                SigningKey::EcdsaP256(key) => {
                    let signature: p256::ecdsa::Signature = signature::Signer::sign(key, data);
                    ssh_key::Signature::try_from(signature).unwrap()
                }
                SigningKey::Ed25519(key) => ssh_key::Signature::new(
                    ssh_key::Algorithm::Ed25519,
                    signature::Signer::sign(key, data).to_bytes().to_vec(),
                )
                .unwrap(),
                SigningKey::Rsa(_) | SigningKey::External(_) => unreachable!(),
            };
            Ok(signature.encode_vec().unwrap())
        }

        fn describe(&self) -> String {
            "the test agent".into()
        }
    }

    /// `key`, held by an [`AgentLike`].
    pub(crate) fn held(key: &SigningKey) -> SigningKey {
        held_failing(key, None)
    }

    /// `key`, held by an [`AgentLike`] that fails with `failure` if given.
    pub(crate) fn held_failing(key: &SigningKey, failure: Option<SignError>) -> SigningKey {
        let holder = AgentLike {
            key: key.clone(),
            failure,
        };
        SigningKey::External(ExternalKey::new(key.public_key(), Arc::new(holder)).unwrap())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sshcert::put_string;
    use p256::elliptic_curve::Generate as _;
    use signature::Signer as _;

    /// The SSH encoding of a positive number: minimal, a zero byte in front of a set top bit.
    fn mpint(magnitude: &[u8]) -> Vec<u8> {
        let start = magnitude
            .iter()
            .position(|byte| *byte != 0)
            .unwrap_or(magnitude.len());
        let mut digits = magnitude[start..].to_vec();
        if digits.first().is_some_and(|byte| byte & 0x80 != 0) {
            digits.insert(0, 0);
        }
        digits
    }

    fn ecdsa_blob(r: &[u8], s: &[u8]) -> Vec<u8> {
        let mut body = Vec::new();
        put_string(&mut body, r);
        put_string(&mut body, s);
        let mut blob = Vec::new();
        put_string(&mut blob, ECDSA_P256.as_bytes());
        put_string(&mut blob, &body);
        blob
    }

    type Answer = Box<dyn Fn(&[u8]) -> Result<Vec<u8>, SignError> + Send + Sync>;

    /// A holder that answers with whatever `answer` makes of the data.
    struct Scripted {
        answer: Answer,
    }

    impl ExternalSigner for Scripted {
        fn sign_ssh(&self, data: &[u8]) -> Result<Vec<u8>, SignError> {
            (self.answer)(data)
        }

        fn describe(&self) -> String {
            "the test holder".into()
        }
    }

    fn held(
        public: PublicKey,
        answer: impl Fn(&[u8]) -> Result<Vec<u8>, SignError> + Send + Sync + 'static,
    ) -> ExternalKey {
        ExternalKey::new(
            public,
            Arc::new(Scripted {
                answer: Box::new(answer),
            }),
        )
        .unwrap()
    }

    /// An ECDSA holder that signs honestly and hands its (r, s) to `encode`.
    fn ecdsa_holder(
        key: p256::ecdsa::SigningKey,
        encode: fn([u8; 32], [u8; 32]) -> Vec<u8>,
    ) -> ExternalKey {
        let public = PublicKey::EcdsaP256(*key.verifying_key());
        held(public, move |data| {
            let signature: p256::ecdsa::Signature = key.sign(data);
            let (r, s) = signature.split_bytes();
            Ok(encode(r.into(), s.into()))
        })
    }

    #[test]
    fn ecdsa_answers_become_fixed_width_jws_signatures() {
        let key = p256::ecdsa::SigningKey::generate();
        let public = *key.verifying_key();
        let holder = ecdsa_holder(key, |r, s| ecdsa_blob(&mpint(&r), &mpint(&s)));
        // In 64 signatures r and s each start with a set top bit (a 33-byte mpint) about half
        // the time, and now and then with a zero byte (31 bytes or fewer): the JWS form is
        // always 64 bytes and verifies.
        for round in 0..64_u8 {
            let message = [round; 40];
            let jws = holder.sign_jws(&message).unwrap();
            assert_eq!(jws.len(), 64);
            let signature = p256::ecdsa::Signature::from_slice(&jws).unwrap();
            assert!(public.verify(&message, &signature).is_ok());
        }
    }

    #[test]
    fn short_and_zero_padded_mpints_are_left_padded() {
        // r = 1 is a one-byte mpint; its JWS form is 31 zero bytes then 1.
        let mut out = [0xff_u8; 32];
        p256_scalar_from_mpint(&[1], &mut out).unwrap();
        assert_eq!(out[..31], [0; 31]);
        assert_eq!(out[31], 1);
        // A set top bit comes with one zero in front (33 bytes); extra zeros are stripped.
        let mut value = [0x80_u8; 32];
        value[31] = 7;
        let mut with_sign = vec![0];
        with_sign.extend_from_slice(&value);
        p256_scalar_from_mpint(&with_sign, &mut out).unwrap();
        assert_eq!(out, value);
        let mut extra_zeros = vec![0, 0, 0];
        extra_zeros.extend_from_slice(&value);
        p256_scalar_from_mpint(&extra_zeros, &mut out).unwrap();
        assert_eq!(out, value);
        // An empty mpint is zero.
        p256_scalar_from_mpint(&[], &mut out).unwrap();
        assert_eq!(out, [0; 32]);
        // Negative, or 33 significant bytes: refused.
        assert_eq!(
            p256_scalar_from_mpint(&value, &mut out),
            Err(BlobError::Malformed("a negative ECDSA signature value"))
        );
        assert_eq!(
            p256_scalar_from_mpint(&[1; 33], &mut out),
            Err(BlobError::Malformed(
                "an ECDSA signature value longer than 32 bytes"
            ))
        );
    }

    #[test]
    fn a_signature_with_a_short_r_still_verifies() {
        // Sign until r has a leading zero byte (1 in 256), then check the 31-byte mpint gives
        // the same 64 bytes as the in-memory signature.
        let key = p256::ecdsa::SigningKey::generate();
        let public = *key.verifying_key();
        let holder = ecdsa_holder(key.clone(), |r, s| ecdsa_blob(&mpint(&r), &mpint(&s)));
        let mut found = false;
        for round in 0..4096_u32 {
            let message = round.to_be_bytes();
            let signature: p256::ecdsa::Signature = key.sign(&message);
            if signature.r().to_bytes()[0] != 0 {
                continue;
            }
            // ECDSA here is deterministic (RFC 6979): the holder makes the same signature.
            let jws = holder.sign_jws(&message).unwrap();
            assert_eq!(jws, signature.to_bytes().to_vec());
            let parsed = p256::ecdsa::Signature::from_slice(&jws).unwrap();
            assert!(public.verify(&message, &parsed).is_ok());
            found = true;
            break;
        }
        assert!(found, "no signature with a short r in 4096 tries");
    }

    #[test]
    fn a_high_s_signature_is_kept_as_signed() {
        // OpenSSH's agent does not normalise s; Go's verifier and ours accept either half.
        let key = p256::ecdsa::SigningKey::generate();
        let public = *key.verifying_key();
        let message = b"header.payload";
        let signature: p256::ecdsa::Signature = key.sign(message);
        let flipped = p256::ecdsa::Signature::from_scalars(
            signature.r().to_bytes(),
            (-*signature.s()).to_bytes(),
        )
        .unwrap();
        assert!(public.verify(message, &flipped).is_ok());
        let (r, s) = flipped.split_bytes();
        let (r, s): ([u8; 32], [u8; 32]) = (r.into(), s.into());
        let holder = held(PublicKey::EcdsaP256(public), move |_| {
            Ok(ecdsa_blob(&mpint(&r), &mpint(&s)))
        });
        assert_eq!(
            holder.sign_jws(message).unwrap(),
            flipped.to_bytes().to_vec()
        );
    }

    #[test]
    fn ed25519_answers_are_the_raw_signature() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[3; 32]);
        let public = key.verifying_key();
        let signer = key.clone();
        let holder = held(PublicKey::Ed25519(public), move |data| {
            let mut blob = Vec::new();
            put_string(&mut blob, ED25519.as_bytes());
            put_string(&mut blob, &signer.sign(data).to_bytes());
            Ok(blob)
        });
        let jws = holder.sign_jws(b"input").unwrap();
        assert_eq!(jws, key.sign(b"input").to_bytes().to_vec());
        assert_eq!(holder.algorithm(), Algorithm::EdDsa);
    }

    #[test]
    fn bad_answers_are_errors_naming_the_holder() {
        let key = p256::ecdsa::SigningKey::generate();
        let public = PublicKey::EcdsaP256(*key.verifying_key());
        let other = p256::ecdsa::SigningKey::generate();
        let check = |answer: Vec<u8>| {
            held(public.clone(), move |_| Ok(answer.clone()))
                .sign_jws(b"m")
                .unwrap_err()
        };
        let malformed = |reason| SignError::Malformed {
            holder: "the test holder".into(),
            reason,
        };
        assert_eq!(check(Vec::new()), malformed("no algorithm name"));
        let mut name_only = Vec::new();
        put_string(&mut name_only, ECDSA_P256.as_bytes());
        assert_eq!(check(name_only), malformed("no signature field"));
        let mut trailing = ecdsa_blob(&[1], &[1]);
        trailing.push(0);
        assert_eq!(check(trailing), malformed("bytes after the signature"));
        assert_eq!(
            check(ecdsa_blob(&[0, 0, 0, 0], &[])),
            malformed("r or s is zero or not below the group order")
        );
        let mut ed = Vec::new();
        put_string(&mut ed, ED25519.as_bytes());
        put_string(&mut ed, &[0; 64]);
        assert_eq!(
            check(ed),
            SignError::WrongAlgorithm {
                holder: "the test holder".into(),
                got: "ssh-ed25519".into(),
                expected: "ecdsa-sha2-nistp256",
            }
        );
        // Another key's valid signature: refused after verification.
        let signature: p256::ecdsa::Signature = other.sign(b"m");
        let (r, s) = signature.split_bytes();
        assert_eq!(
            check(ecdsa_blob(&mpint(&r), &mpint(&s))),
            SignError::BadSignature("the test holder".into())
        );
        // The holder's own failure passes through.
        let failing = held(public, |_| Err(SignError::Holder("agent refused".into())));
        assert_eq!(
            failing.sign_jws(b"m"),
            Err(SignError::Holder("agent refused".into()))
        );
    }

    #[test]
    fn rsa_keys_are_not_held_keys() {
        let rsa = rsa::PrivateKey::new(&mut rand_core::UnwrapErr(getrandom::SysRng), 1024)
            .unwrap()
            .to_public_key();
        let signer: Arc<dyn ExternalSigner> = Arc::new(Scripted {
            answer: Box::new(|_| Ok(Vec::new())),
        });
        assert_eq!(
            ExternalKey::new(PublicKey::Rsa(rsa), signer).unwrap_err(),
            SignError::UnsupportedKey("RSA")
        );
    }
}
