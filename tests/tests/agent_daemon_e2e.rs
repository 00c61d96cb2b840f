//! `opkssh agent` with real parts: the test OpenID provider with ID tokens that live 30 s and
//! refresh tokens, OpenSSH's `ssh-agent` upstream, and `ssh` into a real `sshd` whose
//! AuthorizedKeysCommand is our `opkssh verify` under the `oidc-refreshed` policy.
//!
//! One test runs three agents side by side, so that its wall time is the one minute the refresh
//! part needs (two refreshes of a 30-second token) and no more:
//!
//! - **A** starts in the background as `eval "$(opkssh agent)"` would: ssh gets in through it at
//!   once and again after at least two refreshes, 60 s later, with no key file anywhere under
//!   `$HOME`; `opkssh agent --status`, `opkssh check` and `opkssh ssh` find it; `ssh-add -L`
//!   through it, sampled all along, never lists an expired certificate nor two opkssh
//!   certificates, and always the upstream's key; after `kill -9` no key material is on disk.
//! - **B** runs in the foreground (`-D`) and its provider is stopped right after the login: the
//!   refresh fails, the certificate disappears at expiry (said once on stderr and once as a
//!   desktop notification, through a `notify-send` on the `PATH` that records its arguments),
//!   the upstream's key stays, and `opkssh agent --login` and SIGUSR1 log in again once the
//!   provider is back. SIGTERM stops it and removes its socket.
//! - **C** runs with `--agent-key`, a key `ssh-add`ed to its upstream agent whose files are
//!   then deleted: its certificate is for that key, and ssh gets in with it.
//!
//! Gated like the harness: without `OPKSSH_E2E=1` the test prints `SKIP e2e: …` and passes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)] // test code: a panic is a failure

use opk_client::login::current_expiry;
use opk_core::pktoken::PkToken;
use opk_core::sshcert::OpksshCertificate;
use opkssh_tests::e2e::{
    self, E2e, LOGIN_USER, Op, SSH_TIMEOUT, VerifyServer, http_login, run_with_timeout,
};
use std::io::{BufRead as _, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Scopes that get email and a refresh token from the test OP.
const SCOPES: &str = "openid profile email offline_access";
/// The ID tokens' lifetime.
const TTL: &str = "30";
/// The user's email at the test OP.
const ALICE: &str = "alice@example.com";

fn provider_spec(op: &Op) -> String {
    format!("{},{},,{SCOPES}", op.issuer(), op.client_id())
}

fn unix_now() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

/// A folder only root can enter (the agent's socket folder must be 0700).
fn private_dir(path: PathBuf) -> PathBuf {
    std::fs::create_dir_all(&path).unwrap();
    opk_os::file::set_mode(&path, 0o700).unwrap();
    path
}

/// OpenSSH's `ssh-agent -d -a <socket>` with one key of the user's own; killed on drop.
struct Upstream {
    child: Child,
    socket: PathBuf,
    own_key: String,
}

impl Upstream {
    fn start(dir: &Path) -> Upstream {
        let dir = private_dir(dir.to_path_buf());
        let socket = dir.join("ssh-agent.sock");
        let child = opkssh_tests::e2e::start_ssh_agent(&socket, "-d", |command| {
            command.stderr(Stdio::null());
        });
        let key = dir.join("own_key");
        let keygen = run_with_timeout(
            Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-C", "me@laptop", "-f"])
                .arg(&key),
            SSH_TIMEOUT,
        );
        assert!(keygen.status.success(), "{keygen:?}");
        let added = run_with_timeout(
            Command::new("ssh-add")
                .arg(&key)
                .env("SSH_AUTH_SOCK", &socket),
            SSH_TIMEOUT,
        );
        assert!(added.status.success(), "{added:?}");
        let own_key = std::fs::read_to_string(key.with_extension("pub"))
            .unwrap()
            .trim_end()
            .to_owned();
        Upstream {
            child,
            socket,
            own_key,
        }
    }
}

impl Upstream {
    /// Adds a fresh ECDSA P-256 key, then deletes its files, so that it exists only in the
    /// agent (as a key in hardware would); returns its SHA256 fingerprint.
    fn add_key_held_only_here(&self, dir: &Path) -> String {
        let key = dir.join("held_key");
        let keygen = run_with_timeout(
            Command::new("ssh-keygen")
                .args([
                    "-q", "-t", "ecdsa", "-b", "256", "-N", "", "-C", "held", "-f",
                ])
                .arg(&key),
            SSH_TIMEOUT,
        );
        assert!(keygen.status.success(), "{keygen:?}");
        let listed = run_with_timeout(
            Command::new("ssh-keygen")
                .arg("-lf")
                .arg(key.with_extension("pub")),
            SSH_TIMEOUT,
        );
        let fingerprint = String::from_utf8(listed.stdout)
            .unwrap()
            .split_whitespace()
            .nth(1)
            .unwrap()
            .to_owned();
        let added = run_with_timeout(
            Command::new("ssh-add")
                .arg(&key)
                .env("SSH_AUTH_SOCK", &self.socket),
            SSH_TIMEOUT,
        );
        assert!(added.status.success(), "{added:?}");
        std::fs::remove_file(&key).unwrap();
        std::fs::remove_file(key.with_extension("pub")).unwrap();
        fingerprint
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `opkssh <args>` as a person's shell runs it: `HOME=home`, `SSH_AUTH_SOCK=agent`, no
/// variable that picks a provider or a browser behind the test's back, and a `PATH` whose first
/// folder is `bin` (the recording `notify-send`).
fn opkssh(home: &Path, agent: &Path, bin: &Path) -> Command {
    let mut command = Command::new(e2e::target_binary("opkssh"));
    command.env("HOME", home).env("SSH_AUTH_SOCK", agent);
    for name in [
        "OPKSSH_PROVIDERS",
        "OPKSSH_DEFAULT",
        "ACTIONS_ID_TOKEN_REQUEST_URL",
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
        "GITLAB_CI",
        "XDG_RUNTIME_DIR",
        "SHELL",
    ] {
        command.env_remove(name);
    }
    command.env("BROWSER", "false");
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut paths = vec![bin.to_path_buf()];
    paths.extend(std::env::split_paths(&path));
    command.env("PATH", std::env::join_paths(paths).unwrap());
    command
}

/// A process whose stdout and stderr lines are collected as they come.
struct Lines {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Lines {
    fn spawn(command: &mut Command) -> Lines {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let pipes: [Box<dyn Read + Send>; 2] = [
            Box::new(child.stdout.take().unwrap()),
            Box::new(child.stderr.take().unwrap()),
        ];
        for pipe in pipes {
            let lines = Arc::clone(&lines);
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    lines.lock().unwrap().push(line);
                }
            });
        }
        Lines { child, lines }
    }

    fn text(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    fn count(&self, pattern: &str) -> usize {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|line| line.contains(pattern))
            .count()
    }

    /// Waits until the `n`th line (1-based) containing `pattern` and returns it.
    fn wait_for_nth(&mut self, pattern: &str, n: usize, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(line) = self
                .lines
                .lock()
                .unwrap()
                .iter()
                .filter(|line| line.contains(pattern))
                .nth(n - 1)
            {
                return line.clone();
            }
            let exited = self.child.try_wait().unwrap();
            assert!(
                Instant::now() < deadline && exited.is_none(),
                "no {pattern:?} (#{n}) within {timeout:?} (exited: {exited:?}):\n{}",
                self.text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn wait_for(&mut self, pattern: &str, timeout: Duration) -> String {
        self.wait_for_nth(pattern, 1, timeout)
    }

    /// Waits for the process to end (within `timeout`) and returns its status.
    fn finish(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // The readers take the last lines once the pipes close.
                std::thread::sleep(Duration::from_millis(100));
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "did not end within {timeout:?}:\n{}",
                self.text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Lines {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The URL in an `Open your browser to: <url>` line.
fn url_of(line: &str) -> String {
    line.split_once("Open your browser to: ")
        .unwrap()
        .1
        .trim()
        .to_owned()
}

/// Kills a process that is not our child (the background agent) on drop.
struct Pid(u32);

impl Drop for Pid {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(i32::try_from(self.0).unwrap()),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

/// Whether `pid` has ended: no such process, or a zombie nobody reaped yet (the background
/// agent's parent exited, so whatever adopted it reaps it, or not).
fn gone(pid: u32) -> bool {
    let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z'))
    });
    zombie
        || matches!(
            nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(i32::try_from(pid).unwrap()),
                None
            ),
            Err(nix::errno::Errno::ESRCH)
        )
}

/// One `ssh-add -L` through an agent: when it was asked (whole seconds, rounded down), the
/// `exp` of each opkssh certificate listed, and the other lines.
#[derive(Debug)]
struct Sample {
    asked_at: i64,
    expiries: Vec<i64>,
    others: Vec<String>,
}

fn sample(socket: &Path) -> Sample {
    let asked_at = unix_now();
    let listed = run_with_timeout(
        Command::new("ssh-add")
            .arg("-L")
            .env("SSH_AUTH_SOCK", socket),
        SSH_TIMEOUT,
    );
    let mut expiries = Vec::new();
    let mut others = Vec::new();
    for line in String::from_utf8(listed.stdout).unwrap().lines() {
        match OpksshCertificate::from_line(line) {
            Ok(certificate) => {
                let token = PkToken::from_compact(certificate.pk_token().unwrap()).unwrap();
                expiries.push(current_expiry(&token).unwrap());
            }
            Err(_) if line.starts_with("The agent has no identities") => {}
            Err(_) => others.push(line.to_owned()),
        }
    }
    Sample {
        asked_at,
        expiries,
        others,
    }
}

/// Samples `ssh-add -L` through `socket` every half second until `stop` is set.
fn sampler(socket: PathBuf, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<Vec<Sample>> {
    std::thread::spawn(move || {
        let mut samples = Vec::new();
        while !stop.load(Ordering::SeqCst) {
            samples.push(sample(&socket));
            std::thread::sleep(Duration::from_millis(500));
        }
        samples
    })
}

/// Every sample lists at most one opkssh certificate, none expired when it was asked, and the
/// upstream's own key.
fn assert_samples(name: &str, samples: &[Sample], own_key: &str) {
    assert!(samples.len() > 10, "{name}: only {} samples", samples.len());
    for sample in samples {
        assert!(
            sample.expiries.len() <= 1,
            "{name}: two certificates: {sample:?}"
        );
        for expiry in &sample.expiries {
            assert!(
                *expiry > sample.asked_at,
                "{name}: an expired certificate was listed: {sample:?}"
            );
        }
        assert!(
            sample.others.iter().any(|line| line == own_key),
            "{name}: the upstream key is missing: {sample:?}"
        );
    }
}

/// Every file under `dir` (sockets included), recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(files_under(&path));
        } else {
            found.push(path);
        }
    }
    found
}

/// No file under `dir` holds a private key (PEM or OpenSSH armour).
fn assert_no_key_material(dir: &Path) {
    for file in files_under(dir) {
        if opk_os::file::is_socket(&file) {
            continue;
        }
        let bytes = std::fs::read(&file).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            !text.contains("PRIVATE KEY") && !text.contains("openssh-key-v1"),
            "key material in {}",
            file.display()
        );
    }
}

/// `ssh id -un` into `server` with nothing but the agent at `agent`: no key or certificate
/// file (the `-i` names one that does not exist, which keeps ssh off `~/.ssh/id_*` too).
fn ssh_through(server: &VerifyServer, agent: &Path, home: &Path) -> Output {
    let mut command = Command::new("ssh");
    command
        .args([
            "-F",
            "none",
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=no",
        ])
        .arg("-o")
        .arg(format!("IdentityAgent={}", agent.display()))
        .arg("-i")
        .arg(home.join("no-such-key"))
        .arg("-o")
        .arg(format!(
            "UserKnownHostsFile={}",
            server.sshd.known_hosts().display()
        ))
        .args(["-o", "StrictHostKeyChecking=yes", "-p"])
        .arg(server.sshd.port().to_string())
        .arg(format!("{LOGIN_USER}@127.0.0.1"))
        .args(["id", "-un"])
        .env("HOME", home)
        .env_remove("SSH_AUTH_SOCK");
    run_with_timeout(&mut command, SSH_TIMEOUT)
}

fn assert_gets_in(server: &VerifyServer, agent: &Path, home: &Path, when: &str) {
    let output = ssh_through(server, agent, home);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{when}: {output:?}\nverify log:\n{}",
        server.verify_log()
    );
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), LOGIN_USER);
}

/// The agent's status as JSON (`opkssh agent --status --json`).
fn status_json(home: &Path, agent: &Path, bin: &Path) -> serde_json::Value {
    let output = run_with_timeout(
        opkssh(home, agent, bin).args(["agent", "--status", "--json"]),
        SSH_TIMEOUT,
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|error| panic!("{error}: {output:?}"))
}

#[test]
fn agent_keeps_ssh_in_across_refreshes_and_lets_go_when_refresh_fails() {
    let Some(e2e) = E2e::require() else { return };
    let dir = e2e.dir();
    let op_a = Op::start(&[("OP_ID_TOKEN_TTL", TTL)]);
    let keys_b = dir.join("op_b_keys.json");
    let keys_b_text = keys_b.to_str().unwrap();
    let mut op_b = Op::start(&[("OP_ID_TOKEN_TTL", TTL), ("OP_KEYS_FILE", keys_b_text)]);
    let server = VerifyServer::start(
        &e2e,
        &format!(
            "{} {} oidc-refreshed\n{} {} oidc-refreshed\n",
            op_a.issuer(),
            op_a.client_id(),
            op_b.issuer(),
            op_b.client_id()
        ),
        &format!(
            "{LOGIN_USER} {ALICE} {}\n{LOGIN_USER} {ALICE} {}\n",
            op_a.issuer(),
            op_b.issuer()
        ),
    );
    let upstream_a = Upstream::start(&dir.join("upstream_a"));
    let upstream_b = Upstream::start(&dir.join("upstream_b"));
    let home_a = private_dir(dir.join("home_a"));
    let home_b = private_dir(dir.join("home_b"));
    let run_a = private_dir(dir.join("run_a"));
    let run_b = private_dir(dir.join("run_b"));
    let socket_a = run_a.join("agent.sock");
    let socket_b = run_b.join("agent.sock");
    // A notify-send that records each notification, one line each.
    let bin = private_dir(dir.join("bin"));
    let notified = dir.join("notified");
    let notify_send = bin.join("notify-send");
    std::fs::write(
        &notify_send,
        format!("#!/bin/sh\necho \"$*\" >> '{}'\n", notified.display()),
    )
    .unwrap();
    opk_os::file::set_mode(&notify_send, 0o755).unwrap();

    // A: in the background, as `eval "$(opkssh agent)"` starts it.
    let mut start_a = Lines::spawn(
        opkssh(&home_a, &upstream_a.socket, &bin)
            .args(["agent", "--disable-browser-open", "--provider"])
            .arg(provider_spec(&op_a))
            .arg("-a")
            .arg(&socket_a),
    );
    let url = url_of(&start_a.wait_for("Open your browser to: ", Duration::from_secs(30)));
    http_login(&url, "alice").unwrap();
    let status = start_a.finish(Duration::from_secs(30));
    let started_a = Instant::now();
    let printed = start_a.text();
    assert!(status.success(), "{printed}");
    assert!(
        printed.contains(&format!(
            "SSH_AUTH_SOCK={}; export SSH_AUTH_SOCK;",
            socket_a.display()
        )),
        "{printed}"
    );
    let pid_a: u32 = printed
        .lines()
        .find_map(|line| line.strip_prefix("echo Agent pid ")?.strip_suffix(';'))
        .unwrap_or_else(|| panic!("no pid line in:\n{printed}"))
        .parse()
        .unwrap();
    let agent_a = Pid(pid_a);

    // B: in the foreground, its provider about to be stopped.
    let mut agent_b = Lines::spawn(
        opkssh(&home_b, &upstream_b.socket, &bin)
            .args(["agent", "-D", "--disable-browser-open", "--provider"])
            .arg(provider_spec(&op_b))
            .arg("-a")
            .arg(&socket_b),
    );
    let url = url_of(&agent_b.wait_for("Open your browser to: ", Duration::from_secs(30)));
    http_login(&url, "alice").unwrap();
    agent_b.wait_for(
        &format!("presenting a certificate for {ALICE}"),
        Duration::from_secs(30),
    );
    let b_logged_in = Instant::now();

    let stop_sampling = Arc::new(AtomicBool::new(false));
    let samples_a = sampler(socket_a.clone(), Arc::clone(&stop_sampling));
    let stop_sampling_b = Arc::new(AtomicBool::new(false));
    let samples_b = sampler(socket_b.clone(), Arc::clone(&stop_sampling_b));

    // Right after the start, ssh gets in through either agent.
    assert_gets_in(&server, &socket_a, &home_a, "A at start");
    assert_gets_in(&server, &socket_b, &home_b, "B at start");
    // Now verify has B's provider keys; from here on B cannot refresh.
    op_b.stop();

    // --status, check and another agent on top of A.
    let status = run_with_timeout(
        opkssh(&home_a, &socket_a, &bin).args(["agent", "--status"]),
        SSH_TIMEOUT,
    );
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(status.status.success(), "{status:?}");
    for expected in [
        format!(
            "opkssh agent (pid {pid_a}) at {}: ready",
            socket_a.display()
        ),
        format!("identity:     {ALICE}"),
        format!("issuer:       {}", op_a.issuer()),
        "key:          ecdsa-sha2-nistp256 SHA256:".to_owned(),
        "certificate:  presented".to_owned(),
        "expires:      ".to_owned(),
        "next refresh: ".to_owned(),
    ] {
        assert!(text.contains(&expected), "{expected:?} in:\n{text}");
    }
    let check = run_with_timeout(opkssh(&home_a, &socket_a, &bin).arg("check"), SSH_TIMEOUT);
    let check_text = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success(), "{check:?}");
    assert!(
        check_text.starts_with(&format!(
            "valid: opkssh agent at {} ({ALICE} from {})",
            socket_a.display(),
            op_a.issuer()
        )),
        "{check_text}"
    );
    let nested = run_with_timeout(
        opkssh(&home_a, &socket_a, &bin)
            .args(["agent", "-D", "--provider"])
            .arg(provider_spec(&op_a))
            .arg("-a")
            .arg(run_a.join("second.sock")),
        SSH_TIMEOUT,
    );
    assert_eq!(nested.status.code(), Some(1), "{nested:?}");
    assert!(
        String::from_utf8_lossy(&nested.stderr).contains("is already an opkssh agent"),
        "{nested:?}"
    );

    // C: --agent-key, a key that exists only in its upstream ssh-agent: the agent makes the
    // PK token's and the certificate's signatures, and ssh gets in with it.
    let upstream_c = Upstream::start(&dir.join("upstream_c"));
    let held = upstream_c.add_key_held_only_here(&dir.join("upstream_c"));
    let home_c = private_dir(dir.join("home_c"));
    let run_c = private_dir(dir.join("run_c"));
    let socket_c = run_c.join("agent.sock");
    let mut agent_c = Lines::spawn(
        opkssh(&home_c, &upstream_c.socket, &bin)
            .args([
                "agent",
                "-D",
                "--disable-browser-open",
                "--agent-key",
                &held,
            ])
            .arg("--provider")
            .arg(provider_spec(&op_a))
            .arg("-a")
            .arg(&socket_c),
    );
    let url = url_of(&agent_c.wait_for("Open your browser to: ", Duration::from_secs(30)));
    http_login(&url, "alice").unwrap();
    agent_c.wait_for(
        &format!("presenting a certificate for {ALICE}"),
        Duration::from_secs(30),
    );
    let listed = run_with_timeout(
        Command::new("ssh-add")
            .arg("-L")
            .env("SSH_AUTH_SOCK", &socket_c),
        SSH_TIMEOUT,
    );
    let certificates: Vec<OpksshCertificate> = String::from_utf8(listed.stdout)
        .unwrap()
        .lines()
        .filter_map(|line| OpksshCertificate::from_line(line).ok())
        .collect();
    assert_eq!(certificates.len(), 1, "{certificates:?}");
    assert_eq!(certificates[0].fingerprint(), held);
    let status_c = status_json(&home_c, &socket_c, &bin);
    assert_eq!(status_c["key_in_agent"], true, "{status_c}");
    assert!(
        status_c["key"].as_str().unwrap().ends_with(&held),
        "{status_c}"
    );
    assert_gets_in(&server, &socket_c, &home_c, "C with --agent-key");
    assert_eq!(files_under(&home_c), Vec::<PathBuf>::new());
    drop(agent_c);
    assert_no_key_material(&run_c);

    // B: the refresh fails (the provider is gone); at expiry the certificate goes, said once.
    agent_b.wait_for("refresh failed: ", Duration::from_secs(30));
    agent_b.wait_for(
        "stopped presenting the certificate",
        Duration::from_secs(30),
    );
    assert!(
        b_logged_in.elapsed() < Duration::from_secs(35),
        "B kept its certificate for {:?}",
        b_logged_in.elapsed()
    );
    let after_expiry = sample(&socket_b);
    assert!(after_expiry.expiries.is_empty(), "{after_expiry:?}");
    assert_eq!(
        after_expiry.others,
        std::slice::from_ref(&upstream_b.own_key)
    );
    let denied = ssh_through(&server, &socket_b, &home_b);
    assert_eq!(denied.status.code(), Some(255), "{denied:?}");
    let status_b = status_json(&home_b, &socket_b, &bin);
    assert_eq!(status_b["state"], "expired", "{status_b}");
    assert_eq!(status_b["holding"], false, "{status_b}");
    // Said once, however long it stays so: wait past a few more loop turns first.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(agent_b.count("stopped presenting the certificate"), 1);
    assert_eq!(
        agent_b.count("opkssh agent: refresh failed: "),
        1,
        "{}",
        agent_b.text()
    );
    let notifications = std::fs::read_to_string(&notified).unwrap();
    assert_eq!(
        notifications.lines().count(),
        1,
        "notifications:\n{notifications}"
    );
    assert!(
        notifications.contains("opkssh agent: certificate expired"),
        "{notifications}"
    );
    stop_sampling_b.store(true, Ordering::SeqCst);

    // The provider is back: `opkssh agent --login` logs B in again and prints the URL.
    let op_b = Op::start(&[
        ("OP_ID_TOKEN_TTL", TTL),
        ("OP_KEYS_FILE", keys_b_text),
        ("OP_PORT", &op_b.port().to_string()),
    ]);
    let mut relogin = Lines::spawn(opkssh(&home_b, &socket_b, &bin).args(["agent", "--login"]));
    let url = url_of(&relogin.wait_for("Open your browser to: ", Duration::from_secs(30)));
    http_login(&url, "alice").unwrap();
    let status = relogin.finish(Duration::from_secs(30));
    assert!(status.success(), "{}", relogin.text());
    assert!(
        relogin.text().contains(&format!(
            "presenting a certificate for {ALICE} ({})",
            op_b.issuer()
        )),
        "{}",
        relogin.text()
    );
    assert_gets_in(&server, &socket_b, &home_b, "B after --login");
    // And SIGUSR1 does too (the URL on the agent's stderr).
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(agent_b.child.id()).unwrap()),
        nix::sys::signal::Signal::SIGUSR1,
    )
    .unwrap();
    let url = url_of(&agent_b.wait_for_nth("Open your browser to: ", 3, Duration::from_secs(30)));
    http_login(&url, "alice").unwrap();
    agent_b.wait_for_nth(
        &format!("presenting a certificate for {ALICE}"),
        3,
        Duration::from_secs(30),
    );
    assert_gets_in(&server, &socket_b, &home_b, "B after SIGUSR1");

    // A: more than 60 s and at least two refreshes later, ssh still gets in, through opkssh ssh
    // too, which needs no key file with the agent there.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let status = status_json(&home_a, &socket_a, &bin);
        if started_a.elapsed() > Duration::from_secs(61) && status["refreshes"].as_u64() >= Some(2)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "A did not refresh twice: {status}"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    assert_gets_in(&server, &socket_a, &home_a, "A after two refreshes");
    let through_opkssh_ssh = run_with_timeout(
        opkssh(&home_a, &socket_a, &bin)
            .args(["ssh", "-F", "none", "-o", "BatchMode=yes", "-o"])
            .arg(format!(
                "UserKnownHostsFile={}",
                server.sshd.known_hosts().display()
            ))
            .arg("-p")
            .arg(server.sshd.port().to_string())
            .arg(format!("{LOGIN_USER}@127.0.0.1"))
            .args(["id", "-un"]),
        SSH_TIMEOUT,
    );
    assert_eq!(
        String::from_utf8_lossy(&through_opkssh_ssh.stdout).trim(),
        LOGIN_USER,
        "{through_opkssh_ssh:?}"
    );
    assert!(
        server
            .verify_log()
            .contains(&format!("allow principal={LOGIN_USER} identity={ALICE}")),
        "{}",
        server.verify_log()
    );

    stop_sampling.store(true, Ordering::SeqCst);
    let samples_a = samples_a.join().unwrap();
    assert_samples("A", &samples_a, &upstream_a.own_key);
    let mut expiries: Vec<i64> = samples_a
        .iter()
        .flat_map(|sample| sample.expiries.clone())
        .collect();
    expiries.dedup();
    assert!(
        expiries.len() >= 3,
        "A listed fewer than three certificates over a minute: {expiries:?}"
    );
    assert!(
        samples_a.iter().all(|sample| sample.expiries.len() == 1),
        "A stopped presenting its certificate at some point"
    );
    let samples_b = samples_b.join().unwrap();
    assert_samples("B", &samples_b, &upstream_b.own_key);

    // Nothing was written under either HOME.
    assert_eq!(files_under(&home_a), Vec::<PathBuf>::new());
    assert_eq!(files_under(&home_b), Vec::<PathBuf>::new());

    // SIGTERM stops B and takes its socket away.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(agent_b.child.id()).unwrap()),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = agent_b.finish(Duration::from_secs(10));
    assert!(status.success(), "{status:?}\n{}", agent_b.text());
    assert!(!socket_b.exists());

    // kill -9 of A leaves no key material on disk.
    drop(agent_a);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !gone(pid_a) {
        assert!(Instant::now() < deadline, "A survived SIGKILL");
        std::thread::sleep(Duration::from_millis(20));
    }
    for dir in [&home_a, &run_a, &home_b, &run_b] {
        assert_no_key_material(dir);
    }
    drop(op_a);
}
