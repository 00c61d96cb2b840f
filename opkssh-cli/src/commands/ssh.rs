//! `opkssh ssh [OPTIONS] [--] <ssh args…>` (upstream openpubkey/opkssh#72): run the system
//! `ssh` with the opkssh identity, logging in first when the key or certificate is missing or
//! the ID token expires within `--min-valid`. The login is this same binary's `opkssh login`
//! (browser, device flow, agent as its flags and the client config say), run as a child with
//! its output on stderr, so ssh's stdout stays the remote command's; then `ssh` replaces this
//! process, so the exit status is ssh's.

use crate::error::CliError;
use opk_client::check::{self, Problem};
use opk_client::{duration, placement};
use std::ffi::OsString;
use std::os::fd::AsFd as _;
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, SystemTime};

/// `opkssh ssh`.
#[derive(Debug, clap::Args)]
pub(crate) struct SshArgs {
    /// Log in first when the ID token expires within this time: 90s, 45m, 1h30m or seconds.
    #[arg(long, value_name = "DURATION", default_value = "1m", value_parser = parse_duration)]
    pub(crate) min_valid: Duration,
    /// The opkssh key to use and log in to (opkssh login -i) [default: where opkssh login
    /// writes: ~/.ssh/id_ecdsa, id_ed25519, … and ~/.ssh/opkssh/].
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
    /// Arguments for ssh (host, command, ssh options), after `--` if they start with `-`.
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "SSH_ARGS"
    )]
    pub(crate) ssh_args: Vec<OsString>,
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
            format!("no certificate at {}", certificate.display())
        }
        Problem::NotOpkssh { certificate, .. } => {
            format!("{} is not an opkssh certificate", certificate.display())
        }
        Problem::Expired { .. } => "the ID token has expired".to_owned(),
        Problem::ExpiresWithin { within, .. } => {
            format!("the ID token expires within {}", duration::format(*within))
        }
    }
}

/// Runs `opkssh login` with the login flags given to `opkssh ssh`, its output on stderr.
fn log_in(args: &SshArgs) -> Result<(), CliError> {
    let exe =
        std::env::current_exe().map_err(|error| fail(format!("cannot find opkssh: {error}")))?;
    let mut login = Command::new(exe);
    login.arg("login");
    if let Some(key) = &args.key {
        login.arg("-i").arg(key);
    }
    if let Some(provider) = &args.provider {
        login.arg("--provider").arg(provider);
    }
    if args.device {
        login.arg("--device");
    }
    if args.disable_browser_open {
        login.arg("--disable-browser-open");
    }
    if let Some(config) = &args.config_path {
        login.arg("--config-path").arg(config);
    }
    if let Some(alias) = &args.alias {
        login.arg(alias);
    }
    let stderr = std::io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .map_err(|error| fail(format!("cannot run opkssh login: {error}")))?;
    let status = login
        .stdout(Stdio::from(stderr))
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

pub(crate) fn run(args: &SshArgs) -> Result<ExitCode, CliError> {
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
    let mut certificate_option = OsString::from("CertificateFile=");
    certificate_option.push(usable.certificate.as_os_str());
    let error = Command::new("ssh")
        .arg("-i")
        .arg(&usable.key)
        .arg("-o")
        .arg(certificate_option)
        .args(&args.ssh_args)
        .exec();
    Err(fail(format!("cannot run ssh: {error}")))
}
