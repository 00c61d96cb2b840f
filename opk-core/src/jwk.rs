//! JSON Web Keys and key sets (RFC 7517, RFC 7638 thumbprints, RFC 8037 OKP keys).
//!
//! Three key types exist in opkssh: RSA (OP keys), EC P-256 (OP and user keys) and Ed25519
//! (OP and user keys). Everything else is unknown: a JWKS holding such keys still yields the
//! known ones, and a token naming an unknown key is refused at lookup.

use crate::b64;
use crate::jws::Algorithm;
use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};

/// Why a JWK or JWKS was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwkError {
    /// The document is not JSON, or a JWK is not a JSON object.
    #[error("jwk is not a JSON object")]
    NotAnObject,
    /// A member that must be a string is missing or not a string.
    #[error("jwk member `{0}` is missing or not a string")]
    MissingMember(&'static str),
    /// A byte-valued member is not strict unpadded base64url.
    #[error("jwk member `{0}` is not base64url")]
    NotBase64(&'static str),
    /// `kty` names a key type opkssh does not use.
    #[error("unsupported key type `{0}`")]
    UnsupportedKeyType(String),
    /// `crv` is not P-256 (EC) or Ed25519 (OKP).
    #[error("unsupported curve `{0}`")]
    UnsupportedCurve(String),
    /// The key material does not form a valid public key.
    #[error("invalid {0} key material")]
    InvalidKey(&'static str),
    /// A JWKS whose `keys` member is missing or not an array.
    #[error("jwks has no `keys` array")]
    NoKeysArray,
}

/// A public key of a type opkssh uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKey {
    /// ECDSA over NIST P-256.
    EcdsaP256(p256::ecdsa::VerifyingKey),
    /// Ed25519.
    Ed25519(ed25519_dalek::VerifyingKey),
    /// RSA, used by OPs (RS256, PS256, GQ256).
    Rsa(rsa::PublicKey),
}

impl PublicKey {
    /// Whether `alg` is a signature algorithm for this kind of key (wire-format.md §5.3).
    pub fn fits(&self, alg: Algorithm) -> bool {
        match (self, alg) {
            (Self::Rsa(_), Algorithm::Rs256 | Algorithm::Ps256 | Algorithm::Gq256) => true,
            (Self::EcdsaP256(_), Algorithm::Es256) => true,
            (Self::Ed25519(_), Algorithm::EdDsa) => true,
            (Self::Rsa(_), Algorithm::Es256 | Algorithm::EdDsa)
            | (
                Self::EcdsaP256(_),
                Algorithm::Rs256 | Algorithm::Ps256 | Algorithm::Gq256 | Algorithm::EdDsa,
            )
            | (
                Self::Ed25519(_),
                Algorithm::Rs256 | Algorithm::Ps256 | Algorithm::Gq256 | Algorithm::Es256,
            ) => false,
        }
    }

    /// The RFC 7638 thumbprint input: required members only, sorted, no whitespace.
    fn thumbprint_input(&self) -> String {
        match self {
            Self::EcdsaP256(key) => {
                let (x, y) = ec_coordinates(key);
                format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#)
            }
            Self::Ed25519(key) => {
                format!(
                    r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
                    b64::encode_url(key.to_bytes())
                )
            }
            Self::Rsa(key) => crate::rsa_jwk::thumbprint_input(key),
        }
    }

    /// The RFC 7638 SHA-256 thumbprint, base64url: the `jkt` of a GQ header and the key
    /// identity opkssh compares between the certificate and the `upk`.
    pub fn thumbprint(&self) -> String {
        b64::encode_url(Sha256::digest(self.thumbprint_input().as_bytes()))
    }

    /// The JWK members of this key with `alg` added, as a JSON object (keys sorted when
    /// written with [`crate::gojson`]).
    pub fn to_jwk_object(&self, alg: Algorithm) -> Map<String, Value> {
        let mut object = Map::new();
        object.insert("alg".into(), Value::String(alg.as_str().into()));
        match self {
            Self::EcdsaP256(key) => {
                let (x, y) = ec_coordinates(key);
                object.insert("crv".into(), "P-256".into());
                object.insert("kty".into(), "EC".into());
                object.insert("x".into(), x.into());
                object.insert("y".into(), y.into());
            }
            Self::Ed25519(key) => {
                object.insert("crv".into(), "Ed25519".into());
                object.insert("kty".into(), "OKP".into());
                object.insert("x".into(), b64::encode_url(key.to_bytes()).into());
            }
            Self::Rsa(key) => {
                let (n, e) = crate::rsa_jwk::members(key);
                object.insert("e".into(), e.into());
                object.insert("kty".into(), "RSA".into());
                object.insert("n".into(), n.into());
            }
        }
        object
    }

    /// Parses the key members of a JWK object (`kty`, `crv`, `x`, `y`, `n`, `e`).
    ///
    /// # Errors
    /// Unknown `kty` or `crv`, missing or non-base64url members, invalid key material.
    pub fn from_jwk_object(object: &Map<String, Value>) -> Result<Self, JwkError> {
        match string_member(object, "kty")? {
            "RSA" => {
                let n = bytes_member(object, "n")?;
                let e = bytes_member(object, "e")?;
                let n = rsa::BoxedUint::from_be_slice_vartime(&n);
                let e = rsa::BoxedUint::from_be_slice_vartime(&e);
                rsa::PublicKey::new(n, e)
                    .map(Self::Rsa)
                    .map_err(|_| JwkError::InvalidKey("RSA"))
            }
            "EC" => {
                let curve = string_member(object, "crv")?;
                if curve != "P-256" {
                    return Err(JwkError::UnsupportedCurve(curve.to_owned()));
                }
                let x = bytes_member(object, "x")?;
                let y = bytes_member(object, "y")?;
                if x.len() != 32 || y.len() != 32 {
                    return Err(JwkError::InvalidKey("P-256"));
                }
                let mut sec1 = Vec::with_capacity(65);
                sec1.push(0x04);
                sec1.extend_from_slice(&x);
                sec1.extend_from_slice(&y);
                p256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1)
                    .map(Self::EcdsaP256)
                    .map_err(|_| JwkError::InvalidKey("P-256"))
            }
            "OKP" => {
                let curve = string_member(object, "crv")?;
                if curve != "Ed25519" {
                    return Err(JwkError::UnsupportedCurve(curve.to_owned()));
                }
                let x = bytes_member(object, "x")?;
                let bytes: [u8; 32] = x.try_into().map_err(|_| JwkError::InvalidKey("Ed25519"))?;
                ed25519_dalek::VerifyingKey::from_bytes(&bytes)
                    .map(Self::Ed25519)
                    .map_err(|_| JwkError::InvalidKey("Ed25519"))
            }
            other => Err(JwkError::UnsupportedKeyType(other.to_owned())),
        }
    }
}

fn ec_coordinates(key: &p256::ecdsa::VerifyingKey) -> (String, String) {
    let point = key.to_sec1_point(false);
    // An uncompressed point is 0x04 ‖ X(32) ‖ Y(32); a verifying key is never the identity.
    let bytes = point.as_bytes();
    let x = bytes.get(1..33).unwrap_or_default();
    let y = bytes.get(33..65).unwrap_or_default();
    (b64::encode_url(x), b64::encode_url(y))
}

fn string_member<'a>(
    object: &'a Map<String, Value>,
    name: &'static str,
) -> Result<&'a str, JwkError> {
    object
        .get(name)
        .and_then(Value::as_str)
        .ok_or(JwkError::MissingMember(name))
}

fn bytes_member(object: &Map<String, Value>, name: &'static str) -> Result<Vec<u8>, JwkError> {
    b64::decode_url_strict(string_member(object, name)?).map_err(|_| JwkError::NotBase64(name))
}

/// One key of a JWKS, with the members lookup and algorithm checks need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Jwk {
    key: PublicKey,
    kid: Option<String>,
    alg: Option<String>,
}

impl Jwk {
    /// Parses one JWK object. Private members, if any, are ignored: only the public part is
    /// kept.
    ///
    /// # Errors
    /// See [`PublicKey::from_jwk_object`]; also a non-string `kid` or `alg`.
    pub fn from_object(object: &Map<String, Value>) -> Result<Self, JwkError> {
        let optional_string = |name: &'static str| match object.get(name) {
            None => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.clone())),
            Some(_) => Err(JwkError::MissingMember(name)),
        };
        Ok(Self {
            key: PublicKey::from_jwk_object(object)?,
            kid: optional_string("kid")?,
            alg: optional_string("alg")?,
        })
    }

    /// The public key.
    pub fn key(&self) -> &PublicKey {
        &self.key
    }

    /// The `kid` member, if any.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The `alg` member as written, if any.
    pub fn alg(&self) -> Option<&str> {
        self.alg.as_deref()
    }

    /// The algorithm this key is for. An absent `alg` means RS256, as in Go (Azure omits it),
    /// so an EC or OKP key without `alg` fits no algorithm (wire-format.md §5.4).
    pub fn algorithm(&self) -> Option<Algorithm> {
        match self.alg.as_deref() {
            None => Some(Algorithm::Rs256),
            Some(name) => Algorithm::from_name(name).ok(),
        }
    }
}

/// A JWK set as an issuer publishes it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Jwks {
    keys: Vec<Jwk>,
    /// Entries that could not be used, with the reason (unknown `kty`, bad material...).
    skipped: Vec<(Option<String>, JwkError)>,
}

/// Why no key was found for a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyLookupError {
    /// No usable key carries this `kid` (and the one-key fallback did not apply).
    #[error("no public key in the jwks has kid `{0}`")]
    UnknownKid(String),
    /// The token has no `kid` and the set does not hold exactly one key.
    #[error("token has no kid and the jwks does not hold exactly one key")]
    NoKidAmbiguous,
}

impl Jwks {
    /// Parses a JWKS document, or a bare JWK (accepted as a one-key set, as Go does).
    ///
    /// # Errors
    /// Not JSON, not an object, or no `keys` array. Individual unusable keys are skipped,
    /// not errors; see [`Jwks::skipped`].
    pub fn from_json(bytes: &[u8]) -> Result<Self, JwkError> {
        let value: Value = serde_json::from_slice(bytes).map_err(|_| JwkError::NotAnObject)?;
        let object = value.as_object().ok_or(JwkError::NotAnObject)?;
        if object.contains_key("kty") && !object.contains_key("keys") {
            return Ok(Self::from_entries(std::slice::from_ref(&value)));
        }
        let entries = object
            .get("keys")
            .and_then(Value::as_array)
            .ok_or(JwkError::NoKeysArray)?;
        Ok(Self::from_entries(entries))
    }

    fn from_entries(entries: &[Value]) -> Self {
        let mut set = Self::default();
        for entry in entries {
            let kid = entry.get("kid").and_then(Value::as_str).map(str::to_owned);
            match entry
                .as_object()
                .ok_or(JwkError::NotAnObject)
                .and_then(Jwk::from_object)
            {
                Ok(jwk) => set.keys.push(jwk),
                Err(error) => set.skipped.push((kid, error)),
            }
        }
        set
    }

    /// Builds a set from keys (used by tests and by in-process providers).
    pub fn from_keys(keys: Vec<Jwk>) -> Self {
        Self {
            keys,
            skipped: Vec::new(),
        }
    }

    /// The usable keys.
    pub fn keys(&self) -> &[Jwk] {
        &self.keys
    }

    /// The entries that were skipped, with their `kid` and the reason.
    pub fn skipped(&self) -> &[(Option<String>, JwkError)] {
        &self.skipped
    }

    /// Finds the key for a token's `kid` (wire-format.md §5.4 step 3): the first key with that
    /// exact `kid`; with no `kid`, the only key of a one-key set.
    ///
    /// # Errors
    /// [`KeyLookupError`].
    pub fn find(&self, kid: Option<&str>) -> Result<&Jwk, KeyLookupError> {
        match kid {
            Some(kid) if !kid.is_empty() => self
                .keys
                .iter()
                .find(|jwk| jwk.kid() == Some(kid))
                .ok_or_else(|| KeyLookupError::UnknownKid(kid.to_owned())),
            _ => match (self.keys.as_slice(), self.skipped.is_empty()) {
                ([only], true) => Ok(only),
                _ => Err(KeyLookupError::NoKidAmbiguous),
            },
        }
    }
}

impl Jwk {
    /// Wraps a key as a JWK with the given `kid` and `alg`.
    pub fn new(key: PublicKey, kid: Option<String>, alg: Option<Algorithm>) -> Self {
        Self {
            key,
            kid,
            alg: alg.map(|alg| alg.as_str().to_owned()),
        }
    }

    /// The public JWK object, as an issuer publishes it in its JWKS.
    pub fn to_object(&self) -> Map<String, Value> {
        let mut object = self.key.to_jwk_object(Algorithm::Rs256);
        match &self.alg {
            Some(alg) => object.insert("alg".into(), alg.clone().into()),
            None => object.remove("alg"),
        };
        if let Some(kid) = &self.kid {
            object.insert("kid".into(), kid.clone().into());
        }
        object
    }
}

impl Jwks {
    /// The JWKS document: `{"keys":[…]}`.
    pub fn to_json(&self) -> String {
        let keys: Vec<Value> = self
            .keys
            .iter()
            .map(|jwk| Value::Object(jwk.to_object()))
            .collect();
        let mut object = Map::new();
        object.insert("keys".into(), Value::Array(keys));
        crate::gojson::to_string(&Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7638 §3.1 example key; openpubkey's TestThumprintCalculation expects this value.
    #[test]
    fn rfc7638_thumbprint() {
        let jwk = serde_json::json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
            "alg": "RS256",
            "kid": "2011-04-29"
        });
        let key = PublicKey::from_jwk_object(jwk.as_object().unwrap_or(&Map::new()))
            .map(|key| key.thumbprint());
        assert_eq!(
            key.as_deref(),
            Ok("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs")
        );
    }

    #[test]
    fn jwks_keeps_known_keys_and_skips_unknown_types() {
        let text = br#"{"keys":[
            {"kty":"oct","k":"c2VjcmV0","kid":"hmac"},
            {"kty":"EC","crv":"P-384","x":"AA","y":"AA","kid":"p384"},
            {"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","kid":"ed","alg":"EdDSA"}
        ]}"#;
        let set = Jwks::from_json(text);
        assert!(set.is_ok());
        let set = set.unwrap_or_default();
        assert_eq!(set.keys().len(), 1);
        assert_eq!(set.skipped().len(), 2);
        assert!(set.find(Some("ed")).is_ok());
        assert_eq!(
            set.find(Some("hmac")),
            Err(KeyLookupError::UnknownKid("hmac".into()))
        );
        // A token with no kid may not pick the one usable key when other entries exist.
        assert_eq!(set.find(None), Err(KeyLookupError::NoKidAmbiguous));
    }

    #[test]
    fn bare_jwk_is_a_one_key_set_and_alg_defaults_to_rs256() {
        let text =
            br#"{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#;
        let set = Jwks::from_json(text).unwrap_or_default();
        let jwk = set.find(None);
        assert!(jwk.is_ok());
        // No alg means RS256, which an Ed25519 key does not fit.
        assert_eq!(jwk.map(Jwk::algorithm), Ok(Some(Algorithm::Rs256)));
        assert!(
            !set.keys()
                .iter()
                .any(|jwk| jwk.key().fits(Algorithm::Rs256))
        );
    }

    #[test]
    fn malformed_documents_are_errors() {
        assert_eq!(Jwks::from_json(b"[]"), Err(JwkError::NotAnObject));
        assert_eq!(Jwks::from_json(b"{\"keys\":5}"), Err(JwkError::NoKeysArray));
        assert_eq!(Jwks::from_json(b"\xff"), Err(JwkError::NotAnObject));
    }

    #[test]
    fn ec_coordinates_must_be_32_bytes() {
        let object = serde_json::json!({"kty":"EC","crv":"P-256","x":"AAAA","y":"AAAA"});
        let result = PublicKey::from_jwk_object(object.as_object().unwrap_or(&Map::new()));
        assert_eq!(result, Err(JwkError::InvalidKey("P-256")));
    }
}
