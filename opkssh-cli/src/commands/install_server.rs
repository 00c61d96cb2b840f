//! `opkssh install-server` and `opkssh uninstall-server`: the Go `install-linux.sh` as a
//! subcommand (behaviour.md §5.1), plus its inverse. The work is in
//! [`opk_install`]; this prints the plan (`--dry-run`) or applies it.

use crate::error::CommandError;
use opk_install as install;
use opk_install::{
    Binary, Environment, HomePolicy, InstallOptions, Layout, Machine, Plan, UninstallOptions,
};
use std::path::PathBuf;
use std::process::ExitCode;

/// `opkssh install-server`.
#[derive(Debug, clap::Args)]
pub(crate) struct InstallServerArgs {
    /// Do not set up home policies (~/.opk/auth_id): no sudoers rule for opkssh readhome
    #[arg(long = "no-home-policy")]
    pub(crate) no_home_policy: bool,
    /// Do not reload sshd after changing its configuration
    #[arg(long = "no-sshd-restart")]
    pub(crate) no_sshd_restart: bool,
    /// Comment out the AuthorizedKeysCommand of the sshd drop-in that sets it, instead of
    /// writing a drop-in that takes precedence over it
    #[arg(long = "overwrite-config")]
    pub(crate) overwrite_config: bool,
    /// Install this opkssh binary instead of the running one
    #[arg(
        long = "install-from",
        value_name = "FILE",
        conflicts_with = "from_package"
    )]
    pub(crate) install_from: Option<PathBuf>,
    /// A package installed the binary at /usr/bin/opkssh: set up the server around it (home
    /// policies only if sudo is installed)
    #[arg(long = "from-package")]
    pub(crate) from_package: bool,
    /// Print every change it would make, and change nothing
    #[arg(long = "dry-run")]
    pub(crate) dry_run: bool,
    /// Install into this folder instead of / (for tests; accounts are not created there)
    #[arg(long = "root", hide = true, default_value = "/")]
    pub(crate) root: PathBuf,
}

/// `opkssh uninstall-server`.
#[derive(Debug, clap::Args)]
pub(crate) struct UninstallServerArgs {
    /// Also remove /etc/opk (policy, providers, config) and /var/log/opkssh.log
    #[arg(long = "purge")]
    pub(crate) purge: bool,
    /// Also delete the opksshuser account and group
    #[arg(long = "remove-user")]
    pub(crate) remove_user: bool,
    /// Keep /usr/local/bin/opkssh
    #[arg(long = "keep-binary")]
    pub(crate) keep_binary: bool,
    /// A package owns the binary (it is kept; the package removes it)
    #[arg(long = "from-package")]
    pub(crate) from_package: bool,
    /// Do not reload sshd after changing its configuration
    #[arg(long = "no-sshd-restart")]
    pub(crate) no_sshd_restart: bool,
    /// Print every change it would make, and change nothing
    #[arg(long = "dry-run")]
    pub(crate) dry_run: bool,
    /// Uninstall from this folder instead of / (for tests)
    #[arg(long = "root", hide = true, default_value = "/")]
    pub(crate) root: PathBuf,
}

fn require_root(layout: &Layout, dry_run: bool, command: &str) -> Result<(), CommandError> {
    if !dry_run && layout.is_system() && !nix::unistd::geteuid().is_root() {
        return Err(CommandError::new(format!(
            "{command} must run as root (it changes /etc, system accounts and sshd); try --dry-run to see what it would do"
        )));
    }
    Ok(())
}

fn failed(error: install::InstallError) -> CommandError {
    CommandError::new(error.to_string())
}

fn print_dry_run(command: &str, plan: &Plan, reload: bool) {
    for warning in &plan.warnings {
        println!("warning: {warning}");
    }
    if plan.is_empty() {
        println!("{command} --dry-run: nothing would change");
        return;
    }
    let count = plan.all_changes().count();
    println!("{command} --dry-run: {count} change(s) would be made, nothing was changed:");
    for change in plan.all_changes() {
        print!("  {}", change.details());
    }
    if !plan.sshd_changes.is_empty() {
        let then = if reload {
            "and, if it passes, reload sshd"
        } else {
            "and not reload sshd (--no-sshd-restart)"
        };
        println!(
            "  then check sshd's configuration with sshd -t (restoring sshd's files if it fails) {then}"
        );
    }
    if let Some(record) = &plan.log_record {
        println!("  then append to {}: {record}", install::LOG_FILE);
    }
}

fn apply(
    command: &str,
    plan: &Plan,
    environment: &Environment,
    nothing: &str,
) -> Result<ExitCode, CommandError> {
    for warning in &plan.warnings {
        println!("warning: {warning}");
    }
    if plan.is_empty() {
        println!("{nothing}");
        return Ok(ExitCode::SUCCESS);
    }
    let outcome =
        install::apply(plan, environment, &mut |done| println!("  {done}")).map_err(failed)?;
    for note in &outcome.notes {
        println!("{note}");
    }
    println!("{command}: {} change(s) made", outcome.applied);
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn run_install(args: &InstallServerArgs) -> Result<ExitCode, CommandError> {
    let binary = if args.from_package {
        Binary::Packaged
    } else if let Some(file) = &args.install_from {
        if !file.is_file() {
            return Err(CommandError::new(format!(
                "{}: the file to install does not exist",
                file.display()
            )));
        }
        Binary::Copy(file.clone())
    } else {
        Binary::Copy(std::env::current_exe().map_err(|error| {
            CommandError::new(format!("cannot find the running opkssh binary: {error}"))
        })?)
    };
    let mut options = InstallOptions::new(binary);
    options.layout = Layout {
        root: args.root.clone(),
    };
    options.overwrite_config = args.overwrite_config;
    options.home_policy = if args.no_home_policy {
        HomePolicy::Off
    } else if args.from_package {
        HomePolicy::IfSudo
    } else {
        HomePolicy::On
    };
    require_root(&options.layout, args.dry_run, "opkssh install-server")?;
    let machine = Machine::probe(&options.layout, &[&options.user, &options.group]);
    let plan = install::plan_install(&options, &machine).map_err(failed)?;
    let reload = !args.no_sshd_restart;
    if args.dry_run {
        print_dry_run("opkssh install-server", &plan, reload);
        return Ok(ExitCode::SUCCESS);
    }
    let environment = Environment::probe(options.layout.clone(), reload);
    apply(
        "opkssh install-server",
        &plan,
        &environment,
        "opkssh install-server: already installed as asked, nothing changed",
    )
}

pub(crate) fn run_uninstall(args: &UninstallServerArgs) -> Result<ExitCode, CommandError> {
    let mut options = UninstallOptions::new();
    options.layout = Layout {
        root: args.root.clone(),
    };
    options.purge = args.purge;
    options.remove_user = args.remove_user;
    options.remove_binary = !args.keep_binary && !args.from_package;
    require_root(&options.layout, args.dry_run, "opkssh uninstall-server")?;
    let machine = Machine::probe(&options.layout, &[&options.user, &options.group]);
    let plan = install::plan_uninstall(&options, &machine).map_err(failed)?;
    let reload = !args.no_sshd_restart;
    if args.dry_run {
        print_dry_run("opkssh uninstall-server", &plan, reload);
        return Ok(ExitCode::SUCCESS);
    }
    let environment = Environment::probe(options.layout.clone(), reload);
    apply(
        "opkssh uninstall-server",
        &plan,
        &environment,
        "opkssh uninstall-server: nothing of opkssh's server setup is left, nothing changed",
    )
}
