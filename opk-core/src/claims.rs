//! ID-token payload claims, with the types Go's openpubkey parser enforces
//! (wire-format.md §5.1).

use crate::b64;
use serde_json::{Map, Value};

/// Why a payload was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimsError {
    /// The payload segment is not strict base64url.
    #[error("payload is not base64url")]
    NotBase64,
    /// The payload is not a JSON object.
    #[error("payload is not a JSON object")]
    NotAnObject,
    /// A typed claim has the wrong JSON type.
    #[error("claim `{0}` has the wrong type")]
    WrongType(&'static str),
    /// A claim Go reads case-insensitively appears in another letter case (`ISS`). Go would
    /// let it fill the standard claim; we refuse rather than guess which one is meant.
    #[error("claim `{0}` differs from a standard claim only in letter case")]
    AmbiguousName(String),
    /// `exp` or `iat` is not an integer that fits in 64 bits.
    #[error("claim `{0}` is not a 64-bit integer")]
    NotAnInteger(&'static str),
}

/// The `aud` claim: a string or an array of strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Audience {
    /// `"aud": "x"`.
    One(String),
    /// `"aud": ["x", "y"]`.
    Many(Vec<String>),
}

impl Audience {
    /// Go joins an array with `,` and splits again on `,` to look for the client id, so an
    /// element containing a comma is split too (wire-format.md §5.3 step 2).
    pub fn contains_client_id(&self, client_id: &str) -> bool {
        let joined = match self {
            Self::One(one) => one.clone(),
            Self::Many(many) => many.join(","),
        };
        !joined.is_empty() && joined.split(',').any(|item| item == client_id)
    }

    /// The single string audience, as the aud commitment requires (an array never matches).
    pub fn as_single(&self) -> Option<&str> {
        match self {
            Self::One(one) => Some(one),
            Self::Many(_) => None,
        }
    }
}

/// The claims of an ID token payload, checked for type.
#[derive(Debug, Clone, PartialEq)]
pub struct Claims {
    object: Map<String, Value>,
    issuer: String,
    subject: String,
    audience: Audience,
    expires_at: Option<i64>,
    issued_at: Option<i64>,
}

/// Claims whose names Go matches case-insensitively when it fills its typed struct.
const TYPED_CLAIMS: [&str; 14] = [
    "iss",
    "sub",
    "aud",
    "exp",
    "nbf",
    "iat",
    "jti",
    "email",
    "nonce",
    "preferred_username",
    "given_name",
    "family_name",
    "groups",
    "scopes",
];

impl Claims {
    /// Decodes and type-checks a payload segment.
    ///
    /// # Errors
    /// [`ClaimsError`] naming the claim.
    pub fn from_segment(segment: &str) -> Result<Self, ClaimsError> {
        let bytes = b64::decode_url_strict(segment).map_err(|_| ClaimsError::NotBase64)?;
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(object)) => Self::from_object(object),
            _ => Err(ClaimsError::NotAnObject),
        }
    }

    /// Type-checks a decoded payload object.
    ///
    /// # Errors
    /// [`ClaimsError`] naming the claim.
    pub fn from_object(object: Map<String, Value>) -> Result<Self, ClaimsError> {
        for name in object.keys() {
            let lower = name.to_ascii_lowercase();
            if lower != *name && TYPED_CLAIMS.contains(&lower.as_str()) {
                return Err(ClaimsError::AmbiguousName(name.clone()));
            }
        }
        for name in [
            "email",
            "nonce",
            "preferred_username",
            "given_name",
            "family_name",
            "iss",
            "sub",
        ] {
            if object.get(name).is_some_and(|value| !value.is_string()) {
                return Err(ClaimsError::WrongType(static_name(name)));
            }
        }
        for name in ["groups", "scopes"] {
            if let Some(value) = object.get(name) {
                let strings = value
                    .as_array()
                    .is_some_and(|items| items.iter().all(Value::is_string));
                if !strings {
                    return Err(ClaimsError::WrongType(static_name(name)));
                }
            }
        }
        if object.get("cnf").is_some_and(|cnf| {
            !cnf.as_object()
                .is_some_and(|cnf| cnf.get("jwk").is_none_or(Value::is_object))
        }) {
            return Err(ClaimsError::WrongType("cnf"));
        }
        let audience = match object.get("aud") {
            None => Audience::Many(Vec::new()),
            Some(Value::String(one)) => Audience::One(one.clone()),
            Some(Value::Array(items)) => Audience::Many(
                items
                    .iter()
                    .map(|item| {
                        item.as_str()
                            .map(str::to_owned)
                            .ok_or(ClaimsError::WrongType("aud"))
                    })
                    .collect::<Result<_, _>>()?,
            ),
            Some(_) => return Err(ClaimsError::WrongType("aud")),
        };
        let issuer = object
            .get("iss")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let subject = object
            .get("sub")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let expires_at = integer_claim(&object, "exp")?;
        let issued_at = integer_claim(&object, "iat")?;
        Ok(Self {
            object,
            issuer,
            subject,
            audience,
            expires_at,
            issued_at,
        })
    }

    /// `iss` (empty if absent).
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// `sub` (empty if absent).
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// `aud`.
    pub fn audience(&self) -> &Audience {
        &self.audience
    }

    /// `exp`, if present.
    pub fn expires_at(&self) -> Option<i64> {
        self.expires_at
    }

    /// `iat`, if present.
    pub fn issued_at(&self) -> Option<i64> {
        self.issued_at
    }

    /// A string claim.
    pub fn string(&self, name: &str) -> Option<&str> {
        self.object.get(name).and_then(Value::as_str)
    }

    /// `email`, if present.
    pub fn email(&self) -> Option<&str> {
        self.string("email")
    }

    /// `nonce`, if present.
    pub fn nonce(&self) -> Option<&str> {
        self.string("nonce")
    }

    /// Every claim, for policy rules on arbitrary claims.
    pub fn object(&self) -> &Map<String, Value> {
        &self.object
    }
}

fn static_name(name: &str) -> &'static str {
    TYPED_CLAIMS
        .iter()
        .copied()
        .find(|known| *known == name)
        .unwrap_or("claim")
}

fn integer_claim(
    object: &Map<String, Value>,
    name: &'static str,
) -> Result<Option<i64>, ClaimsError> {
    match object.get(name) {
        None => Ok(None),
        Some(Value::Number(number)) => number
            .as_i64()
            .map(Some)
            .ok_or(ClaimsError::NotAnInteger(name)),
        Some(_) => Err(ClaimsError::NotAnInteger(name)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(value: Value) -> Result<Claims, ClaimsError> {
        Claims::from_object(value.as_object().cloned().unwrap_or_default())
    }

    #[test]
    fn accepts_what_go_accepts() {
        let parsed = claims(json!({
            "iss": "https://op", "sub": "me", "aud": ["a", "b,c"], "exp": 4102444800_i64, "iat": 1,
            "email_verified": "true", "https://acme.example/groups": ["ops"], "groups": ["x"]
        }))
        .unwrap();
        assert!(parsed.audience().contains_client_id("c"));
        assert!(!parsed.audience().contains_client_id("b,c"));
        assert_eq!(parsed.audience().as_single(), None);
        assert_eq!(parsed.expires_at(), Some(4102444800));
        assert!(claims(json!({"iss": "i"})).is_ok());
    }

    #[test]
    fn refuses_what_go_refuses() {
        assert_eq!(
            claims(json!({"exp": 1.7e9})),
            Err(ClaimsError::NotAnInteger("exp"))
        );
        assert_eq!(
            claims(json!({"iat": 12.5})),
            Err(ClaimsError::NotAnInteger("iat"))
        );
        assert_eq!(
            claims(json!({"exp": "1"})),
            Err(ClaimsError::NotAnInteger("exp"))
        );
        assert_eq!(
            claims(json!({"groups": "admins"})),
            Err(ClaimsError::WrongType("groups"))
        );
        assert_eq!(
            claims(json!({"groups": [1]})),
            Err(ClaimsError::WrongType("groups"))
        );
        assert_eq!(
            claims(json!({"email": true})),
            Err(ClaimsError::WrongType("email"))
        );
        assert_eq!(
            claims(json!({"aud": 5})),
            Err(ClaimsError::WrongType("aud"))
        );
        assert_eq!(
            claims(json!({"cnf": {"jwk": 1}})),
            Err(ClaimsError::WrongType("cnf"))
        );
        assert_eq!(
            claims(json!({"exp": 18446744073709551615_u64})),
            Err(ClaimsError::NotAnInteger("exp"))
        );
    }

    #[test]
    fn refuses_case_variants_of_standard_claims() {
        assert_eq!(
            claims(json!({"ISS": "x", "iss": "y"})),
            Err(ClaimsError::AmbiguousName("ISS".into()))
        );
        assert!(claims(json!({"Department": "x"})).is_ok());
    }

    #[test]
    fn empty_audience_matches_nothing() {
        assert!(!Audience::One(String::new()).contains_client_id(""));
        assert!(!Audience::Many(Vec::new()).contains_client_id(""));
    }
}
