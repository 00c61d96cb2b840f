//! `opkssh audit` (behaviour.md §2.7; Go: commands/audit.go).
//!
//! Go's report (rows on stdout, `validating <path>...` on stderr, the summary, `--json`), with
//! each row's `[file:line]` appended, and more checks: every problem in `providers`, in
//! `config.yml` and in `policy.d`, each with its file and line, counted as errors.

use crate::args::ConfigDirArg;
use crate::error::CommandError;
use policy::audit::{self, RowResult, Status, Summary};
use policy::perms::{self, Requirement};
use policy::{FileError, Providers};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// `opkssh audit`.
#[derive(Debug, clap::Args)]
pub(crate) struct AuditArgs {
    /// Path to providers file [default: <config-dir>/providers]
    #[arg(long = "providers-file")]
    pub(crate) providers_file: Option<PathBuf>,
    /// Path to policy file [default: <config-dir>/auth_id]
    #[arg(long = "policy-file")]
    pub(crate) policy_file: Option<PathBuf>,
    /// Skip auditing user policy files (~/.opk/auth_id)
    #[arg(long = "skip-user-policy")]
    pub(crate) skip_user_policy: bool,
    /// Output complete audit results in JSON
    #[arg(short = 'j', long = "json")]
    pub(crate) json: bool,
    #[command(flatten)]
    pub(crate) config: ConfigDirArg,
}

#[derive(Debug, Serialize)]
struct Problem {
    file_path: String,
    line_number: usize,
    message: String,
}

impl Problem {
    fn from(error: &FileError) -> Self {
        Self {
            file_path: error.location.path.display().to_string(),
            line_number: error.location.line.unwrap_or_default(),
            message: error.kind.to_string(),
        }
    }
}

#[derive(Debug, Serialize)]
struct ProviderResults {
    file_path: String,
    error: String,
    problems: Vec<Problem>,
}

#[derive(Debug, Serialize)]
struct PolicyFileResult {
    file_path: String,
    rows: Vec<RowResult>,
    error: String,
    perms_error: String,
}

/// `chain_authorized_keys_command`, when `config.yml` sets one.
#[derive(Debug, Serialize)]
struct ChainResult {
    file_path: String,
    command: String,
    /// Whether verify would run it: it parses and passes the safety rule.
    ok: bool,
    error: String,
}

#[derive(Debug, Serialize)]
struct TotalResults {
    ok: bool,
    username: String,
    providers_file: ProviderResults,
    system_policy: PolicyFileResult,
    home_policy: Vec<PolicyFileResult>,
    opk_version: String,
    openssh_version: String,
    os_info: String,
    config_problems: Vec<Problem>,
    chain_authorized_keys_command: Option<ChainResult>,
}

pub(crate) fn run(args: &AuditArgs) -> Result<ExitCode, CommandError> {
    let dir = args.config.dir();
    let providers_path = args
        .providers_file
        .clone()
        .unwrap_or_else(|| dir.providers());
    let policy_path = args.policy_file.clone().unwrap_or_else(|| dir.auth_id());

    let content =
        perms::read_checked(&providers_path, &Requirement::SYSTEM_FILE).map_err(|error| {
            if matches!(
                error.kind,
                policy::FileErrorKind::Io(std::io::ErrorKind::PermissionDenied, _)
            ) {
                eprintln!("opkssh audit must be run as root, try `sudo opkssh audit`");
            }
            CommandError::new(format!(
                "failed to load providers ({}): {}",
                providers_path.display(),
                error.kind
            ))
        })?;
    let (issuers, provider_problems) = Providers::audit(&content, &providers_path);
    if !provider_problems.is_empty() {
        eprintln!("\nvalidating {}...", providers_path.display());
        if !args.json {
            for problem in &provider_problems {
                print_problem(problem);
            }
        }
    }

    let mut system = PolicyFileResult {
        file_path: policy_path.display().to_string(),
        rows: Vec::new(),
        error: String::new(),
        perms_error: String::new(),
    };
    if policy_path.exists() {
        let read = audit::read_policy_file(&policy_path, &Requirement::SYSTEM_FILE_STRICT);
        system.perms_error = read.perms_error.unwrap_or_default();
        match (read.content, read.error) {
            (Some(content), _) => {
                system.rows = audit::audit_policy(&content, &issuers, None);
                eprintln!("\nvalidating {}...", policy_path.display());
                if !args.json {
                    print_rows(&policy_path, &system.rows);
                }
            }
            (None, error) => {
                return Err(CommandError::new(format!(
                    "failed to audit policy file: failed to read policy file: {}",
                    error.unwrap_or_default()
                )));
            }
        }
    }

    let mut homes = Vec::new();
    if !args.skip_user_policy {
        match std::fs::read_to_string("/etc/passwd") {
            Err(error) => eprintln!(
                "warning: could not enumerate user home directories: failed to read /etc/passwd: {error}"
            ),
            Ok(passwd) => {
                for (user, home) in passwd_homes(&passwd) {
                    let path = Path::new(&home).join(".opk").join("auth_id");
                    // Not `exists`, which follows a symlink: a dangling one is a finding too.
                    if std::fs::symlink_metadata(&path).is_err() {
                        continue;
                    }
                    let mut result = PolicyFileResult {
                        file_path: path.display().to_string(),
                        rows: Vec::new(),
                        error: String::new(),
                        perms_error: String::new(),
                    };
                    let requirement =
                        perms::user_id(&user)
                            .map(Requirement::home_file)
                            .unwrap_or(Requirement {
                                owner: perms::Owner::Any,
                                ..Requirement::home_file(0)
                            });
                    // Root reads the user's file as verify does: a symlink, a FIFO or a file
                    // over the size cap is reported, never followed or read.
                    let read = audit::read_policy_file(&path, &requirement);
                    result.perms_error = read.perms_error.unwrap_or_default();
                    match (read.content, read.error) {
                        (Some(content), _) => {
                            result.rows = audit::audit_policy(&content, &issuers, Some(&user));
                            eprintln!("\nvalidating {}...", path.display());
                            if !args.json {
                                print_rows(&path, &result.rows);
                            }
                        }
                        (None, error) => {
                            let error = error.unwrap_or_default();
                            eprintln!(
                                "failed to audit user policy file at {}: {error}",
                                path.display()
                            );
                            result.error = error;
                        }
                    }
                    homes.push(result);
                }
            }
        }
    }

    let (config_problems, chain) = audit_config(&dir);
    if !args.json {
        for problem in &config_problems {
            print_problem(problem);
        }
        if let Some(chain) = chain.as_ref().filter(|chain| chain.ok) {
            println!(
                "{} {:<8}: chain_authorized_keys_command {:?} passes the safety rule; verify runs it for keys opkssh does not let in [{}]",
                badge(Status::Success),
                Status::Success.as_str(),
                chain.command,
                chain.file_path
            );
        }
    }

    if homes.is_empty() && system.rows.is_empty() {
        eprintln!("\nno policy entries to validate");
    }
    let all_rows: Vec<&RowResult> = system
        .rows
        .iter()
        .chain(homes.iter().flat_map(|home| home.rows.iter()))
        .collect();
    let mut summary = Summary::of(all_rows.iter().copied());
    let unread_homes = homes.iter().filter(|home| !home.error.is_empty()).count();
    let file_problems = provider_problems
        .len()
        .saturating_add(config_problems.len())
        .saturating_add(unread_homes);
    summary.errors = summary.errors.saturating_add(file_problems);

    let ok = !summary.has_problems()
        && system.error.is_empty()
        && system.perms_error.is_empty()
        && homes
            .iter()
            .all(|home| home.error.is_empty() && home.perms_error.is_empty());
    if args.json {
        let results = TotalResults {
            ok,
            username: perms::user_name(perms::effective_uid()),
            providers_file: ProviderResults {
                file_path: providers_path.display().to_string(),
                error: String::new(),
                problems: provider_problems.iter().map(Problem::from).collect(),
            },
            system_policy: system,
            home_policy: homes,
            opk_version: env!("CARGO_PKG_VERSION").to_owned(),
            openssh_version: verifier::openssh::detect(&verifier::openssh::BINARIES)
                .map(|version| version.text)
                .unwrap_or_default(),
            os_info: os_info(),
            config_problems: config_problems.iter().map(Problem::from).collect(),
            chain_authorized_keys_command: chain,
        };
        let text = serde_json::to_string_pretty(&results).map_err(|error| {
            CommandError::new(format!("failed to marshal JSON output: {error}"))
        })?;
        println!("{text}");
    } else {
        print_summary(&summary);
    }
    if summary.has_problems() {
        return Err(CommandError::new("audit completed and discovered errors"));
    }
    Ok(ExitCode::SUCCESS)
}

/// `config.yml` and `policy.d` problems (ours; Go's audit does not look at them), and the
/// chained command `config.yml` names, checked as verify checks it before running it.
fn audit_config(dir: &policy::ConfigDir) -> (Vec<FileError>, Option<ChainResult>) {
    let mut problems = Vec::new();
    let mut chain = None;
    let config = dir.config();
    if config.exists() {
        // Permissions and content separately, so both are reported; opened as verify opens
        // it (never blocking, regular files only, size cap).
        let read = perms::open(&config, false).and_then(|(file, metadata)| {
            if let Err(error) = perms::check(&metadata, &Requirement::CONFIG_FILE) {
                problems.push(FileError {
                    location: policy::Location::file(&config),
                    kind: policy::FileErrorKind::Permissions(error),
                });
            }
            perms::read_limited(file, &config, Requirement::CONFIG_FILE.max_size)
        });
        match read.map(String::from_utf8) {
            Err(error) => problems.push(error),
            Ok(Err(_)) => problems.push(FileError {
                location: policy::Location::file(&config),
                kind: policy::FileErrorKind::Invalid("not UTF-8".into()),
            }),
            Ok(Ok(text)) => match policy::ServerConfig::parse(&text, &config) {
                Err(error) => problems.push(error),
                Ok(parsed) => {
                    if let Some(command) = parsed.chain_authorized_keys_command {
                        let checked = policy::chain::ChainCommand::check(&command);
                        if let Err(error) = &checked {
                            problems.push(FileError {
                                location: policy::Location::file(&config),
                                kind: policy::FileErrorKind::Invalid(format!(
                                    "chain_authorized_keys_command {command:?} is refused, verify does not run it: {error}"
                                )),
                            });
                        }
                        chain = Some(ChainResult {
                            file_path: config.display().to_string(),
                            command,
                            ok: checked.is_ok(),
                            error: checked
                                .err()
                                .map(|error| error.to_string())
                                .unwrap_or_default(),
                        });
                    }
                }
            },
        }
    }
    let plugins = dir.plugins();
    if plugins.exists() {
        match policy::plugin::load_dir(&plugins) {
            Err(skipped) => problems.push(FileError {
                location: policy::Location::file(&plugins),
                kind: policy::FileErrorKind::Invalid(skipped.to_string()),
            }),
            Ok(loaded) => {
                for (path, config) in loaded {
                    let problem = match config {
                        Err(message) => Some(message),
                        Ok(config) => plugin_command_problem(&config.command),
                    };
                    if let Some(message) = problem {
                        problems.push(FileError {
                            location: policy::Location::file(&path),
                            kind: policy::FileErrorKind::Invalid(message),
                        });
                    }
                }
            }
        }
    }
    (problems, chain)
}

fn plugin_command_problem(command: &str) -> Option<String> {
    let words = match policy::table::split(command) {
        Ok(words) => words,
        Err(error) => return Some(format!("command {command:?}: {error}")),
    };
    let program = Path::new(words.first()?);
    perms::check_command(program)
        .err()
        .map(|error| match error {
            perms::CommandError::NotAbsolute => format!(
                "policy plugin command ({}) must be an absolute path",
                program.display()
            ),
            perms::CommandError::File(error) => {
                format!(
                    "policy plugin command ({}): {}",
                    program.display(),
                    error.kind
                )
            }
        })
}

/// `name:...:home:...` pairs from /etc/passwd (NSS users are not enumerated, as in Go).
fn passwd_homes(passwd: &str) -> Vec<(String, String)> {
    passwd
        .lines()
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            if fields.len() < 7 {
                return None;
            }
            let name = fields.first()?;
            let home = fields.get(5)?;
            (!home.is_empty()).then(|| ((*name).to_owned(), (*home).to_owned()))
        })
        .collect()
}

fn os_info() -> String {
    std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|line| line.strip_prefix("ID="))
                .map(|id| id.trim_matches('"').to_owned())
        })
        .unwrap_or_default()
}

fn badge(status: Status) -> &'static str {
    match status {
        Status::Success => "[OK]",
        Status::Warning => "[WARN]",
        Status::Error => "[ERR]",
    }
}

fn print_rows(path: &Path, rows: &[RowResult]) {
    for row in rows {
        let mut line = format!(
            "{} {:<8}: {} {} {}",
            badge(row.status),
            format!("{:<8}", row.status.as_str()),
            row.principal,
            row.identity_attr,
            row.issuer
        );
        if !row.reason.is_empty() {
            line.push_str(&format!(" ({}) ", row.reason));
        }
        for hint in &row.hints {
            line.push_str(&format!(" - {hint} "));
        }
        line.push_str(&format!(" [{}:{}]", path.display(), row.line_number));
        println!("{line}");
    }
}

fn print_problem(problem: &FileError) {
    println!(
        "{} {:<8}: {}",
        badge(Status::Error),
        Status::Error.as_str(),
        audit::describe(problem)
    );
}

fn print_summary(summary: &Summary) {
    println!("\n=== SUMMARY ===");
    println!("Total Entries Tested:  {}", summary.total);
    println!("Successful:            {}", summary.successful);
    println!("Warnings:              {}", summary.warnings);
    println!("Errors:                {}", summary.errors);
    let code = u8::from(summary.has_problems());
    let what = if !summary.has_problems() {
        "no issues detected"
    } else if summary.errors > 0 {
        "errors detected"
    } else {
        "warnings detected"
    };
    println!("\nExit Code: {code} ({what})");
}
