//! `opkssh logout` (behaviour.md §2.3): removes only key pairs opkssh wrote, whose certificate
//! comment starts with `openpubkey` and whose private key is the certificate's key.

use crate::error::CliError;
use opkssh_cli::placement;
use std::path::PathBuf;
use std::process::ExitCode;

/// `opkssh logout`.
#[derive(Debug, clap::Args)]
pub(crate) struct LogoutArgs {
    /// Remove only this key and <path>-cert.pub.
    #[arg(short = 'i', long = "private-key-file", value_name = "PATH")]
    pub(crate) private_key_file: Option<PathBuf>,
    /// Say why files were skipped.
    #[arg(short = 'v', long)]
    pub(crate) verbose: bool,
}

fn fail(message: impl std::fmt::Display) -> CliError {
    CliError::Usage(message.to_string())
}

pub(crate) fn run(args: &LogoutArgs) -> Result<ExitCode, CliError> {
    if let Some(key) = &args.private_key_file {
        placement::check_pair(key).map_err(fail)?;
        placement::remove_pair(key).map_err(fail)?;
        println!("Successfully removed opkssh key pair: {}", key.display());
        return Ok(ExitCode::SUCCESS);
    }
    let home = placement::home_dir().ok_or_else(|| fail("could not find the home directory"))?;
    let mut removed = 0_usize;
    for (key, in_identity_dir) in placement::logout_candidates(&home) {
        match placement::check_pair(&key) {
            Ok(()) => {}
            Err(placement::PlacementError::NotOurs(reason)) => {
                // Missing or foreign certificates are skipped quietly; a key that does not
                // match its opkssh certificate is always reported.
                let always = reason.starts_with("private key")
                    || reason.starts_with("could not parse private key")
                    || reason.starts_with("could not read private key");
                if args.verbose || always {
                    eprintln!("Skipping {}: {reason}", key.display());
                }
                continue;
            }
            Err(error) => return Err(fail(error)),
        }
        let cert = placement::remove_pair(&key).map_err(fail)?;
        println!("Removed {} and {}", key.display(), cert.display());
        if in_identity_dir {
            let config = placement::identity_dir(&home).join("config");
            placement::remove_identity_file(&config, &key).map_err(fail)?;
        }
        removed += 1;
    }
    if removed == 0 {
        println!("No opkssh keys found to remove");
    } else {
        println!("Successfully removed {removed} opkssh key pair(s)");
    }
    Ok(ExitCode::SUCCESS)
}
