//! `opkssh verify <principal> <key-b64> <key-type>`: sshd's AuthorizedKeysCommand
//! (`AuthorizedKeysCommand /usr/local/bin/opkssh verify %u %k %t`).
//!
//! On allow: exactly one `cert-authority…` line on stdout, exit 0. On any denial: nothing on
//! stdout, the reason in the log, exit 1. sshd strips the environment, so everything comes
//! from flags and files.
//!
//! Every decision carries its trace: each step (what was checked, in which file and line,
//! how it came out). The log gets, per decision, each step at `debug` level as
//! `trace[<pid>] <step>` (the pid tells concurrent verifies apart), then one `info` line
//! naming the deciding step: `allow principal=… identity=… rule: <step> keys=… (N ms)` or
//! `deny principal=… identity=… reason: <step> (N ms)`. Warnings (unverified email, stale
//! keys, skipped rows) stay `warn` lines. `--explain` (and `opkssh explain`) prints the same
//! steps on stdout instead of the sshd line.

use crate::commands::ConfigDirArg;
use crate::error::CliError;
use opk_core::sshcert::OpksshCertificate;
use policy::{
    Check, ConfigDir, Decision, Enforcer, HomeAccess, Location, Outcome, PolicyInput, SshRequest,
    Step, Trace, TraceSource,
};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime};
use verifier::jwks_cache::{CacheSettings, Freshness};
use verifier::log::{Level, Log};
use verifier::pipeline::{self, AuthorizedKeysLine, Denial, Request, Settings};

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
    /// Print every step of the decision on stdout instead of the sshd line (exit 0 on allow,
    /// 1 on deny).
    #[arg(long)]
    pub(crate) explain: bool,
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

/// One login attempt to decide: what sshd passes and where the server files are.
pub(crate) struct Attempt<'a> {
    pub(crate) dir: ConfigDir,
    pub(crate) cache_dir: PathBuf,
    /// Whether a missing cache folder may be created (not when explaining, often as root).
    pub(crate) create_cache_dir: bool,
    pub(crate) principal: &'a str,
    pub(crate) key_base64: &'a str,
    pub(crate) key_type: &'a str,
    pub(crate) extra: &'a [String],
}

/// A decision and everything that explains it.
pub(crate) struct Verdict {
    /// The sshd line, on allow only.
    pub(crate) line: Option<AuthorizedKeysLine>,
    /// `email issuer=…` (or `sub:…`), `-` before the token verified.
    pub(crate) identity: String,
    /// The deciding step and every step taken.
    pub(crate) trace: Trace,
    /// How the OP keys were had, on allow.
    pub(crate) freshness: Option<Freshness>,
    /// Warnings for the log.
    pub(crate) notes: Vec<String>,
}

impl Verdict {
    pub(crate) fn is_allow(&self) -> bool {
        self.line.is_some()
    }

    /// The `info` log line.
    fn summary(&self, principal: &str, elapsed_ms: u128) -> String {
        match (&self.line, self.freshness) {
            (Some(_), Some(freshness)) => format!(
                "allow principal={principal} identity={} rule: {} keys={freshness:?} ({elapsed_ms} ms)",
                self.identity, self.trace
            ),
            _ => format!(
                "deny principal={principal} identity={} reason: {} ({elapsed_ms} ms)",
                self.identity, self.trace
            ),
        }
    }

    /// What `--explain` and `opkssh explain` print: one line per step, the warnings, then
    /// the decision (`allow: …` or `deny: …`, naming the deciding step). Escaped here, where
    /// the text is made, so a claim's control characters cannot add or redraw lines.
    pub(crate) fn explanation(&self) -> String {
        let verdict = if self.is_allow() { "allow" } else { "deny" };
        let steps = self.trace.steps.iter().map(ToString::to_string);
        let notes = self.notes.iter().map(|note| format!("note  {note}"));
        opk_core::escape::lines(
            steps
                .chain(notes)
                .chain([format!("{verdict}: {}", self.trace)]),
        )
    }

    /// Logs the decision: warnings, each step (debug), the summary (info).
    pub(crate) fn log(&self, log: &mut Log, principal: &str, elapsed_ms: u128) {
        for note in &self.notes {
            log.write(Level::Warn, note);
        }
        let pid = std::process::id();
        for step in &self.trace.steps {
            log.write(Level::Debug, &format!("trace[{pid}] {step}"));
        }
        log.write(Level::Info, &self.summary(principal, elapsed_ms));
    }
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
    let mut dir = args.config.dir();
    if let Some(path) = &args.config_path {
        dir = dir.with_config_path(path);
    }
    let verdict = decide(&Attempt {
        dir,
        cache_dir: args.cache_dir.clone(),
        create_cache_dir: !args.explain,
        principal: &args.principal,
        key_base64: &args.key_base64,
        key_type: &args.key_type,
        extra: &args.extra,
    });
    verdict.log(&mut log, &args.principal, started.elapsed().as_millis());
    if args.explain {
        print!("{}", verdict.explanation());
    } else if let Some(line) = &verdict.line {
        println!("{line}");
    } else {
        // sshd copies this into its own log.
        eprintln!(
            "Error: {}",
            opk_core::escape::line(&verdict.trace.to_string())
        );
    }
    Ok(if verdict.is_allow() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The full decision, as sshd gets it: files, certificate, PK token, OP keys, policy, sshd
/// line, each step recorded.
pub(crate) fn decide(attempt: &Attempt<'_>) -> Verdict {
    let mut steps = Vec::new();
    let mut notes = Vec::new();
    let mut identity = "-".to_owned();
    match decide_steps(attempt, &mut steps, &mut notes, &mut identity) {
        Ok((line, matched, freshness)) => Verdict {
            line: Some(line),
            identity,
            trace: Trace::deciding(&matched, steps),
            freshness: Some(freshness),
            notes,
        },
        Err(reason) => Verdict {
            line: None,
            identity,
            trace: Trace::deciding(&reason, steps),
            freshness: None,
            notes,
        },
    }
}

/// Every step that can deny, in order; `Err` is the step that denied.
fn decide_steps(
    attempt: &Attempt<'_>,
    steps: &mut Vec<Step>,
    notes: &mut Vec<String>,
    identity: &mut String,
) -> Result<(AuthorizedKeysLine, Step, Freshness), Step> {
    let request = Request {
        principal: attempt.principal,
        key_base64: attempt.key_base64,
        key_type: attempt.key_type,
    };
    // Refused before any file or network access.
    pipeline::check_key_type(request.key_type, steps)
        .map_err(|denial| last_failure(steps, &denial))?;
    let dir = &attempt.dir;
    let providers_path = dir.providers();
    let providers_source = || TraceSource::Files(vec![providers_path.clone()]);
    let providers = match dir.load_providers() {
        Ok(providers) => providers,
        Err(error) => {
            return Err(failed(
                steps,
                Step::fail(
                    Check::ProvidersFile,
                    providers_source(),
                    format!("failed to load providers: {error}"),
                ),
            ));
        }
    };
    steps.push(Step::pass(
        Check::ProvidersFile,
        providers_source(),
        format!(
            "usable rows: {}, skipped lines: {}",
            providers.rows().len(),
            providers.warnings().len()
        ),
    ));
    for warning in providers.warnings() {
        notes.push(format!("config problem: {warning}"));
    }
    // Go drops env_vars and the deny lists when config.yml is unreadable and carries on; a deny
    // list that silently stops applying is a security hole, so this denies instead.
    let config_source = || TraceSource::Config(dir.config());
    let config = match dir.load_server_config_if_present() {
        Ok(Some(config)) => {
            steps.push(Step::pass(
                Check::ServerConfig,
                config_source(),
                format!(
                    "{} deny_emails, {} deny_users, {} env_vars",
                    config.deny_emails.len(),
                    config.deny_users.len(),
                    config.env_vars.len()
                ),
            ));
            config
        }
        Ok(None) => {
            steps.push(Step::skip(
                Check::ServerConfig,
                config_source(),
                "no config.yml: no deny lists, no env_vars",
            ));
            policy::ServerConfig::default()
        }
        Err(error) => {
            return Err(failed(
                steps,
                Step::fail(
                    Check::ServerConfig,
                    config_source(),
                    format!("server config: {error}"),
                ),
            ));
        }
    };
    let mut cache = CacheSettings::new(attempt.cache_dir.clone());
    cache.create_dir = attempt.create_cache_dir;
    let duration = |text: &Option<String>, name: &str| -> Result<Option<Duration>, String> {
        text.as_deref()
            .map(|text| policy::parse_duration(text).map_err(|error| format!("{name}: {error}")))
            .transpose()
    };
    match (
        duration(&config.jwks_cache_max_age, "jwks_cache_max_age"),
        duration(&config.jwks_cache_stale_limit, "jwks_cache_stale_limit"),
    ) {
        (Ok(max_age), Ok(stale_limit)) => {
            cache.max_age = max_age.unwrap_or(cache.max_age);
            cache.stale_limit = stale_limit.unwrap_or(cache.stale_limit);
        }
        (Err(error), _) | (_, Err(error)) => {
            return Err(failed(
                steps,
                Step::fail(Check::ServerConfig, config_source(), error),
            ));
        }
    }
    let settings = Settings {
        providers: providers
            .rows()
            .iter()
            .map(|row| row.provider().clone())
            .collect(),
        provider_locations: providers
            .rows()
            .iter()
            .map(|row| Location::line(&providers_path, row.line))
            .collect(),
        cache,
        env: config.env_vars.clone(),
        budget: BUDGET,
    };
    let verified =
        pipeline::verify_certificate(&request, &settings, SystemTime::now(), notes, steps)
            .map_err(|denial| last_failure(steps, &denial))?;
    let claims = verified.token.claims();
    let email = claims
        .email()
        .map_or_else(|| format!("sub:{}", claims.subject()), str::to_owned);
    *identity = format!("{email} issuer={}", claims.issuer());

    let program =
        std::env::current_exe().unwrap_or_else(|_| PathBuf::from("/usr/local/bin/opkssh"));
    let enforcer = Enforcer::new(dir.clone())
        .with_deny_lists(config.deny_lists())
        .with_env_vars(config.env_vars.clone())
        .with_max_policy_size(config.max_policy_size())
        .with_home_access(HomeAccess::sudo(program));
    let mut input = PolicyInput::new(&verified.token, attempt.principal).with_ssh(SshRequest {
        cert_b64: attempt.key_base64.to_owned(),
        key_type: attempt.key_type.to_owned(),
        extra_args: attempt.extra.to_vec(),
    });
    if let Some(userinfo) = &verified.userinfo {
        input = input.with_userinfo(serde_json::Value::Object(userinfo.clone()).to_string());
    }
    let evaluation = enforcer.evaluate(&input);
    notes.extend(evaluation.notes);
    let matched = match evaluation.decision {
        Decision::Allow { matched, .. } => {
            let step = matched.deciding_step(Outcome::Pass);
            steps.extend(matched.steps);
            step
        }
        Decision::Deny { reason } => {
            let step = reason.deciding_step(Outcome::Fail);
            steps.extend(reason.steps);
            return Err(step);
        }
    };
    let line = pipeline::authorize_traced(&verified, steps)
        .map_err(|denial| last_failure(steps, &denial))?;
    Ok((line, matched, verified.freshness))
}

/// Records a step that denied and hands it back.
fn failed(steps: &mut Vec<Step>, step: Step) -> Step {
    steps.push(step.clone());
    step
}

/// The step the pipeline recorded for `denial` (always its last one).
fn last_failure(steps: &[Step], denial: &Denial) -> Step {
    steps
        .last()
        .filter(|step| step.outcome == Outcome::Fail)
        .cloned()
        .unwrap_or_else(|| {
            Step::fail(
                Check::Certificate,
                TraceSource::Certificate,
                denial.to_string(),
            )
        })
}
