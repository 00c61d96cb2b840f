//! `opkssh verify <principal> <key-b64> <key-type>`: sshd's AuthorizedKeysCommand
//! (`AuthorizedKeysCommand /usr/local/bin/opkssh verify %u %k %t`).
//!
//! On allow: exactly one `cert-authority…` line on stdout, exit 0. On any denial: nothing on
//! stdout, one log line with the reason, exit 1. sshd strips the environment, so everything
//! comes from flags and files.

use crate::commands::ConfigDirArg;
use crate::error::CliError;
use opk_core::sshcert::OpksshCertificate;
use policy::{Enforcer, HomeAccess, PolicyInput, SshRequest};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime};
use verifier::jwks_cache::{CacheSettings, Freshness};
use verifier::log::{Level, Log};
use verifier::pipeline::{self, Denial, Request, Settings};

/// The whole verify's budget, far below sshd's 2-minute LoginGraceTime (Go: 30 s for the token
/// alone, with no bound on the network calls).
const BUDGET: Duration = Duration::from_secs(10);

/// `opkssh verify`.
#[derive(Debug, clap::Args)]
pub(crate) struct VerifyArgs {
    #[command(flatten)]
    pub(crate) config: ConfigDirArg,
    /// The server config file (default: config.yml in the config directory).
    #[arg(long = "config-path", value_name = "FILE")]
    pub(crate) config_path: Option<PathBuf>,
    /// Where decisions are logged.
    #[arg(
        long = "log-file",
        value_name = "FILE",
        default_value = "/var/log/opkssh.log"
    )]
    pub(crate) log_file: PathBuf,
    /// The discovery and JWKS cache shared by verify processes.
    #[arg(
        long = "cache-dir",
        value_name = "DIR",
        default_value = "/var/cache/opkssh"
    )]
    pub(crate) cache_dir: PathBuf,
    /// error, warn, info or debug.
    #[arg(long = "log-level", value_name = "LEVEL", default_value = "info")]
    pub(crate) log_level: Level,
    /// `%u`: the account being logged into.
    pub(crate) principal: String,
    /// `%k`: the certificate, base64.
    pub(crate) key_base64: String,
    /// `%t`: the certificate type.
    pub(crate) key_type: String,
    /// Further sshd tokens, handed to policy plugins.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub(crate) extra: Vec<String>,
}

/// An allow: the line for sshd and what to log.
struct Allowed {
    line: pipeline::AuthorizedKeysLine,
    identity: String,
    rule: String,
    freshness: Freshness,
}

pub(crate) fn run(args: &VerifyArgs) -> Result<ExitCode, CliError> {
    let started = Instant::now();
    let mut log = Log::open(&args.log_file, args.log_level);
    let fingerprint = OpksshCertificate::from_type_and_base64(&args.key_type, &args.key_base64)
        .map_or_else(
            |_| "unparsed".to_owned(),
            |certificate| certificate.fingerprint(),
        );
    // The certificate carries an ID token: log its fingerprint, never its text (#583).
    log.write(
        Level::Debug,
        &format!(
            "verify principal={} type={} key={fingerprint}",
            args.principal, args.key_type
        ),
    );
    let mut notes = Vec::new();
    let outcome = decide(args, &mut notes);
    for note in &notes {
        log.write(Level::Warn, note);
    }
    let elapsed = started.elapsed().as_millis();
    match outcome {
        Ok(allowed) => {
            log.write(
                Level::Info,
                &format!(
                    "allow principal={} identity={} rule: {} keys={:?} ({elapsed} ms)",
                    args.principal, allowed.identity, allowed.rule, allowed.freshness
                ),
            );
            println!("{}", allowed.line);
            Ok(ExitCode::SUCCESS)
        }
        Err((identity, reason)) => {
            log.write(
                Level::Info,
                &format!(
                    "deny principal={} identity={identity} reason: {reason} ({elapsed} ms)",
                    args.principal
                ),
            );
            eprintln!("Error: {reason}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// Every step that can deny; the error carries the identity (if known yet) and the reason.
fn decide(args: &VerifyArgs, notes: &mut Vec<String>) -> Result<Allowed, (String, String)> {
    let unknown = || "-".to_owned();
    let request = Request {
        principal: &args.principal,
        key_base64: &args.key_base64,
        key_type: &args.key_type,
    };
    // Refused before any file or network access.
    if !pipeline::CERT_TYPES.contains(&request.key_type) {
        return Err((
            unknown(),
            Denial::NotACertificateType(args.key_type.clone()).to_string(),
        ));
    }
    let mut dir = args.config.dir();
    if let Some(path) = &args.config_path {
        dir = dir.with_config_path(path);
    }
    let providers = dir
        .load_providers()
        .map_err(|error| (unknown(), format!("failed to load providers: {error}")))?;
    for warning in providers.warnings() {
        notes.push(format!("config problem: {warning}"));
    }
    // Go drops env_vars and the deny lists when config.yml is unreadable and carries on; a deny
    // list that silently stops applying is a security hole, so this denies instead.
    let config = dir
        .load_server_config_if_present()
        .map_err(|error| (unknown(), format!("server config: {error}")))?
        .unwrap_or_default();
    let mut cache = CacheSettings::new(args.cache_dir.clone());
    if let Some(max_age) = &config.jwks_cache_max_age {
        cache.max_age = policy::parse_duration(max_age).map_err(|error| (unknown(), error))?;
    }
    if let Some(stale_limit) = &config.jwks_cache_stale_limit {
        cache.stale_limit =
            policy::parse_duration(stale_limit).map_err(|error| (unknown(), error))?;
    }
    let settings = Settings {
        providers: providers
            .rows()
            .iter()
            .map(|row| row.provider().clone())
            .collect(),
        cache,
        env: config.env_vars.clone(),
        budget: BUDGET,
    };
    let verified = pipeline::verify(&request, &settings, SystemTime::now(), notes)
        .map_err(|denial| (unknown(), denial.to_string()))?;
    let claims = verified.token.claims();
    let identity = claims
        .email()
        .map_or_else(|| format!("sub:{}", claims.subject()), str::to_owned);
    let identity = format!("{identity} issuer={}", claims.issuer());

    let program =
        std::env::current_exe().unwrap_or_else(|_| PathBuf::from("/usr/local/bin/opkssh"));
    let enforcer = Enforcer::new(dir)
        .with_deny_lists(config.deny_lists())
        .with_env_vars(config.env_vars.clone())
        .with_home_access(HomeAccess::sudo(program));
    let mut input = PolicyInput::new(&verified.token, &args.principal).with_ssh(SshRequest {
        cert_b64: args.key_base64.clone(),
        key_type: args.key_type.clone(),
        extra_args: args.extra.clone(),
    });
    if let Some(userinfo) = &verified.userinfo {
        input = input.with_userinfo(serde_json::Value::Object(userinfo.clone()).to_string());
    }
    let evaluation = enforcer.evaluate(&input);
    notes.extend(evaluation.notes);
    if !evaluation.decision.is_allow() {
        return Err((identity, evaluation.decision.to_string()));
    }
    let line =
        pipeline::authorize(&verified).map_err(|denial| (identity.clone(), denial.to_string()))?;
    Ok(Allowed {
        line,
        identity,
        rule: evaluation.decision.trace().to_string(),
        freshness: verified.freshness,
    })
}
