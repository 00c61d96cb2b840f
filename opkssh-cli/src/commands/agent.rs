//! `opkssh agent` (issue 20): an ssh-agent of its own that presents one opkssh certificate,
//! whose key lives only in this process's memory, and forwards everything else to the user's
//! agent (`SSH_AUTH_SOCK` when it starts). It logs in as `opkssh login` does (same provider
//! choice, browser or `--device`), keeps the certificate fresh with the refresh token
//! ([`opk_client::agent_session`]), and prints the environment line of `ssh-agent -s`/`-c`.
//!
//! Without `-D` it runs itself again with `-D` as a background process (no fork here),
//! relays that process's stderr (the browser URL or device code) until the certificate is
//! there, then prints the environment line and exits, so `eval "$(opkssh agent)"` works as
//! with ssh-agent. With `-D` it stays in the foreground (systemd, launchd) and logs to stderr.
//!
//! `--status` and `--login` talk to the running agent through its two extensions; `opkssh
//! check` and `opkssh ssh` use [`running_agent`] to find one at `SSH_AUTH_SOCK`.

use crate::error::CliError;
use crate::provider::{
    Chosen, ProviderFlags, choose_provider, open_browser, parse_key_type, parse_principal,
    read_config, wants_access_token,
};
use crate::running_agent::{agent_status, at_and_in, identity_of, log_in_again, ready_line, when};
use crate::shown::Shown;
use opk_client::agent_key::find_agent_key;
use opk_client::agent_server::{self, Shared};
use opk_client::agent_session::{AgentSession, Event, Login, Report, Settings, State, Status};
use opk_client::client_config::ClientConfig;
use opk_client::{Identity, LoginError, Progress, device};
use opk_core::device::DeviceAuthorization;
use opk_core::escape;
use opk_core::jws::SigningKey;
use opk_core::sshcert::{UserKeyType, generate_user_key};
use opk_net::http::HttpClient;
use std::ffi::OsString;
use std::io::{BufRead as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// `opkssh agent`.
#[derive(Debug, clap::Args)]
pub(crate) struct AgentArgs {
    /// Provider alias from the client config, or `webchooser` (as opkssh login).
    pub(crate) alias: Option<String>,
    /// Provider spec: <issuer>,<client_id>[,<client_secret>[,<scopes>]].
    #[arg(long, value_name = "SPEC")]
    pub(crate) provider: Option<String>,
    /// Client config file (default: ~/.opk/config.yml).
    #[arg(long, value_name = "FILE")]
    pub(crate) config_path: Option<PathBuf>,
    /// Log in with the device flow (no browser here): open the printed page on any device and
    /// enter the code shown.
    #[arg(long)]
    pub(crate) device: bool,
    /// With --device: do not draw the QR code.
    #[arg(long)]
    pub(crate) no_qr: bool,
    /// Do not open a browser; print the URL to open instead.
    #[arg(long)]
    pub(crate) disable_browser_open: bool,
    /// Redirect URI sent to the OP instead of the local listener's.
    #[arg(long, value_name = "URI")]
    pub(crate) remote_redirect_uri: Option<String>,
    /// Give up waiting for the browser after this many seconds [default: 300; with --device:
    /// when the provider's code expires].
    #[arg(long, value_name = "SECONDS")]
    pub(crate) timeout: Option<u64>,
    /// Principals for the certificate (comma list). Default: opkssh-wildcard.
    #[arg(long, value_delimiter = ',', value_name = "LIST", value_parser = parse_principal)]
    pub(crate) principals: Option<Vec<String>>,
    /// The in-memory key's type: ecdsa or ed25519.
    #[arg(short = 't', long, value_name = "TYPE", default_value = "ecdsa", value_parser = parse_key_type)]
    pub(crate) key_type: UserKeyType,
    /// Use this key of the ssh-agent at $SSH_AUTH_SOCK (ECDSA P-256 or Ed25519, by its SHA256
    /// fingerprint as ssh-add -l prints it) instead of a key in memory: that agent makes every
    /// signature, so a key in hardware never leaves it.
    #[arg(long, value_name = "FINGERPRINT", conflicts_with = "key_type")]
    pub(crate) agent_key: Option<String>,
    /// Put the OAuth access token in the certificate (for userinfo on the server).
    #[arg(long)]
    pub(crate) send_access_token: bool,
    /// Stay in the foreground (for systemd and launchd); log to stderr.
    #[arg(short = 'D')]
    pub(crate) foreground: bool,
    /// Listen at this socket path [default: $XDG_RUNTIME_DIR/opkssh-agent/agent.<pid>.sock, or
    /// a private folder under the temporary folder; on Windows the pipe
    /// \\.\pipe\opkssh-agent.<pid>]; its folder must be 0700 and yours. With --status or
    /// --login: the agent to ask, instead of $SSH_AUTH_SOCK.
    #[arg(short = 'a', value_name = "PATH")]
    pub(crate) socket: Option<PathBuf>,
    /// Print the environment line for sh-like shells (the default unless $SHELL is a csh; on
    /// Windows the default is PowerShell's, for opkssh agent | Invoke-Expression).
    #[arg(short = 's', conflicts_with = "csh")]
    pub(crate) sh: bool,
    /// Print the environment line for csh-like shells.
    #[arg(short = 'c')]
    pub(crate) csh: bool,
    /// Show what the running agent ($SSH_AUTH_SOCK) presents: identity, issuer, expiry, next
    /// refresh. Exit 0 when it presents a certificate, 1 otherwise.
    #[arg(long, conflicts_with = "login")]
    pub(crate) status: bool,
    /// With --status: print the agent's answer as JSON.
    #[arg(long, requires = "status")]
    pub(crate) json: bool,
    /// Ask the running agent ($SSH_AUTH_SOCK) to log in again, print where to log in, and
    /// wait until it presents the new certificate.
    #[arg(long)]
    pub(crate) login: bool,
    /// Also append log lines to <DIR>/opkssh.log.
    #[arg(long, value_name = "DIR")]
    pub(crate) log_dir: Option<PathBuf>,
}

impl AgentArgs {
    fn provider_flags(&self) -> ProviderFlags<'_> {
        ProviderFlags {
            alias: self.alias.as_deref(),
            provider: self.provider.as_deref(),
            device: self.device,
            no_qr: self.no_qr,
            remote_redirect_uri: self.remote_redirect_uri.as_deref(),
            timeout: self.timeout,
        }
    }

    /// `-c` or `-s`; else PowerShell on Windows; else csh when `$SHELL` ends in `csh`
    /// (ssh-agent's rule), else sh.
    fn syntax(&self) -> Syntax {
        if self.csh {
            Syntax::Csh
        } else if self.sh {
            Syntax::Sh
        } else if opk_os::System::CURRENT == opk_os::System::Windows {
            Syntax::PowerShell
        } else if std::env::var_os("SHELL")
            .is_some_and(|shell| shell.as_encoded_bytes().ends_with(b"csh"))
        {
            Syntax::Csh
        } else {
            Syntax::Sh
        }
    }
}

fn fail(message: impl std::fmt::Display) -> CliError {
    CliError::Usage(message.to_string())
}

fn home() -> Result<PathBuf, CliError> {
    opk_client::placement::home_dir().ok_or_else(|| fail("could not find the home directory"))
}

pub(crate) fn run(args: &AgentArgs) -> Result<ExitCode, CliError> {
    if args.status {
        return show_status(args);
    }
    if args.login {
        let path = asked_agent(args)?;
        let status = log_in_again(&path, &mut |line| println!("{line}"))?;
        println!("{}", ready_line(&status));
        return Ok(ExitCode::SUCCESS);
    }
    args.provider_flags().check()?;
    let upstream = opk_os::agent::default_agent_path();
    if let Some(upstream) = &upstream
        && let Ok(Some(answer)) = agent_server::query_status(upstream)
    {
        let pid = Status::from_json(&answer).map_or(0, |status| status.pid);
        return Err(fail(format!(
            "SSH_AUTH_SOCK ({}) is already an opkssh agent (pid {pid}): use it (opkssh agent \
             --status), or point SSH_AUTH_SOCK at your ssh-agent first",
            escape::path(upstream)
        )));
    }
    if args.agent_key.is_some() {
        // Before any browser opens: a key that cannot be used would waste the login.
        user_key(args, upstream.as_deref())?;
    }
    let socket = match &args.socket {
        Some(path) => path.clone(),
        None => opk_os::agent::default_listen_path().map_err(not_here)?,
    };
    // SSH_AUTH_SOCK naming the socket this agent is about to bind (a service whose
    // environment already points at it) would forward every request to itself.
    let upstream = upstream.filter(|upstream| !same_file_path(upstream, &socket));
    if args.foreground {
        foreground(args, &socket, upstream)
    } else {
        background(args, &socket)
    }
}

/// Whether two paths name the same place (their folders resolved, as the socket itself may not
/// exist yet).
fn same_file_path(one: &Path, other: &Path) -> bool {
    let resolve = |path: &Path| {
        let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
        match (absolute.parent(), absolute.file_name()) {
            (Some(parent), Some(name)) => std::fs::canonicalize(parent)
                .map_or_else(|_| absolute.clone(), |parent| parent.join(name)),
            _ => absolute,
        }
    };
    resolve(one) == resolve(other)
}

/// A listener this system cannot make is said plainly.
fn not_here(error: std::io::Error) -> CliError {
    if error.kind() == std::io::ErrorKind::Unsupported {
        fail(format!(
            "opkssh agent cannot listen on this system: {error}; opkssh login adds the key and \
             certificate to the system's ssh-agent instead"
        ))
    } else {
        fail(format!("cannot make the agent's socket: {error}"))
    }
}

// ---------------------------------------------------------------------------------------------
// The environment line
// ---------------------------------------------------------------------------------------------

/// The shell the environment line is written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Syntax {
    /// `-s`: sh, bash, zsh (`eval "$(opkssh agent)"`).
    Sh,
    /// `-c`: csh, tcsh.
    Csh,
    /// Windows: `opkssh agent | Invoke-Expression`.
    PowerShell,
}

/// `path` as one shell word: as it is when it needs no quoting, else in single quotes (a `'`
/// written `'\''` for sh, `''` for PowerShell). `None` for what no quoting makes safe to
/// evaluate: control characters, and for csh a `!` (history expansion happens inside quotes)
/// or a `'`.
fn shell_word(path: &str, syntax: Syntax) -> Option<String> {
    let plain = |byte: u8| byte.is_ascii_alphanumeric() || b"/._-+:,@%=".contains(&byte);
    if !path.is_empty() && path.bytes().all(plain) {
        return Some(path.to_owned());
    }
    if path.chars().any(char::is_control) {
        return None;
    }
    match syntax {
        Syntax::Csh if path.contains('!') || path.contains('\'') => None,
        Syntax::Sh | Syntax::Csh => Some(format!("'{}'", path.replace('\'', r"'\''"))),
        Syntax::PowerShell => Some(format!("'{}'", path.replace('\'', "''"))),
    }
}

/// What `eval` takes, as `ssh-agent -s` / `-c` print it.
fn environment_lines(socket: &Path, pid: u32, syntax: Syntax) -> Result<String, CliError> {
    let text = socket.to_str().ok_or_else(|| {
        fail(format!(
            "the socket path {} is not UTF-8; give another with -a",
            escape::path(socket)
        ))
    })?;
    let word = shell_word(text, syntax).ok_or_else(|| {
        fail(format!(
            "the socket path {} cannot be put in a shell line safely; give another with -a",
            escape::path(socket)
        ))
    })?;
    Ok(match syntax {
        Syntax::Sh => format!("SSH_AUTH_SOCK={word}; export SSH_AUTH_SOCK;\necho Agent pid {pid};"),
        Syntax::Csh => format!("setenv SSH_AUTH_SOCK {word};\necho Agent pid {pid};"),
        Syntax::PowerShell => {
            format!("$env:SSH_AUTH_SOCK = {word};\necho 'Agent pid {pid}';")
        }
    })
}

// ---------------------------------------------------------------------------------------------
// In the background: run again with -D, relay its stderr until it is ready
// ---------------------------------------------------------------------------------------------

/// This command line's arguments after `agent`, for the background copy.
fn own_arguments() -> Vec<OsString> {
    let arguments: Vec<OsString> = std::env::args_os().skip(1).collect();
    let start = arguments
        .iter()
        .position(|argument| argument == "agent")
        .map_or(arguments.len(), |index| index + 1);
    arguments.get(start..).unwrap_or_default().to_vec()
}

/// Stops the agent this command started: asked first (SIGTERM, so that it removes its socket),
/// forced after three seconds, or at once where nothing can be asked (Windows).
fn stop(child: &mut std::process::Child) {
    opk_os::process::signal_group(child.id(), opk_os::process::Stop::Ask);
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        if !matches!(child.try_wait(), Ok(None)) {
            return;
        }
        if opk_os::System::CURRENT == opk_os::System::Windows {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn background(args: &AgentArgs, socket: &Path) -> Result<ExitCode, CliError> {
    let syntax = args.syntax();
    // Ctrl-C while the login waits must not leave the agent behind: the signals come to a
    // thread here, which stops it. Blocked before any thread starts.
    let signals = opk_os::signal::Signals::block().ok();
    let exe =
        std::env::current_exe().map_err(|error| fail(format!("cannot find opkssh: {error}")))?;
    let mut command = Command::new(exe);
    command.arg("agent").args(own_arguments()).arg("-D");
    if args.socket.is_none() {
        command.arg("-a").arg(socket);
    }
    opk_os::process::detached(&mut command).stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .map_err(|error| fail(format!("cannot start the agent: {error}")))?;
    let pid = child.id();
    if let Some(stderr) = child.stderr.take() {
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                let _ = writeln!(std::io::stderr(), "{line}");
            }
        });
    }
    if let Some(signals) = signals {
        std::thread::spawn(move || {
            if signals.wait().is_ok() {
                opk_os::process::signal_group(pid, opk_os::process::Stop::Ask);
                std::process::exit(130);
            }
        });
    }
    loop {
        if let Some(status) = child
            .try_wait()
            .map_err(|error| fail(format!("cannot watch the agent: {error}")))?
        {
            return Err(fail(format!(
                "the agent stopped before it presented a certificate ({status})"
            )));
        }
        // Only our child's answers count: another agent may be listening at that path until
        // the child fails to bind it.
        if let Ok(Some(answer)) = agent_server::query_status(socket)
            && let Ok(status) = Status::from_json(&answer)
            && status.pid == pid
        {
            if status.state == State::Ready && status.holding {
                break;
            }
            if status.state == State::LoginFailed {
                stop(&mut child);
                return Err(fail(escape::line(
                    status.problem.as_deref().unwrap_or("the login failed"),
                )));
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    println!("{}", environment_lines(socket, pid, syntax)?);
    Ok(ExitCode::SUCCESS)
}

// ---------------------------------------------------------------------------------------------
// In the foreground: the agent itself
// ---------------------------------------------------------------------------------------------

/// Timestamped lines on stderr and, with `--log-dir`, in `<DIR>/opkssh.log`. Write errors are
/// ignored: in the background, stderr is a pipe to a process that has exited.
#[derive(Clone)]
struct Log {
    file: Option<Arc<Mutex<std::fs::File>>>,
}

impl Log {
    fn new(dir: Option<&Path>) -> Self {
        let file = dir.and_then(|dir| {
            opk_os::file::Guards {
                create_mode: Some(0o600),
                ..opk_os::file::Guards::default()
            }
            .options()
            .append(true)
            .create(true)
            .open(dir.join("opkssh.log"))
            .ok()
        });
        Self {
            file: file.map(|file| Arc::new(Mutex::new(file))),
        }
    }

    /// A line as it is (the browser URL, the device code): what `opkssh login` prints.
    fn plain(&self, text: &str) {
        let _ = writeln!(std::io::stderr(), "{text}");
    }

    fn line(&self, text: &str) {
        let line = format!(
            "{} opkssh agent: {text}",
            opk_os::time::timestamp(SystemTime::now())
        );
        let _ = writeln!(std::io::stderr(), "{line}");
        if let Some(file) = &self.file
            && let Ok(mut file) = file.lock()
        {
            let _ = writeln!(file, "{line}");
        }
    }
}

struct AgentReport {
    log: Log,
    disable_browser_open: bool,
    qr: bool,
}

impl Progress for AgentReport {
    fn open_url(&mut self, url: &str) {
        let log = self.log.clone();
        open_browser(url, self.disable_browser_open, &mut |line| log.plain(line));
    }

    fn device_code(&mut self, authorization: &DeviceAuthorization) {
        self.log
            .plain(&device::instructions(authorization, self.qr));
    }
}

impl Report for AgentReport {
    fn event(&mut self, event: &Event<'_>) {
        match event {
            Event::LoggingIn { requested: true } => self.log.line("logging in again, as asked"),
            Event::LoggingIn { requested: false } => {}
            Event::LoggedIn(status) => self.log.line(&format!(
                "presenting a certificate for {}; its ID token expires {}{}",
                identity_of(status),
                status.expires_at.map_or("never".to_owned(), at_and_in),
                status
                    .next_refresh
                    .map(|at| format!(", refresh {}", at_and_in(at)))
                    .unwrap_or_default()
            )),
            Event::NoRefresh(_) => self.log.line(
                "the provider gave no refresh token: the certificate goes when its ID token \
                 expires; then log in again with: opkssh agent --login",
            ),
            Event::Refreshed(status) => self.log.line(&format!(
                "refreshed the ID token and re-issued the certificate; it expires {}{}",
                status.expires_at.map_or("never".to_owned(), at_and_in),
                status
                    .next_refresh
                    .map(|at| format!(", next refresh {}", at_and_in(at)))
                    .unwrap_or_default()
            )),
            Event::RefreshFailed { error, expires_at } => self.log.line(&format!(
                "refresh failed: {}; trying again until the certificate expires {}",
                escape::line(error),
                at_and_in(*expires_at)
            )),
            Event::Expired { reason } => {
                let reason = escape::line(reason);
                self.log.line(&format!(
                    "stopped presenting the certificate: {reason}; log in again with: opkssh \
                     agent --login"
                ));
                opk_os::process::notify_desktop(
                    "opkssh agent: certificate expired",
                    "The ID token expired and could not be refreshed. Log in again with: \
                     opkssh agent --login",
                );
            }
            Event::LoginFailed { error } => self
                .log
                .line(&format!("login failed: {}", escape::line(error))),
        }
    }
}

/// The user key of a login: `--agent-key`'s from the upstream agent, found again each time (it
/// may have been removed or the agent restarted), else a fresh one in memory.
fn user_key(args: &AgentArgs, upstream: Option<&Path>) -> Result<SigningKey, CliError> {
    match &args.agent_key {
        Some(fingerprint) => {
            let upstream = upstream.ok_or_else(|| {
                fail(
                    "--agent-key needs the ssh-agent that holds the key, and SSH_AUTH_SOCK is \
                     not set",
                )
            })?;
            find_agent_key(upstream, fingerprint)
                .map_err(|error| fail(format!("--agent-key: {error}")))
        }
        None => generate_user_key(args.key_type).map_err(fail),
    }
}

/// A login as `opkssh login` makes it, each time from the client config as it is then.
struct AgentLogin<'a> {
    args: &'a AgentArgs,
    http: &'a HttpClient,
    log: Log,
    config: Option<ClientConfig>,
    upstream: Option<PathBuf>,
}

impl AgentLogin<'_> {
    fn log_in_inner(&mut self, progress: &mut dyn Progress) -> Result<Identity, CliError> {
        let config_path = match &self.args.config_path {
            Some(path) => path.clone(),
            None => opk_os::dirs::client_config_path(&home()?),
        };
        let log = self.log.clone();
        let config = read_config(Shown::current(), &config_path, &mut |line| log.line(line))?;
        let flags = self.args.provider_flags();
        let chosen = choose_provider(&flags, &config, progress)?;
        self.config = Some(config);
        let key = user_key(self.args, self.upstream.as_deref())?;
        match chosen {
            Chosen::Provider(kind) => {
                let flow = flags.flow(&kind)?;
                opk_client::log_in(&kind, key, flow, self.http, progress).map_err(fail)
            }
            Chosen::Chooser(mut chosen) => {
                let kind = chosen.kind.clone();
                let flow = flags.flow(&kind)?;
                let mut redirect = |url: &str| chosen.redirect(url);
                opk_client::log_in(&kind, key, flow, self.http, &mut redirect).map_err(fail)
            }
        }
    }
}

impl Login for AgentLogin<'_> {
    fn log_in(&mut self, progress: &mut dyn Progress) -> Result<Identity, LoginError> {
        self.log_in_inner(progress)
            .map_err(|error| LoginError::Other(error.to_string()))
    }

    fn send_access_token(&mut self, issuer: &str) -> bool {
        let log = self.log.clone();
        match &self.config {
            Some(config) => {
                wants_access_token(self.args.send_access_token, config, issuer, &mut |line| {
                    log.line(line)
                })
            }
            None => self.args.send_access_token,
        }
    }
}

/// Removes the socket file at `path` if it is one (on exit; the listener would, but it lives in
/// the server's thread).
fn remove_socket(path: &Path) {
    if opk_os::file::is_socket(path) {
        let _ = std::fs::remove_file(path);
    }
}

fn foreground(
    args: &AgentArgs,
    socket: &Path,
    upstream: Option<PathBuf>,
) -> Result<ExitCode, CliError> {
    // Before any thread starts, so that every thread has them blocked (see opk_os::signal).
    let signals = opk_os::signal::Signals::block().ok();
    // Before any key exists: no core file, no same-user debugger reads it.
    opk_os::process::keep_memory_private()
        .map_err(|error| fail(format!("cannot keep the agent's memory private: {error}")))?;
    let listener = opk_os::agent::AgentListener::bind(socket).map_err(not_here)?;
    let socket = listener.path().to_owned();
    let log = Log::new(args.log_dir.as_deref());
    println!(
        "{}",
        environment_lines(&socket, std::process::id(), args.syntax())?
    );
    let _ = std::io::stdout().flush();
    log.line(&format!(
        "listening at {}{}",
        escape::path(&socket),
        upstream
            .as_deref()
            .map(|path| format!(", forwarding to {}", escape::path(path)))
            .unwrap_or_default()
    ));

    let shared = Shared::new();
    {
        let shared = shared.clone();
        let log = log.clone();
        let socket = socket.clone();
        let upstream = upstream.clone();
        std::thread::spawn(move || {
            if let Err(error) = agent_server::serve(listener, shared, upstream) {
                log.line(&format!("the socket failed, stopping: {error}"));
                remove_socket(&socket);
                std::process::exit(1);
            }
        });
    }
    let stop = Arc::new(AtomicBool::new(false));
    if let Some(signals) = signals {
        let stop = Arc::clone(&stop);
        let shared = shared.clone();
        let socket = socket.clone();
        let log = log.clone();
        std::thread::spawn(move || answer_signals(&signals, &stop, &shared, &socket, &log));
    }

    let http = opk_client::http_client_from_env();
    let mut session = AgentSession::new(
        shared,
        &http,
        Settings {
            principals: args.principals.clone(),
        },
    );
    let mut login = AgentLogin {
        args,
        http: &http,
        log: log.clone(),
        config: None,
        upstream: upstream.clone(),
    };
    let mut report = AgentReport {
        log: log.clone(),
        disable_browser_open: args.disable_browser_open,
        qr: !args.no_qr,
    };
    session.run(&mut login, &mut report, &stop);
    drop(session);
    remove_socket(&socket);
    log.line("stopped");
    Ok(ExitCode::SUCCESS)
}

/// SIGUSR1 asks for a login (through the agent's own login extension, as `--login` does);
/// SIGTERM, SIGINT and SIGHUP stop the agent: the session is woken to let go of the key, and
/// the process ends at the latest two seconds later (a login waiting for a browser does not
/// wake).
fn answer_signals(
    signals: &opk_os::signal::Signals,
    stop: &AtomicBool,
    shared: &Shared,
    socket: &Path,
    log: &Log,
) {
    loop {
        match signals.wait() {
            Ok(opk_os::signal::Request::LogIn) => {
                log.line("SIGUSR1: logging in again");
                if let Err(error) = agent_server::request_login(socket) {
                    log.line(&format!("cannot ask for the login: {error}"));
                }
            }
            Ok(opk_os::signal::Request::Stop) | Err(_) => {
                log.line("stopping");
                stop.store(true, Ordering::SeqCst);
                let _ = agent_server::request_login(socket);
                std::thread::sleep(Duration::from_secs(2));
                shared.release();
                remove_socket(socket);
                std::process::exit(0);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Talking to a running agent: --status, --login, and opkssh check / ssh
// ---------------------------------------------------------------------------------------------

/// The agent `--status` or `--login` asks: `-a`, else `$SSH_AUTH_SOCK`.
fn asked_agent(args: &AgentArgs) -> Result<PathBuf, CliError> {
    args.socket
        .clone()
        .or_else(opk_os::agent::default_agent_path)
        .ok_or_else(|| {
            fail(
                "SSH_AUTH_SOCK is not set, so there is no opkssh agent to ask (start one with: \
                 eval \"$(opkssh agent)\")",
            )
        })
}

fn show_status(args: &AgentArgs) -> Result<ExitCode, CliError> {
    let path = asked_agent(args)?;
    let status = agent_status(&path)?;
    let code = if status.holding {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    };
    if args.json {
        let mut value = serde_json::to_value(&status).unwrap_or_default();
        if let Some(object) = value.as_object_mut() {
            object.insert("socket".into(), path.display().to_string().into());
        }
        println!(
            "{}",
            escape::json(&serde_json::to_string_pretty(&value).unwrap_or_default())
        );
        return Ok(code);
    }
    println!(
        "opkssh agent (pid {}) at {}: {}",
        status.pid,
        escape::path(&path),
        status.state.as_str()
    );
    let field = |name: &str, value: String| println!("  {name:<13} {value}");
    if let Some(identity) = &status.identity {
        field("identity:", escape::line(identity).into_owned());
    }
    if let Some(issuer) = &status.issuer {
        field("issuer:", escape::line(issuer).into_owned());
    }
    if let Some(key) = &status.key {
        let holder = if status.key_in_agent {
            "held by the upstream ssh-agent"
        } else {
            "in memory"
        };
        field("key:", format!("{} ({holder})", escape::line(key)));
    }
    field(
        "certificate:",
        if status.holding {
            "presented".to_owned()
        } else {
            "none".to_owned()
        },
    );
    if let Some(at) = status.expires_at {
        field("expires:", at_and_in(at));
    }
    match (status.next_refresh, status.refreshable) {
        (Some(at), _) => field("next refresh:", at_and_in(at)),
        (None, false) if status.holding => {
            field(
                "next refresh:",
                "none (the provider gave no refresh token)".to_owned(),
            );
        }
        _ => {}
    }
    if status.refreshable || status.refreshes > 0 {
        field(
            "refreshes:",
            format!(
                "{}{}",
                status.refreshes,
                status
                    .logged_in_at
                    .map(|at| format!(" since the login at {}", when(at)))
                    .unwrap_or_default()
            ),
        );
    }
    if let Some(problem) = &status.problem {
        field("problem:", escape::line(problem).into_owned());
    }
    if let Some(url) = &status.login_url {
        field("log in at:", escape::line(url).into_owned());
    }
    if let Some(device) = &status.device {
        field(
            "log in at:",
            format!(
                "{} with the code {}",
                escape::line(&device.verification_uri),
                escape::line(&device.user_code)
            ),
        );
    }
    Ok(code)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_environment_line_is_ssh_agents() {
        assert_eq!(
            environment_lines(
                Path::new("/run/user/1000/opkssh-agent.sock"),
                42,
                Syntax::Sh
            )
            .unwrap(),
            "SSH_AUTH_SOCK=/run/user/1000/opkssh-agent.sock; export SSH_AUTH_SOCK;\necho Agent pid 42;"
        );
        assert_eq!(
            environment_lines(Path::new("/tmp/a/agent.sock"), 7, Syntax::Csh).unwrap(),
            "setenv SSH_AUTH_SOCK /tmp/a/agent.sock;\necho Agent pid 7;"
        );
        assert_eq!(
            environment_lines(Path::new(r"\\.\pipe\opkssh-agent.9"), 9, Syntax::PowerShell)
                .unwrap(),
            "$env:SSH_AUTH_SOCK = '\\\\.\\pipe\\opkssh-agent.9';\necho 'Agent pid 9';"
        );
    }

    #[test]
    fn socket_paths_are_quoted_for_eval_or_refused() {
        assert_eq!(
            shell_word("/home/a b/s;rm", Syntax::Sh).unwrap(),
            "'/home/a b/s;rm'"
        );
        assert_eq!(shell_word("/it's", Syntax::Sh).unwrap(), r"'/it'\''s'");
        assert_eq!(shell_word("/a$(x)`y`", Syntax::Csh).unwrap(), "'/a$(x)`y`'");
        assert_eq!(
            shell_word(r"C:\it's $x", Syntax::PowerShell).unwrap(),
            r"'C:\it''s $x'"
        );
        assert!(shell_word("/a\nb", Syntax::Sh).is_none());
        assert!(shell_word("/a\nb", Syntax::PowerShell).is_none());
        assert!(shell_word("/a!b", Syntax::Csh).is_none());
        assert!(shell_word("/it's", Syntax::Csh).is_none());
    }
}
