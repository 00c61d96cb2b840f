//! The I/O edge of the decision: loads the files under the config directory (default
//! `/etc/opk`), runs plugins, reads the home policy, then hands over to [`crate::decision`].

use crate::auth_id::AuthIdFile;
use crate::decision::{
    AllowProof, Check, Decision, Evaluation, PolicyInput, Step, Trace, TraceSource,
    check_deny_lists, deny, match_rows,
};
use crate::error::FileError;
use crate::home::{self, HomeAccess};
use crate::perms::{self, Requirement};
use crate::plugin;
use crate::providers::Providers;
use crate::server_config::{DenyLists, ServerConfig, VariableNames};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The default configuration directory on Unix ([`opk_os::dirs::config_dir`] is this
/// system's: `%ProgramData%\opk` on Windows).
pub const DEFAULT_CONFIG_DIR: &str = opk_os::dirs::UNIX_CONFIG_DIR;

/// Paths of the server files under a configuration directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigDir {
    root: PathBuf,
    config_path: Option<PathBuf>,
}

impl ConfigDir {
    /// A configuration directory.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            config_path: None,
        }
    }

    /// The same directory with `config.yml` read from elsewhere (Go's `--config-path`).
    #[must_use]
    pub fn with_config_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.config_path = Some(path.into());
        self
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `providers`.
    pub fn providers(&self) -> PathBuf {
        self.root.join("providers")
    }

    /// `auth_id`.
    pub fn auth_id(&self) -> PathBuf {
        self.root.join("auth_id")
    }

    /// `config.yml`.
    pub fn config(&self) -> PathBuf {
        self.config_path
            .clone()
            .unwrap_or_else(|| self.root.join("config.yml"))
    }

    /// `policy.d`.
    pub fn plugins(&self) -> PathBuf {
        self.root.join("policy.d")
    }

    /// Loads `providers` (mode 0640, root-owned).
    ///
    /// # Errors
    /// Unreadable or mis-permissioned file, or a fatal row (see [`Providers::parse`]).
    pub fn load_providers(&self) -> Result<Providers, FileError> {
        let path = self.providers();
        let content = perms::read_checked(&path, &Requirement::SYSTEM_FILE)?;
        Providers::parse(&content, &path)
    }

    /// Loads `config.yml` (0640 root:opksshuser). Go continues without env vars and without
    /// deny lists when this fails; the caller decides, and should log it.
    ///
    /// # Errors
    /// Missing, mis-permissioned or invalid file.
    pub fn load_server_config(&self) -> Result<ServerConfig, FileError> {
        let path = self.config();
        let content = perms::read_checked(&path, &Requirement::CONFIG_FILE)?;
        let text = String::from_utf8(content).map_err(|_| {
            FileError::new(
                crate::Location::file(&path),
                crate::FileErrorKind::Yaml("not UTF-8".into()),
            )
        })?;
        ServerConfig::parse(&text, &path)
    }

    /// Loads `config.yml` if it exists: `Ok(None)` when it does not (no deny lists, no
    /// variables), `Err` when it exists but is unreadable, mis-permissioned or invalid.
    ///
    /// Go logs that error and carries on without the deny lists (behaviour.md §8.4), which
    /// silently lets in anyone the lists were keeping out. Failing closed (deny every login
    /// and log this error) is the safer reading of the same file.
    ///
    /// # Errors
    /// As [`ConfigDir::load_server_config`], except a missing file.
    pub fn load_server_config_if_present(&self) -> Result<Option<ServerConfig>, FileError> {
        match std::fs::symlink_metadata(self.config()) {
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            _ => self.load_server_config().map(Some),
        }
    }

    /// Loads the system `auth_id` (mode 0640, root-owned).
    ///
    /// # Errors
    /// Unreadable or mis-permissioned file.
    pub fn load_system_policy(&self) -> Result<AuthIdFile, FileError> {
        let path = self.auth_id();
        let content = perms::read_checked(&path, &Requirement::AUTH_ID_FILE)?;
        Ok(AuthIdFile::parse(&content, &path))
    }

    /// Loads the system `auth_id` as `verify` needs it: up to `max_size` bytes, only the rows
    /// that can concern `principal` parsed ([`AuthIdFile::parse_for`]).
    ///
    /// # Errors
    /// Unreadable, mis-permissioned or too large file.
    pub fn load_system_policy_for(
        &self,
        principal: &str,
        max_size: u64,
    ) -> Result<AuthIdFile, FileError> {
        let path = self.auth_id();
        let requirement = Requirement::AUTH_ID_FILE.with_max_size(max_size);
        let file = perms::open_checked(&path, &requirement)?;
        AuthIdFile::read_for(file, &path, principal, max_size).map_err(too_large_hint)
    }
}

/// A policy file over its size limit: say which setting raises it.
fn too_large_hint(mut error: FileError) -> FileError {
    if let crate::error::FileErrorKind::Invalid(message) = &mut error.kind
        && message.starts_with("file is larger than")
    {
        message.push_str(" (max_policy_size in config.yml)");
    }
    error
}

/// Decides logins against the policy under a configuration directory.
#[derive(Clone, PartialEq, Eq)]
pub struct Enforcer {
    dir: ConfigDir,
    deny: DenyLists,
    home: HomeAccess,
    plugins: bool,
    env_vars: BTreeMap<String, String>,
    max_policy_size: u64,
}

impl std::fmt::Debug for Enforcer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Self {
            dir,
            deny,
            home,
            plugins,
            env_vars,
            max_policy_size,
        } = self;
        f.debug_struct("Enforcer")
            .field("dir", dir)
            .field("deny", deny)
            .field("home", home)
            .field("plugins", plugins)
            .field("env_vars", &VariableNames(env_vars))
            .field("max_policy_size", max_policy_size)
            .finish()
    }
}

impl Enforcer {
    /// An enforcer for `dir`, with no deny lists, direct home reads and plugins on.
    pub fn new(dir: ConfigDir) -> Self {
        Self {
            dir,
            deny: DenyLists::default(),
            home: HomeAccess::Direct,
            plugins: true,
            env_vars: BTreeMap::new(),
            max_policy_size: perms::DEFAULT_MAX_POLICY_SIZE,
        }
    }

    /// The largest `auth_id` file read (`max_policy_size` in `config.yml`).
    #[must_use]
    pub fn with_max_policy_size(mut self, max_size: u64) -> Self {
        self.max_policy_size = max_size;
        self
    }

    /// Sets the deny lists (from `config.yml`).
    #[must_use]
    pub fn with_deny_lists(mut self, deny: DenyLists) -> Self {
        self.deny = deny;
        self
    }

    /// Sets how home policies are read.
    #[must_use]
    pub fn with_home_access(mut self, home: HomeAccess) -> Self {
        self.home = home;
        self
    }

    /// Variables for plugin processes: `env_vars` from `config.yml`. Go sets them in its own
    /// environment, which plugins inherit; Rust code without `unsafe` cannot, so they are
    /// passed to each plugin instead (the `OPKSSH_PLUGIN_*` set still wins).
    #[must_use]
    pub fn with_env_vars(mut self, env_vars: BTreeMap<String, String>) -> Self {
        self.env_vars = env_vars;
        self
    }

    /// Turns plugins off.
    #[must_use]
    pub fn without_plugins(mut self) -> Self {
        self.plugins = false;
        self
    }

    /// The configuration directory.
    pub fn dir(&self) -> &ConfigDir {
        &self.dir
    }

    /// Decides: deny lists first, then the system and home `auth_id` rows, then plugins.
    ///
    /// Go runs plugins before the rows. Both only ever allow, so the outcome is the same;
    /// running them last means no external program runs for a login a row already grants.
    /// Every reason the rows stage denies (no match, no policy file, bad userinfo) still
    /// lets a plugin allow, as in Go, and is the reported reason if none does.
    pub fn evaluate(&self, input: &PolicyInput<'_>) -> Evaluation {
        let mut steps = Vec::new();
        if let Some(reason) = check_deny_lists(input, &self.deny, &self.dir.config(), &mut steps) {
            return deny(reason, steps, Vec::new());
        }
        let mut evaluation = self.evaluate_files(input, steps);
        if evaluation.decision.is_allow() || !self.plugins {
            return evaluation;
        }
        let Decision::Deny { reason } = evaluation.decision else {
            return evaluation;
        };
        let mut steps = reason.steps.clone();
        let plugins = self.dir.plugins();
        let mut granted = None;
        match plugin::run_all_with(&plugins, input, &self.env_vars) {
            Err(skipped) => {
                steps.push(match &skipped {
                    plugin::PluginsSkipped::NoDirectory(_) => Step::skip(
                        Check::Plugin,
                        TraceSource::Plugin(plugins.clone()),
                        "no policy plugins",
                    ),
                    plugin::PluginsSkipped::Error(message) => Step::fail(
                        Check::Plugin,
                        TraceSource::Plugin(plugins.clone()),
                        format!("no plugin ran: {message}"),
                    ),
                });
                evaluation.notes.push(skipped.to_string());
            }
            Ok(results) => {
                evaluation
                    .notes
                    .extend(results.iter().map(ToString::to_string));
                for result in &results {
                    let source = TraceSource::Plugin(result.path.clone());
                    if result.allowed {
                        let allowed = Step::pass(
                            Check::Plugin,
                            source,
                            format!(
                                "policy plugin allowed {} for principal {}",
                                input.email(),
                                input.principal()
                            ),
                        );
                        granted.get_or_insert(allowed);
                    } else {
                        let why = match &result.error {
                            Some(error) => format!("error: {error}"),
                            None => format!("answered {:?}", excerpt(&result.output)),
                        };
                        steps.push(Step::fail(Check::Plugin, source, why));
                    }
                }
            }
        }
        evaluation.decision = match granted {
            Some(allowed) => {
                evaluation
                    .notes
                    .push("Access granted by policy plugin".to_owned());
                Decision::Allow {
                    matched: Trace::ending_with(steps, allowed),
                    source: crate::rule::ClaimSource::IdToken,
                    proof: AllowProof::new(),
                }
            }
            None => Decision::Deny {
                reason: Trace { steps, ..reason },
            },
        };
        evaluation
    }

    fn evaluate_files(&self, input: &PolicyInput<'_>, mut steps: Vec<Step>) -> Evaluation {
        let mut notes = Vec::new();
        let mut rows = Vec::new();
        let mut files = Vec::new();
        let mut errors = Vec::new();
        let system = self.dir.auth_id();
        match self
            .dir
            .load_system_policy_for(input.principal(), self.max_policy_size)
        {
            Ok(file) => {
                notes.extend(
                    file.warnings()
                        .iter()
                        .map(|warning| format!("warning: {warning}")),
                );
                steps.push(Step::pass(
                    Check::SystemPolicy,
                    TraceSource::Files(vec![system.clone()]),
                    rows_detail(&file, input.principal()),
                ));
                rows.extend(file.into_rows());
                files.push(system);
            }
            Err(error) => {
                notes.push(format!(
                    "warning: failed to load system default policy: {error}"
                ));
                steps.push(Step::fail(
                    Check::SystemPolicy,
                    TraceSource::Files(vec![system]),
                    error.to_string(),
                ));
                errors.push(error.to_string());
            }
        }
        match home::load_with_limit(input.principal(), &self.home, self.max_policy_size) {
            Ok((path, file)) => {
                if file.rows().is_empty() {
                    notes.push(format!(
                        "warning: user policy {} has no valid user entries; an entry is considered valid if it gives {} access.",
                        path.display(),
                        input.principal()
                    ));
                }
                notes.extend(
                    file.warnings()
                        .iter()
                        .map(|warning| format!("warning: {warning}")),
                );
                steps.push(Step::pass(
                    Check::HomePolicy,
                    TraceSource::Files(vec![path.clone()]),
                    format!(
                        "rows for {1}: {0}, skipped lines: {2}",
                        file.rows().len(),
                        input.principal(),
                        file.warnings().len()
                    ),
                ));
                rows.extend(file.into_rows());
                files.push(path);
            }
            Err(error) => {
                notes.push(format!("warning: failed to load user policy: {error}"));
                steps.push(Step::skip(
                    Check::HomePolicy,
                    TraceSource::Files(Vec::new()),
                    format!("not used: {error}"),
                ));
                errors.push(error);
            }
        }
        if files.is_empty() {
            return deny(
                Step::fail(
                    Check::PolicyUnavailable,
                    TraceSource::Files(vec![self.dir.auth_id()]),
                    format!("error loading policy: {}", errors.join("; ")),
                ),
                steps,
                notes,
            );
        }
        let mut evaluation = match_rows(input, &rows, &files, steps);
        notes.append(&mut evaluation.notes);
        evaluation.notes = notes;
        evaluation
    }
}

/// `rows: 4, skipped lines: 0`, and how many rows for other principals were not parsed.
fn rows_detail(file: &crate::AuthIdFile, principal: &str) -> String {
    let mut detail = format!(
        "rows: {}, skipped lines: {}",
        file.rows().len(),
        file.warnings().len()
    );
    if file.unlisted() > 0 {
        detail.push_str(&format!(
            ", not parsed: {} more lines for principals other than {principal}",
            file.unlisted()
        ));
    }
    detail
}

/// A plugin's answer, shortened for one trace line.
fn excerpt(output: &str) -> String {
    const MAX: usize = 200;
    let flat = output.replace(['\n', '\r'], " ");
    match flat.char_indices().nth(MAX) {
        Some((end, _)) => format!("{}…", flat.get(..end).unwrap_or_default()),
        None => flat,
    }
}
