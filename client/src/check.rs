//! `opkssh check`: is there an opkssh key and certificate that `ssh` can still use for a while?
//! (upstream openpubkey/opkssh#604).
//!
//! The client sees only the ID token's `exp` (of the refreshed token, if the PK token carries
//! one) and the certificate's own validity. Whether a server still accepts the certificate
//! depends on its expiration policy (`24h` from `iat`, `oidc` at `exp`, …), which the client
//! cannot know; the check is therefore the token's `exp`, the strictest of them, as the
//! ssh-agent lifetime is.

use crate::login::current_expiry;
use crate::placement::{self, cert_path};
use opk_core::pktoken::PkToken;
use opk_core::sshcert::{OpksshCertificate, UserKeyFile};
use opk_os::private_file::{Privacy, PrivacyError};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A usable key and certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Usable {
    /// The private key file.
    pub key: PathBuf,
    /// Its certificate file.
    pub certificate: PathBuf,
    /// The PK token's issuer.
    pub issuer: String,
    /// Its email, or `sub` without one.
    pub identity: String,
    /// When the ID token expires (seconds since the epoch).
    pub expires_at: i64,
    /// Why the key file's privacy could not be checked, if it could not (Windows whose
    /// `icacls` or `whoami` does not work, [`opk_os::private_file`]).
    pub privacy_unchecked: Option<String>,
}

/// Why there is no usable certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// None of the key files exists.
    MissingKey {
        /// Where the check looked.
        searched: Vec<PathBuf>,
    },
    /// The key exists, its `-cert.pub` does not.
    MissingCertificate {
        /// The key file.
        key: PathBuf,
        /// The certificate file that is missing.
        certificate: PathBuf,
    },
    /// The certificate is not an opkssh certificate, or does not belong to the key.
    NotOpkssh {
        /// The key file.
        key: PathBuf,
        /// The certificate file.
        certificate: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// Others may use the private key, so `ssh` refuses it (a mode beyond 0600 on Unix; on
    /// Windows an ACL that lets in anyone but the user, SYSTEM and Administrators).
    KeyNotPrivate {
        /// The key file.
        key: PathBuf,
        /// Who else may use it.
        why: String,
    },
    /// The ID token (or the certificate) has expired.
    Expired {
        /// The certificate file.
        certificate: PathBuf,
        /// When (seconds since the epoch).
        at: i64,
    },
    /// It expires within the time asked for.
    ExpiresWithin {
        /// The certificate file.
        certificate: PathBuf,
        /// When (seconds since the epoch).
        at: i64,
        /// The time asked for.
        within: Duration,
    },
}

impl Problem {
    /// A stable name for scripts (`--json`).
    pub fn code(&self) -> &'static str {
        match self {
            Self::MissingKey { .. } => "missing_key",
            Self::MissingCertificate { .. } => "missing_certificate",
            Self::NotOpkssh { .. } => "not_opkssh",
            Self::KeyNotPrivate { .. } => "key_not_private",
            Self::Expired { .. } => "expired",
            Self::ExpiresWithin { .. } => "expiring",
        }
    }

    /// How close this got to a usable certificate (higher is closer): with several default
    /// key files, the closest one is reported.
    fn rank(&self) -> u8 {
        match self {
            Self::MissingKey { .. } => 0,
            Self::MissingCertificate { .. } => 1,
            Self::NotOpkssh { .. } => 2,
            Self::KeyNotPrivate { .. } => 3,
            Self::Expired { .. } => 4,
            Self::ExpiresWithin { .. } => 5,
        }
    }
}

/// The key files `opkssh login` writes by default, in the order `opkssh logout` looks at them:
/// `~/.ssh/id_ecdsa`, `id_ecdsa_sk`, `id_ed25519`, `id_ed25519_sk`, then every key in the
/// `~/.ssh/opkssh` identity directory.
pub fn default_candidates(home: &Path) -> Vec<PathBuf> {
    let ssh = home.join(".ssh");
    let mut candidates: Vec<PathBuf> = ["id_ecdsa", "id_ecdsa_sk", "id_ed25519", "id_ed25519_sk"]
        .iter()
        .map(|name| ssh.join(name))
        .collect();
    candidates.extend(
        placement::logout_candidates(home)
            .into_iter()
            .filter(|(_, in_identity_dir)| *in_identity_dir)
            .map(|(path, _)| path),
    );
    candidates
}

/// Checks each key in `candidates` and returns the usable one that stays valid longest, or,
/// if none is usable, the problem of the one that came closest.
///
/// # Errors
/// The [`Problem`].
pub fn check(candidates: &[PathBuf], within: Duration, now: SystemTime) -> Result<Usable, Problem> {
    let mut best_problem: Option<Problem> = None;
    let mut best: Option<Usable> = None;
    for key in candidates {
        match check_one(key, within, now) {
            Ok(usable) => {
                if best
                    .as_ref()
                    .is_none_or(|current| usable.expires_at > current.expires_at)
                {
                    best = Some(usable);
                }
            }
            Err(problem) => {
                if best_problem
                    .as_ref()
                    .is_none_or(|current| problem.rank() > current.rank())
                {
                    best_problem = Some(problem);
                }
            }
        }
    }
    match (best, best_problem) {
        (Some(usable), _) => Ok(usable),
        (None, Some(Problem::MissingKey { .. }) | None) => Err(Problem::MissingKey {
            searched: candidates.to_vec(),
        }),
        (None, Some(problem)) => Err(problem),
    }
}

/// Checks one key file and its `-cert.pub`.
///
/// # Errors
/// The [`Problem`].
pub fn check_one(key: &Path, within: Duration, now: SystemTime) -> Result<Usable, Problem> {
    let certificate = cert_path(key);
    if !key.is_file() {
        return Err(Problem::MissingKey {
            searched: vec![key.to_owned()],
        });
    }
    let not_opkssh = |why: String| Problem::NotOpkssh {
        key: key.to_owned(),
        certificate: certificate.clone(),
        why,
    };
    let text = match std::fs::read_to_string(&certificate) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Err(Problem::MissingCertificate {
                key: key.to_owned(),
                certificate,
            });
        }
        Err(error) => return Err(not_opkssh(format!("cannot read it: {error}"))),
    };
    let parsed =
        OpksshCertificate::from_line(&text).map_err(|error| not_opkssh(error.to_string()))?;
    let compact = parsed
        .pk_token()
        .map_err(|error| not_opkssh(error.to_string()))?;
    let token = PkToken::from_compact(compact)
        .map_err(|error| not_opkssh(format!("its PK token does not parse: {error}")))?;
    let pem = std::fs::read_to_string(key)
        .map_err(|error| not_opkssh(format!("cannot read the key {}: {error}", key.display())))?;
    let key_file = UserKeyFile::from_openssh(&pem).map_err(|error| {
        not_opkssh(format!("the key {} does not parse: {error}", key.display()))
    })?;
    if !parsed.matches_upk(&key_file.key().public_key()) {
        return Err(not_opkssh(format!(
            "it is not the certificate of the key {}",
            key.display()
        )));
    }
    // ssh would refuse the key: a login is needed to write a private one.
    let privacy_unchecked = match opk_os::private_file::check(key) {
        Ok(Privacy::Private) => None,
        Ok(Privacy::Unchecked(why)) => Some(why),
        Err(PrivacyError::NotPrivate { why, .. }) => {
            return Err(Problem::KeyNotPrivate {
                key: key.to_owned(),
                why,
            });
        }
        Err(PrivacyError::Io { source, .. }) => {
            return Err(Problem::KeyNotPrivate {
                key: key.to_owned(),
                why: format!("cannot look at it: {source}"),
            });
        }
    };
    let claims = token.claims();
    let token_expiry = current_expiry(&token)
        .ok_or_else(|| not_opkssh("its ID token has no exp claim".to_owned()))?;
    // The certificate's own end, if it has one (opkssh certificates are valid "forever").
    let expires_at = i64::try_from(parsed.valid_before())
        .map_or(token_expiry, |valid_before| token_expiry.min(valid_before));
    let now = i64::try_from(
        now.duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs()),
    )
    .unwrap_or(i64::MAX);
    if expires_at <= now {
        return Err(Problem::Expired {
            certificate,
            at: expires_at,
        });
    }
    let within_seconds = i64::try_from(within.as_secs()).unwrap_or(i64::MAX);
    if expires_at <= now.saturating_add(within_seconds) {
        return Err(Problem::ExpiresWithin {
            certificate,
            at: expires_at,
            within,
        });
    }
    Ok(Usable {
        key: key.to_owned(),
        certificate,
        issuer: claims.issuer().to_owned(),
        identity: claims
            .email()
            .unwrap_or_else(|| claims.subject())
            .to_owned(),
        expires_at,
        privacy_unchecked,
    })
}
