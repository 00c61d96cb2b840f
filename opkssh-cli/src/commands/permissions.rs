//! `opkssh permissions check|fix|install` (behaviour.md §2.9; Go: commands/permissions.go).
//!
//! Checks use the open files' metadata (no `stat` process). Besides Go's files, `check` also
//! reports `policy.d/*.yml` files that are not 0640 root and plugin commands that are not
//! 0555/0755 root, since `verify` refuses those plugins.

use crate::args::ConfigDirArg;
use crate::error::CommandError;
use policy::perms::{self, OPKSSH_GROUP, Requirement};
use serde::Serialize;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// `opkssh permissions`.
#[derive(Debug, clap::Args)]
#[command(arg_required_else_help = true)]
pub(crate) struct PermissionsArgs {
    #[command(subcommand)]
    pub(crate) command: Option<PermissionsCommand>,
}

/// The three subcommands.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum PermissionsCommand {
    /// Verify permissions and ownership for opkssh files
    Check(CheckArgs),
    /// Fix permissions and ownership for opkssh files (requires admin)
    Fix(FixArgs),
    /// Idempotent installer-friendly permissions fix (non-interactive)
    Install(InstallArgs),
}

/// `permissions check`.
#[derive(Debug, clap::Args)]
pub(crate) struct CheckArgs {
    /// Output results in JSON
    #[arg(short = 'j', long = "json")]
    pub(crate) json: bool,
    #[command(flatten)]
    pub(crate) config: ConfigDirArg,
}

/// `permissions fix`.
#[derive(Debug, clap::Args)]
pub(crate) struct FixArgs {
    /// Don't modify anything; show planned changes
    #[arg(long = "dry-run")]
    pub(crate) dry_run: bool,
    /// Apply changes without confirmation
    #[arg(short = 'y', long = "yes")]
    pub(crate) yes: bool,
    /// Verbose output (no effect, as in Go)
    #[arg(short = 'v', long = "verbose")]
    pub(crate) verbose: bool,
    /// Output results in JSON
    #[arg(short = 'j', long = "json")]
    pub(crate) json: bool,
    #[command(flatten)]
    pub(crate) config: ConfigDirArg,
}

/// `permissions install`.
#[derive(Debug, clap::Args)]
pub(crate) struct InstallArgs {
    /// Don't modify anything; show planned changes
    #[arg(long = "dry-run")]
    pub(crate) dry_run: bool,
    /// Verbose output (no effect, as in Go)
    #[arg(short = 'v', long = "verbose")]
    pub(crate) verbose: bool,
    #[command(flatten)]
    pub(crate) config: ConfigDirArg,
}

pub(crate) fn run(args: &PermissionsArgs) -> Result<ExitCode, CommandError> {
    match &args.command {
        None => Ok(ExitCode::SUCCESS),
        Some(PermissionsCommand::Check(check_args)) => check(check_args),
        Some(PermissionsCommand::Fix(fix_args)) => fix(
            &fix_args.config,
            fix_args.dry_run,
            fix_args.yes,
            fix_args.json,
        ),
        Some(PermissionsCommand::Install(install)) => {
            fix(&install.config, install.dry_run, true, false)
        }
    }
}

#[derive(Debug, Serialize)]
struct CheckResult {
    path: String,
    exists: bool,
    #[serde(rename = "permsErr", skip_serializing_if = "Option::is_none")]
    perms_err: Option<String>,
    #[serde(rename = "aclErr", skip_serializing_if = "Option::is_none")]
    acl_err: Option<String>,
}

/// Go's message for a failed check: owner and group before the mode.
fn perm_text(error: &policy::FileError) -> String {
    match &error.kind {
        policy::FileErrorKind::Permissions(permission) => permission.to_string(),
        other => other.to_string(),
    }
}

fn check(args: &CheckArgs) -> Result<ExitCode, CommandError> {
    let dir = args.config.dir();
    let mut problems: Vec<String> = Vec::new();
    let mut results = Vec::new();
    report(
        &dir.auth_id(),
        &Requirement::SYSTEM_FILE_STRICT,
        true,
        args.json,
        &mut problems,
        &mut results,
    );
    report(
        &dir.providers(),
        &Requirement::SYSTEM_FILE_STRICT,
        true,
        args.json,
        &mut problems,
        &mut results,
    );
    report(
        &dir.config(),
        &Requirement::CONFIG_FILE,
        false,
        args.json,
        &mut problems,
        &mut results,
    );
    let plugins = dir.plugins();
    match std::fs::metadata(&plugins) {
        Err(error) => {
            let text = format!("stat {}: {error}", plugins.display());
            problems.push(format!("{}: {text}", plugins.display()));
            results.push(CheckResult {
                path: plugins.display().to_string(),
                exists: false,
                perms_err: Some(text),
                acl_err: None,
            });
        }
        Ok(_) => {
            let mut result = CheckResult {
                path: plugins.display().to_string(),
                exists: true,
                perms_err: None,
                acl_err: None,
            };
            if let Err(error) = perms::check_path(&plugins, &Requirement::PLUGIN_DIR) {
                let text = perm_text(&error);
                problems.push(format!("{}: {text}", plugins.display()));
                result.perms_err = Some(text);
            }
            results.push(result);
            // Ours: the plugin files and their commands, as verify will judge them.
            for file in plugin_files(&plugins) {
                report(
                    &file,
                    &Requirement::PLUGIN_FILE,
                    false,
                    args.json,
                    &mut problems,
                    &mut results,
                );
                if let Ok(content) = std::fs::read_to_string(&file)
                    && let Ok(config) = policy::plugin::PluginConfig::parse(&content, &file)
                    && let Ok(words) = policy::table::split(&config.command)
                    && let Some(program) = words.first()
                {
                    report(
                        Path::new(program),
                        &Requirement::PLUGIN_COMMAND,
                        true,
                        args.json,
                        &mut problems,
                        &mut results,
                    );
                }
            }
        }
    }
    if args.json {
        let text = serde_json::to_string_pretty(&results)
            .map_err(|error| CommandError::new(error.to_string()))?;
        println!("{text}");
        return Ok(ExitCode::SUCCESS);
    }
    if !problems.is_empty() {
        for problem in &problems {
            println!("Problem: {problem}");
        }
        return Err(CommandError::new(format!(
            "permissions check failed: {} problems found",
            problems.len()
        )));
    }
    Ok(ExitCode::SUCCESS)
}

/// Checks one path and records the result; prints Go's owner/mode lines in text mode.
fn report(
    path: &Path,
    requirement: &Requirement,
    required: bool,
    json: bool,
    problems: &mut Vec<String>,
    results: &mut Vec<CheckResult>,
) {
    let shown = path.display().to_string();
    if std::fs::symlink_metadata(path).is_err() {
        if required {
            problems.push(format!("{shown}: file does not exist"));
            results.push(CheckResult {
                path: shown,
                exists: false,
                perms_err: None,
                acl_err: None,
            });
        }
        return;
    }
    let mut result = CheckResult {
        path: shown.clone(),
        exists: true,
        perms_err: None,
        acl_err: None,
    };
    if let Err(error) = perms::check_path(path, requirement) {
        let text = perm_text(&error);
        problems.push(format!("{shown}: {text}"));
        result.perms_err = Some(text);
    }
    if !json
        && let Ok(metadata) = std::fs::metadata(path)
        && let Ok(attributes) = opk_os::file::attributes(&metadata)
    {
        let mode = attributes.mode;
        println!(
            "{shown}: owner={} mode={mode:o}",
            perms::user_name(attributes.uid)
        );
        if !requirement.modes.contains(&mode)
            && let Some(expected) = requirement.modes.first()
        {
            println!("  ACL problem: expected mode {expected:o}, got {mode:o}");
        }
        if requirement.owner == perms::Owner::Root && attributes.uid != 0 {
            println!(
                "  ACL problem: expected owner (root), got ({})",
                perms::user_name(attributes.uid)
            );
        }
    }
    results.push(result);
}

fn plugin_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|entry| entry.path())
                .filter(|path| {
                    path.file_name()
                        .and_then(|name| name.to_str())
                        .is_some_and(|name| name.ends_with(".yml"))
                        && !path.is_dir()
                })
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

#[derive(Debug, Serialize)]
struct FixResult {
    planned: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    errors: Vec<String>,
    #[serde(rename = "dryRun")]
    dry_run: bool,
}

/// One planned change.
enum Action {
    Create(PathBuf),
    Mkdir(PathBuf),
    Chmod(PathBuf, u32),
    Chown {
        path: PathBuf,
        group: Option<&'static str>,
    },
}

impl Action {
    /// Go's plan text (which renders file modes as `-rw-r-----` and plugin modes as `0640`).
    fn describe(&self, plugin: bool) -> String {
        match self {
            Self::Create(path) => format!("create file: {}", path.display()),
            Self::Mkdir(path) => format!("mkdir {}", path.display()),
            Self::Chmod(path, mode) if plugin => format!("chmod {} to {mode:04o}", path.display()),
            Self::Chmod(path, mode) => {
                format!("chmod {} to {}", path.display(), mode_string(*mode))
            }
            Self::Chown { path, group } => match group {
                Some(group) => format!("chown {} to root:{group}", path.display()),
                None => format!("chown {} to root", path.display()),
            },
        }
    }

    fn apply(&self) -> Result<(), String> {
        match self {
            Self::Create(path) => std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
                .map(drop)
                .map_err(|error| format!("create {}: {error}", path.display())),
            Self::Mkdir(path) => opk_os::file::dir_builder(0o750)
                .recursive(true)
                .create(path)
                .map_err(|error| format!("mkdir {}: {error}", path.display())),
            Self::Chmod(path, mode) => opk_os::file::set_mode(path, *mode)
                .map_err(|error| format!("chmod {}: {error}", path.display())),
            Self::Chown { path, group } => {
                let gid = match group {
                    None => 0,
                    Some(name) => perms::group_id(name).ok_or_else(|| {
                        format!("chown {}: group {name} does not exist", path.display())
                    })?,
                };
                opk_os::file::set_owner(path, Some(0), Some(gid))
                    .map_err(|error| format!("chown {}: {error}", path.display()))
            }
        }
    }
}

/// Go's `fs.FileMode.String()` for a regular file.
fn mode_string(mode: u32) -> String {
    let mut text = String::from("-");
    for (bit, c) in [
        (0o400, 'r'),
        (0o200, 'w'),
        (0o100, 'x'),
        (0o040, 'r'),
        (0o020, 'w'),
        (0o010, 'x'),
        (0o004, 'r'),
        (0o002, 'w'),
        (0o001, 'x'),
    ] {
        text.push(if mode & bit != 0 { c } else { '-' });
    }
    text
}

fn plan(dir: &policy::ConfigDir) -> Vec<(Action, bool)> {
    let mut planned = Vec::new();
    let system = dir.auth_id();
    if std::fs::metadata(&system).is_err() {
        planned.push((Action::Create(system.clone()), false));
    }
    planned.push((Action::Chmod(system.clone(), 0o640), false));
    planned.push((
        Action::Chown {
            path: system,
            group: Some(OPKSSH_GROUP),
        },
        false,
    ));
    for path in [dir.providers(), dir.config()] {
        if std::fs::metadata(&path).is_ok() {
            planned.push((Action::Chmod(path.clone(), 0o640), false));
            planned.push((
                Action::Chown {
                    path,
                    group: Some(OPKSSH_GROUP),
                },
                false,
            ));
        }
    }
    let plugins = dir.plugins();
    if std::fs::metadata(&plugins).is_err() {
        planned.push((Action::Mkdir(plugins.clone()), false));
    }
    for file in plugin_files(&plugins) {
        planned.push((Action::Chmod(file.clone(), 0o640), true));
        planned.push((
            Action::Chown {
                path: file,
                group: None,
            },
            true,
        ));
    }
    planned
}

fn fix(
    config: &ConfigDirArg,
    dry_run: bool,
    yes: bool,
    json: bool,
) -> Result<ExitCode, CommandError> {
    let dir = config.dir();
    let actions = plan(&dir);
    let planned: Vec<String> = actions
        .iter()
        .map(|(action, plugin)| action.describe(*plugin))
        .collect();
    if dry_run {
        if json {
            print_json(&FixResult {
                planned,
                errors: Vec::new(),
                dry_run: true,
            })?;
        } else {
            for action in &planned {
                println!("Action: {action}");
            }
            println!("dry-run complete");
        }
        return Ok(ExitCode::SUCCESS);
    }
    if perms::effective_uid() != 0 {
        return Err(CommandError::new(
            "fix requires elevated privileges (run as root or Administrator)",
        ));
    }
    if !yes {
        println!("Planned actions:");
        for action in &planned {
            println!("  - {action}");
        }
        print!("Apply these changes? [y/N]: ");
        let _ = std::io::Write::flush(&mut std::io::stdout());
        let mut answer = String::new();
        let read = std::io::stdin()
            .lock()
            .read_line(&mut answer)
            .map_err(|error| CommandError::new(error.to_string()))?;
        if read == 0 {
            return Err(CommandError::new("EOF"));
        }
        let answer = answer.trim().to_ascii_lowercase();
        if answer != "y" && answer != "yes" {
            return Err(CommandError::new("aborted by user"));
        }
    }
    let errors: Vec<String> = actions
        .iter()
        .filter_map(|(action, _)| action.apply().err())
        .collect();
    if json {
        print_json(&FixResult {
            planned,
            errors,
            dry_run: false,
        })?;
        return Ok(ExitCode::SUCCESS);
    }
    if !errors.is_empty() {
        for error in &errors {
            println!("Error: {error}");
        }
        return Err(CommandError::new(format!(
            "fix completed with {} errors",
            errors.len()
        )));
    }
    println!("fix completed successfully");
    Ok(ExitCode::SUCCESS)
}

fn print_json(value: &impl Serialize) -> Result<(), CommandError> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|error| CommandError::new(error.to_string()))?;
    println!("{text}");
    Ok(())
}
