//! `opkssh agent` started the ways it ships to be started, against the demo OpenID provider in
//! this test process (loopback only, no e2e gate): the systemd user unit's `ExecStart` and the
//! launchd agent's command, read from the files the packages install; the background start
//! that `eval "$(opkssh agent -c)"` runs; and a background start whose login fails, which
//! leaves nothing running. Refresh, ssh and the upstream agent are the e2e test's
//! (tests/tests/agent_daemon_e2e.rs).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)] // test code: a panic is a failure

use opk_client::demo_op::{DemoOp, DemoUser};
use std::io::{BufRead as _, BufReader, Read};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const CLIENT_ID: &str = "opkssh-test";

fn packaging(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("packaging")
        .join(name)
}

/// A home whose client config names the demo OP as the default provider.
struct Fixture {
    op: DemoOp,
    home: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        let op = DemoOp::start(0, CLIENT_ID, DemoUser::default()).unwrap();
        let home = tempfile::tempdir().unwrap();
        let config = home.path().join(".opk").join("config.yml");
        std::fs::create_dir_all(config.parent().unwrap()).unwrap();
        std::fs::write(
            &config,
            format!(
                "default_provider: demo\nproviders:\n  - alias: demo\n    issuer: {}\n    client_id: {CLIENT_ID}\n    scopes: openid email profile\n    redirect_uris:\n      - http://localhost:0/login-callback\n",
                op.issuer()
            ),
        )
        .unwrap();
        Self { op, home }
    }

    fn home(&self) -> &Path {
        self.home.path()
    }

    /// A private (0700) folder for a socket.
    fn run_dir(&self) -> PathBuf {
        let dir = self.home().join("run");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        dir
    }

    /// `command` with this home, no provider or agent from the tester's environment, and a
    /// browser that fails to open (so the URL is printed).
    fn env<'c>(&self, command: &'c mut Command) -> &'c mut Command {
        command
            .env("HOME", self.home())
            .env("BROWSER", "false")
            .env_remove("OPKSSH_PROVIDERS")
            .env_remove("OPKSSH_DEFAULT")
            .env_remove("ACTIONS_ID_TOKEN_REQUEST_URL")
            .env_remove("GITLAB_CI")
            .env_remove("SSH_AUTH_SOCK")
            .env_remove("XDG_RUNTIME_DIR")
    }

    fn opkssh(&self) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_opkssh"));
        self.env(&mut command);
        command
    }

    /// `opkssh agent --status --json -a socket`.
    fn status(&self, socket: &Path) -> (Output, serde_json::Value) {
        let output = self
            .opkssh()
            .args(["agent", "--status", "--json", "-a"])
            .arg(socket)
            .output()
            .unwrap();
        let json = serde_json::from_slice(&output.stdout).unwrap_or_default();
        (output, json)
    }

    /// Waits until the agent at `socket` presents a certificate.
    fn wait_ready(&self, socket: &Path) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (output, json) = self.status(socket);
            if output.status.success() {
                return json;
            }
            assert!(Instant::now() < deadline, "not ready: {output:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A browser that follows redirects on loopback (the demo OP consents at once).
fn follow(url: &str) {
    let agent = ureq::Agent::config_builder()
        .max_redirects(0)
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(20)))
        .build()
        .new_agent();
    let mut url = url.to_owned();
    for _ in 0..10 {
        assert!(url.starts_with("http://localhost:"), "{url}");
        let response = agent.get(&url).call().unwrap();
        match response.headers().get("location") {
            Some(location) => url = location.to_str().unwrap().to_owned(),
            None => {
                assert_eq!(response.status().as_u16(), 200, "{url}");
                return;
            }
        }
    }
    panic!("too many redirects");
}

/// A running command whose stdout and stderr lines arrive on one channel.
struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Running {
    fn spawn(command: &mut Command) -> Running {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (sender, lines) = mpsc::channel();
        let pipes: [Box<dyn Read + Send>; 2] = [
            Box::new(child.stdout.take().unwrap()),
            Box::new(child.stderr.take().unwrap()),
        ];
        for pipe in pipes {
            let sender = sender.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    let _ = sender.send(line);
                }
            });
        }
        Running {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    fn wait_for(&mut self, prefix: &str) -> String {
        loop {
            let line = self
                .lines
                .recv_timeout(Duration::from_secs(30))
                .unwrap_or_else(|_| panic!("no {prefix:?} in:\n{}", self.seen.join("\n")));
            self.seen.push(line.clone());
            if let Some(rest) = line.strip_prefix(prefix) {
                return rest.to_owned();
            }
        }
    }

    /// SIGTERM, then the exit status (within 10 s).
    fn terminate(&mut self) -> std::process::ExitStatus {
        terminate(self.child.id());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Stops the background agent (not our child) however the test ends.
struct StopOnDrop(u32);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.to_string()])
            .status();
    }
}

fn terminate(pid: u32) {
    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// `ExecStart=` of the systemd unit, as words.
fn unit_exec_start() -> Vec<String> {
    let unit = std::fs::read_to_string(packaging("opkssh-agent.service")).unwrap();
    let line = unit
        .lines()
        .find_map(|line| line.strip_prefix("ExecStart="))
        .expect("the unit has an ExecStart line");
    line.split_whitespace().map(str::to_owned).collect()
}

#[test]
fn the_systemd_unit_runs_the_agent_in_the_foreground_at_its_socket() {
    let fixture = Fixture::new();
    let words = unit_exec_start();
    assert_eq!(words[0], "/usr/bin/opkssh", "{words:?}");
    assert_eq!(words[1..4], ["agent", "-D", "-a"], "{words:?}");
    assert_eq!(words[4], "%t/opkssh-agent.sock", "{words:?}");
    // %t is the user's runtime folder, /run/user/<uid>: 0700 and theirs.
    let runtime = fixture.run_dir();
    let socket = runtime.join("opkssh-agent.sock");
    let mut agent = Running::spawn(
        fixture
            .opkssh()
            .args(&words[1..4])
            .arg(words[4].replace("%t", runtime.to_str().unwrap())),
    );
    assert_eq!(
        agent.wait_for("SSH_AUTH_SOCK="),
        format!("{}; export SSH_AUTH_SOCK;", socket.display())
    );
    // The unit does not disable the browser: the URL comes as "Opening browser to".
    follow(&agent.wait_for("Opening browser to "));
    let status = fixture.wait_ready(&socket);
    assert_eq!(status["state"], "ready", "{status}");
    assert_eq!(status["identity"], "demo@example.com", "{status}");
    assert_eq!(status["issuer"], fixture.op.issuer(), "{status}");
    assert_eq!(status["pid"], agent.child.id(), "{status}");
    let mode = std::fs::symlink_metadata(&socket)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    // No core file can hold the key.
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", agent.child.id())).unwrap();
    let core = limits
        .lines()
        .find(|line| line.starts_with("Max core file size"))
        .unwrap();
    assert_eq!(
        core.split_whitespace().skip(4).take(2).collect::<Vec<_>>(),
        ["0", "0"],
        "{core}"
    );
    // opkssh check finds the agent through SSH_AUTH_SOCK.
    let check = fixture
        .opkssh()
        .arg("check")
        .env("SSH_AUTH_SOCK", &socket)
        .output()
        .unwrap();
    let line = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success(), "{check:?}");
    assert!(
        line.starts_with(&format!(
            "valid: opkssh agent at {} (demo@example.com from {})",
            socket.display(),
            fixture.op.issuer()
        )),
        "{line}"
    );
    // systemctl stop sends SIGTERM: the agent ends and takes its socket away.
    assert!(agent.terminate().success());
    assert!(!socket.exists());
    // Nothing was written in the home but the config that was there.
    let mut written = Vec::new();
    for entry in std::fs::read_dir(fixture.home()).unwrap() {
        written.push(entry.unwrap().file_name().into_string().unwrap());
    }
    written.sort();
    assert_eq!(written, [".opk", "run"]);
}

/// The shell command of the launchd agent's `ProgramArguments` (`/bin/sh -c <command>`).
fn launchd_command() -> String {
    let plist = std::fs::read_to_string(packaging("dev.openpubkey.opkssh-agent.plist")).unwrap();
    let arguments = plist
        .split_once("<key>ProgramArguments</key>")
        .unwrap()
        .1
        .split_once("</array>")
        .unwrap()
        .0;
    let strings: Vec<&str> = arguments
        .split("<string>")
        .skip(1)
        .map(|rest| rest.split_once("</string>").unwrap().0)
        .collect();
    assert_eq!(strings[..2], ["/bin/sh", "-c"], "{strings:?}");
    assert_eq!(strings.len(), 3, "{strings:?}");
    strings[2]
        .replace("&amp;", "&")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
}

#[test]
fn the_launchd_agent_makes_its_private_folder_and_logs_there() {
    let fixture = Fixture::new();
    let command = launchd_command();
    assert!(
        command.contains("exec /usr/local/bin/opkssh agent -D"),
        "{command}"
    );
    let command = command.replace(
        "/usr/local/bin/opkssh",
        &format!("'{}'", env!("CARGO_BIN_EXE_opkssh")),
    );
    let mut sh = Command::new("/bin/sh");
    fixture.env(&mut sh);
    let mut agent = Running::spawn(sh.args(["-c", &command]));
    follow(&agent.wait_for("Opening browser to "));
    let socket = fixture.home().join(".opk/agent/agent.sock");
    let status = fixture.wait_ready(&socket);
    assert_eq!(status["identity"], "demo@example.com", "{status}");
    let folder = std::fs::metadata(socket.parent().unwrap()).unwrap();
    assert_eq!(folder.permissions().mode() & 0o777, 0o700);
    let log =
        std::fs::read_to_string(fixture.home().join("Library/Logs/opkssh/opkssh.log")).unwrap();
    assert!(
        log.contains(&format!("opkssh agent: listening at {}", socket.display())),
        "{log}"
    );
    assert!(
        log.contains("opkssh agent: presenting a certificate for demo@example.com"),
        "{log}"
    );
    // The shell exec'd the agent: launchctl's SIGTERM reaches it.
    assert!(agent.terminate().success());
    assert!(!socket.exists());
}

#[test]
fn in_the_background_the_csh_line_comes_after_the_login() {
    let fixture = Fixture::new();
    let socket = fixture.run_dir().join("agent.sock");
    let mut start = Running::spawn(
        fixture
            .opkssh()
            .args(["agent", "-c", "--disable-browser-open", "-a"])
            .arg(&socket),
    );
    follow(&start.wait_for("Open your browser to: "));
    assert_eq!(
        start.wait_for("setenv SSH_AUTH_SOCK "),
        format!("{};", socket.display())
    );
    let pid: u32 = start
        .wait_for("echo Agent pid ")
        .strip_suffix(';')
        .unwrap()
        .parse()
        .unwrap();
    // A failed assertion below must not leave the background agent running.
    let _stop = StopOnDrop(pid);
    let deadline = Instant::now() + Duration::from_secs(10);
    while start.child.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "the starting command did not exit"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(start.child.try_wait().unwrap().unwrap().success());
    // The agent runs on, in the background.
    let status = fixture.wait_ready(&socket);
    assert_eq!(status["pid"], pid, "{status}");
    // --status in text: who, from where, until when, and the refresh a third of the token's
    // hour before it expires.
    let text = fixture
        .opkssh()
        .args(["agent", "--status"])
        .env("SSH_AUTH_SOCK", &socket)
        .output()
        .unwrap();
    let text = String::from_utf8(text.stdout).unwrap();
    for expected in [
        format!("opkssh agent (pid {pid}) at {}: ready", socket.display()),
        "  identity:     demo@example.com".to_owned(),
        format!("  issuer:       {}", fixture.op.issuer()),
        "  certificate:  presented".to_owned(),
        "  expires:      ".to_owned(),
        "  next refresh: ".to_owned(),
        "  refreshes:    0 since the login at ".to_owned(),
    ] {
        assert!(text.contains(&expected), "{expected:?} in:\n{text}");
    }
    terminate(pid);
    let deadline = Instant::now() + Duration::from_secs(10);
    while socket.exists() {
        assert!(Instant::now() < deadline, "the agent did not stop");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_background_start_whose_login_fails_leaves_nothing_running() {
    let fixture = Fixture::new();
    let socket = fixture.run_dir().join("agent.sock");
    let output = fixture
        .opkssh()
        .args(["agent", "--disable-browser-open", "--timeout", "1", "-a"])
        .arg(&socket)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("Open your browser to: "), "{stderr}");
    assert!(stderr.contains("Error: login failed: "), "{stderr}");
    assert!(output.stdout.is_empty(), "{output:?}");
    // The agent was stopped: its socket goes with it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while socket.exists() {
        assert!(Instant::now() < deadline, "the agent is still there");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn status_and_login_need_a_running_agent() {
    let fixture = Fixture::new();
    let nothing = fixture.run_dir().join("none.sock");
    for flag in ["--status", "--login"] {
        let output = fixture
            .opkssh()
            .args(["agent", flag, "-a"])
            .arg(&nothing)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(1), "{output:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.starts_with(&format!("Error: no agent answers at {}", nothing.display())),
            "{stderr}"
        );
    }
    let unset = fixture
        .opkssh()
        .args(["agent", "--status"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&unset.stderr).contains("SSH_AUTH_SOCK is not set"),
        "{unset:?}"
    );
}
