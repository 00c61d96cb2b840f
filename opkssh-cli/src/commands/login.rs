//! `opkssh login [alias]` (behaviour.md §2.2): choose the provider, log in through the
//! browser (or the CI runner), build the certificate, write the key pair where Go would, add
//! it to the ssh-agent (best effort when `SSH_AUTH_SOCK` is set, as upstream #611; required
//! with `--agent`, alone with `--agent-only`, never with `--no-agent`), print the identity,
//! and with `--auto-refresh` keep the certificate fresh.
//!
//! With `--agent-key <fingerprint>` the user key is one the ssh-agent already holds (a
//! hardware-backed key in Secretive, a YubiKey agent, 1Password): the agent signs the PK token
//! and the certificate, no key file is written, and only the certificate goes to
//! `<-i PATH>-cert.pub` (the agent cannot take a certificate without its private key).

use crate::error::CliError;
use crate::provider::{
    Chosen, ProviderFlags, choose_provider, open_browser, parse_key_type, parse_principal,
    read_config, wants_access_token,
};
use crate::report;
use crate::shown::Shown;
use opk_client::agent::{Agent, AgentError};
use opk_client::agent_certificates::{AddError, Added, Removals};
use opk_client::agent_key::find_agent_key;
use opk_client::client_config::{self, ClientConfig, DEFAULT_CLIENT_CONFIG, ProviderKind};
use opk_client::files::{write_atomic, write_certificate};
use opk_client::placement::{self, Destination};
use opk_client::{
    Identity, Progress, agent_certificates, device, identity_string, issuer_of, login,
    pretty_id_token,
};
use opk_core::device::DeviceAuthorization;
use opk_core::escape;
use opk_core::jws::SigningKey;
use opk_core::pktoken::PkToken;
use opk_core::sshcert::{
    CertComment, OpksshCertificate, UserKeyType, generate_user_key, private_key_to_openssh,
};
use opk_net::http::HttpClient;
use opk_os::System;
use opk_os::private_file::Privacy;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `opkssh login`.
#[derive(Debug, clap::Args)]
pub(crate) struct LoginArgs {
    /// Provider alias from the client config, or `webchooser`.
    pub(crate) alias: Option<String>,
    /// Keep running and refresh the ID token before it expires, rewriting the certificate.
    #[arg(long)]
    pub(crate) auto_refresh: bool,
    /// Client config file (default: ~/.opk/config.yml).
    #[arg(long, value_name = "FILE")]
    pub(crate) config_path: Option<PathBuf>,
    /// Write the default client config if there is none, then exit.
    #[arg(long)]
    pub(crate) create_config: bool,
    /// Set up the ~/.ssh/opkssh identity directory, then exit.
    #[arg(long)]
    pub(crate) configure: bool,
    /// Also append log lines to <DIR>/opkssh.log.
    #[arg(long, value_name = "DIR")]
    pub(crate) log_dir: Option<PathBuf>,
    /// Do not open a browser; print the URL to open instead.
    #[arg(long)]
    pub(crate) disable_browser_open: bool,
    /// Print the ID token's main claims after login.
    #[arg(long)]
    pub(crate) print_id_token: bool,
    /// Put the OAuth access token in the certificate (for userinfo on the server).
    #[arg(long)]
    pub(crate) send_access_token: bool,
    /// Provider spec: <issuer>,<client_id>[,<client_secret>[,<scopes>]].
    #[arg(long, value_name = "SPEC")]
    pub(crate) provider: Option<String>,
    /// Print the certificate and private key instead of writing files.
    #[arg(short = 'p', long)]
    pub(crate) print_key: bool,
    /// Print the new certificate as `opkssh inspect` does.
    #[arg(long)]
    pub(crate) inspect_cert: bool,
    /// Same as --inspect-cert.
    #[arg(short = 'v', long)]
    pub(crate) verbose: bool,
    /// Write the private key here and the certificate to <path>-cert.pub.
    #[arg(short = 'i', long = "private-key-file", value_name = "PATH")]
    pub(crate) private_key_file: Option<PathBuf>,
    /// ecdsa or ed25519.
    #[arg(short = 't', long, value_name = "TYPE", default_value = "ecdsa", value_parser = parse_key_type)]
    pub(crate) key_type: UserKeyType,
    /// Redirect URI sent to the OP instead of the local listener's.
    #[arg(long, value_name = "URI")]
    pub(crate) remote_redirect_uri: Option<String>,
    /// Principals for the certificate (comma list). Default: opkssh-wildcard.
    #[arg(long, value_delimiter = ',', value_name = "LIST", value_parser = parse_principal)]
    pub(crate) principals: Option<Vec<String>>,
    /// Give up waiting for the browser after this many seconds [default: 300; with --device:
    /// when the provider's code expires].
    #[arg(long, value_name = "SECONDS")]
    pub(crate) timeout: Option<u64>,
    /// Log in with the device flow (no browser here): open the printed page on any device and
    /// enter the code shown.
    #[arg(long)]
    pub(crate) device: bool,
    /// With --device: do not draw the QR code.
    #[arg(long)]
    pub(crate) no_qr: bool,
    /// Fail unless the key and certificate can be added to the ssh-agent ($SSH_AUTH_SOCK);
    /// without it they are added when SSH_AUTH_SOCK is set, and a missing agent is a warning.
    #[arg(long)]
    pub(crate) agent: bool,
    /// Like --agent, but write no key files (for shared machines).
    #[arg(long, conflicts_with_all = ["print_key", "private_key_file"])]
    pub(crate) agent_only: bool,
    /// Do not touch the ssh-agent, even when SSH_AUTH_SOCK is set.
    #[arg(long, conflicts_with_all = ["agent", "agent_only", "lifetime"])]
    pub(crate) no_agent: bool,
    /// Sign with this key of the ssh-agent instead of a new one (SHA256:… as `ssh-add -l`
    /// prints it; ECDSA P-256 or Ed25519). The key never leaves the agent; only the certificate
    /// is written, to <PATH>-cert.pub of -i (use it with ssh -o CertificateFile=<PATH>-cert.pub).
    #[arg(
        long,
        value_name = "FINGERPRINT",
        requires = "private_key_file",
        conflicts_with_all = ["agent", "agent_only", "print_key", "key_type", "lifetime"]
    )]
    pub(crate) agent_key: Option<String>,
    /// How long the ssh-agent keeps the key: 12h, 45m, 1h30m or seconds [default:
    /// agent_lifetime from the client config, else 24h]. Never longer than the ID token has
    /// left. Not on Windows, whose agent takes no lifetime: there the next login or logout
    /// removes the key.
    #[arg(long, value_name = "DURATION", value_parser = parse_lifetime)]
    pub(crate) lifetime: Option<Duration>,
}

/// Whether and how the login uses the ssh-agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AgentUse {
    /// `--no-agent`, or `SSH_AUTH_SOCK` unset: the agent is not touched.
    Off,
    /// `SSH_AUTH_SOCK` set: add the identity, and only warn if that fails.
    BestEffort,
    /// `--agent`: add the identity or fail (checked before the browser opens).
    Required,
    /// `--agent-only`: as `Required`, and no key files.
    Only,
}

/// What the login does with the agent, resolved before the browser opens.
#[derive(Debug, Clone, Copy)]
struct AgentPlan {
    usage: AgentUse,
    /// The requested lifetime (cut to the ID token's remaining validity when added).
    lifetime: Duration,
    /// Whose agent rules apply: this system's, or those `OPKSSH_AGENT_RULES` names (a test
    /// seam, CONTRIBUTING.md; it changes nothing but whether a lifetime is sent).
    rules: System,
}

impl LoginArgs {
    pub(crate) fn provider_flags(&self) -> ProviderFlags<'_> {
        ProviderFlags {
            alias: self.alias.as_deref(),
            provider: self.provider.as_deref(),
            device: self.device,
            no_qr: self.no_qr,
            remote_redirect_uri: self.remote_redirect_uri.as_deref(),
            timeout: self.timeout,
        }
    }

    fn agent_use(&self) -> AgentUse {
        // With --agent-key the agent already holds the key, and a certificate goes into an
        // agent only with its private key, which it never gives out.
        if self.no_agent || self.agent_key.is_some() {
            AgentUse::Off
        } else if self.agent_only {
            AgentUse::Only
        } else if self.agent {
            AgentUse::Required
        } else if opk_os::agent::default_agent_path().is_some() {
            // $SSH_AUTH_SOCK, or on Windows Win32-OpenSSH's pipe.
            AgentUse::BestEffort
        } else {
            AgentUse::Off
        }
    }
}

fn parse_lifetime(value: &str) -> Result<Duration, String> {
    opk_client::duration::parse_lifetime(value).map_err(|error| error.to_string())
}

/// `--lifetime` › `agent_lifetime` › 24 h (upstream's order and default).
fn agent_plan(args: &LoginArgs, config: &ClientConfig) -> Result<AgentPlan, CliError> {
    let usage = args.agent_use();
    let lifetime = match (usage, args.lifetime) {
        (AgentUse::Off, _) => opk_client::duration::DEFAULT_AGENT_LIFETIME,
        (_, Some(lifetime)) => lifetime,
        (_, None) => config
            .agent_lifetime()
            .map_err(fail)?
            .unwrap_or(opk_client::duration::DEFAULT_AGENT_LIFETIME),
    };
    let rules = match usage {
        AgentUse::Off => System::CURRENT,
        _ => opk_os::agent::rules_from_env()
            .map_err(|error| CliError::InvalidValue(escape::line(&error.to_string()).into()))?,
    };
    Ok(AgentPlan {
        usage,
        lifetime,
        rules,
    })
}

/// Where output goes: stdout, and log lines also to `--log-dir`.
pub(crate) struct Output {
    log_file: Option<std::fs::File>,
    /// `--disable-browser-open`.
    disable_browser_open: bool,
    /// `--device` without `--no-qr`.
    qr: bool,
}

impl Progress for Output {
    fn open_url(&mut self, url: &str) {
        open_browser(url, self.disable_browser_open, &mut |line| {
            println!("{line}")
        });
    }

    fn device_code(&mut self, authorization: &DeviceAuthorization) {
        println!("{}", device::instructions(authorization, self.qr));
    }
}

impl Output {
    pub(crate) fn new(log_dir: Option<&Path>) -> Self {
        let log_file = log_dir.and_then(|dir| {
            opk_os::file::Guards {
                create_mode: Some(0o660),
                ..opk_os::file::Guards::default()
            }
            .options()
            .append(true)
            .create(true)
            .open(dir.join("opkssh.log"))
            .ok()
        });
        Self {
            log_file,
            disable_browser_open: false,
            qr: false,
        }
    }

    /// A plain line on stdout.
    pub(crate) fn say(&mut self, text: &str) {
        println!("{text}");
    }

    /// A timestamped log line on stdout (and in the log file).
    pub(crate) fn log(&mut self, text: &str) {
        let line = format!("{} {text}", opk_os::time::timestamp(SystemTime::now()));
        println!("{line}");
        if let Some(file) = self.log_file.as_mut() {
            let _ = writeln!(file, "{line}");
        }
    }
}

/// A failure in words from elsewhere (a library error, which may quote the provider's
/// `error_description` or a claim) or fixed ones: shown by the line rule. A message that names
/// a file is built from pieces escaped where each is put in ([`Shown`]) and goes to
/// [`shown_fail`].
fn fail(message: impl std::fmt::Display) -> CliError {
    CliError::Usage(Shown::current().text(&message))
}

/// A failure whose message was built from escaped pieces ([`Shown`]): shown as it is.
fn shown_fail(message: String) -> CliError {
    CliError::Usage(message)
}

pub(crate) fn run(args: &LoginArgs) -> Result<ExitCode, CliError> {
    let mut out = Output::new(args.log_dir.as_deref());
    out.disable_browser_open = args.disable_browser_open;
    out.qr = !args.no_qr;
    // Every message is escaped where its pieces are put in (fail, shown_fail), so the paths in
    // it print as paths and what the provider said cannot redraw the terminal or the log.
    let result = run_inner(args, &mut out);
    if let Err(error) = &result {
        out.log(&format!("Error executing login command: {error}"));
    }
    result
}

fn home() -> Result<PathBuf, CliError> {
    placement::home_dir().ok_or_else(|| fail("could not find the home directory"))
}

fn run_inner(args: &LoginArgs, out: &mut Output) -> Result<ExitCode, CliError> {
    args.provider_flags().check()?;
    let shown = Shown::current();
    if args.configure {
        let home = home()?;
        placement::configure_identity_dir(&home)
            .map_err(|error| shown_fail(shown.placement(&error)))?;
        out.say(&format!(
            "Configured the OPK SSH identity directory {} (included from {})",
            shown.path(&placement::identity_dir(&home)),
            shown.path(&home.join(".ssh").join("config"))
        ));
        return Ok(ExitCode::SUCCESS);
    }
    let config_path = match &args.config_path {
        Some(path) => path.clone(),
        None => opk_os::dirs::client_config_path(&home()?),
    };
    if args.create_config {
        if config_path.exists() {
            out.log(&format!(
                "client config file already exists at {}, not overwriting it",
                shown.path(&config_path)
            ));
        } else {
            create_config(shown, &config_path)?;
            out.log(&format!(
                "created client config file at {}",
                shown.path(&config_path)
            ));
            return Ok(ExitCode::SUCCESS);
        }
    }
    if matches!(args.agent_use(), AgentUse::Required | AgentUse::Only) {
        // Before the browser opens: a login the agent cannot take would be wasted.
        Agent::from_env()
            .and_then(|mut agent| agent.identities())
            .map_err(|error| {
                shown_fail(format!("cannot use the ssh-agent: {}", shown.agent(&error)))
            })?;
    }
    // Before the browser opens: the key the login commits to.
    let key = user_key(args)?;
    let config = load_config(shown, &config_path, out)?;
    let agent = agent_plan(args, &config)?;
    let http = opk_client::http_client_from_env();
    match choose_provider(&args.provider_flags(), &config, out)? {
        Chosen::Provider(kind) => login_with(args, &kind, &config, (key, agent), &http, out, None),
        Chosen::Chooser(mut chosen) => {
            // The tab that chose goes on to the provider's `/login`.
            let kind = chosen.kind.clone();
            let mut redirect = |url: &str| chosen.redirect(url);
            login_with(
                args,
                &kind,
                &config,
                (key, agent),
                &http,
                out,
                Some(&mut redirect),
            )
        }
    }
}

/// A fresh key of `--key-type`, or with `--agent-key` the ssh-agent's key, found (and its type
/// checked) before anything else happens.
fn user_key(args: &LoginArgs) -> Result<SigningKey, CliError> {
    let Some(fingerprint) = &args.agent_key else {
        return generate_user_key(args.key_type).map_err(fail);
    };
    if let Some(path) = &args.private_key_file
        && std::fs::symlink_metadata(path).is_ok()
    {
        return Err(fail(format!(
            "{} exists; with --agent-key only {} is written, and it would not belong to the key \
             in that file: give -i a path where no key file is",
            path.display(),
            opk_client::files::certificate_path(path).display()
        )));
    }
    let agent = opk_os::agent::default_agent_path().ok_or_else(|| {
        fail("--agent-key needs the ssh-agent that holds the key, and SSH_AUTH_SOCK is not set")
    })?;
    find_agent_key(&agent, fingerprint).map_err(fail)
}

fn create_config(shown: Shown, path: &Path) -> Result<(), CliError> {
    if let Some(parent) = path
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
    {
        std::fs::create_dir_all(parent)
            .map_err(|error| file_failed(shown, "failed to create directory", parent, &error))?;
    }
    write_atomic(path, DEFAULT_CLIENT_CONFIG.as_bytes(), 0o644)
        .map_err(|error| shown_fail(shown.write(&error)))
}

/// `<what> <path>: <error>`, each piece escaped by its rule.
fn file_failed(shown: Shown, what: &str, path: &Path, error: &dyn std::fmt::Display) -> CliError {
    shown_fail(format!(
        "{what} {}: {}",
        shown.path(path),
        shown.text(error)
    ))
}

fn load_config(shown: Shown, path: &Path, out: &mut Output) -> Result<ClientConfig, CliError> {
    read_config(shown, path, &mut |line| out.log(line))
}

/// Logs in with a resolved provider and does everything after.
fn login_with(
    args: &LoginArgs,
    kind: &ProviderKind,
    config: &ClientConfig,
    (key, agent): (SigningKey, AgentPlan),
    http: &HttpClient,
    out: &mut Output,
    opener: Option<&mut dyn FnMut(&str)>,
) -> Result<ExitCode, CliError> {
    if args.auto_refresh && !client_config::supports_refresh(kind) {
        return Err(fail(format!(
            "{} does not support auto-refresh",
            issuer_of(kind)
        )));
    }
    let home = home().ok();
    if args.private_key_file.is_none()
        && home.as_deref().is_some_and(placement::identity_dir_active)
    {
        out.say("OPK SSH identity directory is configured");
    }
    let flow = args.provider_flags().flow(kind)?;
    let identity = match opener {
        Some(mut opener) => opk_client::log_in(kind, key, flow, http, &mut opener),
        None => opk_client::log_in(kind, key, flow, http, out),
    }
    .map_err(fail)?;
    finish(
        args,
        kind,
        config,
        agent,
        identity,
        home.as_deref(),
        http,
        out,
    )
}

fn send_access_token(
    args: &LoginArgs,
    config: &ClientConfig,
    issuer: &str,
    out: &mut Output,
) -> bool {
    wants_access_token(args.send_access_token, config, issuer, &mut |line| {
        out.log(line);
    })
}

fn make_certificate(
    args: &LoginArgs,
    key: &SigningKey,
    pk_token: &PkToken,
    access_token: Option<&str>,
) -> Result<OpksshCertificate, CliError> {
    opk_client::certificate(key, pk_token, args.principals.as_deref(), access_token).map_err(fail)
}

#[allow(clippy::too_many_arguments)] // the login's state, handed on once from login_with
fn finish(
    args: &LoginArgs,
    kind: &ProviderKind,
    config: &ClientConfig,
    agent: AgentPlan,
    mut identity: Identity,
    home: Option<&Path>,
    http: &HttpClient,
    out: &mut Output,
) -> Result<ExitCode, CliError> {
    let issuer = identity.pk_token.claims().issuer().to_owned();
    let audience = opk_client::audience_string(identity.pk_token.claims());
    let with_access_token = send_access_token(args, config, &issuer, out);
    let access_token = if with_access_token {
        let token = identity
            .session
            .as_ref()
            .and_then(|session| session.access_token.as_ref())
            .map(|token| token.as_str().to_owned());
        if token.is_none() {
            return Err(fail(
                "--send-access-token was requested but the provider returned no access token",
            ));
        }
        token
    } else {
        None
    };
    let certificate = make_certificate(
        args,
        &identity.key,
        &identity.pk_token,
        access_token.as_deref(),
    )?;

    // With --agent-key: the certificate only, at <-i PATH>-cert.pub (clap requires -i).
    let certificate_only = identity
        .key
        .external()
        .and_then(|_| args.private_key_file.clone());
    let destination = if let Some(path) = &certificate_only {
        write_certificate_only(path, &identity.key, &certificate, out)?;
        None
    } else if args.print_key {
        let pem = private_key_to_openssh(&identity.key).map_err(fail)?;
        print!("{}", certificate.to_line(CertComment::None));
        println!("{}", pem.as_str());
        None
    } else if agent.usage == AgentUse::Only {
        None
    } else {
        let home = home.ok_or_else(|| fail("could not find the home directory"))?;
        let destination = placement::choose(
            args.private_key_file.as_deref(),
            home,
            args.key_type,
            &issuer,
            &audience,
        )
        .map_err(|error| shown_fail(Shown::current().placement(&error)))?;
        write_keys(
            &destination,
            &identity.key,
            &certificate,
            &issuer,
            &audience,
            out,
        )?;
        Some(destination)
    };
    add_to_agent(agent, &identity.key, &certificate, &identity.pk_token, out)?;

    if args.print_id_token {
        out.say(&format!(
            "id_token:\n{}",
            pretty_id_token(identity.pk_token.claims())
        ));
    }
    if args.inspect_cert || args.verbose {
        print!(
            "{}",
            report::text_report(&certificate.to_line(CertComment::Default)).map_err(fail)?
        );
    }
    out.say(&format!(
        "Keys generated for identity\n{}",
        identity_string(identity.pk_token.claims())
    ));

    if args.auto_refresh {
        let Some(session) = identity.session.as_mut() else {
            return Err(fail(format!(
                "{} does not support auto-refresh",
                issuer_of(kind)
            )));
        };
        if !session.can_refresh() {
            return Err(fail(format!(
                "{issuer} does not support auto-refresh (it returned no refresh token)"
            )));
        }
        let mut schedule = login::RefreshSchedule::default();
        loop {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |since| {
                    i64::try_from(since.as_secs()).unwrap_or(i64::MAX)
                });
            let wait = schedule.next_wait(login::current_expiry(&session.pk_token), now);
            out.log(&format!(
                "Waiting for {}s before attempting to refresh id_token...",
                wait.as_secs()
            ));
            std::thread::sleep(wait);
            out.log("Refreshing id_token...");
            login::refresh(session, http).map_err(fail)?;
            let access_token = if with_access_token {
                session
                    .access_token
                    .as_ref()
                    .map(|token| token.as_str().to_owned())
            } else {
                None
            };
            let certificate = make_certificate(
                args,
                &session.key,
                &session.pk_token,
                access_token.as_deref(),
            )?;
            match (&destination, &certificate_only) {
                (_, Some(path)) => {
                    write_certificate_only(path, &session.key, &certificate, out)?;
                }
                (Some(destination), None) => {
                    write_keys(
                        destination,
                        &session.key,
                        &certificate,
                        &issuer,
                        &audience,
                        out,
                    )?;
                }
                (None, None) if agent.usage == AgentUse::Only => {}
                (None, None) => {
                    let pem = private_key_to_openssh(&session.key).map_err(fail)?;
                    print!("{}", certificate.to_line(CertComment::None));
                    println!("{}", pem.as_str());
                }
            }
            add_to_agent(agent, &session.key, &certificate, &session.pk_token, out)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn write_keys(
    destination: &Destination,
    key: &SigningKey,
    certificate: &OpksshCertificate,
    issuer: &str,
    audience: &str,
    out: &mut Output,
) -> Result<(), CliError> {
    let shown = Shown::current();
    let written = placement::write(destination, key, certificate, issuer, audience)
        .map_err(|error| shown_fail(shown.placement(&error)))?;
    out.say(&format!(
        "Writing opk ssh public key to {} and corresponding secret key to {}",
        shown.path(&written.certificate),
        shown.path(destination.key_path())
    ));
    if let Privacy::Unchecked(why) = &written.key_privacy {
        eprintln!(
            "Warning: could not make sure that only you can read {}: {} (the login \
             succeeded; Windows' ssh refuses a private key others can read: icacls shows who \
             can)",
            escape::path(destination.key_path()),
            escape::line(why)
        );
    }
    Ok(())
}

/// Writes `<path>-cert.pub` for a key the ssh-agent holds, and says which key signs with it.
fn write_certificate_only(
    path: &Path,
    key: &SigningKey,
    certificate: &OpksshCertificate,
    out: &mut Output,
) -> Result<(), CliError> {
    let written = write_certificate(path, certificate, CertComment::Default).map_err(fail)?;
    let holder = key
        .external()
        .map(|held| held.describe())
        .unwrap_or_default();
    out.say(&format!(
        "Writing opk ssh certificate to {}; the key stays in the ssh-agent ({holder}). Use it \
         with: ssh -o CertificateFile={} …",
        written.display(),
        written.display()
    ));
    Ok(())
}

/// Adds the identity to the agent as `plan` says, stale opkssh certificates out first
/// (reported on stderr). A best-effort failure is a warning on stderr that says no agent was
/// used; the login goes on.
fn add_to_agent(
    plan: AgentPlan,
    key: &SigningKey,
    certificate: &OpksshCertificate,
    pk_token: &PkToken,
    out: &mut Output,
) -> Result<(), CliError> {
    if plan.usage == AgentUse::Off {
        return Ok(());
    }
    let shown = Shown::current();
    let added = Agent::from_env().map_err(AddError::from).and_then(|agent| {
        agent_certificates::add_replacing_stale(
            &mut agent.with_rules(plan.rules),
            key,
            certificate,
            pk_token,
            plan.lifetime,
            SystemTime::now(),
        )
    });
    let removals = match &added {
        Ok(added) => &added.removals,
        Err(failed) => &failed.removals,
    };
    report_removals(shown, removals);
    match added {
        Ok(added) => {
            out.say(&added_line(&added));
            Ok(())
        }
        Err(failed) if plan.usage == AgentUse::BestEffort => {
            eprintln!("{}", no_agent_warning(shown, &failed.error));
            Ok(())
        }
        Err(failed) => Err(shown_fail(format!(
            "ssh-agent: {}",
            shown.agent(&failed.error)
        ))),
    }
}

fn report_removals(shown: Shown, removals: &Removals) {
    for removal in &removals.removed {
        eprintln!(
            "Removed opkssh certificate from ssh-agent: {} ({}): {}",
            removal.certificate.comment,
            removal.certificate.fingerprint,
            shown.text(&removal.reason)
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
}

/// What the login says it added. Without a lifetime (an agent that takes none, as
/// Win32-OpenSSH's), nothing expires it: it says what removes it instead.
fn added_line(added: &Added) -> String {
    match added.lifetime {
        Some(seconds) => format!(
            "Added opkssh certificate to ssh-agent: {} (lifetime {seconds} s)",
            added.comment
        ),
        None => format!(
            "Added opkssh certificate to ssh-agent: {} (no lifetime, which this ssh-agent does \
             not take: it keeps the key until the next opkssh login or opkssh logout removes it)",
            added.comment
        ),
    }
}

/// The warning of a best-effort add that failed: the login goes on without an agent.
fn no_agent_warning(shown: Shown, error: &AgentError) -> String {
    format!(
        "Warning: no ssh-agent was used, the key was not added to one: {} (the login \
         succeeded; --no-agent skips the agent)",
        shown.agent(error)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn added(lifetime: Option<u32>) -> Added {
        Added {
            comment: "openpubkey https://op.example alice@example.com".to_owned(),
            lifetime,
            removals: Removals::default(),
        }
    }

    #[test]
    fn the_added_line_names_the_lifetime_or_what_removes_the_key() {
        assert_eq!(
            added_line(&added(Some(3599))),
            "Added opkssh certificate to ssh-agent: openpubkey https://op.example \
             alice@example.com (lifetime 3599 s)"
        );
        let without = added_line(&added(None));
        assert!(
            without.starts_with(
                "Added opkssh certificate to ssh-agent: openpubkey https://op.example \
                 alice@example.com (no lifetime, "
            ),
            "{without}"
        );
        assert!(
            without.ends_with(
                "it keeps the key until the next opkssh login or opkssh logout removes it)"
            ),
            "{without}"
        );
        assert!(!without.contains(" s)"), "{without}");
    }

    #[test]
    fn a_refused_add_says_no_agent_was_used() {
        let warning = no_agent_warning(
            Shown::on(System::Windows),
            &AgentError::Refused("add the certificate"),
        );
        assert_eq!(
            warning,
            "Warning: no ssh-agent was used, the key was not added to one: the ssh-agent \
             refused to add the certificate (the login succeeded; --no-agent skips the agent)"
        );
        let unreachable = AgentError::Unreachable {
            path: opk_os::agent::WINDOWS_AGENT_PIPE.into(),
            source: std::io::ErrorKind::NotFound.into(),
        };
        assert!(
            no_agent_warning(Shown::on(System::Windows), &unreachable)
                .contains(r" at \\.\pipe\openssh-ssh-agent: "),
            "{}",
            no_agent_warning(Shown::on(System::Windows), &unreachable)
        );
    }

    #[test]
    fn a_windows_path_in_a_login_error_prints_as_a_path_and_the_rest_is_escaped() {
        let error = file_failed(
            Shown::on(System::Windows),
            "failed to read client config file",
            Path::new(r"C:\Users\Zoë\.opk\config.yml"),
            &"Access is denied. \\ \u{1b}[2K\r\nError: forged",
        );
        assert_eq!(
            error.to_string(),
            r"failed to read client config file C:\Users\Zoë\.opk\config.yml: Access is denied. \\ \x1b[2K\r\nError: forged"
        );
        // The same message on Unix: a backslash in a Unix path is a character, doubled.
        let error = file_failed(
            Shown::on(System::Unix),
            "failed to read client config file",
            Path::new(r"/home/a\b/.opk/config.yml"),
            &"Is a directory",
        );
        assert_eq!(
            error.to_string(),
            r"failed to read client config file /home/a\\b/.opk/config.yml: Is a directory"
        );
    }

    #[test]
    fn words_from_elsewhere_are_escaped() {
        assert_eq!(
            fail("the OpenID provider refused: access_denied (no\u{1b}[2K\rway \\n)").to_string(),
            r"the OpenID provider refused: access_denied (no\x1b[2K\rway \\n)"
        );
    }
}
