//! Fuzzing shim for the whole verify decision (style.md §9), always compiled so stable
//! `cargo test` runs it over the vectors. The network is replaced by a fixed JWKS and the
//! clock is fixed; everything else is the code `opkssh verify` runs.

use crate::jwks_cache::Freshness;
use crate::pipeline::{Verified, authorize};
use opk_core::jwk::Jwks;
use opk_core::verify::Provider;
use policy::{AuthIdFile, DenyLists, PolicyInput};
use std::path::Path;
use std::time::SystemTime;

/// The outcome of [`verify_decision`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The line sshd would get.
    Allow(String),
    /// Any denial.
    Deny,
}

/// Certificate line in, allow or deny out: self-signature, PK token, the fixed `provider`,
/// `jwks` and clock `now`, key = upk, the `auth_id` rows for `principal`, then the principal
/// allowlist. Never panics; an allow always carries exactly one `cert-authority` line.
pub fn verify_decision(
    data: &[u8],
    principal: &str,
    provider: &Provider,
    jwks: &Jwks,
    now: SystemTime,
    auth_id: &str,
) -> Outcome {
    let Some((certificate, token)) =
        opk_core::fuzzing::verify_certificate(data, provider, jwks, now)
    else {
        return Outcome::Deny;
    };
    let path = Path::new("/etc/opk/auth_id");
    let rows = AuthIdFile::parse(auth_id.as_bytes(), path)
        .for_principal(principal)
        .into_rows();
    let input = PolicyInput::new(&token, principal);
    let evaluation = policy::evaluate_rows(
        &input,
        &DenyLists::default(),
        Path::new("/etc/opk/config.yml"),
        &rows,
        &[path.to_path_buf()],
    );
    if !evaluation.decision.is_allow() {
        return Outcome::Deny;
    }
    let verified = Verified {
        certificate,
        token,
        userinfo: None,
        freshness: Freshness::Cached,
    };
    match authorize(&verified) {
        Ok(line) => {
            let line = line.to_string();
            assert!(
                line.starts_with("cert-authority") && !line.contains('\n'),
                "an allow is exactly one cert-authority line"
            );
            Outcome::Allow(line)
        }
        Err(_) => Outcome::Deny,
    }
}
