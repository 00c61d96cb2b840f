//! The whole server decision for one login, as `opkssh verify` makes it for sshd: the
//! providers file, config.yml and its cache settings, the certificate, the PK token, the OP's
//! keys (through the cache), the policy (rows, plugins, home policy), the principal check and
//! the sshd line, each step recorded in a [`Trace`]; then, for a key opkssh does not let in,
//! the chained `AuthorizedKeysCommand` of `config.yml` ([`policy::chain`]) as [`ChainMode`]
//! says.
//!
//! `opkssh verify`, `verify --explain`, `opkssh explain` and `opkssh demo` all call [`decide`];
//! so can anything that accepts opkssh certificates in process (an SSH server written in Rust,
//! for example), with sshd's three strings.

use crate::jwks_cache::{CacheSettings, Freshness};
use crate::log::{Level, Log};
use crate::pipeline::{self, AuthorizedKeysLine, Denial, Request, Settings};
use policy::chain::{ChainCommand, ChainError, ChainOutcome, ChainRun, OfferedKey};
use policy::{
    AuthIdFile, Check, ClaimSource, ConfigDir, Decision, DenyLists, Enforcer, Evaluation,
    FileError, FileErrorKind, HomeAccess, Location, Outcome, PolicyInput, Providers, ServerConfig,
    SshRequest, Step, Trace, TraceSource,
};
use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

/// The whole verify's budget, far below sshd's 2-minute LoginGraceTime (Go: 30 s for the token
/// alone, with no bound on the network calls).
const BUDGET: Duration = Duration::from_secs(10);

/// What Go's verify logs on allow (`log.Println("successfully verified")`).
pub const GO_ALLOW: &str = "successfully verified";
/// What Go's verify logs before the reason of a denial (`log.Println("failed to verify:", err)`).
pub const GO_DENY: &str = "failed to verify:";
/// What Go's verify logs before the providers rows once the file loads.
pub const GO_PROVIDERS: &str = "Providers loaded:";

/// One login attempt to decide: what sshd passes and where the server files are.
pub struct Attempt<'a> {
    /// The configuration directory (`/etc/opk`): providers, auth_id, config.yml, policy.d.
    pub dir: ConfigDir,
    /// The discovery and JWKS cache shared by verify processes (`/var/cache/opkssh`).
    pub cache_dir: PathBuf,
    /// Whether a missing cache folder may be created (not when explaining, often as root).
    pub create_cache_dir: bool,
    /// How the server files are read: [`ServerFiles::Installed`] for any real server.
    pub files: ServerFiles,
    /// sshd's `%u`: the account being logged into.
    pub principal: &'a str,
    /// sshd's `%k`: the certificate, base64.
    pub key_base64: &'a str,
    /// sshd's `%t`: the certificate type.
    pub key_type: &'a str,
    /// Further sshd tokens, handed to policy plugins.
    pub extra: &'a [String],
    /// What to do with `chain_authorized_keys_command` when opkssh does not let the key in.
    pub chain: ChainMode,
}

/// What [`decide`] does with `chain_authorized_keys_command` (`config.yml`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChainMode {
    /// Run it for a key opkssh does not let in, and pass on its lines: `verify` for sshd.
    Run,
    /// Say whether it would run and whether it passes the safety rule, without running it:
    /// `explain` and `verify --explain`, often run as root by hand.
    Describe,
    /// Leave it alone: `demo`, whose files are not a server's.
    Ignore,
}

/// What became of `chain_authorized_keys_command` for this key.
#[derive(Debug, Clone)]
pub enum Chain {
    /// opkssh denied the key and the chained command ran, or was refused.
    Ran(ChainRun),
    /// opkssh denied the key; the command would run, if it passes the safety rule
    /// ([`ChainMode::Describe`]).
    WouldRun {
        /// The command as configured.
        command: String,
        /// The safety rule's verdict.
        safety: Result<(), ChainError>,
    },
    /// opkssh let the key in, so the chain was not consulted.
    NotRun {
        /// The command as configured.
        command: String,
    },
    /// `config.yml` could not be read, so whether a command is configured is unknown.
    Unknown(String),
}

impl Chain {
    /// The lines it passes on to sshd.
    pub fn lines(&self) -> &[String] {
        match self {
            Self::Ran(run) => &run.lines,
            _ => &[],
        }
    }

    /// The trace step: pass when lines were passed on, skip when not consulted or only
    /// described as safe, fail otherwise.
    fn step(&self, config: PathBuf) -> Step {
        let source = TraceSource::Config(config);
        let detail = self.to_string();
        let detail = detail.strip_prefix("chain ").unwrap_or(&detail).to_owned();
        match self {
            Self::Ran(run) if !run.lines.is_empty() => Step::pass(Check::Chain, source, detail),
            Self::NotRun { .. } | Self::WouldRun { safety: Ok(()), .. } => {
                Step::skip(Check::Chain, source, detail)
            }
            _ => Step::fail(Check::Chain, source, detail),
        }
    }
}

/// `chain "<command>" ran in 4 ms: exit status: 0, 1 line passed, 0 dropped` and the like: the
/// command as configured (never expanded: `%k` can hold an ID token) and what came of it.
impl fmt::Display for Chain {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ran(run) => write!(formatter, "chain {:?} {run}", run.command),
            Self::WouldRun {
                command,
                safety: Ok(()),
            } => write!(
                formatter,
                "chain {command:?} would run for this key (opkssh denied it); it passes the safety rule"
            ),
            Self::WouldRun {
                command,
                safety: Err(error),
            } => write!(formatter, "chain {command:?} would be refused: {error}"),
            Self::NotRun { command } => {
                write!(
                    formatter,
                    "chain {command:?} not run: opkssh let the key in"
                )
            }
            Self::Unknown(error) => write!(
                formatter,
                "chain not run: config.yml could not be read: {error}"
            ),
        }
    }
}

/// How [`decide`] reads the files under the configuration directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerFiles {
    /// As `opkssh verify` must: `providers` and `auth_id` root-owned with their modes checked,
    /// then plugins and home policies.
    Installed,
    /// `providers` and the system `auth_id` only, read with no owner or mode check, no plugins
    /// and no home policies: for `opkssh demo` run by a user who cannot make root-owned files.
    /// Anyone who can write the folder decides the logins, so never for a real server.
    DemoUnchecked,
}

/// A decision and everything that explains it.
pub struct Verdict {
    /// The sshd line, on allow only.
    pub line: Option<AuthorizedKeysLine>,
    /// `email issuer=…` (or `sub:…`), `-` before the token verified; `email (from userinfo)
    /// issuer=…` when the deciding row matched the userinfo claims.
    pub identity: String,
    /// The deciding step and every step taken.
    pub trace: Trace,
    /// How the OP keys were had, on allow.
    pub freshness: Option<Freshness>,
    /// Warnings for the log.
    pub notes: Vec<String>,
    /// The providers rows, for Go's `Providers loaded:` log line; `None` if the file did not
    /// load.
    pub providers_loaded: Option<String>,
    /// `chain_authorized_keys_command`, when one is configured (or `config.yml` is unreadable).
    pub chain: Option<Chain>,
}

impl Verdict {
    /// Whether opkssh lets the login in (there is a `cert-authority` line).
    pub fn is_allow(&self) -> bool {
        self.line.is_some()
    }

    /// What `verify` prints for sshd: the `cert-authority` line on allow, else the lines the
    /// chained command passed (often none).
    pub fn sshd_lines(&self) -> Vec<String> {
        match (&self.line, &self.chain) {
            (Some(line), _) => vec![line.to_string()],
            (None, Some(chain)) => chain.lines().to_vec(),
            (None, None) => Vec::new(),
        }
    }

    /// The `info` log line. It starts with Go's own words (`successfully verified`, `failed to
    /// verify:`; Go: main.go) because fleets alert on them, and they must keep firing when the
    /// Go binary is swapped for this one.
    /// With a chained command, what came of it follows the opkssh decision.
    fn summary(&self, principal: &str, elapsed_ms: u128) -> String {
        let chain = self
            .chain
            .as_ref()
            .map_or_else(String::new, |chain| format!("; {chain}"));
        match (&self.line, self.freshness) {
            (Some(_), Some(freshness)) => format!(
                "{GO_ALLOW}: allow principal={principal} identity={} rule: {} keys={freshness:?}{chain} ({elapsed_ms} ms)",
                self.identity, self.trace
            ),
            _ => format!(
                "{GO_DENY} deny principal={principal} identity={} reason: {}{chain} ({elapsed_ms} ms)",
                self.identity, self.trace
            ),
        }
    }

    /// What `--explain` and `opkssh explain` print: one line per step, the warnings, then
    /// the decision (`allow: …` or `deny: …`, naming the deciding step). Escaped here, where
    /// the text is made ([`opk_core::escape`]), so a claim's control characters cannot add or
    /// redraw lines on the terminal it is printed to.
    pub fn explanation(&self) -> String {
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
    pub fn log(&self, log: &mut Log, principal: &str, elapsed_ms: u128) {
        if let Some(rows) = &self.providers_loaded {
            log.write(Level::Info, &format!("{GO_PROVIDERS} {rows}"));
        }
        for note in &self.notes {
            log.write(Level::Warn, note);
        }
        if let Some(Chain::Ran(run)) = &self.chain {
            log_chain_run(log, run);
        }
        let pid = std::process::id();
        for step in &self.trace.steps {
            log.write(Level::Debug, &format!("trace[{pid}] {step}"));
        }
        log.write(Level::Info, &self.summary(principal, elapsed_ms));
    }
}

/// The full decision, as sshd gets it: files, certificate, PK token, OP keys, policy, sshd
/// line, each step recorded.
///
/// # Decide one login in process
/// An SSH server that accepts opkssh certificates itself hands over what sshd would pass to
/// `opkssh verify %u %k %t`. Here, a Go-made certificate whose PK token lacks its CIC signature
/// is denied, before any key is fetched:
/// ```
/// use policy::ConfigDir;
/// use std::os::unix::fs::PermissionsExt as _;
/// use verifier::{Attempt, ChainMode, ServerFiles, decide};
///
/// # fn main() -> std::io::Result<()> {
/// let vector = std::path::Path::new("../tests/vectors/go-opkssh/reject/neg-rs256-cic-missing");
/// let config = tempfile::tempdir()?; // /etc/opk on a server: root-owned, 0640 files
/// let cache = tempfile::tempdir()?; // /var/cache/opkssh
/// let issuer = std::fs::read_to_string(vector.join("issuer.txt"))?;
/// let providers = config.path().join("providers");
/// std::fs::write(&providers, format!("{} opkssh-test-client oidc\n", issuer.trim()))?;
/// std::fs::set_permissions(&providers, std::fs::Permissions::from_mode(0o640))?;
/// let auth_id = config.path().join("auth_id");
/// std::fs::write(&auth_id, format!("alice alice@example.com {}\n", issuer.trim()))?;
/// std::fs::set_permissions(&auth_id, std::fs::Permissions::from_mode(0o640))?;
///
/// // sshd's %u, %k and %t.
/// let line = std::fs::read_to_string(vector.join("cert.pub"))?;
/// let mut fields = line.split_whitespace();
/// let (key_type, key_base64) = (fields.next().unwrap_or(""), fields.next().unwrap_or(""));
/// let verdict = decide(&Attempt {
///     dir: ConfigDir::new(config.path()),
///     cache_dir: cache.path().to_owned(),
///     create_cache_dir: true,
///     files: ServerFiles::Installed,
///     principal: "alice",
///     key_base64,
///     key_type,
///     extra: &[],
///     chain: ChainMode::Run,
/// });
/// assert!(!verdict.is_allow());
/// assert!(verdict.line.is_none()); // on allow: the `cert-authority` line for sshd
/// println!("{}", verdict.explanation()); // every step, then `deny: <the deciding step>`
/// # Ok(())
/// # }
/// ```
pub fn decide(attempt: &Attempt<'_>) -> Verdict {
    let started = Instant::now();
    let mut steps = Vec::new();
    let mut notes = Vec::new();
    let mut identity = "-".to_owned();
    let mut providers_loaded = None;
    let mut config = None;
    let decided = decide_steps(
        attempt,
        &mut steps,
        &mut notes,
        &mut identity,
        &mut providers_loaded,
        &mut config,
    );
    let chain = chained(attempt, decided.is_ok(), config, started);
    if let Some(chain) = &chain {
        steps.push(chain.step(attempt.dir.config()));
    }
    match decided {
        Ok((line, matched, freshness)) => Verdict {
            line: Some(line),
            identity,
            trace: Trace::deciding(&matched, steps),
            freshness: Some(freshness),
            notes,
            providers_loaded,
            chain,
        },
        Err(reason) => Verdict {
            line: None,
            identity,
            trace: Trace::deciding(&reason, steps),
            freshness: None,
            notes,
            providers_loaded,
            chain,
        },
    }
}

/// `config.yml` as [`decide_steps`] read it: `None` if it stopped before, `Ok(default)` when
/// there is no file.
type LoadedConfig = Option<Result<ServerConfig, String>>;

/// The chained command, for a key opkssh let in (not consulted) or denied (run, described or
/// ignored as `attempt.chain` says). `None` when none is configured.
fn chained(
    attempt: &Attempt<'_>,
    allowed: bool,
    config: LoadedConfig,
    started: Instant,
) -> Option<Chain> {
    if attempt.chain == ChainMode::Ignore || attempt.files == ServerFiles::DemoUnchecked {
        return None;
    }
    // A key that is no certificate is refused before config.yml is read: read it now.
    let config = config.unwrap_or_else(|| {
        attempt
            .dir
            .load_server_config_if_present()
            .map(Option::unwrap_or_default)
            .map_err(|error| error.to_string())
    });
    let config = match config {
        Ok(config) => config,
        Err(error) => return Some(Chain::Unknown(error)),
    };
    let command = config.chain_authorized_keys_command?;
    if allowed {
        return Some(Chain::NotRun { command });
    }
    Some(match attempt.chain {
        ChainMode::Describe | ChainMode::Ignore => Chain::WouldRun {
            safety: ChainCommand::check(&command).map(|_| ()),
            command,
        },
        ChainMode::Run => {
            let key = OfferedKey {
                principal: attempt.principal,
                key_type: attempt.key_type,
                key_base64: attempt.key_base64,
            };
            let budget = BUDGET.saturating_sub(started.elapsed());
            Chain::Ran(policy::chain::run(&command, &key, &config.env_vars, budget))
        }
    })
}

/// What the chained command printed that did not pass, and its stderr: `warn` lines before
/// the decision. A refusal is an `error`: the admin configured a command that never runs.
fn log_chain_run(log: &mut Log, run: &ChainRun) {
    if let ChainOutcome::Refused(error) = &run.outcome {
        log.write(
            Level::Error,
            &format!(
                "chain_authorized_keys_command {:?} not run: {error}",
                run.command
            ),
        );
    }
    for dropped in &run.dropped {
        log.write(
            Level::Warn,
            &format!(
                "chained command output line {} dropped: {} (line starts {:?})",
                dropped.number, dropped.reason, dropped.start
            ),
        );
    }
    let undescribed = run.dropped_count.saturating_sub(run.dropped.len());
    if undescribed > 0 {
        log.write(
            Level::Warn,
            &format!("chained command output: {undescribed} more lines dropped"),
        );
    }
    if !run.stderr.is_empty() {
        let truncated = if run.stderr_truncated {
            format!(" (cut at {} bytes)", policy::chain::MAX_STDERR)
        } else {
            String::new()
        };
        log.write(
            Level::Warn,
            &format!(
                "chained command stderr: {}{truncated}",
                run.stderr.trim_end()
            ),
        );
    }
}

/// Every step that can deny, in order; `Err` is the step that denied.
fn decide_steps(
    attempt: &Attempt<'_>,
    steps: &mut Vec<Step>,
    notes: &mut Vec<String>,
    identity: &mut String,
    providers_loaded: &mut Option<String>,
    loaded_config: &mut LoadedConfig,
) -> Result<(AuthorizedKeysLine, Step, Freshness), Step> {
    let request = Request {
        principal: attempt.principal,
        key_base64: attempt.key_base64,
        key_type: attempt.key_type,
    };
    // Refused before any file or network access (a chained command is looked up after).
    pipeline::check_key_type(request.key_type, steps)
        .map_err(|denial| last_failure(steps, &denial))?;
    let dir = &attempt.dir;
    let providers_path = dir.providers();
    let providers_source = || TraceSource::Files(vec![providers_path.clone()]);
    let providers = match load_providers(attempt.files, dir) {
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
    *providers_loaded = Some(
        providers
            .rows()
            .iter()
            .map(|row| format!("{} {} {}", row.issuer, row.client_id, row.expiration))
            .collect::<Vec<_>>()
            .join(", "),
    );
    // Go drops env_vars and the deny lists when config.yml is unreadable and carries on; a deny
    // list that silently stops applying is a security hole, so this denies instead.
    let config_source = || TraceSource::Config(dir.config());
    let config = dir.load_server_config_if_present();
    *loaded_config = Some(
        config
            .clone()
            .map(Option::unwrap_or_default)
            .map_err(|error| error.to_string()),
    );
    let config = match config {
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
        env: opk_net::proxy::process_env_with(&config.env_vars),
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
    let mut input = PolicyInput::new(&verified.token, attempt.principal)
        .with_ssh(SshRequest {
            cert_b64: attempt.key_base64.to_owned(),
            key_type: attempt.key_type.to_owned(),
            extra_args: attempt.extra.to_vec(),
        })
        .with_system_account_facts();
    if let Some(userinfo) = &verified.userinfo {
        input = input.with_userinfo(serde_json::Value::Object(userinfo.clone()).to_string());
    }
    let evaluation = match attempt.files {
        ServerFiles::Installed => enforcer.evaluate(&input),
        ServerFiles::DemoUnchecked => evaluate_unchecked(dir, &input),
    };
    notes.extend(evaluation.notes);
    let matched = match evaluation.decision {
        Decision::Allow {
            matched, source, ..
        } => {
            // The log names the identity that was let in: a row that matched the userinfo
            // claims let in the userinfo email, not the ID token's.
            if source == ClaimSource::Userinfo
                && let Some(userinfo) = &verified.userinfo
            {
                let who = userinfo
                    .get("email")
                    .and_then(serde_json::Value::as_str)
                    .filter(|email| !email.is_empty())
                    .map_or_else(|| format!("sub:{}", claims.subject()), str::to_owned);
                *identity = format!("{who} (from userinfo) issuer={}", claims.issuer());
            }
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

fn load_providers(files: ServerFiles, dir: &ConfigDir) -> Result<Providers, FileError> {
    match files {
        ServerFiles::Installed => dir.load_providers(),
        ServerFiles::DemoUnchecked => {
            let path = dir.providers();
            let content = std::fs::read(&path).map_err(|error| FileError {
                location: Location::file(&path),
                kind: FileErrorKind::Io(error.kind(), error.to_string()),
            })?;
            Providers::parse(&content, &path)
        }
    }
}

/// The system `auth_id` rows alone, read as they are ([`ServerFiles::DemoUnchecked`]).
fn evaluate_unchecked(dir: &ConfigDir, input: &PolicyInput<'_>) -> Evaluation {
    let path = dir.auth_id();
    let content = match std::fs::read(&path) {
        Ok(content) => content,
        Err(error) => {
            let step = Step::fail(
                Check::PolicyUnavailable,
                TraceSource::Files(vec![path.clone()]),
                format!("failed to read {}: {error}", path.display()),
            );
            return Evaluation {
                decision: Decision::Deny {
                    reason: Trace::deciding(&step, vec![step.clone()]),
                },
                notes: Vec::new(),
            };
        }
    };
    let file = AuthIdFile::parse(&content, &path);
    policy::evaluate_rows(
        input,
        &DenyLists::default(),
        &dir.config(),
        file.rows(),
        &[path],
    )
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
