//! PK-token verification against one provider: the OP signature from the issuer's JWKS, the
//! CIC signature and commitment, audience, and the expiration policy (wire-format.md §5).
//!
//! The clock and the key set are arguments: fetching and caching JWKS is the verifier's job.

use crate::b64;
use crate::claims::Claims;
use crate::jwk::{Jwks, KeyLookupError, PublicKey};
use crate::jws::{Algorithm, Jws, JwsError};
use crate::pktoken::PkToken;
use serde_json::Value;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long a token stays valid (the third column of `/etc/opk/providers`, §5.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpirationPolicy {
    /// `12h`: `iat` + 12 hours; `exp` ignored.
    MaxAge12h,
    /// `24h`: `iat` + 24 hours; the library default.
    MaxAge24h,
    /// `48h`: `iat` + 48 hours.
    MaxAge48h,
    /// `1week`: `iat` + 7 days.
    MaxAge1Week,
    /// `oidc`: the token's own `exp`.
    Oidc,
    /// `oidc_refreshed`: `exp`, or the `exp` of a (verified) refreshed ID token.
    OidcRefreshed,
    /// `never`: no time check.
    Never,
}

/// An unknown expiration policy name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown expiration policy `{0}` (expected 12h, 24h, 48h, 1week, oidc, oidc_refreshed or never)"
)]
pub struct UnknownPolicy(pub String);

impl std::str::FromStr for ExpirationPolicy {
    type Err = UnknownPolicy;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name {
            "12h" => Ok(Self::MaxAge12h),
            "24h" => Ok(Self::MaxAge24h),
            "48h" => Ok(Self::MaxAge48h),
            "1week" => Ok(Self::MaxAge1Week),
            "oidc" => Ok(Self::Oidc),
            "oidc_refreshed" => Ok(Self::OidcRefreshed),
            "never" => Ok(Self::Never),
            other => Err(UnknownPolicy(other.to_owned())),
        }
    }
}

impl ExpirationPolicy {
    /// The providers-file spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MaxAge12h => "12h",
            Self::MaxAge24h => "24h",
            Self::MaxAge48h => "48h",
            Self::MaxAge1Week => "1week",
            Self::Oidc => "oidc",
            Self::OidcRefreshed => "oidc_refreshed",
            Self::Never => "never",
        }
    }

    fn max_age(self) -> Option<i64> {
        match self {
            Self::MaxAge12h => Some(12 * 3600),
            Self::MaxAge24h => Some(24 * 3600),
            Self::MaxAge48h => Some(48 * 3600),
            Self::MaxAge1Week => Some(7 * 24 * 3600),
            Self::Oidc | Self::OidcRefreshed | Self::Never => None,
        }
    }
}

impl std::fmt::Display for ExpirationPolicy {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// How far in the future a token's `iat` may be (clock skew between the OP and this host).
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(300);

/// Where the ID token carries the commitment to the CIC (wire-format.md §3.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Commitment {
    /// `nonce` equals the commitment: every browser OP.
    Nonce,
    /// `aud` equals the commitment and the token must be GQ-signed: GitHub and Forgejo Actions.
    Audience,
    /// The GQ header's `cic` equals the commitment and `aud` starts with the prefix: GitLab CI.
    GqBound {
        /// The required `aud` prefix, `OPENPUBKEY-PKTOKEN:` by default.
        audience_prefix: String,
    },
}

/// One configured provider: what a PK token must satisfy to be from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provider {
    issuer: String,
    client_id: String,
    expiration: ExpirationPolicy,
    commitment: Commitment,
}

const GITHUB_ACTIONS_ISSUER: &str = "https://token.actions.githubusercontent.com";

impl Provider {
    /// A provider as opkssh's server maps a providers-file row (Go: policy/providerloader.go):
    /// GitHub Actions and Forgejo Actions (issuer ending in `/api/actions`) commit through
    /// `aud` with GQ; every other issuer commits through `nonce` and checks the client id.
    pub fn new(issuer: &str, client_id: &str, expiration: ExpirationPolicy) -> Self {
        let commitment = if issuer == GITHUB_ACTIONS_ISSUER
            || issuer.trim_end_matches('/').ends_with("/api/actions")
        {
            Commitment::Audience
        } else {
            Commitment::Nonce
        };
        // Forgejo's verifier registers its issuer without a trailing slash (§5.8).
        let issuer = match commitment {
            Commitment::Audience => issuer.trim_end_matches('/'),
            Commitment::Nonce | Commitment::GqBound { .. } => issuer,
        };
        Self {
            issuer: issuer.to_owned(),
            client_id: client_id.to_owned(),
            expiration,
            commitment,
        }
    }

    /// The same provider with another commitment type.
    pub fn with_commitment(mut self, commitment: Commitment) -> Self {
        self.commitment = commitment;
        self
    }

    /// The exact issuer.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The client id (`aud` for nonce providers).
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The expiration policy.
    pub fn expiration(&self) -> ExpirationPolicy {
        self.expiration
    }

    /// The commitment type.
    pub fn commitment(&self) -> &Commitment {
        &self.commitment
    }

    fn gq_only(&self) -> bool {
        !matches!(self.commitment, Commitment::Nonce)
    }

    fn checks_client_id(&self) -> bool {
        matches!(self.commitment, Commitment::Nonce)
    }
}

/// Why a PK token was not accepted. Each variant names the failed check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The CIC claims or signature failed.
    #[error("cic: {0}")]
    Cic(crate::cic::CicError),
    /// `iss` is not the provider's issuer, byte for byte.
    #[error("issuer `{actual}` is not the configured issuer `{expected}`")]
    IssuerMismatch {
        /// The configured issuer.
        expected: String,
        /// The token's `iss`.
        actual: String,
    },
    /// The client id is not in `aud`.
    #[error("audience does not contain client id `{0}`")]
    AudienceMismatch(String),
    /// The OP `alg` is missing or not accepted.
    #[error("op signature: {0}")]
    OpAlgorithm(JwsError),
    /// The provider requires GQ256.
    #[error("non-GQ signatures are not supported for this provider")]
    GqRequired,
    /// The GQ `kid` does not decode to an RS256 header.
    #[error("gq256 original header is not a valid RS256 header")]
    GqOriginalHeader,
    /// No key for the token in the JWKS.
    #[error("{0}")]
    KeyLookup(KeyLookupError),
    /// The JWKS key is for another algorithm than the header's.
    #[error("jwks key `{kid}` is for {key_alg}, token is signed with {token_alg}")]
    KeyAlgorithmMismatch {
        /// The key's `kid`.
        kid: String,
        /// The key's algorithm (`alg`, RS256 if absent).
        key_alg: String,
        /// The token header's algorithm.
        token_alg: Algorithm,
    },
    /// The OP signature does not verify.
    #[error("op signature: {0}")]
    OpSignature(JwsError),
    /// The OP header is key-bound (`dpop+id_token`), which opkssh providers never accept.
    #[error("key-bound id tokens (typ dpop+id_token) are not accepted")]
    KeyBoundToken,
    /// The commitment to the CIC is missing or wrong.
    #[error("commitment mismatch: {0} does not commit to the cic")]
    CommitmentMismatch(&'static str),
    /// `iat` or `exp` needed by the policy is missing or not positive.
    #[error("claim `{0}` is missing or not greater than zero")]
    MissingTime(&'static str),
    /// The token is past its deadline under the policy.
    #[error("token expired under policy {policy}: deadline {deadline}, now {now}")]
    Expired {
        /// The policy applied.
        policy: ExpirationPolicy,
        /// The deadline, Unix seconds.
        deadline: i64,
        /// The time of the check, Unix seconds.
        now: i64,
    },
    /// `iat` is later than now plus [`MAX_CLOCK_SKEW`]. Go does not check this; a future
    /// `iat` would stretch a max-age window (`iat` + 24 h) past its length.
    #[error("token issued in the future: iat {iat}, now {now}")]
    IssuedInFuture {
        /// The token's `iat`.
        iat: i64,
        /// The time of the check, Unix seconds.
        now: i64,
    },
    /// `iat` + max age overflows.
    #[error("iat plus the policy's maximum age overflows")]
    TimeOverflow,
    /// The refreshed ID token is invalid. Go only reads its `exp`; we verify it.
    #[error("refreshed id token: {0}")]
    Refreshed(Box<VerifyError>),
    /// The refreshed ID token is for another subject or was issued before the original.
    #[error("refreshed id token does not match the original: {0}")]
    RefreshedMismatch(&'static str),
}

/// The checks [`PkToken::verify_at`] makes, in its order, so a caller can say which passed
/// before one failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VerifyCheck {
    /// The CIC is signed with the key it names (`upk`).
    ClientSignature,
    /// `iss` is the provider's issuer.
    Issuer,
    /// `aud` holds the client id (nonce providers only).
    Audience,
    /// The OP signature verifies with a JWKS key of the header's algorithm.
    OpSignature,
    /// The ID token commits to the CIC.
    Commitment,
    /// A refreshed ID token, if present, verifies and matches.
    RefreshedToken,
    /// The provider's expiration policy.
    Expiration,
}

impl VerifyCheck {
    /// Every check, in the order [`PkToken::verify_at`] makes them.
    pub const ORDER: [Self; 7] = [
        Self::ClientSignature,
        Self::Issuer,
        Self::Audience,
        Self::OpSignature,
        Self::Commitment,
        Self::RefreshedToken,
        Self::Expiration,
    ];
}

impl std::fmt::Display for VerifyCheck {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(match self {
            Self::ClientSignature => "client signature",
            Self::Issuer => "token issuer",
            Self::Audience => "audience",
            Self::OpSignature => "OP signature",
            Self::Commitment => "commitment",
            Self::RefreshedToken => "refreshed ID token",
            Self::Expiration => "expiration",
        })
    }
}

impl VerifyError {
    /// The check that failed.
    pub fn check(&self) -> VerifyCheck {
        match self {
            Self::Cic(_) => VerifyCheck::ClientSignature,
            Self::IssuerMismatch { .. } => VerifyCheck::Issuer,
            Self::AudienceMismatch(_) => VerifyCheck::Audience,
            Self::OpAlgorithm(_)
            | Self::GqRequired
            | Self::GqOriginalHeader
            | Self::KeyLookup(_)
            | Self::KeyAlgorithmMismatch { .. }
            | Self::OpSignature(_)
            | Self::KeyBoundToken => VerifyCheck::OpSignature,
            Self::CommitmentMismatch(_) => VerifyCheck::Commitment,
            Self::Refreshed(_) | Self::RefreshedMismatch(_) => VerifyCheck::RefreshedToken,
            Self::MissingTime(_)
            | Self::Expired { .. }
            | Self::IssuedInFuture { .. }
            | Self::TimeOverflow => VerifyCheck::Expiration,
        }
    }
}

/// A PK token that passed [`PkToken::verify_at`]. It has no other constructor, so holding one
/// proves the checks ran.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedPkToken {
    token: PkToken,
}

impl VerifiedPkToken {
    /// The verified token.
    pub fn token(&self) -> &PkToken {
        &self.token
    }

    /// The verified ID-token claims.
    pub fn claims(&self) -> &Claims {
        self.token.claims()
    }

    /// The user's public key that the OP committed to.
    pub fn upk(&self) -> &PublicKey {
        self.token.cic_claims().upk()
    }
}

fn unix_seconds(now: SystemTime) -> (i64, bool) {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let seconds = i64::try_from(since.as_secs()).unwrap_or(i64::MAX);
    (seconds, since.subsec_nanos() > 0)
}

/// Go compares `now > deadline` at nanosecond resolution against whole seconds (§5.5).
fn passed(now: SystemTime, deadline: i64) -> bool {
    let (seconds, fraction) = unix_seconds(now);
    seconds > deadline || (seconds == deadline && fraction)
}

fn positive(value: Option<i64>, name: &'static str) -> Result<i64, VerifyError> {
    value
        .filter(|value| *value > 0)
        .ok_or(VerifyError::MissingTime(name))
}

impl PkToken {
    /// The `kid` of the key the OP signature needs: the header `kid`, or for GQ256 the `kid`
    /// of the original header carried in the GQ `kid` (§4.5). Lets a caller refresh its JWKS
    /// before verifying when the key is unknown.
    pub fn op_key_id(&self) -> Option<String> {
        let op = self.op();
        match op.algorithm() {
            Ok(Algorithm::Gq256) => original_header(op)
                .ok()
                .and_then(|header| header.get("kid").and_then(Value::as_str).map(str::to_owned)),
            _ => op.header_str("kid").map(str::to_owned),
        }
    }

    /// The kid of the refreshed ID token's key, if there is one.
    pub fn refreshed_key_id(&self) -> Option<String> {
        self.refreshed_id_token()
            .and_then(|(jws, _)| jws.header_str("kid").map(str::to_owned))
    }

    /// Verifies the token as issued by `provider`, whose key set is `jwks`, at time `now`,
    /// in Go's order (wire-format.md §5.2): CIC signature, issuer, audience, OP signature,
    /// commitment, expiration; then, stricter than Go, any refreshed ID token.
    ///
    /// # Errors
    /// [`VerifyError`] naming the first failed check.
    pub fn verify_at(
        &self,
        now: SystemTime,
        provider: &Provider,
        jwks: &Jwks,
    ) -> Result<VerifiedPkToken, VerifyError> {
        let cic = self.cic_claims();
        cic.verify_signature(self.cic()).map_err(VerifyError::Cic)?;

        let claims = self.claims();
        if claims.issuer() != provider.issuer() {
            return Err(VerifyError::IssuerMismatch {
                expected: provider.issuer().to_owned(),
                actual: claims.issuer().to_owned(),
            });
        }
        let op = self.op();
        verify_op_signature(op, claims, provider, jwks)?;

        let committed = match provider.commitment() {
            Commitment::Nonce => claims.nonce().is_some_and(|nonce| cic.commits_to(nonce)),
            Commitment::Audience => claims
                .audience()
                .as_single()
                .is_some_and(|aud| cic.commits_to(aud)),
            Commitment::GqBound { audience_prefix } => {
                claims
                    .audience()
                    .as_single()
                    .is_some_and(|aud| aud.starts_with(audience_prefix.as_str()))
                    && op
                        .header_str("cic")
                        .is_some_and(|value| cic.commits_to(value))
            }
        };
        if !committed {
            return Err(VerifyError::CommitmentMismatch(
                match provider.commitment() {
                    Commitment::Nonce => "nonce",
                    Commitment::Audience => "aud",
                    Commitment::GqBound { .. } => "gq header cic",
                },
            ));
        }

        self.check_refreshed(provider, jwks)?;
        self.check_expiration(now, provider.expiration())?;
        Ok(VerifiedPkToken {
            token: self.clone(),
        })
    }

    fn check_expiration(
        &self,
        now: SystemTime,
        policy: ExpirationPolicy,
    ) -> Result<(), VerifyError> {
        let claims = self.claims();
        let (now_seconds, _) = unix_seconds(now);
        // Stricter than Go: an `iat` beyond the allowed clock skew is refused under every
        // policy that checks time.
        if policy != ExpirationPolicy::Never
            && let Some(iat) = claims.issued_at()
            && iat > now_seconds.saturating_add(MAX_CLOCK_SKEW.as_secs().try_into().unwrap_or(0))
        {
            return Err(VerifyError::IssuedInFuture {
                iat,
                now: now_seconds,
            });
        }
        let deadline = match policy {
            ExpirationPolicy::Never => return Ok(()),
            ExpirationPolicy::Oidc => positive(claims.expires_at(), "exp")?,
            ExpirationPolicy::OidcRefreshed => {
                let exp = positive(claims.expires_at(), "exp")?;
                if !passed(now, exp) {
                    return Ok(());
                }
                let Some((_, refreshed)) = self.refreshed_id_token() else {
                    return Err(VerifyError::Expired {
                        policy,
                        deadline: exp,
                        now: now_seconds,
                    });
                };
                positive(refreshed.expires_at(), "exp")
                    .map_err(|error| VerifyError::Refreshed(Box::new(error)))?
            }
            ExpirationPolicy::MaxAge12h
            | ExpirationPolicy::MaxAge24h
            | ExpirationPolicy::MaxAge48h
            | ExpirationPolicy::MaxAge1Week => {
                let iat = positive(claims.issued_at(), "iat")?;
                iat.checked_add(policy.max_age().unwrap_or(0))
                    .ok_or(VerifyError::TimeOverflow)?
            }
        };
        if passed(now, deadline) {
            return Err(VerifyError::Expired {
                policy,
                deadline,
                now: now_seconds,
            });
        }
        Ok(())
    }

    /// Go (opkssh) reads only the refreshed token's `exp`. A refreshed token that is present
    /// must here be a valid ID token of the same provider and subject, issued no earlier.
    fn check_refreshed(&self, provider: &Provider, jwks: &Jwks) -> Result<(), VerifyError> {
        let Some((refreshed, refreshed_claims)) = self.refreshed_id_token() else {
            return Ok(());
        };
        let wrap = |error: VerifyError| VerifyError::Refreshed(Box::new(error));
        if refreshed
            .algorithm()
            .map_err(|error| wrap(VerifyError::OpAlgorithm(error)))?
            == Algorithm::Gq256
        {
            return Err(wrap(VerifyError::OpAlgorithm(
                JwsError::UnsupportedAlgorithm("GQ256".into()),
            )));
        }
        if refreshed_claims.issuer() != provider.issuer() {
            return Err(wrap(VerifyError::IssuerMismatch {
                expected: provider.issuer().to_owned(),
                actual: refreshed_claims.issuer().to_owned(),
            }));
        }
        let nonce_provider = Provider {
            commitment: Commitment::Nonce,
            ..provider.clone()
        };
        verify_op_signature(refreshed, refreshed_claims, &nonce_provider, jwks).map_err(wrap)?;
        if refreshed_claims.subject() != self.claims().subject() {
            return Err(VerifyError::RefreshedMismatch("sub differs"));
        }
        if let (Some(original), Some(fresh)) =
            (self.claims().issued_at(), refreshed_claims.issued_at())
            && fresh < original
        {
            return Err(VerifyError::RefreshedMismatch("issued before the original"));
        }
        Ok(())
    }
}

fn original_header(op: &Jws) -> Result<serde_json::Map<String, Value>, VerifyError> {
    let segment = op.header_str("kid").ok_or(VerifyError::GqOriginalHeader)?;
    let bytes = b64::decode_url_strict(segment).map_err(|_| VerifyError::GqOriginalHeader)?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(header)) => Ok(header),
        _ => Err(VerifyError::GqOriginalHeader),
    }
}

/// §5.3: audience, algorithm, key lookup, signature. The algorithm is resolved before any
/// key is touched.
fn verify_op_signature(
    op: &Jws,
    claims: &Claims,
    provider: &Provider,
    jwks: &Jwks,
) -> Result<(), VerifyError> {
    if provider.checks_client_id() && !claims.audience().contains_client_id(provider.client_id()) {
        return Err(VerifyError::AudienceMismatch(
            provider.client_id().to_owned(),
        ));
    }
    let algorithm = op.algorithm().map_err(VerifyError::OpAlgorithm)?;
    if provider.gq_only() && algorithm != Algorithm::Gq256 {
        return Err(VerifyError::GqRequired);
    }
    if op.header_str("typ") == Some("dpop+id_token") {
        return Err(VerifyError::KeyBoundToken);
    }
    let kid = match algorithm {
        Algorithm::Gq256 => {
            let original = original_header(op)?;
            if original.get("alg").and_then(Value::as_str) != Some("RS256") {
                return Err(VerifyError::GqOriginalHeader);
            }
            original
                .get("kid")
                .and_then(Value::as_str)
                .map(str::to_owned)
        }
        Algorithm::Rs256 | Algorithm::Ps256 | Algorithm::Es256 | Algorithm::EdDsa => {
            op.header_str("kid").map(str::to_owned)
        }
    };
    let jwk = jwks.find(kid.as_deref()).map_err(VerifyError::KeyLookup)?;
    // GQ256 proves an RS256 signature, so the JWKS key must be an RS256 key.
    let expected = match algorithm {
        Algorithm::Gq256 => Algorithm::Rs256,
        other => other,
    };
    if jwk.algorithm() != Some(expected) {
        return Err(VerifyError::KeyAlgorithmMismatch {
            kid: jwk.kid().unwrap_or_default().to_owned(),
            key_alg: jwk.alg().unwrap_or("RS256").to_owned(),
            token_alg: algorithm,
        });
    }
    op.verify(jwk.key()).map_err(VerifyError::OpSignature)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_names_round_trip() {
        for name in [
            "12h",
            "24h",
            "48h",
            "1week",
            "oidc",
            "oidc_refreshed",
            "never",
        ] {
            let policy: ExpirationPolicy = name.parse().unwrap();
            assert_eq!(policy.as_str(), name);
        }
        assert_eq!(
            "1w".parse::<ExpirationPolicy>(),
            Err(UnknownPolicy("1w".into()))
        );
        assert_eq!(
            "OIDC".parse::<ExpirationPolicy>(),
            Err(UnknownPolicy("OIDC".into()))
        );
    }

    #[test]
    fn deadlines_compare_at_nanosecond_resolution() {
        let at = |seconds: u64, nanos: u32| UNIX_EPOCH + Duration::new(seconds, nanos);
        assert!(!passed(at(100, 0), 100));
        assert!(passed(at(100, 1), 100));
        assert!(passed(at(101, 0), 100));
        assert!(!passed(at(99, 999_999_999), 100));
    }

    #[test]
    fn actions_issuers_commit_through_aud() {
        let github = Provider::new(GITHUB_ACTIONS_ISSUER, "ignored", ExpirationPolicy::Oidc);
        assert_eq!(github.commitment(), &Commitment::Audience);
        let forgejo = Provider::new(
            "https://codeberg.org/api/actions/",
            "x",
            ExpirationPolicy::Oidc,
        );
        assert_eq!(forgejo.commitment(), &Commitment::Audience);
        assert_eq!(forgejo.issuer(), "https://codeberg.org/api/actions");
        let google = Provider::new("https://accounts.google.com", "x", ExpirationPolicy::Oidc);
        assert_eq!(google.commitment(), &Commitment::Nonce);
    }
}
