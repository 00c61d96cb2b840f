//! The Client-Instance Claims: the CIC protected header that carries the user's public key,
//! and the commitment to it that the OP signs (wire-format.md §3).

use crate::b64;
use crate::gojson;
use crate::jwk::PublicKey;
use crate::jws::{Algorithm, Jws, JwsError, SigningKey};
use serde_json::{Map, Value};
use sha3::{Digest as _, Sha3_256};
use subtle::ConstantTimeEq as _;

/// Why a CIC was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CicError {
    /// `rz` is missing.
    #[error("cic has no rz")]
    MissingRz,
    /// `upk` is missing or not an object.
    #[error("cic has no upk object")]
    MissingUpk,
    /// `upk` has no `alg`.
    #[error("cic upk has no alg")]
    UpkWithoutAlg,
    /// `upk` is not a usable public key.
    #[error("cic upk is not a usable key: {0}")]
    InvalidUpk(crate::jwk::JwkError),
    /// The header `alg` differs from `upk.alg`.
    #[error("cic alg {header} differs from upk alg {upk}")]
    AlgMismatch {
        /// The header's `alg`.
        header: String,
        /// The upk's `alg`.
        upk: String,
    },
    /// The algorithm cannot sign a CIC (only ES256, EdDSA and RS256 can), or does not fit the key.
    #[error("unsupported cic algorithm `{0}`")]
    UnsupportedAlgorithm(String),
    /// An extra claim uses a reserved name.
    #[error("cic claim name `{0}` is reserved")]
    ReservedClaim(String),
    /// The CIC signature does not verify under the upk.
    #[error("cic signature: {0}")]
    Signature(JwsError),
}

/// A parsed CIC header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cic {
    header: Map<String, Value>,
    algorithm: Algorithm,
    upk: PublicKey,
}

impl Cic {
    /// Reads the CIC claims from the protected header of a CIC-typed JWS
    /// (openpubkey pktoken/clientinstance/claims.go rules, wire-format.md §3.2).
    ///
    /// # Errors
    /// [`CicError`] naming the rule.
    pub fn from_header(header: &Map<String, Value>) -> Result<Self, CicError> {
        if !header.contains_key("rz") {
            return Err(CicError::MissingRz);
        }
        let upk_object = header
            .get("upk")
            .and_then(Value::as_object)
            .ok_or(CicError::MissingUpk)?;
        let upk_alg = upk_object
            .get("alg")
            .and_then(Value::as_str)
            .ok_or(CicError::UpkWithoutAlg)?;
        let header_alg = header
            .get("alg")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if header_alg != upk_alg {
            return Err(CicError::AlgMismatch {
                header: header_alg.to_owned(),
                upk: upk_alg.to_owned(),
            });
        }
        let algorithm = match Algorithm::from_name(header_alg) {
            Ok(algorithm @ (Algorithm::Es256 | Algorithm::EdDsa | Algorithm::Rs256)) => algorithm,
            Ok(Algorithm::Ps256 | Algorithm::Gq256) | Err(_) => {
                return Err(CicError::UnsupportedAlgorithm(header_alg.to_owned()));
            }
        };
        let upk = PublicKey::from_jwk_object(upk_object).map_err(CicError::InvalidUpk)?;
        if !upk.fits(algorithm) {
            return Err(CicError::UnsupportedAlgorithm(header_alg.to_owned()));
        }
        Ok(Self {
            header: header.clone(),
            algorithm,
            upk,
        })
    }

    /// The user's public key.
    pub fn upk(&self) -> &PublicKey {
        &self.upk
    }

    /// The CIC signature algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The commitment: `B64U(SHA3-256(GoJSON(header)))` over the *re-serialized* header, as
    /// Go computes it on the verify side (wire-format.md §3.4), so a non-canonical header Go
    /// accepts is accepted here too.
    pub fn commitment(&self) -> String {
        commitment_of(&gojson::to_string(&Value::Object(self.header.clone())))
    }

    /// Whether `candidate` equals the commitment, compared in constant time.
    pub fn commits_to(&self, candidate: &str) -> bool {
        self.commitment()
            .as_bytes()
            .ct_eq(candidate.as_bytes())
            .into()
    }

    /// Verifies the CIC signature under the upk.
    ///
    /// # Errors
    /// [`CicError::Signature`].
    pub fn verify_signature(&self, jws: &Jws) -> Result<(), CicError> {
        jws.verify(&self.upk).map_err(CicError::Signature)
    }
}

fn commitment_of(canonical_json: &str) -> String {
    b64::encode_url(Sha3_256::digest(canonical_json.as_bytes()))
}

/// A CIC header made by the client: its exact JSON bytes and the commitment to them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CicHeader {
    json: String,
    commitment: String,
}

impl CicHeader {
    /// Builds the CIC header for `key` (wire-format.md §3.3 steps 2-4): `alg`, `rz` (32 random
    /// bytes as lower-case hex), `typ: CIC`, `upk` with `alg`, and any extra string claims.
    ///
    /// # Errors
    /// An extra claim named `alg`, `rz`, `typ` or `upk`; an RSA key.
    pub fn new(
        key: &SigningKey,
        extra_claims: &[(&str, &str)],
        rz: [u8; 32],
    ) -> Result<Self, CicError> {
        let algorithm = key.algorithm();
        let mut header = Map::new();
        for (name, value) in extra_claims {
            if matches!(*name, "alg" | "rz" | "typ" | "upk") {
                return Err(CicError::ReservedClaim((*name).to_owned()));
            }
            header.insert((*name).to_owned(), Value::String((*value).to_owned()));
        }
        header.insert("alg".into(), algorithm.as_str().into());
        header.insert("rz".into(), hex::encode(rz).into());
        header.insert("typ".into(), "CIC".into());
        header.insert(
            "upk".into(),
            Value::Object(key.public_key().to_jwk_object(algorithm)),
        );
        let json = gojson::to_string(&Value::Object(header));
        let commitment = commitment_of(&json);
        Ok(Self { json, commitment })
    }

    /// Draws `rz` from the OS random number generator.
    ///
    /// # Errors
    /// As [`CicHeader::new`].
    pub fn generate(key: &SigningKey, extra_claims: &[(&str, &str)]) -> Result<Self, CicError> {
        let mut rz = [0_u8; 32];
        rand_core::Rng::fill_bytes(&mut rand_core::UnwrapErr(getrandom::SysRng), &mut rz);
        Self::new(key, extra_claims, rz)
    }

    /// The header's exact JSON bytes, used as the protected header and as the hash input.
    pub fn json(&self) -> &str {
        &self.json
    }

    /// The commitment (the ID token's `nonce`, or `aud` for Actions providers).
    pub fn commitment(&self) -> &str {
        &self.commitment
    }

    /// Signs the ID token's payload segment with the user key (wire-format.md §3.3 step 6).
    ///
    /// With a key an ssh-agent holds, the agent makes the signature over the JWS signing
    /// input and it is checked before it is used ([`crate::external`]).
    ///
    /// # Errors
    /// [`JwsError::Sign`] when the key's holder fails; never for an in-memory key and a header
    /// made by [`CicHeader::new`].
    pub fn sign(&self, payload_segment: &str, key: &SigningKey) -> Result<Jws, JwsError> {
        Jws::sign(&self.json, payload_segment, key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// wire-format.md §3.4: commitments recomputed from the docs' tokens.
    #[test]
    fn commitment_vectors() {
        let cases = [
            (
                r#"{"alg":"ES256","rz":"b9522b5c4cff90687ec6787236184659e077a619b82827227114108440fec26a","typ":"CIC","upk":{"alg":"ES256","crv":"P-256","kty":"EC","x":"cvqyUFNs1OUdRcDSmzJfS7ynuTHAjlDqoeinCZy_r1Q","y":"Whl5jJUIz7ujFvlB5Hzhaz6DIlpyWQmIIA3J7VMj53o"}}"#,
                "fsTLlOIUqtJHomMB2t6HymoAqJi-wORIFtg3y8c65VY",
            ),
            (
                r#"{"alg":"ES256","extra":"yes","rz":"656f65b99da5d649ea315a52343add3642f14c7ff8d4ebce8ee33a2f4a4b41e0","typ":"CIC","upk":{"alg":"ES256","crv":"P-256","kty":"EC","x":"PnzpEjQZ7bsCl2ZExs7dbFQlVzggv-_t50QuzZZWcoc","y":"1Z-xC6JZL2eAO57ovFJCstnBcMsOiqsGF1NJLyqq1F4"}}"#,
                "8IpXCsOcYBGcCJmXJMFOpBjz4-kPXwDhYi3hm_DFM_U",
            ),
            (
                r#"{"alg":"ES256","rz":"bca0353ea63adbfce72032ab7d8fb7940def3488ca0765546a89d46760113c70","typ":"CIC","upk":{"alg":"ES256","crv":"P-256","kty":"EC","x":"5BP8B8bXgf0OFxHLJS5LSFlPOsfdIvf2tJU_3mwTGNE","y":"7KzWJi88qdZOI_j-kUG2aPjkzEA7IGMXFp1f-jdt28I"}}"#,
                "LEQE668yEBBpVxKfi4SvIkl8wFxn55TdzNF79aEomIA",
            ),
            (
                r#"{"alg":"ES256","rz":"600e69b29d89651591836d2598f6813a9a74b9e4124ddb81bee1561299c3590e","typ":"CIC","upk":{"alg":"ES256","crv":"P-256","kty":"EC","x":"c63goURlnP5vbJbt4chtOHTHwg6Yvy4h6_aw3Zc2A5o","y":"pfsH8--s5c8u4DxXto0sN4g5n6SjlXn1WjzaKXrr9b4"}}"#,
                "HVIF0m3zCwEsAZSFjTiyQFU982qF2UZXSpCE__F6IbE",
            ),
        ];
        for (header, expected) in cases {
            let map: Map<String, Value> = serde_json::from_str(header).unwrap();
            let cic = Cic::from_header(&map).unwrap();
            assert_eq!(cic.commitment(), expected);
            assert!(cic.commits_to(expected));
            // A header with the same members in another order and with whitespace commits
            // to the same value, because Go re-serializes before hashing.
            let spaced = header.replace(',', ", ").replace(':', ": ");
            let map: Map<String, Value> = serde_json::from_str(&spaced).unwrap();
            assert_eq!(Cic::from_header(&map).unwrap().commitment(), expected);
        }
    }

    #[test]
    fn client_header_is_canonical_and_round_trips() {
        let key = SigningKey::Ed25519(ed25519_dalek::SigningKey::from_bytes(&[9; 32]));
        let header = CicHeader::new(&key, &[("att", "x<y")], [0xab; 32]).unwrap();
        assert!(
            header
                .json()
                .starts_with(r#"{"alg":"EdDSA","att":"x\u003cy","rz":"abababab"#)
        );
        assert!(
            header
                .json()
                .contains(r#""typ":"CIC","upk":{"alg":"EdDSA","crv":"Ed25519","kty":"OKP","x":""#)
        );
        let independent = b64::encode_url(Sha3_256::digest(header.json().as_bytes()));
        assert_eq!(header.commitment(), independent);
        let jws = header.sign("e30", &key).unwrap();
        let cic = Cic::from_header(jws.header()).unwrap();
        assert_eq!(cic.commitment(), header.commitment());
        assert_eq!(cic.verify_signature(&jws), Ok(()));
        assert_eq!(cic.upk(), &key.public_key());
    }

    #[test]
    fn a_held_key_makes_the_same_cic_bytes() {
        // Both P-256 (RFC 6979) and Ed25519 sign deterministically, so a key an agent holds
        // gives the in-memory key's CIC header, commitment and signature byte for byte.
        let keys = [
            SigningKey::EcdsaP256(p256::ecdsa::SigningKey::from_slice(&[5; 32]).unwrap()),
            SigningKey::Ed25519(ed25519_dalek::SigningKey::from_bytes(&[6; 32])),
        ];
        for key in keys {
            let agent_key = crate::external::testing::held(&key);
            let header = CicHeader::new(&key, &[], [2; 32]).unwrap();
            let agent_header = CicHeader::new(&agent_key, &[], [2; 32]).unwrap();
            assert_eq!(header, agent_header);
            let jws = header.sign("eyJhIjoxfQ", &key).unwrap();
            let agent_jws = agent_header.sign("eyJhIjoxfQ", &agent_key).unwrap();
            assert_eq!(jws.to_compact(), agent_jws.to_compact());
            let cic = Cic::from_header(agent_jws.header()).unwrap();
            assert_eq!(cic.verify_signature(&agent_jws), Ok(()));
        }
    }

    #[test]
    fn rules_of_claims_go() {
        let key = SigningKey::Ed25519(ed25519_dalek::SigningKey::from_bytes(&[9; 32]));
        let good: Map<String, Value> =
            serde_json::from_str(CicHeader::new(&key, &[], [1; 32]).unwrap().json()).unwrap();
        let mut without_rz = good.clone();
        without_rz.remove("rz");
        assert_eq!(Cic::from_header(&without_rz), Err(CicError::MissingRz));
        let mut wrong_alg = good.clone();
        wrong_alg.insert("alg".into(), "ES256".into());
        assert!(matches!(
            Cic::from_header(&wrong_alg),
            Err(CicError::AlgMismatch { .. })
        ));
        let mut upk_without_alg = good.clone();
        if let Some(Value::Object(upk)) = upk_without_alg.get_mut("upk") {
            upk.remove("alg");
        }
        assert_eq!(
            Cic::from_header(&upk_without_alg),
            Err(CicError::UpkWithoutAlg)
        );
        let mut no_upk = good;
        no_upk.remove("upk");
        assert_eq!(Cic::from_header(&no_upk), Err(CicError::MissingUpk));
        assert_eq!(
            CicHeader::new(&key, &[("upk", "x")], [1; 32]),
            Err(CicError::ReservedClaim("upk".into()))
        );
    }
}
