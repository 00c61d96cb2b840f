//! Placeholder until the GQ256 module lands.

/// GQ256 failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GqError {
    /// Not implemented yet.
    #[error("gq256 not implemented")]
    Unimplemented,
}

/// Verifies a GQ256 token.
///
/// # Errors
/// Always, for now.
pub fn verify_token(
    _header_seg: &str,
    _payload_seg: &str,
    _proof_seg: &str,
    _op_key: &rsa::PublicKey,
) -> Result<(), GqError> {
    Err(GqError::Unimplemented)
}
