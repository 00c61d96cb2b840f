//! opkssh certificates in an ssh-agent: which of the agent's identities are ours, which are
//! stale, adding a fresh one after the stale ones are gone, and removing them at logout.
//!
//! An identity is an opkssh certificate when its key blob is an OpenSSH certificate with the
//! `openpubkey-pkt` extension; the comment is not trusted for this. Stale ones are removed
//! before a new one is added because sshd counts every key the client offers against
//! `MaxAuthTries`, and ssh offers agent identities first: a few dead certificates can lock a
//! user out (security-and-openings.md).

use crate::agent::{Agent, AgentError, CertificateIdentity, Identity};
use crate::login::current_expiry;
use opk_core::claims::Claims;
use opk_core::escape;
use opk_core::jws::SigningKey;
use opk_core::pktoken::PkToken;
use opk_core::sshcert::ssh_key::{Certificate, HashAlg, public::KeyData};
use opk_core::sshcert::{EXTENSION_PK_TOKEN, OpksshCertificate};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The identity (`iss`, `sub`) and expiry a certificate's PK token claims; unverified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenFacts {
    /// `iss`.
    pub issuer: String,
    /// `sub`.
    pub subject: String,
    /// `exp` of the refreshed ID token if there is one, else of the original.
    pub expires_at: Option<i64>,
}

/// An opkssh certificate the agent holds.
#[derive(Debug, Clone)]
pub struct AgentCertificate {
    /// The identity's key blob: the certificate, as the agent names it.
    pub key_blob: Vec<u8>,
    /// The agent's comment, printable.
    pub comment: String,
    /// The subject key's SHA-256 fingerprint, as `ssh-add -l` shows it.
    pub fingerprint: String,
    /// The subject key.
    pub subject_key: KeyData,
    /// The certificate's `valid_before` (seconds since the epoch; `u64::MAX` is forever).
    pub valid_before: u64,
    /// What its PK token says, or why it could not be read.
    pub token: Result<TokenFacts, String>,
}

impl AgentCertificate {
    /// Reads an agent identity; `None` unless it is an OpenSSH certificate carrying a PK
    /// token.
    pub fn from_identity(identity: &Identity) -> Option<Self> {
        let certificate = Certificate::from_bytes(&identity.key_blob).ok()?;
        let compact = certificate.extensions().get(EXTENSION_PK_TOKEN)?;
        let token = PkToken::from_compact(compact)
            .map(|token| TokenFacts {
                issuer: token.claims().issuer().to_owned(),
                subject: token.claims().subject().to_owned(),
                expires_at: current_expiry(&token),
            })
            .map_err(|error| error.to_string());
        Some(Self {
            key_blob: identity.key_blob.clone(),
            comment: identity.printable_comment(),
            fingerprint: certificate
                .public_key()
                .fingerprint(HashAlg::Sha256)
                .to_string(),
            subject_key: certificate.public_key().clone(),
            valid_before: certificate.valid_before(),
            token,
        })
    }

    /// Why this certificate can no longer get anyone in, if it cannot: its `valid_before`
    /// or its ID token's `exp` has passed, or its PK token does not parse.
    pub fn dead_because(&self, now: SystemTime) -> Option<String> {
        let now = seconds_since_epoch(now);
        if self.valid_before <= now {
            return Some(format!(
                "the certificate expired {} s ago",
                now.saturating_sub(self.valid_before)
            ));
        }
        match &self.token {
            Err(error) => Some(format!("its PK token does not parse: {error}")),
            Ok(TokenFacts {
                expires_at: Some(expiry),
                ..
            }) if i128::from(*expiry) <= i128::from(now) => Some(format!(
                "its ID token expired {} s ago",
                i128::from(now).saturating_sub(i128::from(*expiry))
            )),
            Ok(_) => None,
        }
    }

    /// Whether the PK token names this issuer and subject.
    pub fn is_for(&self, issuer: &str, subject: &str) -> bool {
        self.token
            .as_ref()
            .is_ok_and(|facts| facts.issuer == issuer && facts.subject == subject)
    }
}

/// The opkssh certificates among an agent's identities, in the agent's order.
pub fn opkssh_certificates(identities: &[Identity]) -> Vec<AgentCertificate> {
    identities
        .iter()
        .filter_map(AgentCertificate::from_identity)
        .collect()
}

/// A certificate taken out of the agent (or that should have been), and why.
#[derive(Debug, Clone)]
pub struct Removal {
    /// The certificate.
    pub certificate: AgentCertificate,
    /// Why it was chosen.
    pub reason: String,
}

/// What a batch of removals did.
#[derive(Debug, Default)]
pub struct Removals {
    /// Removed.
    pub removed: Vec<Removal>,
    /// Refused by the agent and still in it.
    pub failed: Vec<(Removal, AgentError)>,
}

impl Removals {
    fn remove_all(agent: &mut Agent, chosen: Vec<Removal>) -> Result<Self, AgentError> {
        let mut outcome = Self::default();
        for removal in chosen {
            match agent.remove(&removal.certificate.key_blob) {
                Ok(()) => outcome.removed.push(removal),
                Err(error @ AgentError::Refused(_)) => outcome.failed.push((removal, error)),
                Err(error) => return Err(error),
            }
        }
        if !outcome.failed.is_empty() {
            // OpenSSH's agent refuses to remove what it does not hold, and an identity may
            // have left meanwhile (its lifetime ran out, another client removed it): only
            // what is still there has failed.
            let remaining = agent.identities()?;
            outcome.failed.retain(|(removal, _)| {
                remaining
                    .iter()
                    .any(|identity| identity.key_blob == removal.certificate.key_blob)
            });
        }
        Ok(outcome)
    }
}

/// The certificates that a new login for (`issuer`, `subject`) makes stale: every dead one,
/// and every other one for the same issuer and subject.
pub fn stale(
    certificates: &[AgentCertificate],
    issuer: &str,
    subject: &str,
    now: SystemTime,
) -> Vec<Removal> {
    certificates
        .iter()
        .filter_map(|certificate| {
            let reason = certificate.dead_because(now).or_else(|| {
                certificate
                    .is_for(issuer, subject)
                    .then(|| "an earlier certificate for the same identity".to_owned())
            })?;
            Some(Removal {
                certificate: certificate.clone(),
                reason,
            })
        })
        .collect()
}

/// The comment of an opkssh identity in the agent: `openpubkey <issuer> <email or sub>`, the
/// claims escaped ([`opk_core::escape::line`]) since `ssh-add -l` prints comments as they are.
pub fn identity_comment(claims: &Claims) -> String {
    format!(
        "openpubkey {} {}",
        escape::line(claims.issuer()),
        escape::line(claims.email().unwrap_or_else(|| claims.subject()))
    )
}

/// Seconds from `now` until `expiry`, at least 1 (an agent lifetime of 0 means none).
pub fn lifetime_until(expiry: i64, now: SystemTime) -> u32 {
    let remaining = i128::from(expiry).saturating_sub(i128::from(seconds_since_epoch(now)));
    u32::try_from(remaining.max(1)).unwrap_or(u32::MAX)
}

/// The lifetime an identity gets in the agent: `requested` (from `--lifetime`,
/// `agent_lifetime` or [`crate::duration::DEFAULT_AGENT_LIFETIME`]), cut to what is left of the
/// ID token (`expiry`, if the token has one), and at least 1 s. The cut keeps the agent from
/// offering a certificate that [`AgentCertificate::dead_because`] already calls dead and the
/// next login would evict.
pub fn agent_lifetime(requested: Duration, expiry: Option<i64>, now: SystemTime) -> u32 {
    let requested = u32::try_from(requested.as_secs())
        .unwrap_or(u32::MAX)
        .max(1);
    match expiry {
        Some(expiry) => requested.min(lifetime_until(expiry, now)),
        None => requested,
    }
}

/// What [`add_replacing_stale`] did.
#[derive(Debug)]
pub struct Added {
    /// The new identity's comment.
    pub comment: String,
    /// Its lifetime in the agent, in seconds; `None` under rules whose agent takes no lifetime
    /// (Windows'), where it stays until the next login finds it stale or logout removes it.
    pub lifetime: Option<u32>,
    /// The stale certificates dealt with first.
    pub removals: Removals,
}

/// Why [`add_replacing_stale`] failed, with the stale certificates it had already dealt with
/// (none when the agent could not even be listed).
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct AddError {
    /// What failed.
    #[source]
    pub error: AgentError,
    /// The removals made before it failed.
    pub removals: Removals,
}

impl From<AgentError> for AddError {
    fn from(error: AgentError) -> Self {
        Self {
            error,
            removals: Removals::default(),
        }
    }
}

/// Removes the stale opkssh certificates (see [`stale`]) from the agent, then adds `key` with
/// `certificate` for [`agent_lifetime`]`(requested, the ID token's exp)`, or without a lifetime
/// under rules whose agent takes none ([`Agent::with_rules`]). The removals come first in
/// either case, so under Windows' rules the certificates a login left behind go at the next
/// login.
///
/// # Errors
/// Listing or adding fails, or a removal fails other than by refusal.
pub fn add_replacing_stale(
    agent: &mut Agent,
    key: &SigningKey,
    certificate: &OpksshCertificate,
    pk_token: &PkToken,
    requested: Duration,
    now: SystemTime,
) -> Result<Added, AddError> {
    let claims = pk_token.claims();
    let existing = opkssh_certificates(&agent.identities()?);
    let chosen = stale(&existing, claims.issuer(), claims.subject(), now)
        .into_iter()
        .filter(|removal| removal.certificate.key_blob != certificate.as_bytes())
        .collect();
    let removals = Removals::remove_all(agent, chosen)?;
    let comment = identity_comment(claims);
    let requested = agent_lifetime(requested, current_expiry(pk_token), now);
    let added = agent.add_certificate(&CertificateIdentity {
        key,
        certificate,
        comment: &comment,
        lifetime: Some(requested),
    });
    match added {
        Ok(lifetime) => Ok(Added {
            comment,
            lifetime,
            removals,
        }),
        Err(error) => Err(AddError { error, removals }),
    }
}

/// Removes every opkssh certificate for which `chosen` is true.
///
/// # Errors
/// Listing fails, or a removal fails other than by refusal.
pub fn remove_where(
    agent: &mut Agent,
    mut chosen: impl FnMut(&AgentCertificate) -> bool,
    reason: &str,
) -> Result<Removals, AgentError> {
    let picked = opkssh_certificates(&agent.identities()?)
        .into_iter()
        .filter(|certificate| chosen(certificate))
        .map(|certificate| Removal {
            certificate,
            reason: reason.to_owned(),
        })
        .collect();
    Removals::remove_all(agent, picked)
}

fn seconds_since_epoch(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use super::*;
    use opk_core::b64;
    use opk_core::cic::CicHeader;
    use opk_core::jws::Jws;
    use opk_core::sshcert::{
        CertificateRequest, Principals, UserKeyType, build_certificate, generate_user_key,
    };
    use std::time::Duration;

    const NOW: u64 = 1_800_000_000;

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(NOW)
    }

    /// A PK token as a login makes it, signed by a throwaway ES256 "OP" key.
    fn pk_token(user_key: &SigningKey, issuer: &str, subject: &str, exp: i64) -> PkToken {
        let op_key = generate_user_key(UserKeyType::Ecdsa).unwrap();
        let cic = CicHeader::generate(user_key, &[]).unwrap();
        let payload = serde_json::json!({
            "iss": issuer, "sub": subject, "aud": "client", "iat": exp - 3600, "exp": exp,
            "nonce": cic.commitment(), "email": format!("{subject}@example.com"),
        });
        let op = Jws::sign(
            r#"{"alg":"ES256","kid":"k","typ":"JWT"}"#,
            &b64::encode_url(payload.to_string()),
            &op_key,
        )
        .unwrap();
        let cic_jws = cic.sign(op.payload_segment(), user_key).unwrap();
        PkToken::from_signatures(op, cic_jws).unwrap()
    }

    fn identity_with(pk_token: &str) -> Identity {
        let key = generate_user_key(UserKeyType::Ed25519).unwrap();
        let certificate = build_certificate(CertificateRequest {
            key: &key,
            key_id: "",
            principals: Principals::Default,
            pk_token,
            access_token: None,
        })
        .unwrap();
        Identity {
            key_blob: certificate.as_bytes().to_vec(),
            comment: b"openpubkey".to_vec(),
        }
    }

    fn login(issuer: &str, subject: &str, exp: i64) -> Identity {
        let key = generate_user_key(UserKeyType::Ecdsa).unwrap();
        let token = pk_token(&key, issuer, subject, exp);
        identity_with(&token.to_compact())
    }

    fn later(seconds: i64) -> i64 {
        i64::try_from(NOW).unwrap() + seconds
    }

    #[test]
    fn only_certificates_with_a_pk_token_are_ours() {
        let plain_key = Identity {
            key_blob: b"\0\0\0\x0bssh-ed25519\0\0\0\x20aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".to_vec(),
            comment: b"me@laptop".to_vec(),
        };
        let garbage = Identity {
            key_blob: vec![0xff; 40],
            comment: Vec::new(),
        };
        let ours = login("https://op.example", "alice", later(600));
        let found = opkssh_certificates(&[plain_key, garbage, ours.clone()]);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].key_blob, ours.key_blob);
        assert!(found[0].fingerprint.starts_with("SHA256:"));
        assert_eq!(
            found[0].token.as_ref().unwrap(),
            &TokenFacts {
                issuer: "https://op.example".into(),
                subject: "alice".into(),
                expires_at: Some(later(600)),
            }
        );
    }

    #[test]
    fn dead_certificates_say_why() {
        let live = AgentCertificate::from_identity(&login("i", "s", later(1))).unwrap();
        assert_eq!(live.dead_because(now()), None);
        let expired = AgentCertificate::from_identity(&login("i", "s", later(-90))).unwrap();
        assert_eq!(
            expired.dead_because(now()).as_deref(),
            Some("its ID token expired 90 s ago")
        );
        let at_exp = AgentCertificate::from_identity(&login("i", "s", later(0))).unwrap();
        assert!(at_exp.dead_because(now()).is_some());
        let unreadable =
            AgentCertificate::from_identity(&identity_with("header.payload:signature")).unwrap();
        assert!(
            unreadable
                .dead_because(now())
                .is_some_and(|why| why.starts_with("its PK token does not parse")),
            "{unreadable:?}"
        );
        let mut past_valid_before = live.clone();
        past_valid_before.valid_before = NOW - 5;
        assert_eq!(
            past_valid_before.dead_because(now()).as_deref(),
            Some("the certificate expired 5 s ago")
        );
    }

    #[test]
    fn a_new_login_makes_dead_ones_and_the_same_identitys_stale() {
        let identities = [
            login("https://a.example", "alice", later(3000)),
            login("https://a.example", "bob", later(3000)),
            login("https://b.example", "alice", later(3000)),
            login("https://a.example", "carol", later(-1)),
            login("https://a.example", "alice", later(100)),
        ];
        let certificates = opkssh_certificates(&identities);
        let chosen = stale(&certificates, "https://a.example", "alice", now());
        let picked: Vec<(&[u8], &str)> = chosen
            .iter()
            .map(|removal| {
                (
                    removal.certificate.key_blob.as_slice(),
                    removal.reason.as_str(),
                )
            })
            .collect();
        assert_eq!(
            picked,
            [
                (
                    identities[0].key_blob.as_slice(),
                    "an earlier certificate for the same identity"
                ),
                (
                    identities[3].key_blob.as_slice(),
                    "its ID token expired 1 s ago"
                ),
                (
                    identities[4].key_blob.as_slice(),
                    "an earlier certificate for the same identity"
                ),
            ]
        );
    }

    #[test]
    fn lifetime_is_what_is_left_of_the_token_and_at_least_a_second() {
        assert_eq!(lifetime_until(later(3599), now()), 3599);
        assert_eq!(lifetime_until(later(0), now()), 1);
        assert_eq!(lifetime_until(later(-100), now()), 1);
        assert_eq!(lifetime_until(i64::MAX, now()), u32::MAX);
        assert_eq!(lifetime_until(i64::MIN, now()), 1);
    }

    #[test]
    fn the_agent_lifetime_is_the_requested_one_cut_to_the_token() {
        let day = Duration::from_secs(86400);
        assert_eq!(agent_lifetime(day, Some(later(3600)), now()), 3600);
        assert_eq!(
            agent_lifetime(Duration::from_secs(5), Some(later(3600)), now()),
            5
        );
        assert_eq!(agent_lifetime(day, None, now()), 86400);
        assert_eq!(agent_lifetime(day, Some(later(-5)), now()), 1);
        assert_eq!(agent_lifetime(Duration::ZERO, None, now()), 1);
        assert_eq!(
            agent_lifetime(Duration::from_secs(u64::MAX), None, now()),
            u32::MAX
        );
    }

    #[test]
    fn the_comment_names_issuer_and_email_or_subject() {
        let key = generate_user_key(UserKeyType::Ecdsa).unwrap();
        let token = pk_token(&key, "https://op.example", "alice", later(10));
        assert_eq!(
            identity_comment(token.claims()),
            "openpubkey https://op.example alice@example.com"
        );
        let claims = Claims::from_object(
            serde_json::json!({"iss": "https://op.example", "sub": "1234", "aud": "c"})
                .as_object()
                .unwrap()
                .clone(),
        )
        .unwrap();
        assert_eq!(
            identity_comment(&claims),
            "openpubkey https://op.example 1234"
        );
        let claims = Claims::from_object(
            serde_json::json!({"iss": "https://op.example", "sub": "x\r\nopenpubkey\u{1b}[2K\u{202e}", "aud": "c"})
                .as_object()
                .unwrap()
                .clone(),
        )
        .unwrap();
        assert_eq!(
            identity_comment(&claims),
            "openpubkey https://op.example x\\r\\nopenpubkey\\x1b[2K\\u{202e}"
        );
    }
}
