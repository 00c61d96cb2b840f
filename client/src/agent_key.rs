//! `--agent-key`: the user key lives only in the user's ssh-agent, and that agent makes every
//! signature with it.
//!
//! Agents that keep keys in hardware (Secretive in the Secure Enclave, a YubiKey through a PIV
//! agent, 1Password) hold ECDSA P-256 or Ed25519 keys and sign what they are given. The PK
//! token's client (CIC) signature is ES256 or EdDSA over the JWS signing input, and the
//! certificate's self-signature is an SSH signature: both are what such an agent makes, so
//! [`find_agent_key`] gives a [`SigningKey::External`] that `opk_core` signs with through
//! the agent ([`opk_core::external`] re-encodes and checks each signature). The resulting PK
//! token and certificate have the same bytes as with an in-memory key.
//!
//! The key is found by its SHA-256 fingerprint as `ssh-add -l` prints it (`SHA256:` and 43
//! base64 characters). Keys that cannot make those signatures are refused, each with its
//! reason ([`Unusable`]): security-key (`sk-`) keys, RSA, ECDSA on other curves, DSA, and
//! certificates.
//!
//! Every signature is one connection to the agent, so an agent restarted at the same path is
//! found again; a key removed from it fails the next signature with the agent's refusal.
//!
//! ```no_run
//! use opk_client::agent_key::find_agent_key;
//! use opk_core::sshcert::{CertComment, generate_user_key};
//! use std::path::Path;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let agent = Path::new("/run/user/1000/ssh-agent.socket");
//! let key = find_agent_key(agent, "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU")?;
//! // `key` now goes where a generated key would: `opk_client::log_in(&provider, key, ..)`,
//! // then `opk_client::certificate(&identity.key, ..)`; the agent signs both.
//! # let _ = key;
//! # Ok(())
//! # }
//! ```

use crate::agent::{Agent, AgentError};
use opk_core::external::{ExternalKey, ExternalSigner, SignError};
use opk_core::jwk::PublicKey;
use opk_core::jws::SigningKey;
use opk_core::sshcert::ssh_key::encoding::{Decode as _, Encode as _, Reader as _};
use opk_core::sshcert::ssh_key::public::KeyData;
use opk_core::sshcert::ssh_key::{Certificate, EcdsaCurve};
use sha2::{Digest as _, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The prefix of a SHA-256 key fingerprint.
const FINGERPRINT_PREFIX: &str = "SHA256:";

/// Why a key the agent holds cannot be an opkssh user key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unusable {
    /// A FIDO security key (`sk-ecdsa-sha2-nistp256@openssh.com`, `sk-ssh-ed25519@openssh.com`):
    /// its signature covers the application hash, flags and counter besides the data
    /// (PROTOCOL.u2f), so it is not an ES256 or EdDSA signature over the data.
    SecurityKey(String),
    /// RSA (`ssh-rsa`).
    Rsa,
    /// ECDSA on a curve other than P-256 (the SSH curve name, `nistp384` or `nistp521`).
    Curve(String),
    /// DSA (`ssh-dss`).
    Dsa,
    /// A certificate (its type name): the agent holds this key only with a certificate.
    Certificate(String),
    /// Any other key type (its name, escaped and cut).
    Other(String),
}

impl std::fmt::Display for Unusable {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::SecurityKey(kind) => write!(
                formatter,
                "it is a security-key key (`{kind}`); security-key keys sign with a different \
                 message format, which JWS cannot carry"
            ),
            Self::Rsa => formatter.write_str(
                "it is an RSA key; opkssh user keys are ECDSA P-256 or Ed25519, because the PK \
                 token's client signature is ES256 or EdDSA",
            ),
            Self::Curve(curve) => write!(
                formatter,
                "it is an ECDSA key on {curve}; only P-256 keys make ES256 signatures"
            ),
            Self::Dsa => {
                formatter.write_str("it is a DSA key; opkssh user keys are ECDSA P-256 or Ed25519")
            }
            Self::Certificate(kind) => write!(
                formatter,
                "the agent holds it only as a certificate (`{kind}`); add the key itself to the \
                 agent with ssh-add"
            ),
            Self::Other(kind) => write!(
                formatter,
                "its type `{kind}` is neither ECDSA P-256 nor Ed25519"
            ),
        }
    }
}

/// Why `--agent-key` could not be used.
#[derive(Debug, thiserror::Error)]
pub enum AgentKeyError {
    /// The text is not a SHA-256 fingerprint.
    #[error(
        "`{0}` is not a SHA256 key fingerprint; give it as `ssh-add -l` prints it: SHA256: and 43 base64 characters"
    )]
    Fingerprint(String),
    /// Talking to the agent failed.
    #[error(transparent)]
    Agent(#[from] AgentError),
    /// The agent holds no key with that fingerprint.
    #[error(
        "the ssh-agent at {path} holds no key {fingerprint} (`ssh-add -l` lists the keys it holds)"
    )]
    NotFound {
        /// The agent's socket.
        path: PathBuf,
        /// The fingerprint asked for.
        fingerprint: String,
    },
    /// The key exists but cannot make the signatures opkssh needs.
    #[error("the ssh-agent's key {fingerprint} cannot be an opkssh user key: {reason}")]
    Unusable {
        /// The fingerprint.
        fingerprint: String,
        /// Why.
        reason: Unusable,
    },
    /// The agent listed the key with a blob that does not decode as its type says.
    #[error("the ssh-agent's key {fingerprint} is malformed: {reason}")]
    Malformed {
        /// The fingerprint.
        fingerprint: String,
        /// What is wrong.
        reason: &'static str,
    },
}

/// The SHA-256 fingerprint of an SSH public key blob as OpenSSH prints it: `SHA256:` and the
/// unpadded standard base64 of the digest.
pub fn fingerprint(key_blob: &[u8]) -> String {
    let digest = Sha256::digest(key_blob);
    format!(
        "{FINGERPRINT_PREFIX}{}",
        opk_core::b64::encode_std(digest).trim_end_matches('=')
    )
}

/// Checks the form of a fingerprint given by a person: `SHA256:` then 43 characters of the
/// standard base64 alphabet (32 bytes, unpadded). Surrounding white space is ignored.
fn parse_fingerprint(text: &str) -> Result<String, AgentKeyError> {
    let trimmed = text.trim();
    let well_formed = trimmed
        .strip_prefix(FINGERPRINT_PREFIX)
        .is_some_and(|digits| {
            digits.len() == 43
                && digits
                    .bytes()
                    .all(|byte| byte.is_ascii_alphanumeric() || byte == b'+' || byte == b'/')
        });
    if well_formed {
        Ok(trimmed.to_owned())
    } else {
        Err(AgentKeyError::Fingerprint(
            opk_core::escape::line(text).into_owned(),
        ))
    }
}

/// The SSH type name an identity blob starts with, if it has one.
fn type_name(key_blob: &[u8]) -> Option<String> {
    let mut reader = key_blob;
    let name = Vec::<u8>::decode(&mut reader).ok()?;
    Some(String::from_utf8_lossy(&name).into_owned())
}

/// The fingerprint `ssh-add -l` shows for an identity: of the blob, or for a certificate of
/// the key inside it (OpenSSH fingerprints certificates by their plain key).
fn listed_fingerprint(key_blob: &[u8]) -> String {
    let plain = type_name(key_blob)
        .filter(|name| name.ends_with("-cert-v01@openssh.com"))
        .and_then(|_| Certificate::from_bytes(key_blob).ok())
        .and_then(|certificate| certificate.public_key().encode_vec().ok());
    fingerprint(plain.as_deref().unwrap_or(key_blob))
}

/// Reads an identity's key blob as an opkssh user key, or says why it cannot be one.
///
/// # Errors
/// [`AgentKeyError::Unusable`] with the reason, [`AgentKeyError::Malformed`].
pub fn user_key_from_blob(key_blob: &[u8]) -> Result<PublicKey, AgentKeyError> {
    let fingerprint = listed_fingerprint(key_blob);
    let malformed = |reason| AgentKeyError::Malformed {
        fingerprint: fingerprint.clone(),
        reason,
    };
    let name = type_name(key_blob).ok_or_else(|| malformed("no key type name"))?;
    let unusable = |reason| AgentKeyError::Unusable {
        fingerprint: fingerprint.clone(),
        reason,
    };
    let shown = || {
        opk_core::escape::line(&name)
            .chars()
            .take(64)
            .collect::<String>()
    };
    match name.as_str() {
        "ecdsa-sha2-nistp256" | "ssh-ed25519" => {}
        kind if kind.ends_with("-cert-v01@openssh.com") => {
            return Err(unusable(Unusable::Certificate(shown())));
        }
        kind if kind.starts_with("sk-") => return Err(unusable(Unusable::SecurityKey(shown()))),
        "ssh-rsa" => return Err(unusable(Unusable::Rsa)),
        "ssh-dss" => return Err(unusable(Unusable::Dsa)),
        "ecdsa-sha2-nistp384" => return Err(unusable(Unusable::Curve("nistp384".into()))),
        "ecdsa-sha2-nistp521" => return Err(unusable(Unusable::Curve("nistp521".into()))),
        _ => return Err(unusable(Unusable::Other(shown()))),
    }
    let mut reader = key_blob;
    let data = KeyData::decode(&mut reader).map_err(|_| malformed("the key does not decode"))?;
    if !reader.is_finished() {
        return Err(malformed("bytes after the key"));
    }
    match &data {
        KeyData::Ecdsa(key) if key.curve() == EcdsaCurve::NistP256 => key
            .try_into()
            .map(PublicKey::EcdsaP256)
            .map_err(|_| malformed("not a valid P-256 point")),
        KeyData::Ed25519(key) => key
            .try_into()
            .map(PublicKey::Ed25519)
            .map_err(|_| malformed("not a valid Ed25519 key")),
        // The type name said P-256 or Ed25519 and KeyData decodes by that name.
        _ => Err(malformed("the key's fields do not match its type name")),
    }
}

/// Finds the key with `fingerprint` (`SHA256:…`, as `ssh-add -l` prints it) in the agent at
/// `agent_path` and returns it as a user key that agent signs for.
///
/// A plain key is preferred to a certificate with the same fingerprint; a fingerprint that
/// only a certificate has is refused ([`Unusable::Certificate`]).
///
/// # Errors
/// [`AgentKeyError`]: a malformed fingerprint, the agent unreachable or failing, no such key,
/// or a key type that cannot sign ES256 or EdDSA.
pub fn find_agent_key(agent_path: &Path, fingerprint: &str) -> Result<SigningKey, AgentKeyError> {
    let wanted = parse_fingerprint(fingerprint)?;
    let identities = Agent::connect(agent_path)?.identities()?;
    let mut matches: Vec<_> = identities
        .into_iter()
        .filter(|identity| listed_fingerprint(&identity.key_blob) == wanted)
        .collect();
    // The plain key first: it is what the agent signs with, and `ssh-add -l` lists the key
    // and its certificates under one fingerprint.
    matches.sort_by_key(|identity| {
        type_name(&identity.key_blob).is_some_and(|name| name.ends_with("-cert-v01@openssh.com"))
    });
    let identity = matches
        .into_iter()
        .next()
        .ok_or_else(|| AgentKeyError::NotFound {
            path: agent_path.to_owned(),
            fingerprint: wanted.clone(),
        })?;
    let public = user_key_from_blob(&identity.key_blob)?;
    let signer = AgentSigner {
        path: agent_path.to_owned(),
        key_blob: identity.key_blob,
        fingerprint: wanted,
    };
    ExternalKey::new(public, Arc::new(signer))
        .map(SigningKey::External)
        // `user_key_from_blob` gives only P-256 and Ed25519 keys, which `new` takes.
        .map_err(|_| AgentKeyError::Unusable {
            fingerprint: fingerprint.trim().to_owned(),
            reason: Unusable::Rsa,
        })
}

/// Signs through the agent at `path` with the key `key_blob`, one connection per signature.
struct AgentSigner {
    path: PathBuf,
    key_blob: Vec<u8>,
    fingerprint: String,
}

impl ExternalSigner for AgentSigner {
    fn sign_ssh(&self, data: &[u8]) -> Result<Vec<u8>, SignError> {
        // Flags 0: the SSH_AGENT_RSA_SHA2_* flags concern RSA keys only.
        Agent::connect(&self.path)
            .and_then(|mut agent| agent.sign(&self.key_blob, data, 0))
            .map_err(|error| {
                SignError::Holder(format!("{} could not sign: {error}", self.describe()))
            })
    }

    fn describe(&self) -> String {
        format!("the ssh-agent key {}", self.fingerprint)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use super::*;
    use opk_core::sshcert::ssh_key::public::{
        EcdsaPublicKey, Ed25519PublicKey, SkEcdsaSha2NistP256, SkEd25519,
    };
    use opk_core::sshcert::{UserKeyType, generate_user_key};

    fn blob_of(data: &KeyData) -> Vec<u8> {
        data.encode_vec().unwrap()
    }

    fn user_blob(kind: UserKeyType) -> (Vec<u8>, PublicKey) {
        let key = generate_user_key(kind).unwrap();
        let public = key.public_key();
        let data = match &public {
            PublicKey::EcdsaP256(key) => KeyData::Ecdsa(EcdsaPublicKey::from(key)),
            PublicKey::Ed25519(key) => KeyData::Ed25519(Ed25519PublicKey::from(key)),
            PublicKey::Rsa(_) => unreachable!(),
        };
        (blob_of(&data), public)
    }

    fn reason(blob: &[u8]) -> Unusable {
        match user_key_from_blob(blob) {
            Err(AgentKeyError::Unusable { reason, .. }) => reason,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn p256_and_ed25519_keys_are_read() {
        for kind in [UserKeyType::Ecdsa, UserKeyType::Ed25519] {
            let (blob, public) = user_blob(kind);
            assert_eq!(user_key_from_blob(&blob).unwrap(), public);
            let mut trailing = blob.clone();
            trailing.push(0);
            assert!(matches!(
                user_key_from_blob(&trailing),
                Err(AgentKeyError::Malformed {
                    reason: "bytes after the key",
                    ..
                })
            ));
        }
    }

    #[test]
    fn security_keys_are_refused_with_the_reason() {
        // Built with ssh-key's encoder, as an agent holding such a key lists it; no hardware
        // is needed to make the blob (sk keys cannot be generated here).
        let ed = Ed25519PublicKey([7; 32]);
        let sk_ed = KeyData::SkEd25519(SkEd25519::new(ed, "ssh:"));
        let (p256_blob, _) = user_blob(UserKeyType::Ecdsa);
        let KeyData::Ecdsa(EcdsaPublicKey::NistP256(point)) =
            KeyData::decode(&mut p256_blob.as_slice()).unwrap()
        else {
            unreachable!()
        };
        let sk_ecdsa = KeyData::SkEcdsaSha2NistP256(SkEcdsaSha2NistP256::new(point, "ssh:"));
        for (data, name) in [
            (sk_ed, "sk-ssh-ed25519@openssh.com"),
            (sk_ecdsa, "sk-ecdsa-sha2-nistp256@openssh.com"),
        ] {
            let blob = blob_of(&data);
            assert_eq!(reason(&blob), Unusable::SecurityKey(name.into()));
            let message = user_key_from_blob(&blob).unwrap_err().to_string();
            assert!(
                message.contains(
                    "security-key keys sign with a different message format, which JWS cannot carry"
                ),
                "{message}"
            );
            assert!(message.contains(&fingerprint(&blob)), "{message}");
        }
    }

    #[test]
    fn other_types_are_refused_by_name() {
        let typed = |name: &str| {
            let mut blob = Vec::new();
            name.as_bytes().encode(&mut blob).unwrap();
            b"rest".as_slice().encode(&mut blob).unwrap();
            blob
        };
        assert_eq!(reason(&typed("ssh-rsa")), Unusable::Rsa);
        assert_eq!(reason(&typed("ssh-dss")), Unusable::Dsa);
        assert_eq!(
            reason(&typed("ecdsa-sha2-nistp384")),
            Unusable::Curve("nistp384".into())
        );
        assert_eq!(
            reason(&typed("ecdsa-sha2-nistp521")),
            Unusable::Curve("nistp521".into())
        );
        assert_eq!(
            reason(&typed("ssh-ed25519-cert-v01@openssh.com")),
            Unusable::Certificate("ssh-ed25519-cert-v01@openssh.com".into())
        );
        assert_eq!(
            reason(&typed("evil\n\u{1b}[2J")),
            Unusable::Other("evil\\n\\x1b[2J".into())
        );
        assert!(matches!(
            user_key_from_blob(&[0, 0, 0, 9, 1]),
            Err(AgentKeyError::Malformed { .. })
        ));
        // A P-256 name over fields that are not a point.
        let mut bad_point = typed("ecdsa-sha2-nistp256");
        bad_point.truncate(bad_point.len() - 8);
        b"nistp256".as_slice().encode(&mut bad_point).unwrap();
        [4_u8; 65].as_slice().encode(&mut bad_point).unwrap();
        assert!(matches!(
            user_key_from_blob(&bad_point),
            Err(AgentKeyError::Malformed { .. })
        ));
    }

    #[test]
    fn fingerprints_are_openssh_s() {
        // SHA-256 of no bytes, unpadded standard base64 (the real agent's keys are checked
        // against `ssh-add -l` in tests/tests/agent_key.rs).
        let blob = [0_u8; 0];
        assert_eq!(
            fingerprint(&blob),
            "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU"
        );
        assert!(parse_fingerprint(" SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU\n").is_ok());
        for bad in [
            "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU",
            "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
            "sha256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU",
            "MD5:d4:1d:8c:d9:8f:00:b2:04:e9:80:09:98:ec:f8:42:7e",
            "SHA256:47DEQpj8HBSa-_TImW+5JCeuQeRkm5NMpJWZG3hSuFU",
            "",
        ] {
            assert!(
                matches!(parse_fingerprint(bad), Err(AgentKeyError::Fingerprint(_))),
                "{bad}"
            );
        }
    }
}
