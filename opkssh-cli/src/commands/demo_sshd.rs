//! `opkssh demo --sshd`: a loopback sshd whose AuthorizedKeysCommand is this binary's verify.

use crate::error::CliError;
use std::path::Path;

pub(crate) fn run(
    _work: &Path,
    _policy_dir: &Path,
    _principal: &str,
    _key_path: &Path,
    _cert_path: &Path,
) -> Result<(), CliError> {
    Err(CliError::Usage("--sshd is not implemented yet".into()))
}
