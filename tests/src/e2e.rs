//! End-to-end harness with real components: an OpenID provider (npm `oidc-provider`, driven by
//! `tests/e2e/op/op.mjs`), OpenSSH's `sshd` and `ssh`, a cookie-jar HTTP login driver, and a server
//! for the Go vectors' issuers. The recipe, with every behaviour relied on here, is
//! `shared/docs/e2e-harness.md`.
//!
//! Every test starts with the gate, then builds the fixtures it needs:
//!
//! ```no_run
//! use opkssh_tests::e2e::{AkcConfig, E2e, LOGIN_USER, Op, Sshd, ssh_login};
//! use std::path::Path;
//!
//! let Some(e2e) = E2e::require() else { return };
//! let op = Op::start(&[("OP_SIGNING_ALG", "ES256")]);
//! let opkssh = e2e.install_binary(&opkssh_tests::e2e::target_binary("opkssh"));
//! let sshd = Sshd::start(AkcConfig::new(format!("{} verify %u %k %t", opkssh.display())));
//! let out = ssh_login(&sshd, LOGIN_USER, Path::new("id"), Some(Path::new("id-cert.pub")), "true");
//! assert_eq!(out.status.code(), Some(0), "{}", sshd.log());
//! # drop(op);
//! ```
//!
//! Without `OPKSSH_E2E=1` that prints `SKIP e2e: set OPKSSH_E2E=1` and the test returns. With it,
//! a missing prerequisite (root, `/usr/sbin/sshd`, `ssh`, `node`, `tests/e2e/op/node_modules`) is a
//! panic, so CI can never skip silently. The returned [`E2e`] holds a machine-wide lock (a file
//! lock, so it also serializes separate test processes): e2e tests run one at a time, whatever
//! `--test-threads` says. Keep it alive for the whole test, declared before the fixtures, so that
//! they are dropped (children killed) before the lock is released.
//!
//! Nothing here talks to anything but loopback.

// Test-only code: a failed precondition or an I/O error is a test failure, so panicking with a
// clear message is the intended behaviour here.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::missing_panics_doc
)]

use anyhow::{Context as _, Result, anyhow, bail};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The environment variable that turns the end-to-end tests on.
pub const GATE: &str = "OPKSSH_E2E";
/// The login user for the tests (created on demand, password field `*`: no password, not locked).
pub const LOGIN_USER: &str = "e2euser";
/// A second login user.
pub const LOGIN_USER2: &str = "e2euser2";
/// The system user (and group) `AuthorizedKeysCommand` runs as, as in upstream's install script.
pub const AKC_USER: &str = "opksshuser";
/// Where [`E2e::install_binary`] puts executables: every component root-owned and not writable by
/// group or others, as sshd demands of an `AuthorizedKeysCommand` (e2e-harness.md §4.4).
pub const LIBEXEC: &str = "/usr/local/libexec/opkssh-e2e";
/// sshd's privilege-separation directory (tmpfs `/run` loses it at reboot).
const PRIVSEP_DIR: &str = "/run/sshd";
const SSHD: &str = "/usr/sbin/sshd";

const LOCK_WAIT: Duration = Duration::from_secs(20 * 60);
const OP_READY_TIMEOUT: Duration = Duration::from_secs(30);
// Generous: under heavy disk writeback, file reads here have stalled for over 30 s.
const SSHD_READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound on one `ssh` run. sshd's `LoginGraceTime` (30 s here) cuts a hanging verifier earlier.
pub const SSH_TIMEOUT: Duration = Duration::from_secs(60);
const TOOL_TIMEOUT: Duration = Duration::from_secs(30);
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// A binary of the workspace built beside the running test executable (`<target>/<profile>/name`).
/// `cargo test --workspace` (the test command) builds `opkssh` before it runs any test; a lone
/// `cargo test -p opkssh-tests` does not, so this panics if the binary is missing or older than
/// a source it is built from ([`BINARY_SOURCES`]) rather than test a stale one.
/// An integration test inside `opkssh-cli` can use `env!("CARGO_BIN_EXE_opkssh")` instead,
/// which cargo keeps fresh.
pub fn target_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("e2e: current_exe");
    // <target>/<profile>/deps/<test>-<hash>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("e2e: test executable outside a target directory");
    let path = profile_dir.join(name);
    let hint = "run the test command, cargo test --workspace, which builds it";
    let built = fs::metadata(&path)
        .and_then(|m| m.modified())
        .unwrap_or_else(|_| panic!("e2e: {} is not built; {hint}", path.display()));
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("e2e: workspace root");
    if let Some((source, modified)) = newest_source(workspace) {
        assert!(
            modified <= built,
            "e2e: {} is older than {}; {hint}",
            path.display(),
            source.display()
        );
    }
    path
}

/// The workspace crates the `opkssh` binary is built from.
pub const BINARY_SOURCES: [&str; 7] = [
    "opk-core",
    "net",
    "policy",
    "verifier",
    "client",
    "install",
    "opkssh-cli",
];

/// The most recently modified source of [`BINARY_SOURCES`]: their `Cargo.toml` and `src/**`.
fn newest_source(workspace: &Path) -> Option<(PathBuf, SystemTime)> {
    fn walk(path: &Path, newest: &mut Option<(PathBuf, SystemTime)>) {
        let Ok(meta) = fs::metadata(path) else { return };
        if meta.is_dir() {
            for entry in fs::read_dir(path).into_iter().flatten().flatten() {
                walk(&entry.path(), newest);
            }
        } else if let Ok(modified) = meta.modified()
            && newest.as_ref().is_none_or(|(_, t)| modified > *t)
        {
            *newest = Some((path.to_path_buf(), modified));
        }
    }
    let mut newest = None;
    for member in BINARY_SOURCES {
        walk(&workspace.join(member).join("Cargo.toml"), &mut newest);
        walk(&workspace.join(member).join("src"), &mut newest);
    }
    newest
}

/// The `tests/e2e/op` folder (package.json, op.mjs, node_modules).
pub fn op_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("e2e/op")
}

// ---------------------------------------------------------------------------------------------
// Gate, lock, users, installed executables
// ---------------------------------------------------------------------------------------------

/// One end-to-end test's claim on the machine: the e2e lock, a private scratch directory, and the
/// executables it installed under [`LIBEXEC`] (removed on drop).
pub struct E2e {
    dir: tempfile::TempDir,
    installed: Mutex<Vec<PathBuf>>,
    // Dropped last: the lock is released after everything above is cleaned up.
    _lock: File,
}

impl std::fmt::Debug for E2e {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("E2e")
            .field("dir", &self.dir.path())
            .finish_non_exhaustive()
    }
}

/// Whether the end-to-end tests are switched on (`OPKSSH_E2E=1`).
pub fn enabled() -> bool {
    std::env::var_os(GATE).is_some_and(|v| v == "1")
}

/// Takes a machine-wide lock file, waiting at most `wait`.
fn take_lock_file(name: &str, wait: Duration) -> File {
    let path = std::env::temp_dir().join(name);
    // flock works on a read-only descriptor, so a user other than the file's creator can lock it.
    let file = File::open(&path)
        .or_else(|_| {
            OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
        })
        .unwrap_or_else(|e| panic!("e2e: cannot open lock file {}: {e}", path.display()));
    let deadline = Instant::now() + wait;
    loop {
        match file.try_lock() {
            Ok(()) => return file,
            Err(fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!(
                "e2e: could not take lock {} within {wait:?}: {e}",
                path.display()
            ),
        }
    }
}

impl E2e {
    /// The gate. `None` (after printing `SKIP e2e: set OPKSSH_E2E=1`) unless `OPKSSH_E2E=1`; then
    /// checks every prerequisite (panicking with what is missing), takes the e2e lock, creates
    /// `/run/sshd` and the test users, and returns the fixture.
    pub fn require() -> Option<E2e> {
        if !enabled() {
            eprintln!("SKIP e2e: set {GATE}=1");
            return None;
        }
        check_prerequisites();
        let lock = take_lock_file("opkssh-e2e.lock", LOCK_WAIT);
        ensure_privsep_dir();
        ensure_users();
        let dir = tempfile::Builder::new()
            .prefix("opkssh-e2e-")
            .tempdir()
            .expect("e2e: creating the scratch directory");
        Some(E2e {
            dir,
            installed: Mutex::new(Vec::new()),
            _lock: lock,
        })
    }

    /// A private scratch directory (root, 0700), removed on drop. Not readable by [`AKC_USER`].
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Copies an executable to `/usr/local/libexec/opkssh-e2e/<unique>/opkssh`, root:root 0755,
    /// with every parent root-owned and not group- or world-writable, so that sshd accepts it as
    /// an `AuthorizedKeysCommand`. Removed when `self` is dropped.
    pub fn install_binary(&self, src: &Path) -> PathBuf {
        let bytes = fs::read(src).unwrap_or_else(|e| panic!("e2e: reading {}: {e}", src.display()));
        self.install_executable("opkssh", &bytes)
    }

    /// Like [`E2e::install_binary`] for given contents (e.g. a shell script) under a given file
    /// name.
    pub fn install_executable(&self, name: &str, contents: &[u8]) -> PathBuf {
        self.install_file(name, contents, 0o755, None)
    }

    /// Writes a file into a fresh root-owned 0755 directory under [`LIBEXEC`] (removed when
    /// `self` is dropped), owned by root and `group` (e.g. [`AKC_USER`] for a config file that
    /// the `AuthorizedKeysCommand` reads, mode 0640 as upstream installs `/etc/opk`), with
    /// `mode`. The scratch [`E2e::dir`] is not readable by the command user (P7).
    pub fn install_file(
        &self,
        name: &str,
        contents: &[u8],
        mode: u32,
        group: Option<&str>,
    ) -> PathBuf {
        self.install_dir(&[(name, contents, mode)], group)
            .join(name)
    }

    /// A fresh directory under the system temp dir, owned by `user` (and its group), mode 0700,
    /// removed when `self` is dropped: where the `AuthorizedKeysCommand` (running as
    /// [`AKC_USER`]) may write its log and cache. Root-created paths are not writable by it (P7),
    /// and [`E2e::dir`] is not even searchable by it.
    pub fn writable_dir(&self, user: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(unique_name("opkssh-e2e-rw"));
        fs::create_dir(&dir).unwrap_or_else(|e| panic!("e2e: creating {}: {e}", dir.display()));
        self.installed.lock().unwrap().push(dir.clone());
        let (uid, gid) = user_ids(user);
        opk_os::file::set_owner(&dir, Some(uid), Some(gid))
            .unwrap_or_else(|e| panic!("e2e: chown {}: {e}", dir.display()));
        opk_os::file::set_mode(&dir, 0o700).unwrap();
        dir
    }

    /// Like [`E2e::install_file`] for several files `(name, contents, mode)` in one fresh
    /// directory (e.g. a config root with `providers` and `auth_id`); returns the directory.
    pub fn install_dir(&self, files: &[(&str, &[u8], u32)], group: Option<&str>) -> PathBuf {
        let dir = Path::new(LIBEXEC).join(unique_name("x"));
        make_root_dir(&dir);
        self.installed.lock().unwrap().push(dir.clone());
        let gid = group.map(group_id);
        for (name, contents, mode) in files {
            assert!(
                !name.is_empty() && !name.contains('/'),
                "e2e: bad file name {name:?}"
            );
            let path = dir.join(name);
            fs::write(&path, contents)
                .unwrap_or_else(|e| panic!("e2e: writing {}: {e}", path.display()));
            opk_os::file::set_owner(&path, Some(0), gid)
                .unwrap_or_else(|e| panic!("e2e: chown {}: {e}", path.display()));
            opk_os::file::set_mode(&path, *mode).unwrap();
        }
        check_root_owned_path(&dir).unwrap_or_else(|e| panic!("e2e: {e:#}"));
        dir
    }
}

/// The numeric user and primary group ids of a user (`getent passwd`).
pub fn user_ids(name: &str) -> (u32, u32) {
    let out = run_with_timeout(Command::new("getent").args(["passwd", name]), TOOL_TIMEOUT);
    assert!(out.status.success(), "e2e: no user {name}");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let fields: Vec<&str> = text.trim().split(':').collect();
    match (
        fields.get(2).and_then(|v| v.parse().ok()),
        fields.get(3).and_then(|v| v.parse().ok()),
    ) {
        (Some(uid), Some(gid)) => (uid, gid),
        _ => panic!("e2e: user {name}: {text:?}"),
    }
}

/// The numeric id of a group (`getent group`).
pub fn group_id(name: &str) -> u32 {
    let out = run_with_timeout(Command::new("getent").args(["group", name]), TOOL_TIMEOUT);
    assert!(out.status.success(), "e2e: no group {name}");
    String::from_utf8_lossy(&out.stdout)
        .split(':')
        .nth(2)
        .and_then(|gid| gid.trim().parse().ok())
        .unwrap_or_else(|| panic!("e2e: group {name}: {out:?}"))
}

impl Drop for E2e {
    fn drop(&mut self) {
        let dirs = std::mem::take(&mut *self.installed.lock().unwrap_or_else(|e| e.into_inner()));
        for dir in dirs {
            let _ = fs::remove_dir_all(dir);
        }
    }
}

fn check_prerequisites() {
    let mut missing = Vec::new();
    match fs::metadata("/proc/self").map(|meta| opk_os::file::attributes(&meta)) {
        Ok(Ok(attributes)) if attributes.uid == 0 => {}
        _ => missing.push("root (the e2e tests create users and run sshd)".to_owned()),
    }
    if !Path::new(SSHD).is_file() {
        missing.push(format!("{SSHD} (apt-get install openssh-server)"));
    }
    for (tool, hint) in [
        ("ssh", "apt-get install openssh-client"),
        ("ssh-keygen", "apt-get install openssh-client"),
        ("node", "Node.js 20 or newer"),
        ("useradd", "passwd"),
    ] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            missing.push(format!("{tool} ({hint})"));
        }
    }
    let provider = op_dir().join("node_modules/oidc-provider/package.json");
    if !provider.is_file() {
        missing.push(format!(
            "{} (run: cd tests/e2e/op && npm ci)",
            provider.display()
        ));
    }
    assert!(
        missing.is_empty(),
        "{GATE}=1 but e2e prerequisites are missing (run .ci/run as root to install them): {}",
        missing.join("; ")
    );
}

fn ensure_privsep_dir() {
    make_root_dir(Path::new(PRIVSEP_DIR));
}

/// Creates `dir` and its missing parents as root-owned 0755 directories (fixing the mode of the
/// ones it creates; existing parents are only checked later).
fn make_root_dir(dir: &Path) {
    let mut to_make = Vec::new();
    let mut cursor = Some(dir);
    while let Some(d) = cursor {
        if d.exists() {
            break;
        }
        to_make.push(d.to_path_buf());
        cursor = d.parent();
    }
    for d in to_make.iter().rev() {
        match fs::create_dir(d) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => panic!("e2e: creating {}: {e}", d.display()),
        }
        opk_os::file::set_mode(d, 0o755).unwrap();
    }
    if dir == Path::new(PRIVSEP_DIR) || dir.starts_with(LIBEXEC) {
        let meta = fs::metadata(dir).unwrap();
        if opk_os::file::attributes(&meta).unwrap().mode & 0o022 != 0 {
            opk_os::file::set_mode(dir, 0o755).unwrap();
        }
    }
}

/// sshd's rule for an `AuthorizedKeysCommand` (and its `safe_path`): the file and every directory
/// above it owned by root and not writable by group or others.
///
/// # Errors
/// Names the first offending component.
pub fn check_root_owned_path(path: &Path) -> Result<()> {
    let mut cursor = Some(path);
    while let Some(p) = cursor {
        let meta = fs::metadata(p).with_context(|| format!("stat {}", p.display()))?;
        let meta = opk_os::file::attributes(&meta).with_context(|| format!("{}", p.display()))?;
        if meta.uid != 0 {
            bail!(
                "{} is owned by uid {}, sshd needs root for every component of {}",
                p.display(),
                meta.uid,
                path.display()
            );
        }
        if meta.mode & 0o022 != 0 {
            bail!(
                "{} has mode {:o} (group/world-writable); sshd refuses {}",
                p.display(),
                meta.mode,
                path.display()
            );
        }
        cursor = p.parent();
    }
    Ok(())
}

fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!(
        "{prefix}-{}-{}-{nanos:x}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

fn user_exists(name: &str) -> bool {
    run_with_timeout(Command::new("getent").args(["passwd", name]), TOOL_TIMEOUT)
        .status
        .success()
}

fn group_exists(name: &str) -> bool {
    run_with_timeout(Command::new("getent").args(["group", name]), TOOL_TIMEOUT)
        .status
        .success()
}

/// Runs a user-management command; "already exists" (status 9) counts as success.
fn run_useradd_like(cmd: &mut Command) {
    let out = run_with_timeout(cmd, TOOL_TIMEOUT);
    let code = out.status.code();
    assert!(
        out.status.success() || code == Some(9),
        "e2e: {cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Creates, if missing, the login users [`LOGIN_USER`] and [`LOGIN_USER2`] (with homes and a
/// `*` password field: no password, not locked, so `UsePAM no` lets them in) and the system user
/// and group [`AKC_USER`].
pub fn ensure_users() {
    if !group_exists(AKC_USER) {
        run_useradd_like(Command::new("groupadd").args(["--system", AKC_USER]));
    }
    if !user_exists(AKC_USER) {
        run_useradd_like(Command::new("useradd").args([
            "--system",
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
            "--gid",
            AKC_USER,
            AKC_USER,
        ]));
    }
    for user in [LOGIN_USER, LOGIN_USER2] {
        if !user_exists(user) {
            run_useradd_like(Command::new("useradd").args(["-m", "-s", "/bin/bash", user]));
        }
        // useradd leaves the account locked (`!`); sshd without PAM refuses locked accounts
        // before it runs the AuthorizedKeysCommand (e2e-harness.md P5).
        run_useradd_like(Command::new("usermod").args(["-p", "*", user]));
    }
}

// ---------------------------------------------------------------------------------------------
// Processes with bounded waits
// ---------------------------------------------------------------------------------------------

/// Starts OpenSSH's `ssh-agent` in the foreground listening at `socket`: `foreground` is `-D`
/// (quiet) or `-d` (its debug log on stderr, which names each added identity's lifetime).
/// stdin and stdout are /dev/null; `configure` sets the rest (stderr, environment). Returns once
/// the socket exists; the caller kills and reaps the child.
pub fn start_ssh_agent(
    socket: &Path,
    foreground: &str,
    configure: impl FnOnce(&mut Command),
) -> std::process::Child {
    let mut command = Command::new("ssh-agent");
    command
        .arg(foreground)
        .arg("-a")
        .arg(socket)
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    configure(&mut command);
    let child = command
        .spawn()
        .expect("e2e: ssh-agent (openssh-client) must be installed");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !socket.exists() {
        assert!(Instant::now() < deadline, "e2e: ssh-agent made no socket");
        thread::sleep(Duration::from_millis(10));
    }
    child
}

/// Runs a command to completion with stdin from /dev/null, capturing stdout and stderr; kills it
/// and panics if it runs longer than `timeout`.
pub fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("e2e: spawning {cmd:?}: {e}"));
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            let out = stdout.join().unwrap_or_default();
            let err = stderr.join().unwrap_or_default();
            panic!(
                "e2e: {cmd:?} did not finish within {timeout:?}\nstdout: {}\nstderr: {}",
                String::from_utf8_lossy(&out),
                String::from_utf8_lossy(&err)
            );
        }
        thread::sleep(Duration::from_millis(5));
    };
    Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    }
}

fn drain<R: std::io::Read + Send + 'static>(pipe: Option<R>) -> JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut buf);
        }
        buf
    })
}

fn kill_and_wait(child: &mut Child) {
    if child.try_wait().ok().flatten().is_none() {
        let _ = child.kill();
    }
    let _ = child.wait();
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("e2e: picking a free loopback port")
}

// ---------------------------------------------------------------------------------------------
// Loopback-only HTTP
// ---------------------------------------------------------------------------------------------

/// Refuses any URL that is not `http://` to `localhost`, `127.0.0.1` or `[::1]`.
///
/// # Errors
/// Not a URL, not http, or not a loopback host.
pub fn check_loopback(url: &str) -> Result<()> {
    let uri: ureq::http::Uri = url.parse().with_context(|| format!("not a URL: {url}"))?;
    if uri.scheme_str() != Some("http") {
        bail!("refusing non-http URL {url}");
    }
    match uri.host() {
        Some("localhost" | "127.0.0.1" | "[::1]" | "::1") => Ok(()),
        _ => bail!("refusing non-loopback URL {url}"),
    }
}

/// A ureq agent for loopback tests: no proxy from the environment, no redirects followed, HTTP
/// error statuses returned as responses, 10 s overall timeout, no cookies.
pub fn loopback_agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .proxy(None)
        .max_redirects(0)
        .http_status_as_error(false)
        .timeout_global(Some(HTTP_TIMEOUT))
        .build()
        .new_agent()
}

/// GETs a loopback URL and parses the JSON body; fails on a non-200 status.
///
/// # Errors
/// Non-loopback URL, transport error, status other than 200, invalid JSON.
pub fn get_json(url: &str) -> Result<serde_json::Value> {
    check_loopback(url)?;
    let mut resp = loopback_agent()
        .get(url)
        .call()
        .with_context(|| format!("GET {url}"))?;
    let status = resp.status().as_u16();
    let body = resp.body_mut().read_to_string()?;
    if status != 200 {
        bail!("GET {url}: status {status}: {body}");
    }
    serde_json::from_str(&body).with_context(|| format!("GET {url}: not JSON: {body}"))
}

/// Reads a response body as JSON.
///
/// # Errors
/// Transport error, or the body is not JSON.
pub fn body_json(resp: &mut ureq::http::Response<ureq::Body>) -> Result<serde_json::Value> {
    let text = resp.body_mut().read_to_string()?;
    serde_json::from_str(&text).with_context(|| format!("not JSON: {text:.300}"))
}

/// `application/x-www-form-urlencoded` / query-component encoding of one value.
pub fn urlencode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

/// The value of a query parameter of `url` (percent-decoded; `+` is a space).
pub fn query_param(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1.split('#').next()?;
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(k) == name).then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => match s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                Some(b) => {
                    out.push(b);
                    i += 2;
                }
                None => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Resolves `location` (absolute `http://…` or an absolute path) against `base`.
fn join_url(base: &str, location: &str) -> Result<String> {
    if location.starts_with("http://") || location.starts_with("https://") {
        return Ok(location.to_owned());
    }
    if !location.starts_with('/') {
        bail!("relative location {location:?} (from {base}) is not supported");
    }
    let uri: ureq::http::Uri = base.parse()?;
    let authority = uri
        .authority()
        .ok_or_else(|| anyhow!("no authority in {base}"))?;
    Ok(format!("http://{authority}{location}"))
}

fn html_unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The attributes of every `<tag …>` in `html`, in order (a small parser for the OP's own pages,
/// which quote every attribute value with `"`).
fn tags<'a>(html: &'a str, tag: &str) -> Vec<BTreeMap<String, String>> {
    let open = format!("<{tag}");
    let mut found = Vec::new();
    let mut rest: &'a str = html;
    while let Some(start) = rest.find(&open) {
        let after = &rest[start + open.len()..];
        let end = after.find('>').unwrap_or(after.len());
        let inside = &after[..end];
        let mut attrs = BTreeMap::new();
        let mut s = inside;
        loop {
            s = s.trim_start_matches(|c: char| c.is_whitespace() || c == '/');
            if s.is_empty() {
                break;
            }
            let name_end = s
                .find(|c: char| c == '=' || c.is_whitespace() || c == '/')
                .unwrap_or(s.len());
            let name = s[..name_end].to_ascii_lowercase();
            s = &s[name_end..];
            if let Some(after_eq) = s.strip_prefix("=\"") {
                let value_end = after_eq.find('"').unwrap_or(after_eq.len());
                attrs.insert(name, html_unescape(&after_eq[..value_end]));
                s = after_eq.get(value_end + 1..).unwrap_or("");
            } else {
                attrs.insert(name, String::new());
            }
        }
        found.push(attrs);
        rest = after.get(end..).unwrap_or("");
    }
    found
}

/// The login driver's cookie jar: RFC 6265 name, value and path, per authority (host:port), for
/// the OP's own cookies (`_interaction` scoped to `/interaction/<uid>`, `_interaction_resume` to
/// `/auth/<uid>`, `_session` to `/`, each with a `.sig`). Expired cookies are removed; `Domain`,
/// `Secure` and `SameSite` do not matter on one loopback host.
#[derive(Debug, Default)]
struct CookieJar {
    // (authority, name, path) -> value
    cookies: BTreeMap<(String, String, String), String>,
}

impl CookieJar {
    fn store(&mut self, authority: &str, request_path: &str, set_cookie: &str) {
        let mut parts = set_cookie.split(';');
        let Some((name, value)) = parts.next().and_then(|nv| nv.split_once('=')) else {
            return;
        };
        let mut path = None;
        let mut expired = false;
        for attribute in parts {
            let (key, val) = attribute.split_once('=').unwrap_or((attribute, ""));
            match key.trim().to_ascii_lowercase().as_str() {
                "path" if val.trim().starts_with('/') => path = Some(val.trim().to_owned()),
                "max-age" => expired |= val.trim().parse::<i64>().is_ok_and(|age| age <= 0),
                // Deleting a cookie sets it to the epoch; other dates are in the future here.
                "expires" => expired |= val.contains("1970"),
                _ => {}
            }
        }
        // Default path: the request path up to its last '/' (RFC 6265 §5.1.4).
        let path = path.unwrap_or_else(|| match request_path.rfind('/') {
            Some(0) | None => "/".to_owned(),
            Some(i) => request_path[..i].to_owned(),
        });
        let key = (authority.to_owned(), name.trim().to_owned(), path);
        if expired {
            self.cookies.remove(&key);
        } else {
            self.cookies.insert(key, value.trim().to_owned());
        }
    }

    fn header(&self, authority: &str, request_path: &str) -> Option<String> {
        let matches = |cookie_path: &str| {
            request_path == cookie_path
                || (request_path.starts_with(cookie_path)
                    && (cookie_path.ends_with('/')
                        || request_path[cookie_path.len()..].starts_with('/')))
        };
        let pairs: Vec<String> = self
            .cookies
            .iter()
            .filter(|((auth, _, path), _)| auth == authority && matches(path))
            .map(|((_, name, _), value)| format!("{name}={value}"))
            .collect();
        (!pairs.is_empty()).then(|| pairs.join("; "))
    }
}

/// Drives an `oidc-provider` login without a person (e2e-harness.md §2.4(a)): follows redirects
/// with a cookie jar, submits the devInteractions login form as `login_name` (any password) and
/// then the consent form, until the redirect to a `…/login-callback` URL, which it then GETs
/// like a browser would (so a client's callback listener receives the code). Returns that
/// callback URL (with `code`, `state`, `iss`, or `error`…).
///
/// # Errors
/// A non-loopback URL anywhere in the flow, a transport error, an unexpected page, more than 20
/// steps, or a callback that does not answer 2xx.
pub fn http_login(auth_url: &str, login_name: &str) -> Result<String> {
    drive_login(auth_url, login_name, true)
}

/// Like [`http_login`] but stops at the callback redirect without requesting it (for tests that
/// play the client themselves and run no callback listener).
///
/// # Errors
/// As [`http_login`], except for the callback.
pub fn http_login_stop_at_callback(auth_url: &str, login_name: &str) -> Result<String> {
    drive_login(auth_url, login_name, false)
}

/// What one request of a page driver got back.
struct Page {
    status: u16,
    location: Option<String>,
    body: String,
}

/// GETs `url`, or POSTs `form` to it, as a browser with the cookies in `jar`, and keeps the
/// cookies it sets. Redirects are not followed.
fn fetch_page(
    agent: &ureq::Agent,
    jar: &mut CookieJar,
    url: &str,
    form: Option<Vec<(String, String)>>,
) -> Result<Page> {
    check_loopback(url)?;
    let uri: ureq::http::Uri = url.parse()?;
    let authority = uri
        .authority()
        .map(|a| a.as_str().to_owned())
        .unwrap_or_default();
    let path = uri.path().to_owned();
    let cookie = jar.header(&authority, &path);
    let mut resp = match form {
        Some(fields) => {
            let mut request = agent.post(url);
            if let Some(cookie) = &cookie {
                request = request.header("cookie", cookie);
            }
            request
                .send_form(fields.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                .with_context(|| format!("POST {url}"))?
        }
        None => {
            let mut request = agent.get(url);
            if let Some(cookie) = &cookie {
                request = request.header("cookie", cookie);
            }
            request.call().with_context(|| format!("GET {url}"))?
        }
    };
    for set_cookie in resp.headers().get_all("set-cookie") {
        if let Ok(set_cookie) = set_cookie.to_str() {
            jar.store(&authority, &path, set_cookie);
        }
    }
    Ok(Page {
        status: resp.status().as_u16(),
        location: resp
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        body: resp.body_mut().read_to_string().unwrap_or_default(),
    })
}

fn drive_login(auth_url: &str, login_name: &str, fetch_callback: bool) -> Result<String> {
    let agent = loopback_agent();
    let mut jar = CookieJar::default();
    let mut url = auth_url.to_owned();
    let mut form: Option<Vec<(String, String)>> = None;
    for _ in 0..20 {
        check_loopback(&url)?;
        let is_callback = url
            .split(['?', '#'])
            .next()
            .is_some_and(|path| path.ends_with("/login-callback"));
        if is_callback && form.is_none() && !fetch_callback {
            return Ok(url);
        }
        let Page {
            status,
            location,
            body,
        } = fetch_page(&agent, &mut jar, &url, form.take())?;
        if is_callback {
            if (200..300).contains(&status) {
                return Ok(url);
            }
            bail!("callback {url} answered {status}: {body:.300}");
        }
        if matches!(status, 301 | 302 | 303 | 307 | 308) {
            let location = location.ok_or_else(|| anyhow!("{status} without Location at {url}"))?;
            url = join_url(&url, &location)?;
            continue;
        }
        if status == 200 {
            let post_form = tags(&body, "form").into_iter().find(|attrs| {
                attrs
                    .get("method")
                    .is_some_and(|m| m.eq_ignore_ascii_case("post"))
            });
            if let Some(attrs) = post_form {
                let action = attrs
                    .get("action")
                    .ok_or_else(|| anyhow!("form without action at {url}"))?;
                let mut fields: Vec<(String, String)> = tags(&body, "input")
                    .into_iter()
                    .filter(|a| a.get("type").is_some_and(|t| t == "hidden"))
                    .filter_map(|a| Some((a.get("name")?.clone(), a.get("value")?.clone())))
                    .collect();
                let has_input = |name: &str| {
                    tags(&body, "input")
                        .iter()
                        .any(|a| a.get("name").is_some_and(|n| n == name))
                };
                if has_input("login") {
                    fields.push(("login".to_owned(), login_name.to_owned()));
                    fields.push(("password".to_owned(), "anything".to_owned()));
                }
                url = join_url(&url, action)?;
                form = Some(fields);
                continue;
            }
        }
        bail!("unexpected {status} at {url}: {body:.500}");
    }
    bail!("login did not reach the callback within 20 steps (last {url})")
}

/// What the person at the OP's device pages does ([`http_device_login`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceChoice {
    /// Enters the code, confirms, logs in and consents.
    Approve,
    /// Enters the code, then presses `[ Abort ]` on the device confirmation page.
    AbortAtConfirmation,
    /// Enters the code, confirms and logs in, then follows `[ Cancel ]` on the consent page.
    CancelAtConsent,
}

/// Drives an `oidc-provider` device login (RFC 8628 user side) as a person with a browser
/// would: GETs `verification_uri`, submits `user_code` with the form's `xsrf` token, answers the
/// "Confirm Device" page, then the devInteractions login (as `login_name`) and consent pages,
/// following redirects with a cookie jar, as `choice` says. Returns the `<h1>` of the page it
/// ends on ("Sign-in Success" when approved), or the error the OP shows on its code entry page
/// ("The Sign-in request was interrupted" after an abort or a cancel).
///
/// # Errors
/// A non-loopback URL, a transport error, an unexpected page, or more than 20 steps.
pub fn http_device_login(
    verification_uri: &str,
    user_code: &str,
    login_name: &str,
    choice: DeviceChoice,
) -> Result<String> {
    let agent = loopback_agent();
    let mut jar = CookieJar::default();
    let mut url = verification_uri.to_owned();
    let mut form: Option<Vec<(String, String)>> = None;
    for _ in 0..20 {
        let Page {
            status,
            location,
            body,
        } = fetch_page(&agent, &mut jar, &url, form.take())?;
        if matches!(status, 301 | 302 | 303 | 307 | 308) {
            let location = location.ok_or_else(|| anyhow!("{status} without Location at {url}"))?;
            url = join_url(&url, &location)?;
            continue;
        }
        if let Some((_, rest)) = body.split_once("<p class=\"red\">") {
            let message = rest.split_once("</p>").map_or(rest, |(message, _)| message);
            return Ok(html_unescape(message.trim()));
        }
        let post_form = tags(&body, "form").into_iter().find(|attrs| {
            attrs
                .get("method")
                .is_some_and(|m| m.eq_ignore_ascii_case("post"))
        });
        let Some(attrs) = post_form else {
            // No form: the flow's last page.
            let heading = body
                .split_once("<h1>")
                .and_then(|(_, rest)| rest.split_once("</h1>"))
                .map(|(heading, _)| html_unescape(heading.trim()))
                .ok_or_else(|| anyhow!("{status} page without a form or <h1> at {url}"))?;
            return Ok(heading);
        };
        let inputs = tags(&body, "input");
        let has_input = |name: &str| {
            inputs
                .iter()
                .any(|a| a.get("name").is_some_and(|n| n == name))
        };
        let action = attrs
            .get("action")
            .ok_or_else(|| anyhow!("form without action at {url}"))?;
        let mut fields: Vec<(String, String)> = inputs
            .iter()
            .filter(|a| a.get("type").is_some_and(|t| t == "hidden"))
            .filter_map(|a| Some((a.get("name")?.clone(), a.get("value")?.clone())))
            .collect();
        let is_consent = fields.iter().any(|(k, v)| k == "prompt" && v == "consent");
        if is_consent && choice == DeviceChoice::CancelAtConsent {
            let abort = tags(&body, "a")
                .into_iter()
                .filter_map(|a| a.get("href").cloned())
                .find(|href| href.ends_with("/abort"))
                .ok_or_else(|| anyhow!("consent page without a Cancel link at {url}"))?;
            url = join_url(&url, &abort)?;
            continue;
        }
        if has_input("confirm") && choice == DeviceChoice::AbortAtConfirmation {
            fields.push(("abort".to_owned(), "yes".to_owned()));
        }
        let code_is_hidden = fields.iter().any(|(k, _)| k == "user_code");
        if has_input("user_code") && !code_is_hidden {
            fields.push(("user_code".to_owned(), user_code.to_owned()));
        }
        if has_input("login") {
            fields.push(("login".to_owned(), login_name.to_owned()));
            fields.push(("password".to_owned(), "anything".to_owned()));
        }
        if status != 200 {
            bail!("unexpected {status} with a form at {url}: {body:.500}");
        }
        url = join_url(&url, action)?;
        form = Some(fields);
    }
    bail!("the device login did not end within 20 steps (last {url})")
}

// ---------------------------------------------------------------------------------------------
// The OpenID provider
// ---------------------------------------------------------------------------------------------

/// A running `tests/e2e/op/op.mjs` (a real `oidc-provider`), killed on drop. Its output is kept
/// and printed if the test panics.
pub struct Op {
    child: Option<Child>,
    _stdin: Option<std::process::ChildStdin>,
    issuer: String,
    port: u16,
    kid: String,
    alg: String,
    client_id: String,
    log: Arc<Mutex<String>>,
}

impl std::fmt::Debug for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Op")
            .field("issuer", &self.issuer)
            .field("port", &self.port)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// Request counts from the OP's `GET /__test/requests`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestCounts {
    /// `/.well-known/openid-configuration`
    pub discovery: u64,
    /// `/jwks`
    pub jwks: u64,
    /// `/me`
    pub userinfo: u64,
    /// `/token`
    pub token: u64,
    /// `/auth`
    pub auth: u64,
    /// Every path the OP saw (test endpoints excluded).
    pub paths: BTreeMap<String, u64>,
}

const OP_ENV: [&str; 12] = [
    "OP_EXIT_ON_STDIN_EOF",
    "OP_PORT",
    "OP_HOST",
    "OP_ISSUER",
    "OP_CLIENT_ID",
    "OP_KEYS_FILE",
    "OP_ID_TOKEN_TTL",
    "OP_APP_TYPE",
    "OP_ACCOUNTS",
    "OP_SIGNING_ALG",
    "OP_DEVICE_FLOW",
    "OP_DEVICE_NONCE",
];

impl Op {
    /// The client id the OP registers unless `OP_CLIENT_ID` says otherwise.
    pub const CLIENT_ID: &'static str = "opkssh-e2e";

    /// Starts `node <abs>/op.mjs` with `OP_PORT=0` (a free port) plus `env` (see op.mjs for the
    /// variables) and waits for its `OP_READY` line (normally 0.3-1 s). A start that fails (exit,
    /// or no `OP_READY` within 30 s) is reported on stderr and tried once more with 60 s: the OP
    /// is the test's equipment, not what it tests. One CI run here saw node stall for 30 s after
    /// loading oidc-provider, right after a 70 s build (cause unknown; not reproduced in 20 runs).
    pub fn start(env: &[(&str, &str)]) -> Op {
        match Self::try_start(env, OP_READY_TIMEOUT) {
            Ok(op) => op,
            Err(first) => {
                eprintln!("e2e: WARNING: the OP failed to start, trying again. {first}");
                Self::try_start(env, 2 * OP_READY_TIMEOUT).unwrap_or_else(|second| {
                    panic!("e2e: the OP failed to start twice.\n1: {first}\n2: {second}")
                })
            }
        }
    }

    fn try_start(env: &[(&str, &str)], ready_timeout: Duration) -> std::result::Result<Op, String> {
        let script = op_dir().join("op.mjs");
        let mut cmd = Command::new("node");
        cmd.arg(&script).current_dir("/");
        for name in OP_ENV {
            cmd.env_remove(name);
        }
        cmd.env("OP_PORT", "0");
        // The OP exits when this pipe closes: if the test process dies without running Drop
        // (SIGKILL, abort), node does not outlive it (e2e-harness.md P13, P17).
        cmd.env("OP_EXIT_ON_STDIN_EOF", "1");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("e2e: spawning node {}: {e}", script.display()));
        let stdin = child.stdin.take();
        let log = Arc::new(Mutex::new(String::new()));
        let (ready_tx, ready_rx) = mpsc::channel::<String>();
        {
            let log = Arc::clone(&log);
            let stdout = child.stdout.take().unwrap();
            thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if line.starts_with("OP_READY ") {
                        let _ = ready_tx.send(line.clone());
                    }
                    let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
                    log.push_str(&line);
                    log.push('\n');
                }
            });
        }
        {
            let log = Arc::clone(&log);
            let stderr = child.stderr.take().unwrap();
            thread::spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
                    log.push_str(&line);
                    log.push('\n');
                }
            });
        }
        let started = Instant::now();
        let line = loop {
            let exited = match ready_rx.recv_timeout(Duration::from_millis(20)) {
                Ok(line) => break line,
                // stdout closed: the process is exiting; wait for its status (bounded).
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let deadline = Instant::now() + Duration::from_secs(5);
                    loop {
                        if let Some(status) = child.try_wait().ok().flatten() {
                            break Some(status);
                        }
                        if Instant::now() >= deadline {
                            break None;
                        }
                        thread::sleep(Duration::from_millis(5));
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => child.try_wait().ok().flatten(),
            };
            if let Some(status) = exited {
                thread::sleep(Duration::from_millis(50)); // let the readers take the last lines
                return Err(format!(
                    "It exited ({status}) after {:?}, before OP_READY; its output:\n{}",
                    started.elapsed(),
                    log.lock().unwrap_or_else(|e| e.into_inner())
                ));
            }
            if started.elapsed() >= ready_timeout {
                kill_and_wait(&mut child);
                thread::sleep(Duration::from_millis(50));
                return Err(format!(
                    "It did not print OP_READY within {ready_timeout:?}; its output:\n{}",
                    log.lock().unwrap_or_else(|e| e.into_inner())
                ));
            }
        };
        if started.elapsed() > Duration::from_secs(5) {
            eprintln!("e2e: WARNING: the OP took {:?} to start", started.elapsed());
        }
        let field = |name: &str| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(name)?.strip_prefix('='))
                .map(str::to_owned)
                .unwrap_or_else(|| panic!("e2e: no {name}= in {line:?}"))
        };
        let client_id = env
            .iter()
            .find(|(k, _)| *k == "OP_CLIENT_ID")
            .map_or(Self::CLIENT_ID, |(_, v)| v)
            .to_owned();
        Ok(Op {
            issuer: field("issuer"),
            port: field("port").parse().expect("e2e: OP port"),
            kid: field("kid"),
            alg: field("alg"),
            client_id,
            child: Some(child),
            _stdin: stdin,
            log,
        })
    }

    /// The issuer, exactly as the OP puts it in `iss` (default `http://localhost:<port>`).
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The port the OP listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The kid of the signing key at start-up.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// `RS256` or `ES256`.
    pub fn alg(&self) -> &str {
        &self.alg
    }

    /// The registered public client's id.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// `http://localhost:<port><path>` (independent of a custom issuer string).
    pub fn url(&self, path: &str) -> String {
        format!("http://localhost:{}{path}", self.port)
    }

    /// The discovery document.
    pub fn discovery(&self) -> serde_json::Value {
        get_json(&self.url("/.well-known/openid-configuration"))
            .unwrap_or_else(|e| panic!("e2e: OP discovery: {e:#}"))
    }

    /// The public JWKS (`/jwks`).
    pub fn jwks(&self) -> serde_json::Value {
        get_json(&self.url("/jwks")).unwrap_or_else(|e| panic!("e2e: OP jwks: {e:#}"))
    }

    /// Rotates the signing key: a new key signs from now on; the old ones stay in the JWKS unless
    /// `drop_old`. Returns the JWKS kids, the new signing key first.
    pub fn rotate(&self, drop_old: bool) -> Vec<String> {
        let url = self.url(if drop_old {
            "/__test/rotate?drop_old=1"
        } else {
            "/__test/rotate"
        });
        let mut resp = loopback_agent()
            .post(&url)
            .send_empty()
            .unwrap_or_else(|e| panic!("e2e: POST {url}: {e}"));
        assert_eq!(resp.status().as_u16(), 200, "e2e: POST {url}");
        let body = body_json(&mut resp).unwrap();
        body["kids"]
            .as_array()
            .expect("e2e: rotate answer")
            .iter()
            .map(|k| k.as_str().unwrap().to_owned())
            .collect()
    }

    /// Requests the OP has served per path, since start or the last reset.
    pub fn request_counts(&self) -> RequestCounts {
        self.counts("/__test/requests")
    }

    /// Returns the counts and zeroes them.
    pub fn take_request_counts(&self) -> RequestCounts {
        self.counts("/__test/requests?reset=1")
    }

    fn counts(&self, path: &str) -> RequestCounts {
        let v = get_json(&self.url(path)).unwrap_or_else(|e| panic!("e2e: {e:#}"));
        let n = |k: &str| v[k].as_u64().unwrap_or_default();
        RequestCounts {
            discovery: n("discovery"),
            jwks: n("jwks"),
            userinfo: n("userinfo"),
            token: n("token"),
            auth: n("auth"),
            paths: v["paths"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or_default()))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// Everything the OP printed so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Kills the OP now (for "OP unreachable" tests). Idempotent.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_and_wait(&mut child);
        }
    }
}

impl Drop for Op {
    fn drop(&mut self) {
        self.stop();
        if thread::panicking() {
            eprintln!("---- OP log ({}) ----\n{}", self.issuer, self.log());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// sshd and ssh
// ---------------------------------------------------------------------------------------------

/// What sshd runs to authorize a key.
#[derive(Debug, Clone)]
pub struct AkcConfig {
    /// The whole `AuthorizedKeysCommand` value: an absolute, root-owned executable and its
    /// arguments with sshd's tokens, e.g. `/usr/local/libexec/opkssh-e2e/…/opkssh verify %u %k %t`.
    pub command: String,
    /// `AuthorizedKeysCommandUser` (default [`AKC_USER`]).
    pub user: String,
    /// More sshd_config lines. They are written *before* the harness's defaults, and sshd keeps
    /// the first value of a keyword, so they override them (no `Match` blocks).
    pub extra: Vec<String>,
}

impl AkcConfig {
    /// `command` run as [`AKC_USER`].
    pub fn new(command: impl Into<String>) -> Self {
        AkcConfig {
            command: command.into(),
            user: AKC_USER.to_owned(),
            extra: Vec::new(),
        }
    }

    /// Runs the command as another user.
    #[must_use]
    pub fn user(mut self, user: &str) -> Self {
        user.clone_into(&mut self.user);
        self
    }

    /// Adds an sshd_config line (e.g. `LoginGraceTime 5`).
    #[must_use]
    pub fn extra_line(mut self, line: &str) -> Self {
        self.extra.push(line.to_owned());
        self
    }
}

/// A private `sshd -D -e` on 127.0.0.1 and a free port, killed on drop; its log is printed if the
/// test panics.
pub struct Sshd {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    log_path: PathBuf,
    known_hosts: PathBuf,
}

impl std::fmt::Debug for Sshd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sshd")
            .field("port", &self.port)
            .field("dir", &self.dir.path())
            .finish_non_exhaustive()
    }
}

impl Sshd {
    /// Writes a config (host key, `AuthorizedKeysFile none`, the given `AuthorizedKeysCommand`,
    /// `UsePAM no`, no passwords, `LogLevel DEBUG1`, `PidFile none`, `LoginGraceTime 30`), checks
    /// it with `sshd -t`, starts `/usr/sbin/sshd -D -e -f cfg` with stderr appended to a log, and
    /// waits for `Server listening on`.
    pub fn start(akc: AkcConfig) -> Sshd {
        let executable = akc.command.split_whitespace().next().unwrap_or_default();
        assert!(
            executable.starts_with('/'),
            "e2e: AuthorizedKeysCommand must be an absolute path: {:?}",
            akc.command
        );
        check_root_owned_path(Path::new(executable)).unwrap_or_else(|e| {
            panic!(
                "e2e: sshd would refuse the AuthorizedKeysCommand: {e:#} (use E2e::install_binary)"
            )
        });
        ensure_privsep_dir();
        let dir = tempfile::Builder::new()
            .prefix("opkssh-e2e-sshd-")
            .tempdir()
            .expect("e2e: sshd scratch directory");
        let host_key = dir.path().join("host_ed25519");
        let out = run_with_timeout(
            Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-C", "e2e-host", "-f"])
                .arg(&host_key),
            TOOL_TIMEOUT,
        );
        assert!(out.status.success(), "e2e: ssh-keygen host key: {out:?}");
        let host_pub = fs::read_to_string(dir.path().join("host_ed25519.pub")).unwrap();
        let host_pub: Vec<&str> = host_pub.split_whitespace().take(2).collect();
        let log_path = dir.path().join("sshd.log");
        let config_path = dir.path().join("sshd_config");
        let known_hosts = dir.path().join("known_hosts");

        let mut last_error = String::new();
        for _attempt in 0..3 {
            let port = free_port();
            let mut config = String::new();
            for line in &akc.extra {
                config.push_str(line);
                config.push('\n');
            }
            let _ = write!(
                config,
                "Port {port}\n\
                 ListenAddress 127.0.0.1\n\
                 HostKey {host_key}\n\
                 PidFile none\n\
                 LogLevel DEBUG1\n\
                 UsePAM no\n\
                 KbdInteractiveAuthentication no\n\
                 PasswordAuthentication no\n\
                 PubkeyAuthentication yes\n\
                 AuthorizedKeysFile none\n\
                 AuthorizedKeysCommand {command}\n\
                 AuthorizedKeysCommandUser {user}\n\
                 PermitRootLogin no\n\
                 LoginGraceTime 30\n\
                 StrictModes yes\n\
                 PrintMotd no\n\
                 PrintLastLog no\n",
                host_key = host_key.display(),
                command = akc.command,
                user = akc.user,
            );
            fs::write(&config_path, &config).unwrap();
            let check = run_with_timeout(
                Command::new(SSHD).arg("-t").arg("-f").arg(&config_path),
                TOOL_TIMEOUT,
            );
            assert!(
                check.status.success(),
                "e2e: sshd -t refused the config:\n{}\n{config}",
                String::from_utf8_lossy(&check.stderr)
            );
            fs::write(
                &known_hosts,
                format!("[127.0.0.1]:{port} {}\n", host_pub.join(" ")),
            )
            .unwrap();
            // O_APPEND: truncating a log another process writes without it fills it with NULs
            // (e2e-harness.md P8).
            let log = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log_path)
                .unwrap();
            let start_offset = log.metadata().map(|m| m.len()).unwrap_or_default();
            let mut child = Command::new(SSHD)
                .args(["-D", "-e", "-f"])
                .arg(&config_path)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("e2e: spawning {SSHD}: {e}"));
            let deadline = Instant::now() + SSHD_READY_TIMEOUT;
            let listening = format!("Server listening on 127.0.0.1 port {port}");
            loop {
                let text = read_from(&log_path, start_offset);
                if text.contains(&listening) {
                    return Sshd {
                        child: Some(child),
                        port,
                        dir,
                        log_path,
                        known_hosts,
                    };
                }
                if let Some(status) = child.try_wait().unwrap() {
                    last_error = format!("sshd exited ({status}):\n{text}");
                    break;
                }
                if Instant::now() >= deadline {
                    kill_and_wait(&mut child);
                    panic!("e2e: sshd did not listen within {SSHD_READY_TIMEOUT:?}:\n{text}");
                }
                thread::sleep(Duration::from_millis(5));
            }
            if !last_error.contains("Address already in use") {
                break;
            }
        }
        panic!("e2e: sshd did not start: {last_error}");
    }

    /// The port sshd listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A known_hosts file with sshd's host key for `[127.0.0.1]:port`.
    pub fn known_hosts(&self) -> &Path {
        &self.known_hosts
    }

    /// The sshd_config in use.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("sshd_config")
    }

    /// sshd's log so far (`-e`: it includes the AuthorizedKeysCommand's stderr).
    pub fn log(&self) -> String {
        read_from(&self.log_path, 0)
    }

    /// The log path, e.g. to read only what a step added.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Kills sshd now. Idempotent.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_and_wait(&mut child);
        }
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.stop();
        if thread::panicking() {
            eprintln!("---- sshd log (port {}) ----\n{}", self.port, self.log());
        }
    }
}

fn read_from(path: &Path, offset: u64) -> String {
    let bytes = fs::read(path).unwrap_or_default();
    let start = usize::try_from(offset)
        .unwrap_or(usize::MAX)
        .min(bytes.len());
    String::from_utf8_lossy(&bytes[start..]).into_owned()
}

/// Runs the OpenSSH client against `sshd` as `user` with exactly e2e-harness.md §4.1's options:
/// no config file, no agent, only the given identity (and certificate, offered first), batch
/// mode, sshd's host key pinned. Exit status 0 means logged in and `command` ran (its status
/// otherwise); 255 means denied (or a connection error). Bounded by [`SSH_TIMEOUT`].
///
/// ssh refuses private keys readable by others: write `identity_file` with mode 0600.
pub fn ssh_login(
    sshd: &Sshd,
    user: &str,
    identity_file: &Path,
    cert_file: Option<&Path>,
    command: &str,
) -> Output {
    let mut cmd = Command::new("ssh");
    cmd.args(["-F", "none"])
        .args(["-o", "BatchMode=yes"])
        .args(["-o", "IdentitiesOnly=yes"])
        .args(["-o", "IdentityAgent=none"])
        .arg("-o")
        .arg(format!(
            "UserKnownHostsFile={}",
            sshd.known_hosts().display()
        ))
        .args(["-o", "StrictHostKeyChecking=yes"])
        .arg("-i")
        .arg(identity_file);
    if let Some(cert) = cert_file {
        cmd.arg("-o")
            .arg(format!("CertificateFile={}", cert.display()));
    }
    cmd.arg("-p")
        .arg(sshd.port().to_string())
        .arg(format!("{user}@127.0.0.1"))
        .arg(command);
    run_with_timeout(&mut cmd, SSH_TIMEOUT)
}

/// A server as an admin sets one up: our `opkssh` installed root-owned, `providers` and `auth_id`
/// in a config folder of the right owner and modes, and an sshd whose AuthorizedKeysCommand is
/// `opkssh verify` (log and cache in a folder the AKC user may write).
pub struct VerifyServer {
    /// The running sshd.
    pub sshd: Sshd,
    writable: PathBuf,
}

impl VerifyServer {
    /// Installs the files and starts sshd.
    pub fn start(e2e: &E2e, providers: &str, auth_id: &str) -> VerifyServer {
        let opkssh = e2e.install_binary(&target_binary("opkssh"));
        let config = e2e.install_dir(
            &[
                ("providers", providers.as_bytes(), 0o640),
                ("auth_id", auth_id.as_bytes(), 0o640),
            ],
            Some(AKC_USER),
        );
        let writable = e2e.writable_dir(AKC_USER);
        let sshd = Sshd::start(AkcConfig::new(format!(
            "{} verify --config-dir {} --log-file {}/opkssh.log --cache-dir {}/cache %u %k %t",
            opkssh.display(),
            config.display(),
            writable.display(),
            writable.display()
        )));
        VerifyServer { sshd, writable }
    }

    /// What verify logged so far.
    pub fn verify_log(&self) -> String {
        fs::read_to_string(self.writable.join("opkssh.log")).unwrap_or_default()
    }

    /// `ssh` as `user` with the key at `key` and its `<key>-cert.pub`, running `command`.
    pub fn ssh(&self, user: &str, key: &Path, command: &str) -> Output {
        let cert = PathBuf::from(format!("{}-cert.pub", key.display()));
        ssh_login(&self.sshd, user, key, Some(&cert), command)
    }

    /// Panics unless `ssh` gets in as `user` (checked with `id -un`).
    pub fn assert_ssh_ok(&self, user: &str, key: &Path) {
        let output = self.ssh(user, key, "id -un");
        assert_eq!(
            output.status.code(),
            Some(0),
            "{output:?}\nverify log:\n{}\nsshd log:\n{}",
            self.verify_log(),
            self.sshd.log()
        );
        assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), user);
    }

    /// Panics unless sshd refuses `user` with this key (ssh exits 255).
    pub fn assert_ssh_denied(&self, user: &str, key: &Path) {
        let output = self.ssh(user, key, "true");
        assert_eq!(
            output.status.code(),
            Some(255),
            "{output:?}\n{}",
            self.verify_log()
        );
    }
}

/// Writes a private key for `ssh -i` (mode 0600, as ssh demands) and returns its path.
pub fn write_private_key(path: &Path, contents: &[u8]) -> PathBuf {
    fs::write(path, contents).unwrap_or_else(|e| panic!("e2e: writing {}: {e}", path.display()));
    opk_os::file::set_mode(path, 0o600).unwrap();
    path.to_path_buf()
}

// ---------------------------------------------------------------------------------------------
// Issuers of the Go vectors
// ---------------------------------------------------------------------------------------------

/// How an [`IssuerServer`] misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Serve normally.
    None,
    /// Not listening: connections are refused (global only).
    Down,
    /// Wait this long, then answer normally.
    Slow(Duration),
    /// Accept and read the request, then never answer (until the fault changes or the server
    /// stops; at most 10 minutes).
    Hang,
    /// Answer with this status and an empty JSON object.
    Status(u16),
    /// Read the request and close the connection without an answer.
    Close,
    /// Send a 200 status line and headers announcing a body, then never send the body.
    HangAfterHeaders,
    /// Answer 200 with a body of this many bytes (`{"x":"aaaa…`), streamed.
    HugeBody(usize),
    /// Answer 200 with bytes that are not JSON.
    Garbage,
    /// Answer 200 with an HTML page and `content-type: text/html`.
    WrongContentType,
    /// Answer 302 with this `Location` (e.g. another host).
    Redirect(&'static str),
}

struct Served {
    discovery: Vec<u8>,
    jwks: Vec<u8>,
    /// The userinfo response at [`USERINFO_PATH`], if one is served.
    userinfo: Option<Vec<u8>>,
    source: String,
}

struct Shared {
    served: Mutex<Served>,
    fault: Mutex<Fault>,
    path_faults: Mutex<BTreeMap<String, Fault>>,
    counts: Mutex<BTreeMap<String, u64>>,
    stopping: AtomicBool,
}

struct Listening {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<()>,
}

/// One issuer of the Go vectors: `http://localhost:<port>` answering
/// `/.well-known/openid-configuration` and `/jwks.json` from a vector folder, on 127.0.0.1.
pub struct IssuerServer {
    issuer: String,
    port: u16,
    shared: Arc<Shared>,
    listening: Mutex<Option<Listening>>,
}

impl std::fmt::Debug for IssuerServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuerServer")
            .field("issuer", &self.issuer)
            .field("serving", &self.serving())
            .finish_non_exhaustive()
    }
}

/// The discovery path.
pub const DISCOVERY_PATH: &str = "/.well-known/openid-configuration";
/// The vectors' JWKS path (their `jwks_uri` is `<issuer>/jwks.json`).
pub const JWKS_PATH: &str = "/jwks.json";
/// Where [`IssuerServer::set_userinfo`] serves the userinfo response.
pub const USERINFO_PATH: &str = "/userinfo";

impl IssuerServer {
    /// A server for a test-made issuer `http://localhost:<free port>`, serving `discovery` and
    /// `jwks` (use [`IssuerServer::issuer`] to build them, then [`IssuerServer::set_documents`]).
    /// It needs no root and takes no machine-wide lock.
    ///
    /// # Errors
    /// No free port could be bound.
    pub fn start_custom() -> Result<IssuerServer> {
        let port = TcpListener::bind(("127.0.0.1", 0))?.local_addr()?.port();
        IssuerServer::start(
            format!("http://localhost:{port}"),
            port,
            Served {
                discovery: b"{}".to_vec(),
                jwks: b"{}".to_vec(),
                userinfo: None,
                source: "custom".to_owned(),
            },
        )
    }

    fn start(issuer: String, port: u16, served: Served) -> Result<IssuerServer> {
        let server = IssuerServer {
            issuer,
            port,
            shared: Arc::new(Shared {
                served: Mutex::new(served),
                fault: Mutex::new(Fault::None),
                path_faults: Mutex::new(BTreeMap::new()),
                counts: Mutex::new(BTreeMap::new()),
                stopping: AtomicBool::new(false),
            }),
            listening: Mutex::new(None),
        };
        server.listen()?;
        Ok(server)
    }

    fn listen(&self) -> Result<()> {
        let mut slot = self.listening.lock().unwrap();
        if slot.is_some() {
            return Ok(());
        }
        let mut attempt = 0;
        let listener = loop {
            match TcpListener::bind(("127.0.0.1", self.port)) {
                Ok(l) => break l,
                Err(e) if attempt < 50 && e.kind() == std::io::ErrorKind::AddrInUse => {
                    attempt += 1;
                    thread::sleep(Duration::from_millis(20));
                }
                Err(e) => {
                    return Err(e).with_context(|| {
                        format!("binding 127.0.0.1:{} for {}", self.port, self.issuer)
                    });
                }
            }
        };
        let stop = Arc::new(AtomicBool::new(false));
        let handle = {
            let stop = Arc::clone(&stop);
            let shared = Arc::clone(&self.shared);
            thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let shared = Arc::clone(&shared);
                    thread::spawn(move || handle_connection(stream, &shared));
                }
            })
        };
        *slot = Some(Listening { stop, handle });
        Ok(())
    }

    /// Stops listening; false if the accept thread did not stop within 5 s.
    fn unlisten(&self) -> bool {
        let taken = self.listening.lock().unwrap().take();
        if let Some(listening) = taken {
            listening.stop.store(true, Ordering::SeqCst);
            // Wake the blocking accept; the loop sees the flag and drops the listener.
            let _ = TcpStream::connect_timeout(
                &std::net::SocketAddr::from(([127, 0, 0, 1], self.port)),
                Duration::from_secs(1),
            );
            let deadline = Instant::now() + Duration::from_secs(5);
            while !listening.handle.is_finished() {
                if Instant::now() >= deadline {
                    return false;
                }
                thread::sleep(Duration::from_millis(2));
            }
            let _ = listening.handle.join();
        }
        true
    }

    /// The issuer string (`http://localhost:<port>`).
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The vector folder whose files are served (or `custom`).
    pub fn serving(&self) -> String {
        self.shared.served.lock().unwrap().source.clone()
    }

    /// Serves other documents (e.g. a JWKS that a test built).
    pub fn set_documents(&self, discovery: &[u8], jwks: &[u8]) {
        *self.shared.served.lock().unwrap() = Served {
            discovery: discovery.to_vec(),
            jwks: jwks.to_vec(),
            userinfo: None,
            source: "custom".to_owned(),
        };
    }

    /// Serves `body` as the userinfo response at [`USERINFO_PATH`] (any bearer token), for a
    /// discovery document that names it.
    pub fn set_userinfo(&self, body: &[u8]) {
        self.shared.served.lock().unwrap().userinfo = Some(body.to_vec());
    }

    /// Sets the fault for every path. [`Fault::Down`] stops listening (connections refused);
    /// any other fault listens again.
    ///
    /// # Errors
    /// The port could not be bound again.
    pub fn set_fault(&self, fault: Fault) -> Result<()> {
        *self.shared.fault.lock().unwrap() = fault;
        if fault == Fault::Down {
            if !self.unlisten() {
                bail!("the listener of {} did not stop", self.issuer);
            }
            Ok(())
        } else {
            self.listen()
        }
    }

    /// Sets a fault for one path only (e.g. [`JWKS_PATH`]), overriding the global one;
    /// `Fault::None` there clears it. `Fault::Down` is not a per-path fault.
    pub fn set_path_fault(&self, path: &str, fault: Fault) {
        assert!(fault != Fault::Down, "e2e: Fault::Down is global only");
        let mut faults = self.shared.path_faults.lock().unwrap();
        if fault == Fault::None {
            faults.remove(path);
        } else {
            faults.insert(path.to_owned(), fault);
        }
    }

    /// Requests received per path (counted on arrival, whatever the fault).
    pub fn request_counts(&self) -> BTreeMap<String, u64> {
        self.shared.counts.lock().unwrap().clone()
    }

    /// Requests received for one path.
    pub fn requests(&self, path: &str) -> u64 {
        self.shared
            .counts
            .lock()
            .unwrap()
            .get(path)
            .copied()
            .unwrap_or_default()
    }

    /// Zeroes the counts.
    pub fn reset_requests(&self) {
        self.shared.counts.lock().unwrap().clear();
    }
}

impl Drop for IssuerServer {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        if !self.unlisten() {
            eprintln!("e2e: the listener of {} did not stop", self.issuer);
        }
    }
}

fn handle_connection(mut stream: TcpStream, shared: &Shared) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
    let mut head = Vec::new();
    let mut buf = [0_u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
        if head.len() > 64 * 1024 {
            return;
        }
    }
    let head = String::from_utf8_lossy(&head);
    let mut request_line = head.lines().next().unwrap_or_default().split_whitespace();
    let method = request_line.next().unwrap_or_default().to_owned();
    let target = request_line.next().unwrap_or_default();
    let path = target.split('?').next().unwrap_or_default().to_owned();
    *shared
        .counts
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(path.clone())
        .or_default() += 1;
    let fault = shared
        .path_faults
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&path)
        .copied()
        .unwrap_or_else(|| *shared.fault.lock().unwrap_or_else(|e| e.into_inner()));
    let (status, body): (u16, Vec<u8>) = match fault {
        Fault::Hang => {
            let deadline = Instant::now() + Duration::from_secs(600);
            while Instant::now() < deadline
                && !shared.stopping.load(Ordering::SeqCst)
                && current_fault(shared, &path) == Fault::Hang
            {
                thread::sleep(Duration::from_millis(20));
            }
            let _ = stream.shutdown(Shutdown::Both);
            return;
        }
        Fault::Close | Fault::Down => {
            let _ = stream.shutdown(Shutdown::Both);
            return;
        }
        Fault::Status(code) => (code, b"{}".to_vec()),
        Fault::HangAfterHeaders => {
            let _ = stream.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 4096\r\nconnection: close\r\n\r\n{",
            );
            let _ = stream.flush();
            let deadline = Instant::now() + Duration::from_secs(600);
            while Instant::now() < deadline
                && !shared.stopping.load(Ordering::SeqCst)
                && current_fault(shared, &path) == Fault::HangAfterHeaders
            {
                thread::sleep(Duration::from_millis(20));
            }
            let _ = stream.shutdown(Shutdown::Both);
            return;
        }
        Fault::HugeBody(len) => {
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {len}\r\nconnection: close\r\n\r\n"
            );
            if stream.write_all(head.as_bytes()).is_err() || stream.write_all(b"{\"x\":\"").is_err()
            {
                return;
            }
            let chunk = vec![b'a'; 64 * 1024];
            let mut left = len.saturating_sub(6);
            while left > 0 {
                let n = left.min(chunk.len());
                if stream.write_all(&chunk[..n]).is_err() {
                    return;
                }
                left -= n;
            }
            let _ = stream.shutdown(Shutdown::Write);
            return;
        }
        Fault::Garbage => (200, b"\x00\xff<<not json>>\xfe".to_vec()),
        Fault::WrongContentType => {
            let body = b"<html><body>Service temporarily unavailable</body></html>";
            let response = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes());
            let _ = stream.write_all(body);
            let _ = stream.shutdown(Shutdown::Write);
            return;
        }
        Fault::Redirect(location) => {
            let response = format!(
                "HTTP/1.1 302 Found\r\nlocation: {location}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            );
            let _ = stream.write_all(response.as_bytes());
            let _ = stream.shutdown(Shutdown::Write);
            return;
        }
        Fault::Slow(delay) => {
            let deadline = Instant::now() + delay;
            while Instant::now() < deadline && !shared.stopping.load(Ordering::SeqCst) {
                thread::sleep(Duration::from_millis(10).min(delay));
            }
            serve(shared, &method, &path)
        }
        Fault::None => serve(shared, &method, &path),
    };
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        405 => "Method Not Allowed",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    };
    let mut response = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if method != "HEAD" {
        response.extend_from_slice(&body);
    }
    let _ = stream.write_all(&response);
    let _ = stream.flush();
    let _ = stream.shutdown(Shutdown::Write);
}

/// The fault in force for `path` now (a per-path fault overrides the global one).
fn current_fault(shared: &Shared, path: &str) -> Fault {
    shared
        .path_faults
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(path)
        .copied()
        .unwrap_or_else(|| *shared.fault.lock().unwrap_or_else(|e| e.into_inner()))
}

fn serve(shared: &Shared, method: &str, path: &str) -> (u16, Vec<u8>) {
    if method != "GET" && method != "HEAD" {
        return (405, b"{}".to_vec());
    }
    let served = shared.served.lock().unwrap_or_else(|e| e.into_inner());
    match path {
        DISCOVERY_PATH => (200, served.discovery.clone()),
        JWKS_PATH => (200, served.jwks.clone()),
        USERINFO_PATH if served.userinfo.is_some() => {
            (200, served.userinfo.clone().unwrap_or_default())
        }
        _ => (404, b"{}".to_vec()),
    }
}

/// Vector folders that share an issuer but differ in one of its documents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The shared issuer.
    pub issuer: String,
    /// `jwks.json` or `openid-configuration.json`.
    pub file: &'static str,
    /// The folders whose version is served by default (the most common one).
    pub served_from: Vec<String>,
    /// The folders with another version; [`VectorIssuers::serve_vector`] switches to one.
    pub differing: Vec<String>,
}

/// One [`IssuerServer`] per issuer of the Go vectors (`accept/` and `reject/`), on the fixed
/// ports of their `issuer.txt`. For an issuer shared by several folders it serves the documents
/// most of them carry; [`VectorIssuers::conflicts`] lists the folders that differ (e.g.
/// `neg-*-jwks-lacks-kid`), and [`VectorIssuers::serve_vector`] switches an issuer to a given
/// folder's documents. Holds a machine-wide lock on those ports while alive.
pub struct VectorIssuers {
    servers: BTreeMap<String, IssuerServer>,
    by_vector: BTreeMap<String, (String, PathBuf)>,
    conflicts: Vec<Conflict>,
    // Dropped last.
    _lock: File,
}

impl std::fmt::Debug for VectorIssuers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VectorIssuers")
            .field("issuers", &self.servers.keys().collect::<Vec<_>>())
            .field("conflicts", &self.conflicts)
            .finish_non_exhaustive()
    }
}

fn port_of_issuer(issuer: &str) -> Result<u16> {
    let rest = issuer
        .strip_prefix("http://localhost:")
        .ok_or_else(|| anyhow!("issuer {issuer:?} is not http://localhost:PORT"))?;
    rest.trim_end_matches('/')
        .parse()
        .with_context(|| format!("port of issuer {issuer:?}"))
}

/// One vector folder's documents, grouped by issuer.
struct Member {
    name: String,
    discovery: Vec<u8>,
    jwks: Vec<u8>,
}

/// The most common version of one document among the folders of an issuer, the folders that
/// carry it, and the conflict if some carry another.
fn pick_variant(
    issuer: &str,
    members: &[Member],
    file: &'static str,
    get: fn(&Member) -> &Vec<u8>,
) -> (Vec<u8>, Vec<String>, Option<Conflict>) {
    let mut variants: Vec<(&Vec<u8>, Vec<String>)> = Vec::new();
    for m in members {
        match variants.iter_mut().find(|(bytes, _)| *bytes == get(m)) {
            Some((_, names)) => names.push(m.name.clone()),
            None => variants.push((get(m), vec![m.name.clone()])),
        }
    }
    variants.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then(a.1.cmp(&b.1)));
    let chosen = variants[0].0.clone();
    let chosen_names = variants[0].1.clone();
    let differing: Vec<String> = variants[1..].iter().flat_map(|(_, n)| n.clone()).collect();
    let conflict = (!differing.is_empty()).then(|| Conflict {
        issuer: issuer.to_owned(),
        file,
        served_from: chosen_names.clone(),
        differing,
    });
    (chosen, chosen_names, conflict)
}

impl VectorIssuers {
    /// Starts a server for every issuer of the vectors under `accept/` and `reject/`.
    ///
    /// # Errors
    /// Missing vectors, unreadable files, or a port that cannot be bound.
    pub fn start() -> Result<VectorIssuers> {
        let lock = take_lock_file("opkssh-e2e-vector-issuers.lock", LOCK_WAIT);
        let mut vectors = crate::vectors("accept")?;
        vectors.extend(crate::vectors("reject")?);
        let mut groups: BTreeMap<String, Vec<Member>> = BTreeMap::new();
        let mut by_vector = BTreeMap::new();
        for v in vectors {
            let issuer = v.trimmed("issuer.txt")?;
            let discovery = fs::read(v.dir.join("openid-configuration.json"))
                .with_context(|| format!("{}: openid-configuration.json", v.name))?;
            let jwks = fs::read(v.dir.join("jwks.json"))
                .with_context(|| format!("{}: jwks.json", v.name))?;
            by_vector.insert(v.name.clone(), (issuer.clone(), v.dir.clone()));
            groups.entry(issuer).or_default().push(Member {
                name: v.name,
                discovery,
                jwks,
            });
        }
        let mut servers = BTreeMap::new();
        let mut conflicts = Vec::new();
        for (issuer, members) in groups {
            let port = port_of_issuer(&issuer)?;
            let (discovery, discovery_from, c1) =
                pick_variant(&issuer, &members, "openid-configuration.json", |m| {
                    &m.discovery
                });
            let (jwks, jwks_from, c2) = pick_variant(&issuer, &members, "jwks.json", |m| &m.jwks);
            conflicts.extend(c1);
            conflicts.extend(c2);
            let source = discovery_from
                .iter()
                .find(|n| jwks_from.contains(n))
                .cloned()
                .unwrap_or_else(|| "mixed".to_owned());
            let server = IssuerServer::start(
                issuer.clone(),
                port,
                Served {
                    discovery,
                    jwks,
                    userinfo: None,
                    source,
                },
            )?;
            servers.insert(issuer, server);
        }
        Ok(VectorIssuers {
            servers,
            by_vector,
            conflicts,
            _lock: lock,
        })
    }

    /// Every issuer server, by issuer.
    pub fn servers(&self) -> impl Iterator<Item = &IssuerServer> {
        self.servers.values()
    }

    /// The server of an issuer string.
    pub fn issuer(&self, issuer: &str) -> Option<&IssuerServer> {
        self.servers.get(issuer)
    }

    /// The server of a vector folder's issuer (panics on an unknown folder name).
    pub fn for_vector(&self, name: &str) -> &IssuerServer {
        let (issuer, _) = self
            .by_vector
            .get(name)
            .unwrap_or_else(|| panic!("e2e: no vector named {name:?}"));
        &self.servers[issuer]
    }

    /// Makes the vector's issuer serve exactly that folder's discovery document and JWKS, and
    /// returns its server.
    ///
    /// # Errors
    /// Unknown folder or unreadable files.
    pub fn serve_vector(&self, name: &str) -> Result<&IssuerServer> {
        let (issuer, dir) = self
            .by_vector
            .get(name)
            .ok_or_else(|| anyhow!("no vector named {name:?}"))?;
        let server = &self.servers[issuer];
        *server.shared.served.lock().unwrap() = Served {
            discovery: fs::read(dir.join("openid-configuration.json"))?,
            jwks: fs::read(dir.join("jwks.json"))?,
            userinfo: None,
            source: name.to_owned(),
        };
        Ok(server)
    }

    /// Folders that share an issuer but carry different documents.
    pub fn conflicts(&self) -> &[Conflict] {
        &self.conflicts
    }

    /// Sets every server's fault.
    ///
    /// # Errors
    /// As [`IssuerServer::set_fault`].
    pub fn set_fault_all(&self, fault: Fault) -> Result<()> {
        for server in self.servers.values() {
            server.set_fault(fault)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_only() {
        for ok in [
            "http://localhost:1/x",
            "http://127.0.0.1:80/",
            "http://[::1]:9/a?b=c",
        ] {
            check_loopback(ok).unwrap();
        }
        for bad in [
            "https://localhost/",
            "http://example.com/",
            "http://127.0.0.2/",
            "http://localhost.example.com/",
            "http://user@evil.example/",
            "file:///etc/passwd",
            "nonsense",
        ] {
            assert!(check_loopback(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn url_helpers() {
        assert_eq!(urlencode("a b/c?d=é"), "a%20b%2Fc%3Fd%3D%C3%A9");
        let url = "http://localhost:3000/login-callback?code=a%2Bb&state=x+y&iss=http%3A%2F%2Flocalhost%3A9";
        assert_eq!(query_param(url, "code").as_deref(), Some("a+b"));
        assert_eq!(query_param(url, "state").as_deref(), Some("x y"));
        assert_eq!(
            query_param(url, "iss").as_deref(),
            Some("http://localhost:9")
        );
        assert_eq!(query_param(url, "nope"), None);
        assert_eq!(query_param("http://x/%", "a"), None);
        assert_eq!(
            join_url("http://localhost:5/auth?x=1", "/interaction/u1").unwrap(),
            "http://localhost:5/interaction/u1"
        );
        assert_eq!(
            join_url("http://localhost:5/a", "http://localhost:3000/cb").unwrap(),
            "http://localhost:3000/cb"
        );
        assert!(join_url("http://localhost:5/a", "relative").is_err());
    }

    #[test]
    fn the_login_driver_refuses_to_leave_loopback() {
        let err = http_login("http://192.0.2.1/auth", "alice").unwrap_err();
        assert!(
            format!("{err:#}").contains("refusing non-loopback"),
            "{err:#}"
        );
        // A loopback page that redirects elsewhere: the driver stops before connecting.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut buf = [0_u8; 2048];
            let _ = stream.read(&mut buf);
            stream
                .write_all(b"HTTP/1.1 303 See Other\r\nlocation: http://example.com/steal\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                .unwrap();
        });
        let err = http_login(&format!("http://localhost:{port}/auth"), "alice").unwrap_err();
        assert!(
            format!("{err:#}").contains("refusing non-loopback URL http://example.com/steal"),
            "{err:#}"
        );
        server.join().unwrap();
    }

    #[test]
    fn cookie_jar_scopes_by_path_and_forgets_expired_cookies() {
        let mut jar = CookieJar::default();
        let a = "localhost:9";
        jar.store(a, "/auth", "_interaction=i1; path=/interaction/u1; expires=Wed, 01 Jan 2098 00:00:00 GMT; samesite=lax; httponly");
        jar.store(
            a,
            "/auth",
            "_interaction.sig=s1; path=/interaction/u1; httponly",
        );
        jar.store(a, "/auth", "_session=x; path=/");
        jar.store(a, "/x/y", "nopath=1");
        assert_eq!(
            jar.header(a, "/interaction/u1").as_deref(),
            Some("_interaction=i1; _interaction.sig=s1; _session=x")
        );
        assert_eq!(
            jar.header(a, "/interaction/u10").as_deref(),
            Some("_session=x")
        );
        assert_eq!(
            jar.header(a, "/x/z").as_deref(),
            Some("_session=x; nopath=1")
        );
        assert_eq!(jar.header("localhost:10", "/"), None);
        jar.store(
            a,
            "/auth",
            "_interaction=; path=/interaction/u1; expires=Thu, 01 Jan 1970 00:00:00 GMT",
        );
        jar.store(a, "/auth", "_session=; path=/; max-age=0");
        assert_eq!(
            jar.header(a, "/interaction/u1").as_deref(),
            Some("_interaction.sig=s1")
        );
    }

    #[test]
    fn form_parsing() {
        let html = r#"<form autocomplete="off" action="/interaction/abc&amp;d" method="post">
            <input type="hidden" name="prompt" value="login"/>
            <input required type="text" name="login" placeholder="Enter any login" autofocus="on">
            <button type="submit">Sign-in</button></form>"#;
        let forms = tags(html, "form");
        assert_eq!(forms.len(), 1);
        assert_eq!(forms[0]["action"], "/interaction/abc&d");
        assert_eq!(forms[0]["method"], "post");
        let inputs = tags(html, "input");
        assert_eq!(inputs[0]["name"], "prompt");
        assert_eq!(inputs[0]["value"], "login");
        assert_eq!(inputs[1]["name"], "login");
        assert!(inputs[1].contains_key("required"));
    }
}
