//! `opkssh install-server` and `opkssh uninstall-server`: the Go `install-linux.sh` as a
//! subcommand (behaviour.md §5.1), plus its inverse. The work is in
//! [`opk_install`]; this prints the plan (`--dry-run`) or applies it.
//!
//! The Go script's `OPKSSH_INSTALL_*` variables are read with its meanings (a flag wins over
//! its variable), so fleet automation written for the script works unchanged. Every variable
//! and flag value is checked first ([`install::values`]); a bad one exits 2, naming it, before
//! anything is planned.

use crate::error::{CliError, CommandError};
use opk_install as install;
use opk_install::{
    Binary, Environment, HomePolicy, InstallOptions, Layout, Machine, Plan, SelinuxOptions,
    UninstallOptions, ValueError, values,
};
use std::path::{Path, PathBuf};
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
    /// Replace an AuthorizedKeysCommand sshd runs today without keeping it: no
    /// chain_authorized_keys_command in /etc/opk/config.yml, Match blocks left alone
    #[arg(long = "no-chain")]
    pub(crate) no_chain: bool,
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
    /// Where SELinux is enabled, compile and load this type enforcement file instead of
    /// opkssh's own policy module
    #[arg(long = "install-te-from", value_name = "FILE")]
    pub(crate) install_te_from: Option<PathBuf>,
    /// Where SELinux is enabled, let opkssh verify reach a proxy on a Squid port
    /// (setsebool -P opkssh_enable_squid on)
    #[arg(long = "selinux-enable-squid")]
    pub(crate) selinux_enable_squid: bool,
    /// Where SELinux is enabled, let opkssh verify reach a proxy on an HTTP cache port
    /// (setsebool -P opkssh_enable_proxy on)
    #[arg(long = "selinux-enable-proxy")]
    pub(crate) selinux_enable_proxy: bool,
    /// Leave SELinux alone even where it is enabled: no policy module, booleans or relabeling
    #[arg(long = "no-selinux", conflicts_with_all = ["install_te_from", "selinux_enable_squid", "selinux_enable_proxy"])]
    pub(crate) no_selinux: bool,
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
    /// Also delete the verify account and group, if opkssh created them (never root)
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
    /// Leave opkssh's SELinux policy module loaded
    #[arg(long = "no-selinux")]
    pub(crate) no_selinux: bool,
    /// Print every change it would make, and change nothing
    #[arg(long = "dry-run")]
    pub(crate) dry_run: bool,
    /// Uninstall from this folder instead of / (for tests)
    #[arg(long = "root", hide = true, default_value = "/")]
    pub(crate) root: PathBuf,
}

/// The Go script's environment overrides (its names and defaults), read and checked once.
#[derive(Debug, Default)]
struct GoVariables {
    /// `(name, value)` of each variable set to a non-empty value, for the administrator.
    used: Vec<(&'static str, String)>,
    values: std::collections::BTreeMap<&'static str, String>,
}

/// What a variable holds, and so the rule its value must pass.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Account,
    Path,
    CommandDir,
    FileName,
    Boolean,
}

const GO_VARIABLES: [(&str, Kind); 12] = [
    ("OPKSSH_INSTALL_AUTH_CMD_USER", Kind::Account),
    ("OPKSSH_INSTALL_AUTH_CMD_GROUP", Kind::Account),
    ("OPKSSH_INSTALL_SUDOERS_PATH", Kind::Path),
    ("OPKSSH_INSTALL_HOME_POLICY", Kind::Boolean),
    ("OPKSSH_INSTALL_RESTART_SSH", Kind::Boolean),
    ("OPKSSH_INSTALL_OVERWRITE_ACTIVE_CONFIG", Kind::Boolean),
    ("OPKSSH_INSTALL_LOCAL_INSTALL_FILE", Kind::Path),
    ("OPKSSH_INSTALL_DIR", Kind::CommandDir),
    ("OPKSSH_INSTALL_BINARY_NAME", Kind::FileName),
    ("OPKSSH_INSTALL_SELINUX_ENABLE_PROXY", Kind::Boolean),
    ("OPKSSH_INSTALL_SELINUX_ENABLE_SQUID", Kind::Boolean),
    ("OPKSSH_LOCAL_TE_FILE", Kind::Path),
];

/// A value refused before anything is planned, named by its variable or flag (exit 2). The
/// value is shown quoted and escaped, so a control character in it reaches no terminal.
fn invalid(name: &str, value: &str, error: ValueError) -> CliError {
    CliError::InvalidValue(format!("{name}={value:?}: {error}"))
}

fn check(kind: Kind, value: &str) -> Result<(), ValueError> {
    match kind {
        Kind::Account => values::check_account_name(value),
        Kind::Path => values::check_path(value),
        Kind::CommandDir => values::check_command_dir(value),
        Kind::FileName => values::check_file_name(value),
        Kind::Boolean => values::parse_boolean(value).map(drop),
    }
}

impl GoVariables {
    /// Reads every variable and checks each set one by its rule, before anything else runs.
    fn read() -> Result<Self, CliError> {
        let mut variables = Self::default();
        for (name, kind) in GO_VARIABLES {
            // As the script's `${VAR:-default}`: set but empty means the default.
            let Some(raw) = std::env::var_os(name).filter(|value| !value.is_empty()) else {
                continue;
            };
            let value = raw
                .to_str()
                .ok_or_else(|| invalid(name, &raw.to_string_lossy(), ValueError::NotUtf8))?;
            check(kind, value).map_err(|error| invalid(name, value, error))?;
            variables.used.push((name, value.to_owned()));
            variables.values.insert(name, value.to_owned());
        }
        Ok(variables)
    }

    fn text(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// A boolean variable (already checked to be `true` or `false`), or `default` when unset.
    fn flag(&self, name: &str, default: bool) -> bool {
        self.text(name)
            .and_then(|value| values::parse_boolean(value).ok())
            .unwrap_or(default)
    }

    /// `$OPKSSH_INSTALL_DIR/$OPKSSH_INSTALL_BINARY_NAME` (both checked when read).
    fn install_path(&self) -> String {
        let dir = self.text("OPKSSH_INSTALL_DIR").unwrap_or("/usr/local/bin");
        let name = self.text("OPKSSH_INSTALL_BINARY_NAME").unwrap_or("opkssh");
        format!("{}/{name}", dir.trim_end_matches('/'))
    }

    fn print_used(&self) {
        for (name, value) in &self.used {
            println!("using {name}={value}");
        }
    }
}

/// A file named by a flag: control characters are refused, and a relative path is taken from
/// the working directory (typed by hand, unlike the variables, which automation sets and which
/// must be absolute).
fn checked_flag_path(flag: &str, path: &Path) -> Result<PathBuf, CliError> {
    let text = path
        .to_str()
        .ok_or_else(|| invalid(flag, &path.to_string_lossy(), ValueError::NotUtf8))?;
    if text.chars().any(char::is_control) {
        return Err(invalid(flag, text, ValueError::ControlCharacter));
    }
    std::path::absolute(path)
        .map_err(|error| CliError::InvalidValue(format!("{flag}={text:?}: {error}")))
}

/// The hidden `--root`: a path like any other the installer writes under.
fn checked_root(root: &Path) -> Result<PathBuf, CliError> {
    let text = root
        .to_str()
        .ok_or_else(|| invalid("--root", &root.to_string_lossy(), ValueError::NotUtf8))?;
    values::check_path(text).map_err(|error| invalid("--root", text, error))?;
    Ok(root.to_owned())
}

fn require_root(layout: &Layout, dry_run: bool, command: &str) -> Result<(), CommandError> {
    if !dry_run && layout.is_system() && !opk_os::account::is_root() {
        return Err(CommandError::new(format!(
            "{command} must run as root (it changes /etc, system accounts and sshd); try --dry-run to see what it would do"
        )));
    }
    Ok(())
}

fn failed(error: install::InstallError) -> CommandError {
    CommandError::new(error.to_string())
}

/// A planning failure; a value the plan refuses (root's account, for one) exits 2 named by its
/// variable, as a value refused when read.
fn planning_failed(error: install::InstallError, variables: &GoVariables) -> CliError {
    match error {
        install::InstallError::InvalidValue { what, value, error } => {
            let name = match what {
                "user" => "OPKSSH_INSTALL_AUTH_CMD_USER",
                "group" => "OPKSSH_INSTALL_AUTH_CMD_GROUP",
                "sudoers path" => "OPKSSH_INSTALL_SUDOERS_PATH",
                // The binary path is made of two variables, both checked when read.
                _ => return CliError::InvalidValue(format!("{what} {value:?}: {error}")),
            };
            let default = if variables.text(name).is_some() {
                ""
            } else {
                " (the default)"
            };
            CliError::InvalidValue(format!("{name}={value:?}{default}: {error}"))
        }
        other => failed(other).into(),
    }
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
            "and not reload sshd (--no-sshd-restart or OPKSSH_INSTALL_RESTART_SSH)"
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

pub(crate) fn run_install(args: &InstallServerArgs) -> Result<ExitCode, CliError> {
    let variables = GoVariables::read()?;
    let root = checked_root(&args.root)?;
    let install_from = args
        .install_from
        .as_deref()
        .map(|path| checked_flag_path("--install-from", path))
        .transpose()?;
    let install_te_from = args
        .install_te_from
        .as_deref()
        .map(|path| checked_flag_path("--install-te-from", path))
        .transpose()?;
    let local_file = install_from.or_else(|| {
        variables
            .text("OPKSSH_INSTALL_LOCAL_INSTALL_FILE")
            .map(PathBuf::from)
    });
    if args.from_package {
        for name in [
            "OPKSSH_INSTALL_LOCAL_INSTALL_FILE",
            "OPKSSH_INSTALL_DIR",
            "OPKSSH_INSTALL_BINARY_NAME",
        ] {
            if variables.text(name).is_some() {
                println!(
                    "warning: {name} is ignored with --from-package: the package's binary is {}",
                    install::PACKAGE_BINARY_PATH
                );
            }
        }
    }
    let binary = if args.from_package {
        Binary::Packaged
    } else if let Some(file) = &local_file {
        if !file.is_file() {
            return Err(CommandError::new(format!(
                "{}: the file to install does not exist",
                file.display()
            ))
            .into());
        }
        Binary::Copy(file.clone())
    } else {
        Binary::Copy(std::env::current_exe().map_err(|error| {
            CommandError::new(format!("cannot find the running opkssh binary: {error}"))
        })?)
    };
    let mut options = InstallOptions::new(binary);
    options.layout = Layout { root };
    if !args.from_package {
        options.install_path = variables.install_path();
    }
    if let Some(user) = variables.text("OPKSSH_INSTALL_AUTH_CMD_USER") {
        user.clone_into(&mut options.user);
    }
    if let Some(group) = variables.text("OPKSSH_INSTALL_AUTH_CMD_GROUP") {
        group.clone_into(&mut options.group);
    }
    if let Some(path) = variables.text("OPKSSH_INSTALL_SUDOERS_PATH") {
        path.clone_into(&mut options.sudoers_path);
    }
    options.overwrite_config =
        args.overwrite_config || variables.flag("OPKSSH_INSTALL_OVERWRITE_ACTIVE_CONFIG", false);
    options.chain = !args.no_chain;
    options.selinux = SelinuxOptions {
        skip: args.no_selinux,
        squid: args.selinux_enable_squid
            || variables.flag("OPKSSH_INSTALL_SELINUX_ENABLE_SQUID", false),
        proxy: args.selinux_enable_proxy
            || variables.flag("OPKSSH_INSTALL_SELINUX_ENABLE_PROXY", false),
        te_file: install_te_from
            .or_else(|| variables.text("OPKSSH_LOCAL_TE_FILE").map(PathBuf::from)),
    };
    if let Some(te) = &options.selinux.te_file
        && !options.selinux.skip
        && !te.is_file()
    {
        return Err(CommandError::new(format!(
            "{}: the SELinux type enforcement file does not exist",
            te.display()
        ))
        .into());
    }
    options.home_policy =
        if args.no_home_policy || !variables.flag("OPKSSH_INSTALL_HOME_POLICY", true) {
            HomePolicy::Off
        } else if args.from_package {
            HomePolicy::IfSudo
        } else {
            HomePolicy::On
        };
    require_root(&options.layout, args.dry_run, "opkssh install-server")?;
    let machine = Machine::probe(&options.layout, &[&options.user, &options.group]);
    let plan = install::plan_install(&options, &machine)
        .map_err(|error| planning_failed(error, &variables))?;
    variables.print_used();
    let reload = !args.no_sshd_restart && variables.flag("OPKSSH_INSTALL_RESTART_SSH", true);
    if args.dry_run {
        print_dry_run("opkssh install-server", &plan, reload);
        return Ok(ExitCode::SUCCESS);
    }
    let environment = Environment::probe(options.layout.clone(), reload);
    Ok(apply(
        "opkssh install-server",
        &plan,
        &environment,
        "opkssh install-server: already installed as asked, nothing changed",
    )?)
}

pub(crate) fn run_uninstall(args: &UninstallServerArgs) -> Result<ExitCode, CliError> {
    // The same variables name what install-server set up.
    let variables = GoVariables::read()?;
    let mut options = UninstallOptions::new();
    options.layout = Layout {
        root: checked_root(&args.root)?,
    };
    options.purge = args.purge;
    options.remove_user = args.remove_user;
    options.remove_binary = !args.keep_binary && !args.from_package;
    options.keep_selinux_module = args.no_selinux;
    if let Some(user) = variables.text("OPKSSH_INSTALL_AUTH_CMD_USER") {
        user.clone_into(&mut options.user);
    }
    if let Some(group) = variables.text("OPKSSH_INSTALL_AUTH_CMD_GROUP") {
        group.clone_into(&mut options.group);
    }
    if let Some(path) = variables.text("OPKSSH_INSTALL_SUDOERS_PATH") {
        path.clone_into(&mut options.sudoers_path);
    }
    options.install_path = variables.install_path();
    require_root(&options.layout, args.dry_run, "opkssh uninstall-server")?;
    let machine = Machine::probe(&options.layout, &[&options.user, &options.group]);
    let plan = install::plan_uninstall(&options, &machine)
        .map_err(|error| planning_failed(error, &variables))?;
    variables.print_used();
    let reload = !args.no_sshd_restart && variables.flag("OPKSSH_INSTALL_RESTART_SSH", true);
    if args.dry_run {
        print_dry_run("opkssh uninstall-server", &plan, reload);
        return Ok(ExitCode::SUCCESS);
    }
    let environment = Environment::probe(options.layout.clone(), reload);
    Ok(apply(
        "opkssh uninstall-server",
        &plan,
        &environment,
        "opkssh uninstall-server: nothing of opkssh's server setup is left, nothing changed",
    )?)
}
