//! The PK token: one ID-token payload signed by the OP and by the user's key (the CIC), in the
//! compact form opkssh puts in certificates and the JWS JSON form (wire-format.md §2).

use crate::b64;
use crate::cic::{Cic, CicError};
use crate::claims::{Claims, ClaimsError};
use crate::gojson;
use crate::jws::{Jws, JwsError};
use serde_json::{Map, Value};
use sha3::{Digest as _, Sha3_256};

/// The largest PK token accepted, in either form. A GQ-signed token is about 6.5 KB and a
/// refreshed one adds 1-2 KB; the bound stops hostile inputs before any parsing.
pub const MAX_PK_TOKEN_LEN: usize = 64 * 1024;

/// The role of a signature, from its header's `typ` (wire-format.md §2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The OpenID provider (or the GQ proof that replaces its signature).
    Op,
    /// The client instance: the user's key.
    Cic,
    /// A cosigner; opkssh neither verifies nor rejects it.
    Cos,
}

impl std::fmt::Display for Role {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(match self {
            Self::Op => "OP",
            Self::Cic => "CIC",
            Self::Cos => "COS",
        })
    }
}

/// Why a PK token could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PkTokenError {
    /// Longer than [`MAX_PK_TOKEN_LEN`].
    #[error("pk token is {len} bytes, over the {MAX_PK_TOKEN_LEN}-byte limit")]
    TooLarge {
        /// The input length.
        len: usize,
    },
    /// The colon part does not have an odd number (at least 3) of segments.
    #[error("pk token has an invalid number of segments ({0})")]
    SegmentCount(usize),
    /// The part after the first `.` is not a three-segment compact JWT.
    #[error("invalid refreshed id token")]
    InvalidRefreshedIdToken,
    /// One signature's JWS is malformed.
    #[error("signature {index}: {error}")]
    Jws {
        /// Zero-based position of the signature.
        index: usize,
        /// What was wrong.
        error: JwsError,
    },
    /// A header `typ` that names no role.
    #[error("unrecognized signature type `{0}`")]
    UnrecognizedSignatureType(String),
    /// The same role signed twice. Go keeps the last OP signature; we refuse.
    #[error("duplicate {0} signature")]
    Duplicate(Role),
    /// A required signature is absent. Go crashes on a missing CIC; we refuse.
    #[error("missing {0} signature")]
    Missing(Role),
    /// The payload claims are malformed.
    #[error("payload: {0}")]
    Claims(ClaimsError),
    /// The refreshed ID token's claims are malformed.
    #[error("refreshed id token payload: {0}")]
    RefreshedClaims(ClaimsError),
    /// The CIC header breaks a CIC rule.
    #[error("{0}")]
    Cic(CicError),
    /// The JWS JSON form is malformed.
    #[error("pk token json: {0}")]
    Json(&'static str),
}

/// The compact form split into segments, nothing decoded yet (Go: pktoken/compact.go).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompactSegments<'a> {
    /// The shared payload segment.
    pub payload: &'a str,
    /// `(protected header, signature)` pairs in order.
    pub signatures: Vec<(&'a str, &'a str)>,
    /// The refreshed ID token after the first `.`, three segments.
    pub refreshed: Option<&'a str>,
}

/// Splits `payload:hdr:sig[:hdr:sig…][.refreshed]` (wire-format.md §2.2): the first `.` ends
/// the colon part; the colon part has an odd number (at least 3) of segments, any of which may
/// be empty; a refreshed part must have exactly three segments.
///
/// # Errors
/// [`PkTokenError::TooLarge`], [`PkTokenError::SegmentCount`],
/// [`PkTokenError::InvalidRefreshedIdToken`].
pub fn split_compact(text: &str) -> Result<CompactSegments<'_>, PkTokenError> {
    if text.len() > MAX_PK_TOKEN_LEN {
        return Err(PkTokenError::TooLarge { len: text.len() });
    }
    let (colon_part, refreshed) = match text.split_once('.') {
        Some((colon_part, refreshed)) => {
            if refreshed.split('.').count() != 3 {
                return Err(PkTokenError::InvalidRefreshedIdToken);
            }
            (colon_part, Some(refreshed))
        }
        None => (text, None),
    };
    let parts: Vec<&str> = colon_part.split(':').collect();
    let count = parts.len();
    let Some((payload, pairs)) = parts.split_first() else {
        return Err(PkTokenError::SegmentCount(0));
    };
    if count < 3 || count.is_multiple_of(2) {
        return Err(PkTokenError::SegmentCount(count));
    }
    let signatures = pairs
        .chunks_exact(2)
        .filter_map(|pair| match pair {
            [header, signature] => Some((*header, *signature)),
            _ => None,
        })
        .collect();
    Ok(CompactSegments {
        payload,
        signatures,
        refreshed,
    })
}

/// Joins segments into the compact form: the payload once, then each pair, with no trailing
/// `:` (the docs' trailing colon is a typo), then `.refreshed` if given.
pub fn join_compact(payload: &str, signatures: &[(&str, &str)], refreshed: Option<&str>) -> String {
    let mut out = payload.to_owned();
    for (header, signature) in signatures {
        out.push(':');
        out.push_str(header);
        out.push(':');
        out.push_str(signature);
    }
    if let Some(refreshed) = refreshed {
        out.push('.');
        out.push_str(refreshed);
    }
    out
}

/// Builds the compact form from whole compact JWS tokens that share one payload, as Go's
/// `BuildCompact` does.
///
/// # Errors
/// A token without exactly three segments, payloads that differ, a refreshed token without
/// exactly three segments, or no token at all.
pub fn build_compact(tokens: &[&str], refreshed: Option<&str>) -> Result<String, PkTokenError> {
    let mut payload: Option<&str> = None;
    let mut signatures = Vec::with_capacity(tokens.len());
    for token in tokens {
        let mut parts = token.split('.');
        let (Some(header), Some(token_payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(PkTokenError::SegmentCount(token.split('.').count()));
        };
        match payload {
            Some(first) if first != token_payload => {
                return Err(PkTokenError::Json("payloads in tokens are not the same"));
            }
            _ => payload = Some(token_payload),
        }
        signatures.push((header, signature));
    }
    if refreshed.is_some_and(|refreshed| refreshed.split('.').count() != 3) {
        return Err(PkTokenError::InvalidRefreshedIdToken);
    }
    let payload = payload.ok_or(PkTokenError::SegmentCount(0))?;
    Ok(join_compact(payload, &signatures, refreshed))
}

/// One signature of a PK token, with its optional unprotected header (JSON form only).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Signed {
    jws: Jws,
    unprotected: Option<Map<String, Value>>,
}

/// A parsed PK token. Parsed does not mean trusted: only
/// [`PkToken::verify_at`](crate::verify) makes a [`VerifiedPkToken`](crate::verify::VerifiedPkToken).
#[derive(Debug, Clone, PartialEq)]
pub struct PkToken {
    payload_segment: String,
    claims: Claims,
    op: Signed,
    cic: Signed,
    cic_claims: Cic,
    cos: Option<Signed>,
    refreshed: Option<(Jws, Claims)>,
}

#[derive(Default)]
struct Roles {
    op: Option<Signed>,
    cic: Option<Signed>,
    cos: Option<Signed>,
}

impl Roles {
    fn place(&mut self, role: Role, signed: Signed) -> Result<(), PkTokenError> {
        let slot = match role {
            Role::Op => &mut self.op,
            Role::Cic => &mut self.cic,
            Role::Cos => &mut self.cos,
        };
        if slot.is_some() {
            return Err(PkTokenError::Duplicate(role));
        }
        *slot = Some(signed);
        Ok(())
    }
}

/// Which serialization is being read: the two differ on an empty `typ` (§2.1).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Form {
    Compact,
    Json,
}

fn classify(jws: &Jws, form: Form) -> Result<Role, PkTokenError> {
    match jws.header_str("typ") {
        None | Some("JWT" | "dpop+id_token") => Ok(Role::Op),
        Some("") if form == Form::Compact => Ok(Role::Op),
        Some(typ) if typ.eq_ignore_ascii_case("at+jwt") => Ok(Role::Op),
        Some("CIC") => Ok(Role::Cic),
        Some("COS") => Ok(Role::Cos),
        Some(other) => Err(PkTokenError::UnrecognizedSignatureType(other.to_owned())),
    }
}

impl PkToken {
    fn assemble(
        payload_segment: &str,
        roles: Roles,
        refreshed: Option<Jws>,
    ) -> Result<Self, PkTokenError> {
        let op = roles.op.ok_or(PkTokenError::Missing(Role::Op))?;
        let cic = roles.cic.ok_or(PkTokenError::Missing(Role::Cic))?;
        let claims = Claims::from_segment(payload_segment).map_err(PkTokenError::Claims)?;
        let cic_claims = Cic::from_header(cic.jws.header()).map_err(PkTokenError::Cic)?;
        let refreshed = match refreshed {
            Some(jws) => {
                let claims = Claims::from_segment(jws.payload_segment())
                    .map_err(PkTokenError::RefreshedClaims)?;
                Some((jws, claims))
            }
            None => None,
        };
        Ok(Self {
            payload_segment: payload_segment.to_owned(),
            claims,
            op,
            cic,
            cic_claims,
            cos: roles.cos,
            refreshed,
        })
    }

    /// Parses the compact form `payload:hdr:sig:hdr:sig[:hdr:sig][.refreshed-id-token]`
    /// (wire-format.md §2.2; Go: pktoken/compact.go).
    ///
    /// # Errors
    /// [`PkTokenError`]; unlike Go, a duplicate role or a missing OP or CIC is an error.
    pub fn from_compact(text: &str) -> Result<Self, PkTokenError> {
        if text.len() > MAX_PK_TOKEN_LEN {
            return Err(PkTokenError::TooLarge { len: text.len() });
        }
        let segments = split_compact(text)?;
        let refreshed = match segments.refreshed {
            Some(refreshed) => {
                Some(Jws::parse(refreshed).map_err(|_| PkTokenError::InvalidRefreshedIdToken)?)
            }
            None => None,
        };
        let payload = segments.payload;
        let mut roles = Roles::default();
        for (index, (header, signature)) in segments.signatures.into_iter().enumerate() {
            let jws = Jws::from_segments(header, payload, signature)
                .map_err(|error| PkTokenError::Jws { index, error })?;
            let role = classify(&jws, Form::Compact)?;
            roles.place(
                role,
                Signed {
                    jws,
                    unprotected: None,
                },
            )?;
        }
        Self::assemble(payload, roles, refreshed)
    }

    /// The compact form. Order is OP, CIC, COS; the refreshed ID token follows a `.`.
    pub fn to_compact(&self) -> String {
        let signatures: Vec<(&str, &str)> = self
            .signatures()
            .map(|signed| (signed.jws.header_segment(), signed.jws.signature_segment()))
            .collect();
        let refreshed = self.refreshed.as_ref().map(|(jws, _)| jws.to_compact());
        join_compact(&self.payload_segment, &signatures, refreshed.as_deref())
    }

    /// Parses the RFC 7515 general JSON form (wire-format.md §2.3). It has no refreshed token.
    ///
    /// # Errors
    /// [`PkTokenError`].
    pub fn from_json(text: &str) -> Result<Self, PkTokenError> {
        if text.len() > MAX_PK_TOKEN_LEN {
            return Err(PkTokenError::TooLarge { len: text.len() });
        }
        let value: Value =
            serde_json::from_str(text).map_err(|_| PkTokenError::Json("not a JSON object"))?;
        let payload = value
            .get("payload")
            .and_then(Value::as_str)
            .ok_or(PkTokenError::Json("no payload string"))?;
        let signatures = value
            .get("signatures")
            .and_then(Value::as_array)
            .ok_or(PkTokenError::Json("no signatures array"))?;
        let mut roles = Roles::default();
        for (index, entry) in signatures.iter().enumerate() {
            let protected = entry
                .get("protected")
                .and_then(Value::as_str)
                .ok_or(PkTokenError::Json("signature without protected"))?;
            let signature = entry
                .get("signature")
                .and_then(Value::as_str)
                .ok_or(PkTokenError::Json("signature without signature"))?;
            let unprotected = match entry.get("header") {
                None => None,
                Some(Value::Object(map)) => Some(map.clone()),
                Some(_) => return Err(PkTokenError::Json("header is not an object")),
            };
            let jws = Jws::from_segments(protected, payload, signature)
                .map_err(|error| PkTokenError::Jws { index, error })?;
            let role = classify(&jws, Form::Json)?;
            roles.place(role, Signed { jws, unprotected })?;
        }
        Self::assemble(payload, roles, None)
    }

    /// The JSON form, member order exactly as Go writes it.
    pub fn to_json(&self) -> String {
        let mut out = format!(
            r#"{{"payload":{},"signatures":["#,
            gojson::to_string(&Value::String(self.payload_segment.clone()))
        );
        for (index, signed) in self.signatures().enumerate() {
            if index > 0 {
                out.push(',');
            }
            out.push_str(r#"{"protected":"#);
            out.push_str(&gojson::to_string(&Value::String(
                signed.jws.header_segment().to_owned(),
            )));
            if let Some(unprotected) = &signed.unprotected {
                out.push_str(r#","header":"#);
                out.push_str(&gojson::to_string(&Value::Object(unprotected.clone())));
            }
            out.push_str(r#","signature":"#);
            out.push_str(&gojson::to_string(&Value::String(
                signed.jws.signature_segment().to_owned(),
            )));
            out.push('}');
        }
        out.push_str("]}");
        out
    }

    /// `B64U(SHA3-256(to_json()))`, the token's hash (wire-format.md §2.4); it does not cover
    /// the refreshed ID token.
    pub fn hash(&self) -> String {
        b64::encode_url(Sha3_256::digest(self.to_json().as_bytes()))
    }

    fn signatures(&self) -> impl Iterator<Item = &Signed> {
        [Some(&self.op), Some(&self.cic), self.cos.as_ref()]
            .into_iter()
            .flatten()
    }

    /// Assembles a token from an ID token and the CIC signature over its payload.
    ///
    /// # Errors
    /// The two do not share a payload segment, or either breaks a PK-token rule.
    pub fn from_signatures(op: Jws, cic: Jws) -> Result<Self, PkTokenError> {
        if op.payload_segment() != cic.payload_segment() {
            return Err(PkTokenError::Json("payloads in tokens are not the same"));
        }
        if classify(&op, Form::Json)? != Role::Op {
            return Err(PkTokenError::Missing(Role::Op));
        }
        if classify(&cic, Form::Json)? != Role::Cic {
            return Err(PkTokenError::Missing(Role::Cic));
        }
        let payload = op.payload_segment().to_owned();
        let roles = Roles {
            op: Some(Signed {
                jws: op,
                unprotected: None,
            }),
            cic: Some(Signed {
                jws: cic,
                unprotected: None,
            }),
            cos: None,
        };
        Self::assemble(&payload, roles, None)
    }

    /// Attaches (or replaces) the refreshed ID token.
    ///
    /// # Errors
    /// Its payload is malformed.
    pub fn with_refreshed_id_token(mut self, refreshed: Jws) -> Result<Self, PkTokenError> {
        let claims = Claims::from_segment(refreshed.payload_segment())
            .map_err(PkTokenError::RefreshedClaims)?;
        self.refreshed = Some((refreshed, claims));
        Ok(self)
    }

    /// The shared payload segment.
    pub fn payload_segment(&self) -> &str {
        &self.payload_segment
    }

    /// The ID token's claims. Unverified until [`PkToken::verify_at`](crate::verify).
    pub fn claims(&self) -> &Claims {
        &self.claims
    }

    /// The OP signature's JWS (the ID token, or its GQ form).
    pub fn op(&self) -> &Jws {
        &self.op.jws
    }

    /// The CIC signature's JWS.
    pub fn cic(&self) -> &Jws {
        &self.cic.jws
    }

    /// The CIC claims.
    pub fn cic_claims(&self) -> &Cic {
        &self.cic_claims
    }

    /// The cosigner signature, if any.
    pub fn cos(&self) -> Option<&Jws> {
        self.cos.as_ref().map(|signed| &signed.jws)
    }

    /// The refreshed ID token and its claims, if any.
    pub fn refreshed_id_token(&self) -> Option<(&Jws, &Claims)> {
        self.refreshed.as_ref().map(|(jws, claims)| (jws, claims))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tooling_limits_come_first() {
        let huge = "a".repeat(MAX_PK_TOKEN_LEN + 1);
        assert_eq!(
            PkToken::from_compact(&huge),
            Err(PkTokenError::TooLarge {
                len: MAX_PK_TOKEN_LEN + 1
            })
        );
        assert_eq!(
            PkToken::from_json(&huge),
            Err(PkTokenError::TooLarge {
                len: MAX_PK_TOKEN_LEN + 1
            })
        );
    }

    /// openpubkey pktoken/compact_test.go TestBuildCompact and TestFromCompact
    /// (wire-format.md §2.2).
    #[test]
    fn go_compact_vectors() {
        let one = "MWZha2Vwcm90ZWN0ZWQ.ZmFrZSBwYXlsb2Fk.b25lIGZha2Ugc2ln";
        let two = "dHdvIGZha2UgcHJvdGVjdGVk.ZmFrZSBwYXlsb2Fk.dHdvIGZha2Ugc2ln";
        let refreshed = "cmVmcmVzaGVkIHByb3RlY3RlZA.cmVmcmVzaGVkIHBheWxvYWQ.cmVmcmVzaGVkIHNpZw";
        assert_eq!(
            build_compact(&[one], None).as_deref(),
            Ok("ZmFrZSBwYXlsb2Fk:MWZha2Vwcm90ZWN0ZWQ:b25lIGZha2Ugc2ln")
        );
        let both = "ZmFrZSBwYXlsb2Fk:MWZha2Vwcm90ZWN0ZWQ:b25lIGZha2Ugc2ln:dHdvIGZha2UgcHJvdGVjdGVk:dHdvIGZha2Ugc2ln";
        assert_eq!(build_compact(&[one, two], None).as_deref(), Ok(both));
        let with_refreshed = format!("{both}.{refreshed}");
        assert_eq!(
            build_compact(&[one, two], Some(refreshed)),
            Ok(with_refreshed.clone())
        );

        let split = split_compact(&with_refreshed).unwrap();
        assert_eq!(split.payload, "ZmFrZSBwYXlsb2Fk");
        assert_eq!(
            split.signatures,
            vec![
                ("MWZha2Vwcm90ZWN0ZWQ", "b25lIGZha2Ugc2ln"),
                ("dHdvIGZha2UgcHJvdGVjdGVk", "dHdvIGZha2Ugc2ln")
            ]
        );
        assert_eq!(split.refreshed, Some(refreshed));
        assert_eq!(
            join_compact(split.payload, &split.signatures, split.refreshed),
            with_refreshed
        );

        let other_payload = "MWZha2Vwcm90ZWN0ZWQ.b3RoZXI.b25lIGZha2Ugc2ln";
        assert!(build_compact(&[one, other_payload], None).is_err());
        assert!(build_compact(&["a.b"], None).is_err());
        assert_eq!(
            build_compact(&[one], Some("***=BAD!!!###")),
            Err(PkTokenError::InvalidRefreshedIdToken)
        );
        assert_eq!(
            build_compact(&[one], Some("BAD.REFRESHED.ID.TOKEN")),
            Err(PkTokenError::InvalidRefreshedIdToken)
        );
        assert_eq!(
            split_compact("ZmFrZSBwYXlsb2Fk:MWZha2Vwcm90ZWN0ZWQ").map(|_| ()),
            Err(PkTokenError::SegmentCount(2))
        );
        // An empty signature segment still counts (alg none, observed in vectors).
        assert_eq!(
            split_compact("p:h::c:s").map(|split| split.signatures.len()),
            Ok(2)
        );
    }

    #[test]
    fn segment_counts_follow_go() {
        assert_eq!(
            PkToken::from_compact("a:b"),
            Err(PkTokenError::SegmentCount(2))
        );
        assert_eq!(
            PkToken::from_compact("a"),
            Err(PkTokenError::SegmentCount(1))
        );
        assert_eq!(
            PkToken::from_compact("a:b:c:d"),
            Err(PkTokenError::SegmentCount(4))
        );
        assert_eq!(
            PkToken::from_compact("a:b:c.***=BAD!!!###"),
            Err(PkTokenError::InvalidRefreshedIdToken)
        );
        assert_eq!(
            PkToken::from_compact("a:b:c.BAD.REFRESHED.ID.TOKEN"),
            Err(PkTokenError::InvalidRefreshedIdToken)
        );
        assert_eq!(
            PkToken::from_compact("a:b:c."),
            Err(PkTokenError::InvalidRefreshedIdToken)
        );
    }

    fn header(json: &str) -> String {
        b64::encode_url(json)
    }

    #[test]
    fn typ_classification() {
        let payload = b64::encode_url(r#"{"iss":"i"}"#);
        let role = |typ: &str, form: Form| {
            let jws = Jws::from_segments(
                &header(&format!(r#"{{"alg":"RS256","typ":{typ}}}"#)),
                &payload,
                "",
            )
            .unwrap();
            classify(&jws, form)
        };
        assert_eq!(role(r#""JWT""#, Form::Compact), Ok(Role::Op));
        assert_eq!(role(r#""at+JWT""#, Form::Compact), Ok(Role::Op));
        assert_eq!(role(r#""dpop+id_token""#, Form::Compact), Ok(Role::Op));
        assert_eq!(role(r#""""#, Form::Compact), Ok(Role::Op));
        assert_eq!(
            role(r#""""#, Form::Json),
            Err(PkTokenError::UnrecognizedSignatureType(String::new()))
        );
        assert_eq!(role(r#""CIC""#, Form::Json), Ok(Role::Cic));
        assert_eq!(role(r#""COS""#, Form::Json), Ok(Role::Cos));
        assert_eq!(
            role(r#""jwt""#, Form::Compact),
            Err(PkTokenError::UnrecognizedSignatureType("jwt".into()))
        );
        assert_eq!(
            role(r#""cic""#, Form::Compact),
            Err(PkTokenError::UnrecognizedSignatureType("cic".into()))
        );
        assert_eq!(
            role(r#""JOSE""#, Form::Compact),
            Err(PkTokenError::UnrecognizedSignatureType("JOSE".into()))
        );
    }

    #[test]
    fn duplicates_and_missing_roles_are_errors() {
        let payload = b64::encode_url(r#"{"iss":"i"}"#);
        let op = header(r#"{"alg":"RS256","typ":"JWT"}"#);
        assert_eq!(
            PkToken::from_compact(&format!("{payload}:{op}:c2ln:{op}:c2ln")),
            Err(PkTokenError::Duplicate(Role::Op))
        );
        assert_eq!(
            PkToken::from_compact(&format!("{payload}:{op}:c2ln")),
            Err(PkTokenError::Missing(Role::Cic))
        );
    }
}
