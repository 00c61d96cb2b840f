//! Compact JWS (RFC 7515) as OpenPubkey uses it: parse, sign and verify RS256, PS256, ES256,
//! EdDSA and GQ256.
//!
//! The algorithm is matched exhaustively *before* any other check, and the key type must fit
//! it. `none`, `HS*` and every other name are refused: the 2025 openpubkey bypass
//! (CVE-2025-3757) was a `switch` on `alg` with no default arm (security-and-openings.md §2.1).
//! Parsed tokens keep their original segments; the signing input is always built from them.

use crate::b64;
use crate::external::{ExternalKey, SignError};
use crate::jwk::PublicKey;
use serde_json::{Map, Value};
use signature::{SignatureEncoding as _, Signer as _, Verifier as _};

/// The signature algorithms opkssh accepts anywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// Ed25519 (RFC 8037).
    EdDsa,
    /// ECDSA P-256 with SHA-256, raw `r ‖ s` signatures.
    Es256,
    /// Guillou–Quisquater over an RS256 signature (openpubkey's GQ256).
    Gq256,
    /// RSASSA-PSS with SHA-256.
    Ps256,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Rs256,
}

impl Algorithm {
    /// Maps a JOSE `alg` name. Exact, case-sensitive names only.
    ///
    /// # Errors
    /// [`JwsError::UnsupportedAlgorithm`] for every other name, `none` and `HS*` included.
    pub fn from_name(name: &str) -> Result<Self, JwsError> {
        match name {
            "RS256" => Ok(Self::Rs256),
            "PS256" => Ok(Self::Ps256),
            "ES256" => Ok(Self::Es256),
            "EdDSA" => Ok(Self::EdDsa),
            "GQ256" => Ok(Self::Gq256),
            other => Err(JwsError::UnsupportedAlgorithm(other.to_owned())),
        }
    }

    /// The JOSE name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rs256 => "RS256",
            Self::Ps256 => "PS256",
            Self::Es256 => "ES256",
            Self::EdDsa => "EdDSA",
            Self::Gq256 => "GQ256",
        }
    }
}

impl std::fmt::Display for Algorithm {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// Why a compact JWS was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwsError {
    /// Not three `.`-separated segments.
    #[error("compact jws must have 3 segments, found {0}")]
    SegmentCount(usize),
    /// The protected header is not strict base64url.
    #[error("protected header is not base64url: {0}")]
    HeaderNotBase64(b64::B64Error),
    /// The protected header is not a JSON object.
    #[error("protected header is not a JSON object")]
    HeaderNotObject,
    /// A header member has the wrong JSON type (wire-format.md §5.1).
    #[error("protected header member `{0}` has the wrong type")]
    HeaderMemberType(&'static str),
    /// The header has no `alg`.
    #[error("protected header has no alg")]
    MissingAlgorithm,
    /// `alg` is not one opkssh accepts.
    #[error("unsupported signature algorithm `{0}`")]
    UnsupportedAlgorithm(String),
    /// The key's type does not fit the header's `alg`.
    #[error("key type does not fit algorithm {0}")]
    KeyTypeMismatch(Algorithm),
    /// The signature segment is not base64url.
    #[error("signature is not base64url")]
    SignatureNotBase64,
    /// The signature does not verify.
    #[error("signature does not verify")]
    BadSignature,
    /// The GQ256 proof was refused.
    #[error("gq256: {0}")]
    Gq(crate::gq::GqError),
    /// The key could not sign (a key held by an ssh-agent that failed or refused).
    #[error("signing: {0}")]
    Sign(SignError),
}

/// A compact JWS, keeping the segments exactly as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Jws {
    header_segment: String,
    payload_segment: String,
    signature_segment: String,
    header: Map<String, Value>,
}

impl Jws {
    /// Parses `header.payload.signature`.
    ///
    /// # Errors
    /// Wrong segment count, or a header that is not strict base64url JSON with the member
    /// types of wire-format.md §5.1. The payload is decoded by the caller that needs it.
    pub fn parse(compact: &str) -> Result<Self, JwsError> {
        let mut parts = compact.split('.');
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(header), Some(payload), Some(signature), None) => {
                Self::from_segments(header, payload, signature)
            }
            _ => Err(JwsError::SegmentCount(compact.split('.').count())),
        }
    }

    /// Builds a JWS from its three segments (as found in a PK token).
    ///
    /// # Errors
    /// As [`Jws::parse`].
    pub fn from_segments(header: &str, payload: &str, signature: &str) -> Result<Self, JwsError> {
        let header_bytes = b64::decode_url_strict(header).map_err(JwsError::HeaderNotBase64)?;
        let header_map = match serde_json::from_slice::<Value>(&header_bytes) {
            Ok(Value::Object(map)) => map,
            _ => return Err(JwsError::HeaderNotObject),
        };
        check_header_types(&header_map)?;
        // A signature is verified later, but its text must already be base64 (either alphabet,
        // padded or not: the lenient decoder's set). The JSON form could otherwise carry `:`
        // or `.` in a signature, and its compact re-serialization would be another token
        // (found by the `pktoken` fuzz target).
        if !signature.bytes().all(|byte| {
            byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'+' | b'/' | b'=')
        }) {
            return Err(JwsError::SignatureNotBase64);
        }
        Ok(Self {
            header_segment: header.to_owned(),
            payload_segment: payload.to_owned(),
            signature_segment: signature.to_owned(),
            header: header_map,
        })
    }

    /// Signs `payload_segment` under a header given as its exact JSON bytes.
    ///
    /// The caller writes the header (GoJSON, sorted keys) so the same bytes can serve as the
    /// header segment and, for a CIC, as the commitment input.
    ///
    /// # Errors
    /// A header that is not a JSON object of the right member types; [`JwsError::Sign`] when
    /// the key is held elsewhere and its holder fails.
    pub fn sign(
        header_json: &str,
        payload_segment: &str,
        key: &SigningKey,
    ) -> Result<Self, JwsError> {
        let header_segment = b64::encode_url(header_json.as_bytes());
        let signing_input = format!("{header_segment}.{payload_segment}");
        let signature = key.sign(signing_input.as_bytes()).map_err(JwsError::Sign)?;
        Self::from_segments(
            &header_segment,
            payload_segment,
            &b64::encode_url(signature),
        )
    }

    /// The protected header segment as received.
    pub fn header_segment(&self) -> &str {
        &self.header_segment
    }

    /// The payload segment as received.
    pub fn payload_segment(&self) -> &str {
        &self.payload_segment
    }

    /// The signature segment as received.
    pub fn signature_segment(&self) -> &str {
        &self.signature_segment
    }

    /// The decoded protected header.
    pub fn header(&self) -> &Map<String, Value> {
        &self.header
    }

    /// A string member of the protected header (types were checked at parse time).
    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.header.get(name).and_then(Value::as_str)
    }

    /// The header's algorithm, matched exhaustively.
    ///
    /// # Errors
    /// Missing `alg`, or a name outside [`Algorithm`].
    pub fn algorithm(&self) -> Result<Algorithm, JwsError> {
        Algorithm::from_name(self.header_str("alg").ok_or(JwsError::MissingAlgorithm)?)
    }

    /// `header.payload`, the bytes every signature covers.
    pub fn signing_input(&self) -> String {
        format!("{}.{}", self.header_segment, self.payload_segment)
    }

    /// The compact form, byte-identical to what was parsed.
    pub fn to_compact(&self) -> String {
        format!(
            "{}.{}.{}",
            self.header_segment, self.payload_segment, self.signature_segment
        )
    }

    /// Verifies the signature with `key` under the header's `alg`.
    ///
    /// The algorithm is resolved first, then the key type must fit it, and only then is any
    /// signature arithmetic done.
    ///
    /// # Errors
    /// [`JwsError`] naming the failed step.
    pub fn verify(&self, key: &PublicKey) -> Result<(), JwsError> {
        let algorithm = self.algorithm()?;
        if !key.fits(algorithm) {
            return Err(JwsError::KeyTypeMismatch(algorithm));
        }
        let input = self.signing_input();
        match (algorithm, key) {
            (Algorithm::Gq256, PublicKey::Rsa(rsa_key)) => crate::gq::verify_token(
                &self.header_segment,
                &self.payload_segment,
                &self.signature_segment,
                rsa_key,
            )
            .map_err(JwsError::Gq),
            (Algorithm::Rs256, PublicKey::Rsa(rsa_key)) => {
                let signature = self.signature_bytes()?;
                let signature = rsa::pkcs1v15::Signature::try_from(signature.as_slice())
                    .map_err(|_| JwsError::BadSignature)?;
                rsa::pkcs1v15::VerifyingKey::<sha2::Sha256>::new(rsa_key.clone())
                    .verify(input.as_bytes(), &signature)
                    .map_err(|_| JwsError::BadSignature)
            }
            (Algorithm::Ps256, PublicKey::Rsa(rsa_key)) => {
                let signature = self.signature_bytes()?;
                let signature = rsa::pss::Signature::try_from(signature.as_slice())
                    .map_err(|_| JwsError::BadSignature)?;
                // jwx's salt length on verify is unsettled (wire-format.md §8): accept any.
                rsa::pss::VerifyingKey::<sha2::Sha256>::new_with_auto_salt_len(rsa_key.clone())
                    .verify(input.as_bytes(), &signature)
                    .map_err(|_| JwsError::BadSignature)
            }
            (Algorithm::Es256, PublicKey::EcdsaP256(ec_key)) => {
                // JWS ES256 is raw r ‖ s (64 bytes), never DER (wire-format.md §7 item 16).
                let signature = self.signature_bytes()?;
                let signature = p256::ecdsa::Signature::from_slice(&signature)
                    .map_err(|_| JwsError::BadSignature)?;
                ec_key
                    .verify(input.as_bytes(), &signature)
                    .map_err(|_| JwsError::BadSignature)
            }
            (Algorithm::EdDsa, PublicKey::Ed25519(ed_key)) => {
                let signature = self.signature_bytes()?;
                let signature = ed25519_dalek::Signature::from_slice(&signature)
                    .map_err(|_| JwsError::BadSignature)?;
                ed_key
                    .verify_strict(input.as_bytes(), &signature)
                    .map_err(|_| JwsError::BadSignature)
            }
            (
                Algorithm::Gq256 | Algorithm::Rs256 | Algorithm::Ps256,
                PublicKey::EcdsaP256(_) | PublicKey::Ed25519(_),
            )
            | (Algorithm::Es256, PublicKey::Rsa(_) | PublicKey::Ed25519(_))
            | (Algorithm::EdDsa, PublicKey::Rsa(_) | PublicKey::EcdsaP256(_)) => {
                Err(JwsError::KeyTypeMismatch(algorithm))
            }
        }
    }

    fn signature_bytes(&self) -> Result<Vec<u8>, JwsError> {
        b64::decode_url_signature_lenient(&self.signature_segment)
            .map_err(|_| JwsError::SignatureNotBase64)
    }
}

/// Member types Go's JWT parser enforces on protected headers (wire-format.md §5.1).
fn check_header_types(header: &Map<String, Value>) -> Result<(), JwsError> {
    const STRING_MEMBERS: [&str; 5] = ["alg", "jkt", "kid", "typ", "cic"];
    if let Some(name) = STRING_MEMBERS
        .into_iter()
        .find(|name| header.get(*name).is_some_and(|value| !value.is_string()))
    {
        return Err(JwsError::HeaderMemberType(name));
    }
    if let Some(jwk) = header.get("jwk") {
        let all_strings = jwk
            .as_object()
            .is_some_and(|object| object.values().all(Value::is_string));
        if !all_strings {
            return Err(JwsError::HeaderMemberType("jwk"));
        }
    }
    Ok(())
}

/// A private key that signs JWS: the user key (ES256, EdDSA) or an OP key (RS256, ES256) in
/// test and demo providers. The user key is in memory, or held by an ssh-agent
/// ([`SigningKey::External`]), which makes every signature and never hands out the key.
#[derive(Clone)]
pub enum SigningKey {
    /// ECDSA P-256 (ES256).
    EcdsaP256(p256::ecdsa::SigningKey),
    /// Ed25519 (EdDSA).
    Ed25519(ed25519_dalek::SigningKey),
    /// RSA PKCS#1 v1.5 (RS256).
    Rsa(Box<rsa::PrivateKey>),
    /// A P-256 (ES256) or Ed25519 (EdDSA) user key whose private half is elsewhere, in an
    /// ssh-agent ([`crate::external`]). Signing asks the holder and can fail.
    External(ExternalKey),
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print private key material.
        match self {
            Self::External(key) => write!(
                formatter,
                "SigningKey({}, held by {})",
                self.algorithm(),
                key.describe()
            ),
            Self::EcdsaP256(_) | Self::Ed25519(_) | Self::Rsa(_) => {
                write!(formatter, "SigningKey({})", self.algorithm())
            }
        }
    }
}

impl SigningKey {
    /// The algorithm this key signs with.
    pub fn algorithm(&self) -> Algorithm {
        match self {
            Self::EcdsaP256(_) => Algorithm::Es256,
            Self::Ed25519(_) => Algorithm::EdDsa,
            Self::Rsa(_) => Algorithm::Rs256,
            Self::External(key) => key.algorithm(),
        }
    }

    /// The public half.
    pub fn public_key(&self) -> PublicKey {
        match self {
            Self::EcdsaP256(key) => PublicKey::EcdsaP256(*key.verifying_key()),
            Self::Ed25519(key) => PublicKey::Ed25519(key.verifying_key()),
            Self::Rsa(key) => PublicKey::Rsa(key.to_public_key()),
            Self::External(key) => key.public_key().clone(),
        }
    }

    /// The holder of the key when it is not in this process's memory.
    pub fn external(&self) -> Option<&ExternalKey> {
        match self {
            Self::External(key) => Some(key),
            Self::EcdsaP256(_) | Self::Ed25519(_) | Self::Rsa(_) => None,
        }
    }

    /// Signs `message`, giving the JWS signature bytes (ES256: the fixed 64-byte `r ‖ s`).
    ///
    /// # Errors
    /// [`SignError`] when a held key's holder fails or answers with something that does not
    /// verify; [`SignError::Failed`] if an in-memory signature cannot be computed.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignError> {
        match self {
            Self::EcdsaP256(key) => {
                let signature: p256::ecdsa::Signature =
                    key.try_sign(message).map_err(|_| SignError::Failed)?;
                Ok(signature.to_bytes().to_vec())
            }
            Self::Ed25519(key) => Ok(key.sign(message).to_bytes().to_vec()),
            Self::Rsa(key) => rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(key.as_ref().clone())
                .try_sign(message)
                .map(|signature| signature.to_vec())
                .map_err(|_| SignError::Failed),
            Self::External(key) => key.sign_jws(message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::elliptic_curve::Generate as _;

    fn es256_key() -> SigningKey {
        SigningKey::EcdsaP256(p256::ecdsa::SigningKey::generate())
    }

    #[test]
    fn algorithm_names_are_exact() {
        for name in [
            "none", "HS256", "HS512", "RS384", "ES384", "PS384", "rs256", "Ed25519", "", "gq256",
        ] {
            assert_eq!(
                Algorithm::from_name(name),
                Err(JwsError::UnsupportedAlgorithm(name.into())),
                "{name}"
            );
        }
        for alg in [
            Algorithm::Rs256,
            Algorithm::Ps256,
            Algorithm::Es256,
            Algorithm::EdDsa,
            Algorithm::Gq256,
        ] {
            assert_eq!(Algorithm::from_name(alg.as_str()), Ok(alg));
        }
    }

    #[test]
    fn sign_verify_round_trip_and_tamper() {
        for key in [
            es256_key(),
            SigningKey::Ed25519(ed25519_dalek::SigningKey::generate(
                &mut rand_core::UnwrapErr(getrandom::SysRng),
            )),
        ] {
            let header = format!(r#"{{"alg":"{}","typ":"JWT"}}"#, key.algorithm());
            let jws = Jws::sign(&header, &b64::encode_url(b"{\"a\":1}"), &key).unwrap();
            assert_eq!(jws.verify(&key.public_key()), Ok(()));
            let reparsed = Jws::parse(&jws.to_compact()).unwrap();
            assert_eq!(reparsed, jws);
            let tampered = Jws::from_segments(
                jws.header_segment(),
                &b64::encode_url(b"{\"a\":2}"),
                jws.signature_segment(),
            )
            .unwrap();
            assert_eq!(
                tampered.verify(&key.public_key()),
                Err(JwsError::BadSignature)
            );
        }
    }

    #[test]
    fn wrong_key_type_is_refused_before_signature_math() {
        let key = es256_key();
        let jws = Jws::sign(r#"{"alg":"ES256"}"#, "e30", &key).unwrap();
        let ed = SigningKey::Ed25519(ed25519_dalek::SigningKey::from_bytes(&[7; 32]));
        assert_eq!(
            jws.verify(&ed.public_key()),
            Err(JwsError::KeyTypeMismatch(Algorithm::Es256))
        );
    }

    #[test]
    fn none_and_hmac_headers_are_refused() {
        let key = es256_key();
        for alg in ["none", "HS256"] {
            let jws =
                Jws::from_segments(&b64::encode_url(format!(r#"{{"alg":"{alg}"}}"#)), "e30", "")
                    .unwrap();
            assert_eq!(
                jws.verify(&key.public_key()),
                Err(JwsError::UnsupportedAlgorithm(alg.into()))
            );
        }
        let no_alg = Jws::from_segments(&b64::encode_url("{}"), "e30", "").unwrap();
        assert_eq!(
            no_alg.verify(&key.public_key()),
            Err(JwsError::MissingAlgorithm)
        );
    }

    #[test]
    fn header_types_follow_go() {
        let bad = |json: &str| Jws::from_segments(&b64::encode_url(json), "e30", "");
        assert_eq!(bad(r#"{"alg":5}"#), Err(JwsError::HeaderMemberType("alg")));
        assert_eq!(
            bad(r#"{"typ":null}"#),
            Err(JwsError::HeaderMemberType("typ"))
        );
        assert_eq!(
            bad(r#"{"jwk":{"x":1}}"#),
            Err(JwsError::HeaderMemberType("jwk"))
        );
        assert_eq!(bad("[]"), Err(JwsError::HeaderNotObject));
        assert!(matches!(
            Jws::from_segments("e30=", "e30", ""),
            Err(JwsError::HeaderNotBase64(_))
        ));
        assert_eq!(Jws::parse("a.b"), Err(JwsError::SegmentCount(2)));
        assert_eq!(Jws::parse("a.b.c.d"), Err(JwsError::SegmentCount(4)));
    }
}
