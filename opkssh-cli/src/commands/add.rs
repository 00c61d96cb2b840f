//! `opkssh add <principal> <identity> <issuer>` (behaviour.md §2.6; Go: main.go,
//! commands/add.go).
//!
//! Writes `<config-dir>/auth_id` when it can read it; on a permission error, the
//! principal's own `~/.opk/auth_id` (created 0600 in a 0750 `~/.opk` if missing). Never
//! creates the system file. Better than Go: keeps the rest of the file byte for byte, writes
//! atomically under a lock, and refuses rows that would never match.

use crate::args::ConfigDirArg;
use crate::error::CommandError;
use policy::edit::{self, AddPlan};
use policy::perms::{self, Requirement};
use policy::rule::{self, Severity};
// `create_new` (O_EXCL) refuses an existing symlink at the path.
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// `opkssh add <principal> <email|sub|group> <issuer>`.
#[derive(Debug, clap::Args)]
pub(crate) struct AddArgs {
    /// The target user account (requested principal).
    pub(crate) principal: String,
    /// Email address, subscriber ID or group (oidc:groups:<group>) allowed to log in.
    pub(crate) identity: String,
    /// Issuer URL, or one of the aliases google, azure, microsoft, gitlab, hello.
    pub(crate) issuer: String,
    #[command(flatten)]
    pub(crate) config: ConfigDirArg,
}

/// Go's convenience aliases (exact, case-sensitive). Only `add` knows them.
pub(crate) fn expand_issuer(issuer: &str) -> &str {
    match issuer {
        "google" => "https://accounts.google.com",
        "azure" | "microsoft" => {
            "https://login.microsoftonline.com/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0"
        }
        "gitlab" => "https://gitlab.com",
        "hello" => "https://issuer.hello.coop",
        other => other,
    }
}

pub(crate) fn run(args: &AddArgs) -> Result<ExitCode, CommandError> {
    match add(args) {
        Ok(path) => {
            println!("Successfully added new policy to {}", path.display());
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => {
            eprintln!("Failed to add to policy: {error}");
            Err(error)
        }
    }
}

fn add(args: &AddArgs) -> Result<PathBuf, CommandError> {
    let principal = args.principal.as_str();
    let identity = args.identity.as_str();
    let issuer = expand_issuer(&args.issuer);
    refuse_never_matching(principal, identity, issuer)?;

    let dir = args.config.dir();
    let system = dir.auth_id();
    let (path, requirement) = match perms::read_checked(&system, &Requirement::AUTH_ID_FILE) {
        Ok(_) => (system, Requirement::AUTH_ID_FILE),
        Err(error)
            if matches!(
                error.kind,
                policy::FileErrorKind::Io(std::io::ErrorKind::PermissionDenied, _)
            ) =>
        {
            let account = policy::home::lookup(principal).ok_or_else(|| {
                CommandError::new(format!(
                    "failed to load policy: failed to lookup username {principal}"
                ))
            })?;
            let path = policy::home::policy_path(&account);
            create_home_file(&path)?;
            (path, Requirement::home_file(account.uid))
        }
        Err(error) => {
            return Err(CommandError::new(format!(
                "failed to load policy: failed to read system default policy file {}: {error}",
                system.display()
            )));
        }
    };
    let plan = edit::add_row(&path, &requirement, principal, identity, issuer)
        .map_err(|error| CommandError::new(format!("failed to write updated policy: {error}")))?;
    match plan {
        AddPlan::AlreadyPresent { line } => eprintln!(
            "User with email {identity} already has access under the principal {principal}, skipping... ({}:{line})",
            path.display()
        ),
        AddPlan::Insert { line, .. } => eprintln!(
            "Successfully added user with email {identity} with principal {principal} to the policy file ({}:{line})",
            path.display()
        ),
    }
    Ok(path)
}

/// Refuses rows that can never grant access, saying why; prints warnings for rows that do
/// but probably should not be written that way.
fn refuse_never_matching(
    principal: &str,
    identity: &str,
    issuer: &str,
) -> Result<(), CommandError> {
    let mut lints = rule::lint_principal(principal);
    lints.extend(rule::lint_identity(identity));
    lints.extend(rule::lint_template(principal, identity));
    if issuer.is_empty() {
        lints.push(policy::Lint {
            severity: Severity::Error,
            message: "issuer is empty".to_owned(),
        });
    } else if issuer.contains('#') || issuer.chars().any(|c| c.is_whitespace() || c.is_control()) {
        lints.push(policy::Lint {
            severity: Severity::Error,
            message: format!(
                "issuer {issuer:?} contains white space, a control character or `#`; no token's issuer can match it"
            ),
        });
    }
    let errors: Vec<&str> = lints
        .iter()
        .filter(|lint| lint.severity == Severity::Error)
        .map(|lint| lint.message.as_str())
        .collect();
    if !errors.is_empty() {
        return Err(CommandError::new(format!(
            "refusing to add this rule: {}",
            errors.join("; ")
        )));
    }
    for lint in lints
        .iter()
        .filter(|lint| lint.severity == Severity::Warning)
    {
        eprintln!("warning: {}", lint.message);
    }
    Ok(())
}

/// Creates `~/.opk` (0750) and `auth_id` (0600) if missing, as the calling user.
fn create_home_file(path: &Path) -> Result<(), CommandError> {
    if let Some(dir) = path.parent() {
        match opk_os::file::dir_builder(0o750).create(dir) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(error) => {
                return Err(CommandError::new(format!(
                    "failed to create policy file: failed to create directory {}: {error}",
                    dir.display()
                )));
            }
        }
    }
    let guards = opk_os::file::Guards {
        create_mode: Some(0o600),
        ..opk_os::file::Guards::default()
    };
    match guards.options().write(true).create_new(true).open(path) {
        Ok(_) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(error) => Err(CommandError::new(format!(
            "failed to create policy file: {}: {error}",
            path.display()
        ))),
    }
}
