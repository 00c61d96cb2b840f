//! `/etc/opk/policy.d/*.yml` policy plugins (behaviour.md §3.6; Go: policy/plugins/*.go).
//!
//! Every `.yml` plugin runs (no short-circuit), with inherited `OPKSSH_PLUGIN_*` variables
//! removed and the full set below added; one that exits 0 with output (stdout and stderr
//! together, trimmed) exactly `allow` grants access. Plugin problems never deny by
//! themselves; evaluation goes on to the `auth_id` files.
//!
//! Stricter than Go: each plugin has a timeout (default 5 s, `timeout:` in its file, at most
//! 60 s); a plugin that times out is killed with its process group and does not allow. The
//! command must be an absolute path (Go checks a relative path against the working
//! directory but runs it through `PATH`). Output beyond 64 KiB is not `allow`.

use crate::decision::PolicyInput;
use crate::error::{FileError, FileErrorKind, Location};
use crate::perms::{self, Requirement};
use opk_core::b64;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The default time a plugin may take.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest `timeout:` a plugin file may ask for.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(60);
pub(crate) const MAX_OUTPUT: usize = 64 * 1024;

/// A plugin file as written.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
struct RawConfig {
    #[serde(default)]
    name: String,
    #[serde(default)]
    command: String,
    #[serde(default)]
    timeout: Option<TimeoutValue>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(untagged)]
enum TimeoutValue {
    Seconds(u64),
    Text(String),
}

/// A loaded plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginConfig {
    /// `name`.
    pub name: String,
    /// `command`, as written.
    pub command: String,
    /// `timeout`, or the default.
    pub timeout: Duration,
}

/// Parses `5`, `5s`, `500ms` or `1m`.
fn parse_timeout(value: &TimeoutValue) -> Option<Duration> {
    let duration = match value {
        TimeoutValue::Seconds(seconds) => Duration::from_secs(*seconds),
        TimeoutValue::Text(text) => {
            let text = text.trim();
            let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
                Some(index) => text.split_at(index),
                None => (text, "s"),
            };
            let number: u64 = number.parse().ok()?;
            match unit.trim() {
                "ms" => Duration::from_millis(number),
                "s" | "" => Duration::from_secs(number),
                "m" => Duration::from_secs(number.checked_mul(60)?),
                _ => return None,
            }
        }
    };
    (!duration.is_zero() && duration <= MAX_TIMEOUT).then_some(duration)
}

impl PluginConfig {
    /// Parses a plugin file.
    ///
    /// # Errors
    /// Bad YAML, an empty `name` or `command`, or a bad `timeout`.
    pub fn parse(content: &str, path: &Path) -> Result<Self, FileError> {
        let location = Location::file(path);
        let raw: Option<RawConfig> = serde_saphyr::from_str(content).map_err(|error| {
            FileError::new(
                location.clone(),
                FileErrorKind::Yaml(crate::error::first_line(&error.to_string())),
            )
        })?;
        let Some(raw) = raw else {
            return Err(FileError::new(
                location,
                FileErrorKind::MissingField("name"),
            ));
        };
        if raw.name.is_empty() {
            return Err(FileError::new(
                location,
                FileErrorKind::MissingField("name"),
            ));
        }
        if raw.command.is_empty() {
            return Err(FileError::new(
                location,
                FileErrorKind::MissingField("command"),
            ));
        }
        let timeout = match &raw.timeout {
            None => DEFAULT_TIMEOUT,
            Some(value) => parse_timeout(value).ok_or_else(|| {
                FileError::new(
                    location.clone(),
                    FileErrorKind::Invalid(format!(
                        "invalid timeout {value:?} (a number of seconds, or 500ms, 5s, 1m; at most 60s)"
                    )),
                )
            })?,
        };
        Ok(Self {
            name: raw.name,
            command: raw.command,
            timeout,
        })
    }

    /// `OPKSSH_PLUGIN_CONFIG`: the config re-serialised as YAML (`name`, `command`), base64.
    fn encoded(&self) -> String {
        #[derive(serde::Serialize)]
        struct Shown<'a> {
            name: &'a str,
            command: &'a str,
        }
        let yaml = serde_saphyr::to_string(&Shown {
            name: &self.name,
            command: &self.command,
        })
        .unwrap_or_default();
        b64::encode_std(yaml)
    }
}

/// What one plugin did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginResult {
    /// The plugin file.
    pub path: PathBuf,
    /// The command run, split.
    pub command_run: Vec<String>,
    /// The trimmed output.
    pub output: String,
    /// Why it could not run or did not finish well, if so.
    pub error: Option<String>,
    /// Whether it answered `allow` with exit status 0.
    pub allowed: bool,
}

impl std::fmt::Display for PluginResult {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            formatter,
            "Policy plugin result, path: ({}), allowed: ({}), error: ({}), command_run: ({}), policyOutput: ({})",
            self.path.display(),
            self.allowed,
            self.error.as_deref().unwrap_or("<nil>"),
            self.command_run.join(" "),
            self.output.replace(['\n', '\r'], " ")
        )
    }
}

/// Why no plugin ran at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginsSkipped {
    /// The directory does not exist.
    NoDirectory(PathBuf),
    /// The directory is unsafe or unreadable, or the token's claims cannot be mapped.
    Error(String),
}

impl std::fmt::Display for PluginsSkipped {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NoDirectory(path) => write!(
                formatter,
                "Skipping policy plugins: no plugins found at {}",
                path.display()
            ),
            Self::Error(message) => write!(formatter, "Error checking policy plugins: {message}"),
        }
    }
}

/// A plugin file and its config, or why it could not be loaded.
pub type LoadedPlugin = (PathBuf, Result<PluginConfig, String>);

/// The plugin files in a directory, in name order: `Ok(path, config)` or the load error.
///
/// # Errors
/// [`PluginsSkipped`] when the directory is missing, unsafe or unreadable.
pub fn load_dir(dir: &Path) -> Result<Vec<LoadedPlugin>, PluginsSkipped> {
    match std::fs::metadata(dir) {
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Err(PluginsSkipped::NoDirectory(dir.to_path_buf()));
        }
        _ => {}
    }
    perms::check_path(dir, &Requirement::PLUGIN_DIR).map_err(|error| {
        PluginsSkipped::Error(match &error.kind {
            FileErrorKind::Permissions(permission) => format!(
                "policy plugin directory ({}) has insecure permissions: {permission}",
                dir.display()
            ),
            other => format!("policy plugin directory ({}): {other}", dir.display()),
        })
    })?;
    let entries = std::fs::read_dir(dir).map_err(|error| {
        PluginsSkipped::Error(format!("failed to read {}: {error}", dir.display()))
    })?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.ends_with(".yml"))
        })
        // Symlinks are followed, as Go's Stat does; directories are skipped.
        .filter(|path| !path.is_dir())
        .collect();
    paths.sort();
    Ok(paths
        .into_iter()
        .map(|path| {
            let config = load_file(&path);
            (path, config)
        })
        .collect())
}

fn load_file(path: &Path) -> Result<PluginConfig, String> {
    let content =
        perms::read_checked(path, &Requirement::PLUGIN_FILE).map_err(|error| {
            match &error.kind {
                FileErrorKind::Permissions(permission) => format!(
                    "policy plugin config file ({}) has insecure permissions: {permission}",
                    path.display()
                ),
                _ => format!(
                    "failed to read policy plugin config at ({}): {}",
                    path.display(),
                    error.kind
                ),
            }
        })?;
    let text = String::from_utf8(content).map_err(|_| {
        format!(
            "failed to parse YAML in policy plugin config at ({}): not UTF-8",
            path.display()
        )
    })?;
    PluginConfig::parse(&text, path).map_err(|error| match &error.kind {
        FileErrorKind::MissingField(name) => format!(
            "policy plugin config missing required field '{name}' in policy plugin config at ({})",
            path.display()
        ),
        other => format!(
            "failed to parse policy plugin config at ({}): {other}",
            path.display()
        ),
    })
}

/// The `OPKSSH_PLUGIN_*` variables for an input (Go: plugins/tokens.go).
///
/// # Errors
/// A message when the claims cannot be mapped the way Go maps them (then no plugin runs).
pub fn environment(input: &PolicyInput<'_>) -> Result<BTreeMap<String, String>, String> {
    let claims = input.claims();
    let text = |name: &str| -> Result<String, String> {
        match claims.get(name) {
            None | Some(Value::Null) => Ok(String::new()),
            Some(Value::String(text)) => Ok(text.clone()),
            Some(_) => Err(format!(
                "error unmarshalling pk token payload: {name} is not a string"
            )),
        }
    };
    let integer = |name: &str| -> Result<String, String> {
        match claims.get(name) {
            None | Some(Value::Null) => Ok(String::new()),
            Some(Value::Number(number)) if number.is_i64() => Ok(number.to_string()),
            Some(_) => Err(format!(
                "error unmarshalling pk token payload: {name} is not an integer"
            )),
        }
    };
    let email_verified = match claims.get("email_verified") {
        None => String::new(),
        // Go calls the claim's UnmarshalJSON with `null`, which leaves a false bool.
        Some(Value::Null) => "false".to_owned(),
        Some(Value::Bool(flag)) => flag.to_string(),
        Some(Value::String(text)) => go_parse_bool(text)
            .map(|flag| flag.to_string())
            .unwrap_or_else(|| text.clone()),
        Some(other) => {
            return Err(format!(
                "email_verified claim must be a bool or a string, got {other}"
            ));
        }
    };
    let audience = match claims.get("aud") {
        None => String::new(),
        Some(Value::String(one)) => one.clone(),
        Some(Value::Null) => r#"[""]"#.to_owned(),
        Some(Value::Array(items)) => {
            string_list(items).ok_or("error unmarshalling pk token payload: aud")?
        }
        Some(_) => return Err("error unmarshalling pk token payload: aud".to_owned()),
    };
    let groups = match claims.get("groups") {
        None | Some(Value::Null) => String::new(),
        Some(Value::Array(items)) => {
            string_list(items).ok_or("error unmarshalling pk token payload: groups")?
        }
        Some(_) => return Err("error unmarshalling pk token payload: groups".to_owned()),
    };
    let extra_args = if input.ssh().extra_args.is_empty() {
        String::new()
    } else {
        serde_json::to_string(&input.ssh().extra_args).map_err(|error| error.to_string())?
    };
    let (payload, upk, pkt, idt) = match input.token() {
        Some(token) => {
            let pk_token = token.token();
            let payload = b64::decode_url_strict(pk_token.payload_segment())
                .map_err(|_| "payload is not base64url".to_owned())?;
            let upk = pk_token
                .cic()
                .header()
                .get("upk")
                .map(opk_core::gojson::to_string)
                .unwrap_or_default();
            (
                b64::encode_std(payload),
                b64::encode_std(upk),
                pk_token.to_compact(),
                pk_token.op().to_compact(),
            )
        }
        None => (
            b64::encode_std(serde_json::to_string(claims).unwrap_or_default()),
            String::new(),
            String::new(),
            String::new(),
        ),
    };
    let mut env = BTreeMap::new();
    let mut set = |name: &str, value: String| {
        env.insert(format!("OPKSSH_PLUGIN_{name}"), value);
    };
    set("U", input.principal().to_owned());
    set("K", input.ssh().cert_b64.clone());
    set("T", input.ssh().key_type.clone());
    set("ISS", text("iss")?);
    set("SUB", text("sub")?);
    set("EMAIL", text("email")?);
    set("EMAIL_VERIFIED", email_verified);
    set("AUD", audience);
    set("EXP", integer("exp")?);
    set("NBF", integer("nbf")?);
    set("IAT", integer("iat")?);
    set("JTI", text("jti")?);
    set("GROUPS", groups);
    set("PAYLOAD", payload);
    set("UPK", upk);
    set("PKT", pkt);
    set("IDT", idt);
    set("USERINFO", input.userinfo().unwrap_or_default().to_owned());
    set("EXTRA_ARGS", extra_args);
    Ok(env)
}

/// A JSON array of strings as Go's `json.Marshal` writes a `[]string` (upstream #601), or
/// `None` if an item is not a string. Never joined by hand: a group named `x","admins` must
/// reach a plugin as one group, with its quotes escaped.
fn string_list(items: &[Value]) -> Option<String> {
    items
        .iter()
        .all(Value::is_string)
        .then(|| opk_core::gojson::to_string(&Value::Array(items.to_vec())))
}

/// Go's `strconv.ParseBool`.
fn go_parse_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Runs one plugin with the given `OPKSSH_PLUGIN_*` variables.
pub fn run(path: &Path, config: &PluginConfig, env: &BTreeMap<String, String>) -> PluginResult {
    let mut result = PluginResult {
        path: path.to_path_buf(),
        command_run: Vec::new(),
        output: String::new(),
        error: None,
        allowed: false,
    };
    let words = match crate::table::split(&config.command) {
        Ok(words) => words,
        Err(error) => {
            result.error = Some(format!(
                "failed to run policy command {} got error ({error})",
                config.command
            ));
            return result;
        }
    };
    result.command_run.clone_from(&words);
    let Some((program, args)) = words.split_first() else {
        result.error = Some("policy command is empty".to_owned());
        return result;
    };
    let program = Path::new(program);
    if let Err(error) = perms::check_command(program) {
        result.error = Some(match error {
            perms::CommandError::NotAbsolute => format!(
                "policy plugin command ({}) must be an absolute path",
                program.display()
            ),
            perms::CommandError::File(FileError {
                kind: FileErrorKind::Permissions(permission),
                ..
            }) => format!(
                "policy plugin command ({}) has insecure permissions: {permission}",
                program.display()
            ),
            perms::CommandError::File(error) => error.to_string(),
        });
        return result;
    }
    let mut plugin_env = env.clone();
    plugin_env.insert("OPKSSH_PLUGIN_CONFIG".to_owned(), config.encoded());
    match execute(
        program,
        args,
        Environment::Inherited(&plugin_env),
        config.timeout,
        Output::Merged,
    ) {
        Ok(Finished { status, output, .. }) => {
            let status_ok = status.success();
            let trimmed = String::from_utf8_lossy(&output).trim().to_owned();
            result.allowed = status_ok && output.len() <= MAX_OUTPUT && trimmed == "allow";
            if !status_ok {
                result.error = Some(format!(
                    "failed to run policy command {} got error (non-zero exit status)",
                    config.command
                ));
            }
            result.output = trimmed;
        }
        Err(error) => {
            result.error = Some(format!(
                "failed to run policy command {} got error ({error})",
                config.command
            ));
        }
    }
    result
}

/// Which output streams [`execute`] captures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Output {
    /// stdout and stderr on one pipe, as Go's `CombinedOutput`.
    Merged,
    /// stdout only; stderr discarded.
    StdoutOnly,
    /// stdout, and stderr apart (up to [`MAX_STDERR`]).
    Separate,
}

/// The environment [`execute`] gives the command.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Environment<'a> {
    /// This process's, without inherited `OPKSSH_PLUGIN_*` variables, plus these (plugins, as
    /// in Go).
    Inherited(&'a BTreeMap<String, String>),
    /// These variables only, and `/` as the working directory (as sshd runs an
    /// `AuthorizedKeysCommand`).
    Only(&'a BTreeMap<String, String>),
}

/// The most stderr [`Output::Separate`] keeps.
pub(crate) const MAX_STDERR: usize = 4 * 1024;

/// A command that ran to its end.
#[derive(Debug)]
pub(crate) struct Finished {
    /// How it ended.
    pub(crate) status: std::process::ExitStatus,
    /// stdout (with stderr for [`Output::Merged`]), up to the cap plus one byte.
    pub(crate) output: Vec<u8>,
    /// stderr for [`Output::Separate`], up to [`MAX_STDERR`] plus one byte; else empty.
    pub(crate) stderr: Vec<u8>,
}

/// Why [`execute`] has no [`Finished`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ExecError {
    /// The deadline passed; the process group was killed. With what it had written on stderr
    /// for [`Output::Separate`] (why it hung, often).
    TimedOut {
        /// The deadline.
        timeout: Duration,
        /// Its stderr, up to [`MAX_STDERR`] plus one byte.
        stderr: Vec<u8>,
    },
    /// It could not be started or waited for.
    Failed(String),
}

impl std::fmt::Display for ExecError {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TimedOut { timeout, .. } => {
                write!(formatter, "timed out after {timeout:?}, plugin killed")
            }
            Self::Failed(message) => formatter.write_str(message),
        }
    }
}

/// Reads a pipe to its end on a thread of its own, keeping the first `cap + 1` bytes (so that
/// a longer output is seen to be longer) and discarding the rest, so that the writer never
/// blocks on a full pipe.
fn drain(mut reader: std::io::PipeReader, cap: usize) -> std::sync::mpsc::Receiver<Vec<u8>> {
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut output = Vec::new();
        let mut buffer = [0u8; 4096];
        loop {
            match reader.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(count) => {
                    let room = cap.saturating_add(1).saturating_sub(output.len());
                    output.extend(buffer.iter().take(count.min(room)));
                }
            }
        }
        let _ = sender.send(output);
    });
    receiver
}

/// Runs a command in its own process group, killed with the group at the deadline, with the
/// given environment. Returns its exit status and output (stdout capped at 64 KiB plus one
/// byte).
pub(crate) fn execute(
    program: &Path,
    args: &[String],
    environment: Environment<'_>,
    timeout: Duration,
    streams: Output,
) -> Result<Finished, ExecError> {
    let failed = |error: std::io::Error| ExecError::Failed(error.to_string());
    let (reader, writer) = std::io::pipe().map_err(failed)?;
    let mut stderr_reader = None;
    let stderr = match streams {
        Output::Merged => Stdio::from(writer.try_clone().map_err(failed)?),
        Output::StdoutOnly => Stdio::null(),
        Output::Separate => {
            let (reader, writer) = std::io::pipe().map_err(failed)?;
            stderr_reader = Some(reader);
            Stdio::from(writer)
        }
    };
    let mut command = Command::new(program);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(stderr);
    opk_os::process::own_process_group(&mut command);
    match environment {
        Environment::Inherited(env) => {
            for (name, _) in std::env::vars_os() {
                if name
                    .to_str()
                    .is_some_and(|name| name.starts_with("OPKSSH_PLUGIN_"))
                {
                    command.env_remove(name);
                }
            }
            command.envs(env);
        }
        Environment::Only(env) => {
            command.env_clear().envs(env).current_dir("/");
        }
    }
    let mut child = command.spawn().map_err(failed)?;
    // Drop our copies of the pipes' write ends so the readers see EOF when the command exits.
    drop(command);
    let stdout = drain(reader, MAX_OUTPUT);
    let stderr = stderr_reader.map(|reader| drain(reader, MAX_STDERR));
    // First the output (EOF once the command and anything it started have closed it), then
    // the exit status. The child is reaped only at the end, so until then its pid, which is
    // also its process group id, cannot be reused and killing the group is safe.
    let deadline = Instant::now().checked_add(timeout);
    let timed_out = |child: &mut std::process::Child| {
        kill_group(child);
        // The group is gone, so the pipe is closed unless something left the group: wait a
        // moment for what it wrote, no more.
        let stderr = stderr
            .as_ref()
            .and_then(|receiver| receiver.recv_timeout(Duration::from_millis(100)).ok())
            .unwrap_or_default();
        ExecError::TimedOut { timeout, stderr }
    };
    let receive = |receiver: &std::sync::mpsc::Receiver<Vec<u8>>,
                   child: &mut std::process::Child| loop {
        match receiver.recv_timeout(Duration::from_millis(10)) {
            Ok(output) => return Ok(output),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                kill_group(child);
                return Err(ExecError::Failed("output reader failed".to_owned()));
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
        }
        if deadline.is_none_or(|deadline| Instant::now() >= deadline) {
            return Err(timed_out(child));
        }
    };
    let output = receive(&stdout, &mut child)?;
    let stderr = match &stderr {
        Some(receiver) => receive(receiver, &mut child)?,
        None => Vec::new(),
    };
    // The output ends as the command exits, a moment before its exit status can be had: poll
    // often at first (a fixed 5 ms step added up to 5 ms to every run), then less.
    let mut pause = Duration::from_micros(100);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => {}
            Err(error) => {
                kill_group(&mut child);
                return Err(ExecError::Failed(error.to_string()));
            }
        }
        if deadline.is_none_or(|deadline| Instant::now() >= deadline) {
            return Err(timed_out(&mut child));
        }
        std::thread::sleep(pause);
        pause = pause.saturating_mul(2).min(Duration::from_millis(5));
    };
    Ok(Finished {
        status,
        output,
        stderr,
    })
}

/// How long a timed-out command has between SIGTERM and SIGKILL.
pub(crate) const TERMINATE_GRACE: Duration = Duration::from_millis(500);

/// Stops the child's process group and reaps the child. Only called while the child is
/// unreaped, so its pid (the group id) still names this group.
///
/// SIGTERM first: `sudo` passes it on to the command it runs as root, which this process may
/// not signal itself, so a SIGKILL alone would kill sudo and leave its root child running.
/// SIGKILL after [`TERMINATE_GRACE`] for whatever ignored it.
fn kill_group(child: &mut std::process::Child) {
    use opk_os::process::{Stop, signal_group};
    let group = child.id();
    signal_group(group, Stop::Ask);
    let deadline = Instant::now().checked_add(TERMINATE_GRACE);
    while deadline.is_some_and(|deadline| Instant::now() < deadline) {
        if !matches!(child.try_wait(), Ok(None)) {
            // Reaped (or unwaitable): its pid may be reused, so no more group signals.
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    signal_group(group, Stop::Force);
    let _ = child.kill();
    let _ = child.wait();
}

/// Runs every plugin in `dir`. `Err` when none could run.
///
/// # Errors
/// [`PluginsSkipped`] for a missing or unsafe directory, or claims Go cannot map.
pub fn run_all(dir: &Path, input: &PolicyInput<'_>) -> Result<Vec<PluginResult>, PluginsSkipped> {
    run_all_with(dir, input, &BTreeMap::new())
}

/// [`run_all`] with extra variables (`env_vars` from `config.yml`) under the plugin set.
///
/// # Errors
/// As [`run_all`].
pub fn run_all_with(
    dir: &Path,
    input: &PolicyInput<'_>,
    extra: &BTreeMap<String, String>,
) -> Result<Vec<PluginResult>, PluginsSkipped> {
    let mut env: BTreeMap<String, String> = extra
        .iter()
        .filter(|(name, _)| !name.starts_with("OPKSSH_PLUGIN_"))
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    env.extend(environment(input).map_err(PluginsSkipped::Error)?);
    let plugins = load_dir(dir)?;
    Ok(plugins
        .into_iter()
        .map(|(path, config)| match config {
            Ok(config) => run(&path, &config, &env),
            Err(error) => PluginResult {
                path,
                command_run: Vec::new(),
                output: String::new(),
                error: Some(error),
                allowed: false,
            },
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts() {
        let parse = |text: &str| PluginConfig::parse(text, Path::new("/p.yml"));
        assert_eq!(
            parse("name: a\ncommand: /x\n").unwrap().timeout,
            DEFAULT_TIMEOUT
        );
        for (value, expected) in [
            ("3", Duration::from_secs(3)),
            ("3s", Duration::from_secs(3)),
            ("\"250ms\"", Duration::from_millis(250)),
            ("1m", Duration::from_secs(60)),
        ] {
            let config = parse(&format!("name: a\ncommand: /x\ntimeout: {value}\n")).unwrap();
            assert_eq!(config.timeout, expected, "{value}");
        }
        for bad in ["0", "61", "2m", "-1", "1h", "soon", "1.5"] {
            assert!(
                parse(&format!("name: a\ncommand: /x\ntimeout: {bad}\n")).is_err(),
                "{bad}"
            );
        }
        assert!(parse("").is_err());
        assert!(parse("name: a\n").is_err());
        assert!(parse("command: /x\n").is_err());
        assert!(parse("name: [a\n").is_err());
    }

    #[test]
    fn config_variable_is_yaml_of_name_and_command() {
        let config = PluginConfig::parse(
            "name: check\ncommand: /usr/bin/check --flag 'two words'\ntimeout: 2\n",
            Path::new("/p.yml"),
        )
        .unwrap();
        let yaml =
            String::from_utf8(opk_core::b64::decode_std(&config.encoded()).unwrap()).unwrap();
        let back: RawConfig = serde_saphyr::from_str(&yaml).unwrap();
        assert_eq!(back.name, "check");
        assert_eq!(back.command, "/usr/bin/check --flag 'two words'");
        assert!(yaml.starts_with("name: check\ncommand: "), "{yaml}");
    }

    #[test]
    fn lists_are_json_encoded_not_joined() {
        let groups = vec![Value::from("x\",\"admins"), Value::from("a\\b\n")];
        let encoded = string_list(&groups).unwrap();
        assert_eq!(encoded, r#"["x\",\"admins","a\\b\n"]"#);
        let back: Vec<String> = serde_json::from_str(&encoded).unwrap();
        assert_eq!(back, ["x\",\"admins", "a\\b\n"]);
        assert_eq!(string_list(&[Value::from(1)]), None);
        assert_eq!(string_list(&[]).as_deref(), Some("[]"));
    }

    #[test]
    fn go_bool_parsing() {
        assert_eq!(go_parse_bool("True"), Some(true));
        assert_eq!(go_parse_bool("0"), Some(false));
        assert_eq!(go_parse_bool("yes"), None);
    }
}
