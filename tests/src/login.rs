//! Running the real `opkssh login` as a person would: a child process whose stdout and stderr
//! are read line by line, so a test can wait for the URL or the device code, answer it, and
//! collect the rest. The environment is cleaned of everything that would change the provider
//! (`OPKSSH_PROVIDERS`, CI variables, a browser, the caller's ssh-agent); the child is killed on
//! drop.

// Test-only code: a failed precondition is a test failure, so panicking is intended.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::missing_panics_doc
)]

use crate::e2e;
use std::ffi::OsStr;
use std::io::{BufRead as _, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long a login may wait for the next line, or to end, before the test fails.
pub const LINE_TIMEOUT: Duration = Duration::from_secs(40);

/// Variables that choose a provider, a browser or an agent behind the test's back.
const CLEANED_ENV: [&str; 7] = [
    "OPKSSH_PROVIDERS",
    "OPKSSH_DEFAULT",
    "ACTIONS_ID_TOKEN_REQUEST_URL",
    "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
    "GITLAB_CI",
    "BROWSER",
    "SSH_AUTH_SOCK",
];

/// Which pipe a line came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pipe {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// A running `opkssh login`.
pub struct LoginProcess {
    child: Child,
    lines: mpsc::Receiver<(Pipe, String)>,
    stdout: Vec<String>,
    stderr: Vec<String>,
}

/// How a login ended, and everything it printed.
#[derive(Debug)]
pub struct LoginRun {
    /// Standard output, lines joined with `\n`.
    pub stdout: String,
    /// Standard error, lines joined with `\n`.
    pub stderr: String,
    /// The exit status.
    pub status: ExitStatus,
}

impl LoginRun {
    /// Panics with everything printed unless the login succeeded.
    pub fn assert_success(&self) {
        assert!(
            self.status.success(),
            "login failed ({}):\nstdout:\n{}\nstderr:\n{}",
            self.status,
            self.stdout,
            self.stderr
        );
    }

    /// Panics unless the login failed and said `reason` (on either pipe).
    pub fn assert_failure(&self, reason: &str) {
        assert!(
            !self.status.success(),
            "login succeeded:\nstdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        assert!(
            self.stdout.contains(reason) || self.stderr.contains(reason),
            "expected `{reason}`:\nstdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
    }
}

impl LoginProcess {
    /// Starts `opkssh login <args>` with `HOME=home`, a clean environment plus `env`, and
    /// `--disable-browser-open` unless `args` has `--device`.
    pub fn start(home: &Path, args: &[&str], env: &[(&str, &OsStr)]) -> LoginProcess {
        let mut all = vec!["login"];
        if !args.contains(&"--device") {
            all.push("--disable-browser-open");
        }
        all.extend_from_slice(args);
        Self::start_opkssh(home, &all, env)
    }

    /// Starts `opkssh <args>` (any command that may log in, such as `opkssh ssh`) with
    /// `HOME=home`, the same clean environment as [`LoginProcess::start`] plus `env`.
    pub fn start_opkssh(home: &Path, args: &[&str], env: &[(&str, &OsStr)]) -> LoginProcess {
        let mut command = Command::new(e2e::target_binary("opkssh"));
        command.args(args).env("HOME", home);
        for name in CLEANED_ENV {
            command.env_remove(name);
        }
        // A browser opened by mistake shows up as this failing command.
        command.env("BROWSER", "false");
        for (name, value) in env {
            command.env(name, value);
        }
        Self::start_command(&mut command)
    }

    /// Starts `command` (an `opkssh` run some other way, e.g. a foreign binary through its
    /// runner) with its stdout and stderr read line by line.
    pub fn start_command(command: &mut Command) -> LoginProcess {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (sender, lines) = mpsc::channel();
        let pipes: [(Pipe, Box<dyn Read + Send>); 2] = [
            (Pipe::Stdout, Box::new(child.stdout.take().unwrap())),
            (Pipe::Stderr, Box::new(child.stderr.take().unwrap())),
        ];
        for (pipe, reader) in pipes {
            let sender = sender.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(reader).lines().map_while(Result::ok) {
                    let _ = sender.send((pipe, line));
                }
            });
        }
        LoginProcess {
            child,
            lines,
            stdout: Vec::new(),
            stderr: Vec::new(),
        }
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    fn record(&mut self, pipe: Pipe, line: String) {
        match pipe {
            Pipe::Stdout => self.stdout.push(line),
            Pipe::Stderr => self.stderr.push(line),
        }
    }

    fn printed(&self) -> String {
        format!(
            "stdout:\n{}\nstderr:\n{}",
            self.stdout.join("\n"),
            self.stderr.join("\n")
        )
    }

    /// What the login printed on stdout so far, lines joined with `\n`.
    pub fn stdout_so_far(&self) -> String {
        self.stdout.join("\n")
    }

    /// The next line on either pipe, or `None` once both have closed.
    pub fn next_line(&mut self) -> Option<(Pipe, String)> {
        match self.lines.recv_timeout(LINE_TIMEOUT) {
            Ok((pipe, line)) => {
                self.record(pipe, line.clone());
                Some((pipe, line))
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => None,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                panic!(
                    "login printed nothing for {LINE_TIMEOUT:?}; {}",
                    self.printed()
                )
            }
        }
    }

    /// Reads until a line containing `pattern` and returns it; panics with everything printed
    /// if the login ends first.
    pub fn wait_for(&mut self, pattern: &str) -> String {
        loop {
            let Some((_, line)) = self.next_line() else {
                let status = self.child.wait().unwrap();
                panic!(
                    "login ended ({status}) before printing {pattern:?}; {}",
                    self.printed()
                );
            };
            if line.contains(pattern) {
                return line;
            }
        }
    }

    /// The authorization URL the login asks the user to open.
    pub fn auth_url(&mut self) -> String {
        let prefix = "Open your browser to: ";
        let line = self.wait_for(prefix);
        line.split_once(prefix).unwrap().1.trim().to_owned()
    }

    /// Whether the login has ended.
    pub fn has_exited(&mut self) -> bool {
        self.child.try_wait().unwrap().is_some()
    }

    /// Sends SIGKILL (if still running) and reaps the process.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        self.child.wait().unwrap();
    }

    /// Waits for the login to end and collects what it printed.
    pub fn finish(mut self) -> LoginRun {
        let deadline = Instant::now() + LINE_TIMEOUT;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "login did not end within {LINE_TIMEOUT:?}; {}",
                    self.printed()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        // The pipes close with the process (unless it left a child holding them).
        while let Ok((pipe, line)) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.record(pipe, line);
        }
        LoginRun {
            stdout: self.stdout.join("\n"),
            stderr: self.stderr.join("\n"),
            status,
        }
    }
}

impl Drop for LoginProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A whole browser login: starts `opkssh login <args>`, drives its URL through the test OP's
/// pages as `who` ([`e2e::http_login`]) and waits for the end.
pub fn login_through_op(home: &Path, args: &[&str], env: &[(&str, &OsStr)], who: &str) -> LoginRun {
    let mut login = LoginProcess::start(home, args, env);
    let url = login.auth_url();
    let reached = e2e::http_login(&url, who);
    let run = login.finish();
    if let Err(error) = reached {
        panic!(
            "browser driver: {error:#}\nstdout:\n{}\nstderr:\n{}",
            run.stdout, run.stderr
        );
    }
    run
}
