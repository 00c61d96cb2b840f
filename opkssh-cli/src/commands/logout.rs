//! `opkssh logout` (behaviour.md §2.3): removes only key pairs opkssh wrote, whose certificate
//! comment starts with `openpubkey` and whose private key is the certificate's key. When
//! `$SSH_AUTH_SOCK` is set it also removes opkssh certificates (and so their keys) from the
//! ssh-agent: all of them, or with `-i` those of that key. No agent is not an error.

use crate::error::CliError;
use crate::shown::Shown;
use opk_client::agent::{Agent, AgentError};
use opk_client::agent_certificates::{self, AgentCertificate};
use opk_client::placement;
use opk_core::sshcert::OpksshCertificate;
use opk_core::sshcert::ssh_key::public::KeyData;
use std::path::{Path, PathBuf};
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

/// A failure in fixed words: shown as they are. Messages that quote a path or words from
/// elsewhere are built from pieces escaped where each is put in ([`Shown`]).
fn fail(message: impl std::fmt::Display) -> CliError {
    CliError::Usage(message.to_string())
}

/// A key-placement error about `key` (and its certificate): the paths as paths, the rest
/// escaped.
fn placement_failed(key: &Path, error: &placement::PlacementError) -> CliError {
    let mut paths = error.paths();
    paths.push(key);
    CliError::Usage(Shown::current().naming(error, &paths))
}

pub(crate) fn run(args: &LogoutArgs) -> Result<ExitCode, CliError> {
    let shown = Shown::current();
    if let Some(key) = &args.private_key_file {
        placement::check_pair(key).map_err(|error| placement_failed(key, &error))?;
        // Read before the files go: the agent identities to remove are this key's.
        let subject_key = certificate_subject_key(key)?;
        placement::remove_pair(key).map_err(|error| placement_failed(key, &error))?;
        println!("Successfully removed opkssh key pair: {}", shown.path(key));
        remove_from_agent(|certificate| certificate.subject_key == subject_key)?;
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
                    eprintln!(
                        "Skipping {}: {}",
                        shown.path(&key),
                        shown.naming(&reason, &[&key])
                    );
                }
                continue;
            }
            Err(error) => return Err(placement_failed(&key, &error)),
        }
        let cert = placement::remove_pair(&key).map_err(|error| placement_failed(&key, &error))?;
        println!("Removed {} and {}", shown.path(&key), shown.path(&cert));
        if in_identity_dir {
            let config = placement::identity_dir(&home).join("config");
            placement::remove_identity_file(&config, &key)
                .map_err(|error| placement_failed(&key, &error))?;
        }
        removed += 1;
    }
    if removed == 0 {
        println!("No opkssh keys found to remove");
    } else {
        println!("Successfully removed {removed} opkssh key pair(s)");
    }
    remove_from_agent(|_| true)?;
    Ok(ExitCode::SUCCESS)
}

fn certificate_subject_key(key: &Path) -> Result<KeyData, CliError> {
    let cert = placement::cert_path(key);
    let shown = Shown::current();
    let text = std::fs::read_to_string(&cert).map_err(|source| CliError::Read {
        path: shown.path(&cert),
        source,
    })?;
    // The certificate's fields are the file's: its error is shown escaped.
    let certificate = OpksshCertificate::from_line(&text)
        .map_err(|error| CliError::Usage(shown.naming(&error, &[&cert])))?;
    Ok(certificate.inner().public_key().clone())
}

/// Removes the chosen opkssh certificates from the agent at `$SSH_AUTH_SOCK`. Without an agent
/// there is nothing to do; an agent that cannot be reached is reported and skipped, as logout
/// is also for machines where the agent has gone.
fn remove_from_agent(chosen: impl FnMut(&AgentCertificate) -> bool) -> Result<(), CliError> {
    let shown = Shown::current();
    let mut agent = match Agent::from_env() {
        Ok(agent) => agent,
        Err(AgentError::NotSet) => return Ok(()),
        Err(error) => {
            eprintln!("Skipping the ssh-agent: {}", shown.agent(&error));
            return Ok(());
        }
    };
    let removals = agent_certificates::remove_where(&mut agent, chosen, "logout")
        .map_err(|error| fail(format!("ssh-agent: {}", shown.agent(&error))))?;
    for removal in &removals.removed {
        println!(
            "Removed opkssh certificate from ssh-agent: {} ({})",
            removal.certificate.comment, removal.certificate.fingerprint
        );
    }
    if !removals.removed.is_empty() {
        println!(
            "Successfully removed {} opkssh certificate(s) from ssh-agent",
            removals.removed.len()
        );
    }
    for (removal, error) in &removals.failed {
        eprintln!(
            "Could not remove opkssh certificate from ssh-agent: {} ({}): {}",
            removal.certificate.comment,
            removal.certificate.fingerprint,
            shown.agent(error)
        );
    }
    if !removals.failed.is_empty() {
        return Err(fail(format!(
            "the ssh-agent still holds {} opkssh certificate(s)",
            removals.failed.len()
        )));
    }
    Ok(())
}
