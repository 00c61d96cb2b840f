//! `opkssh ssh [OPTIONS] <ssh args…>` (upstream openpubkey/opkssh#72): run the system
//! `ssh` with the opkssh identity, logging in first when the key or certificate is missing or
//! the ID token expires within `--min-valid`. The login is this same binary's `opkssh login`
//! (browser, device flow, agent as its flags and the client config say), run as a child with
//! its output on stderr, so ssh's stdout stays the remote command's; then `ssh` replaces this
//! process (on Windows: runs as its child, and opkssh exits with its status), so the exit status
//! is ssh's. When `SSH_AUTH_SOCK` is an `opkssh agent`, ssh uses the agent's certificate and no
//! key file (an agent that presents none is asked to log in first).
//!
//! The arguments split as `sudo` and `env` split theirs: opkssh's options come first, and the
//! first argument that is not one of them starts ssh's, which are passed on exactly as written,
//! a `--` included. clap alone would swallow the user's `--` (and with it ssh's protection of a
//! host name that starts with `-`), so [`mark_ssh_arguments`] finds the split first.

use crate::error::CliError;
use crate::shown::Shown;
use opk_client::agent_session::Status;
use opk_client::check::{self, Problem};
use opk_client::{duration, placement};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, SystemTime};

/// `opkssh ssh`.
#[derive(Debug, clap::Args)]
pub(crate) struct SshArgs {
    /// Log in first when the ID token expires within this time: 90s, 45m, 1h30m or seconds.
    #[arg(long, value_name = "DURATION", default_value = "1m", value_parser = parse_duration)]
    pub(crate) min_valid: Duration,
    /// The opkssh key to use and log in to (opkssh login -i) [default: the opkssh agent at
    /// $SSH_AUTH_SOCK if one runs, else where opkssh login writes: ~/.ssh/id_ecdsa,
    /// id_ed25519, … and ~/.ssh/opkssh/].
    #[arg(long, value_name = "KEY")]
    pub(crate) key: Option<PathBuf>,
    /// For the login: provider alias from the client config.
    #[arg(long, value_name = "ALIAS")]
    pub(crate) alias: Option<String>,
    /// For the login: provider spec <issuer>,<client_id>[,<client_secret>[,<scopes>]].
    #[arg(long, value_name = "SPEC")]
    pub(crate) provider: Option<String>,
    /// For the login: use the device flow.
    #[arg(long)]
    pub(crate) device: bool,
    /// For the login: print the URL instead of opening a browser.
    #[arg(long)]
    pub(crate) disable_browser_open: bool,
    /// For the login: client config file (default: ~/.opk/config.yml).
    #[arg(long, value_name = "FILE")]
    pub(crate) config_path: Option<PathBuf>,
    /// For the login: principals to put in the certificate (opkssh login --principals).
    #[arg(long, value_name = "LIST")]
    pub(crate) principals: Vec<String>,
    /// For the login: ecdsa or ed25519 (opkssh login -t; here `-t` is ssh's).
    #[arg(long, value_name = "TYPE")]
    pub(crate) key_type: Option<String>,
    /// ssh's arguments, passed on as written: the first argument that is not an option above
    /// starts them (`-p 2222 host`, `-- "$host" command`).
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "SSH_ARGS"
    )]
    pub(crate) ssh_args: Vec<OsString>,
}

/// Marks where ssh's arguments start in a whole command line (program name first) by putting
/// a `--` there for clap to consume, so the user's own `--`, if any, reaches ssh. Other
/// subcommands' command lines come back as they were.
pub(crate) fn mark_ssh_arguments(mut command_line: Vec<OsString>) -> Vec<OsString> {
    // The program's own options take no value, so the subcommand is its first non-option.
    let subcommand = command_line
        .iter()
        .enumerate()
        .skip(1)
        .find(|(_, argument)| !argument.as_encoded_bytes().starts_with(b"-"))
        .map(|(index, argument)| (index, argument == "ssh"));
    let Some((index, true)) = subcommand else {
        return command_line;
    };
    let rest = command_line.get(index + 1..).unwrap_or_default();
    let start = index + 1 + count_opkssh_options(rest);
    command_line.insert(start.min(command_line.len()), OsString::from("--"));
    command_line
}

/// How many of `arguments` (those after `ssh`) are opkssh's options and their values, going
/// by the clap definition so the two cannot disagree.
fn count_opkssh_options(arguments: &[OsString]) -> usize {
    use clap::Args as _;
    let mut command = SshArgs::augment_args(clap::Command::new("ssh"));
    command.build();
    let takes_value = |argument: &clap::Arg| argument.get_action().takes_values();
    let mut count = 0;
    while let Some(argument) = arguments.get(count) {
        let bytes = argument.as_encoded_bytes();
        let known = if let Some(long) = bytes.strip_prefix(b"--").filter(|long| !long.is_empty()) {
            let (name, inline_value) = match long.iter().position(|&byte| byte == b'=') {
                Some(equals) => (long.get(..equals).unwrap_or_default(), true),
                None => (long, false),
            };
            command
                .get_arguments()
                .find(|known| {
                    known
                        .get_long()
                        .is_some_and(|known| known.as_bytes() == name)
                })
                .map(|known| takes_value(known) && !inline_value)
        } else if let [b'-', short] = bytes {
            command
                .get_arguments()
                .find(|known| {
                    known
                        .get_short()
                        .is_some_and(|known| u32::from(known) == u32::from(*short))
                })
                .map(takes_value)
        } else {
            None
        };
        match known {
            Some(true) => count += 2,
            Some(false) => count += 1,
            None => break,
        }
    }
    count.min(arguments.len())
}

fn parse_duration(value: &str) -> Result<Duration, String> {
    duration::parse(value).map_err(|error| error.to_string())
}

fn fail(message: impl std::fmt::Display) -> CliError {
    CliError::Usage(message.to_string())
}

fn candidates(args: &SshArgs) -> Result<Vec<PathBuf>, CliError> {
    match &args.key {
        Some(key) => Ok(vec![key.clone()]),
        None => placement::home_dir()
            .map(|home| check::default_candidates(&home))
            .ok_or_else(|| fail("could not find the home directory")),
    }
}

fn why(problem: &Problem) -> String {
    match problem {
        Problem::MissingKey { .. } => "no opkssh key".to_owned(),
        Problem::MissingCertificate { certificate, .. } => {
            format!("no certificate at {}", Shown::current().path(certificate))
        }
        Problem::NotOpkssh { certificate, .. } => {
            format!(
                "{} is not an opkssh certificate",
                Shown::current().path(certificate)
            )
        }
        Problem::KeyNotPrivate { key, .. } => {
            format!("others may read the key {}", Shown::current().path(key))
        }
        Problem::Expired { .. } => "the ID token has expired".to_owned(),
        Problem::ExpiresWithin { within, .. } => {
            format!("the ID token expires within {}", duration::format(*within))
        }
    }
}

/// `--flag=value` as one argument, so login cannot read a value that starts with `-` as a flag.
fn flag_with_value(flag: &str, value: impl AsRef<std::ffi::OsStr>) -> OsString {
    let mut argument = OsString::from(flag);
    argument.push("=");
    argument.push(value);
    argument
}

/// Runs `opkssh login` with the login flags given to `opkssh ssh`, its output on stderr.
fn log_in(args: &SshArgs) -> Result<(), CliError> {
    let exe =
        std::env::current_exe().map_err(|error| fail(format!("cannot find opkssh: {error}")))?;
    let mut login = Command::new(exe);
    login.arg("login");
    if let Some(key) = &args.key {
        login.arg(flag_with_value("--private-key-file", key));
    }
    if let Some(provider) = &args.provider {
        login.arg(flag_with_value("--provider", provider));
    }
    if args.device {
        login.arg("--device");
    }
    if args.disable_browser_open {
        login.arg("--disable-browser-open");
    }
    if let Some(config) = &args.config_path {
        login.arg(flag_with_value("--config-path", config));
    }
    for principals in &args.principals {
        login.arg(flag_with_value("--principals", principals));
    }
    if let Some(key_type) = &args.key_type {
        login.arg(flag_with_value("--key-type", key_type));
    }
    if let Some(alias) = &args.alias {
        // After `--`, so an alias such as `--create-config` stays an alias.
        login.arg("--").arg(alias);
    }
    let stderr = opk_os::process::stderr_for_child()
        .map_err(|error| fail(format!("cannot run opkssh login: {error}")))?;
    let status = login
        .stdout(stderr)
        .status()
        .map_err(|error| fail(format!("cannot run opkssh login: {error}")))?;
    if status.success() {
        Ok(())
    } else {
        Err(fail(format!(
            "opkssh login failed ({status}); not running ssh"
        )))
    }
}

/// `-o <keyword>="<path>"` for ssh, the path quoted as ssh_config(5) reads it
/// ([`placement::ssh_config_path`]); `-i` would stat the path before the `%` expansion, so no
/// escape works there.
fn ssh_config_option(keyword: &str, path: &Path) -> Result<OsString, CliError> {
    let shown = Shown::current();
    let path = std::path::absolute(path).map_err(|error| {
        CliError::Usage(format!(
            "cannot resolve {}: {}",
            shown.path(path),
            shown.text(&error)
        ))
    })?;
    let quoted = placement::ssh_config_path(&path)
        .map_err(|error| CliError::Usage(shown.naming(&error, &[&error.path])))?;
    let mut option = OsString::from(format!("{keyword}="));
    option.push(quoted);
    Ok(option)
}

/// With an opkssh agent at `SSH_AUTH_SOCK` (and no `--key`), ssh takes the agent's
/// certificate: no key file is named. An agent that presents none is asked to log in first
/// (its own provider; the login flags here are for `opkssh login`).
fn run_through_agent(args: &SshArgs, socket: &Path, status: &Status) -> Result<ExitCode, CliError> {
    let now = opk_client::agent_session::now();
    let min_valid = i64::try_from(args.min_valid.as_secs()).unwrap_or(i64::MAX);
    let refreshed_in_time = status
        .next_refresh
        .zip(status.expires_at)
        .is_some_and(|(refresh, expiry)| refresh < expiry);
    let usable = status.holding
        && (refreshed_in_time
            || status
                .expires_at
                .is_none_or(|expiry| expiry > now.saturating_add(min_valid)));
    if !usable {
        eprintln!(
            "opkssh ssh: the opkssh agent at {} presents no certificate good for {}; asking it \
             to log in",
            opk_core::escape::path(socket),
            duration::format(args.min_valid)
        );
        crate::running_agent::log_in_again(socket, &mut |line| eprintln!("{line}"))?;
    }
    let mut ssh = Command::new("ssh");
    ssh.args(&args.ssh_args);
    opk_os::process::run_in_place(&mut ssh)
        .map_err(|error| fail(format!("cannot run ssh: {error}")))
}

pub(crate) fn run(args: &SshArgs) -> Result<ExitCode, CliError> {
    if args.key.is_none()
        && let Some((socket, status)) = crate::running_agent::running_agent()
    {
        return run_through_agent(args, &socket, &status);
    }
    if let Some(key) = &args.key {
        // Before any login: a key ssh cannot be given is refused now, not after it.
        ssh_config_option("IdentityFile", key)?;
    }
    let candidates = candidates(args)?;
    let usable = match check::check(&candidates, args.min_valid, SystemTime::now()) {
        Ok(usable) => usable,
        Err(problem) => {
            eprintln!("opkssh ssh: {}; logging in", why(&problem));
            log_in(args)?;
            // The new certificate must be there now; it may be shorter-lived than asked.
            check::check(&candidates, Duration::ZERO, SystemTime::now()).map_err(|problem| {
                fail(format!(
                    "opkssh login succeeded but left no usable certificate: {}",
                    why(&problem)
                ))
            })?
        }
    };
    let mut ssh = Command::new("ssh");
    ssh.arg("-o")
        .arg(ssh_config_option("IdentityFile", &usable.key)?)
        .arg("-o")
        .arg(ssh_config_option("CertificateFile", &usable.certificate)?)
        .args(&args.ssh_args);
    opk_os::process::run_in_place(&mut ssh)
        .map_err(|error| fail(format!("cannot run ssh: {error}")))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)] // test code: a panic is a failure

    use super::*;

    fn marked(command_line: &str) -> String {
        let words = command_line.split(' ').map(OsString::from).collect();
        let marked: Vec<String> = mark_ssh_arguments(words)
            .into_iter()
            .map(|word| word.into_string().unwrap())
            .collect();
        marked.join(" ")
    }

    #[test]
    fn the_first_argument_opkssh_does_not_know_starts_ssh_arguments() {
        assert_eq!(
            marked("opkssh ssh host uptime"),
            "opkssh ssh -- host uptime"
        );
        assert_eq!(
            marked("opkssh ssh -p 2222 host"),
            "opkssh ssh -- -p 2222 host"
        );
        assert_eq!(
            marked("opkssh ssh --key K -o BatchMode=yes host"),
            "opkssh ssh --key K -- -o BatchMode=yes host"
        );
        assert_eq!(
            marked("opkssh ssh --key=K --device -t host"),
            "opkssh ssh --key=K --device -- -t host"
        );
        // opkssh's option names after the host are the remote command's.
        assert_eq!(
            marked("opkssh ssh --alias a host --key K"),
            "opkssh ssh --alias a -- host --key K"
        );
    }

    #[test]
    fn the_users_double_dash_goes_to_ssh() {
        assert_eq!(
            marked("opkssh ssh --key K -- -oProxyCommand=x true"),
            "opkssh ssh --key K -- -- -oProxyCommand=x true"
        );
        assert_eq!(marked("opkssh ssh -- host"), "opkssh ssh -- -- host");
        // A value is taken whole, whatever it looks like.
        assert_eq!(
            marked("opkssh ssh --alias -- host"),
            "opkssh ssh --alias -- -- host"
        );
    }

    #[test]
    fn help_and_a_missing_value_stay_opkssh_s() {
        assert_eq!(marked("opkssh ssh --help"), "opkssh ssh --help --");
        assert_eq!(marked("opkssh ssh -h"), "opkssh ssh -h --");
        assert_eq!(marked("opkssh ssh --key"), "opkssh ssh --key --");
    }

    fn option(path: &str) -> Result<String, CliError> {
        ssh_config_option("CertificateFile", Path::new(path))
            .map(|option| option.into_string().unwrap())
    }

    #[test]
    fn key_paths_reach_ssh_quoted_with_percent_doubled() {
        assert_eq!(
            option("/home/a b/id 100%d-cert.pub").unwrap(),
            "CertificateFile=\"/home/a b/id 100%%d-cert.pub\""
        );
        assert_eq!(
            option("/home/it's #1/k").unwrap(),
            "CertificateFile=\"/home/it's #1/k\""
        );
        // Never a leading `~` for ssh to expand.
        assert!(
            option("~other/k")
                .unwrap()
                .starts_with("CertificateFile=\"/")
        );
    }

    #[test]
    fn key_paths_ssh_cannot_take_are_refused() {
        for path in ["/a\"b", "/a\\b", "/${HOME}/k", "/a\nb"] {
            let error = option(path).unwrap_err().to_string();
            assert!(
                error.contains("ssh cannot be given the path"),
                "{path}: {error}"
            );
        }
    }

    #[test]
    fn other_commands_are_left_alone() {
        assert_eq!(marked("opkssh login -- x"), "opkssh login -- x");
        assert_eq!(marked("opkssh --version ssh"), "opkssh --version ssh --");
        assert_eq!(marked("opkssh help ssh"), "opkssh help ssh");
    }
}
