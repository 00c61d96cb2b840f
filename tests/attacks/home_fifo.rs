//! A FIFO as a home policy (review finding 1). A user who makes `~/.opk/auth_id` a FIFO must
//! not be able to hold a verify past its budget (mode 0644: verify opens it itself) or leave a
//! root `readhome` behind through sudo (mode 0600: verify cannot open it and asks root). Both
//! through the real binary with a real account; the second as sshd runs verify, as
//! `opksshuser` with a sudoers rule for `readhome`. The system policy still decides.

use opkssh_tests::e2e::{
    self, AKC_USER, E2e, IssuerServer, LOGIN_USER, run_with_timeout, user_ids,
};
use opkssh_tests::mint::{Minted, mint};
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// verify's own budget; the test waits longer so a hang shows as a failure, not a kill.
const VERIFY_BUDGET: Duration = Duration::from_secs(10);
const WAIT: Duration = Duration::from_secs(40);

pub fn home_of(user: &str) -> PathBuf {
    let output = run_with_timeout(
        Command::new("getent").args(["passwd", user]),
        Duration::from_secs(10),
    );
    let line = String::from_utf8(output.stdout).unwrap();
    PathBuf::from(line.trim().split(':').nth(5).unwrap())
}

/// `~user/.opk/auth_id` replaced by something else (a FIFO, a symlink), owned by the user;
/// whatever was there is put back on drop, and any `readhome` left for the user is killed
/// (after the test looked).
pub struct HomePolicyFile {
    path: PathBuf,
    saved: Option<PathBuf>,
}

impl HomePolicyFile {
    /// Moves the current policy aside and hands back the path to fill.
    fn prepare(user: &str) -> (PathBuf, Option<PathBuf>) {
        let (uid, gid) = user_ids(user);
        let opk = home_of(user).join(".opk");
        std::fs::create_dir_all(&opk).unwrap();
        std::os::unix::fs::chown(&opk, Some(uid), Some(gid)).unwrap();
        std::fs::set_permissions(&opk, std::fs::Permissions::from_mode(0o700)).unwrap();
        let path = opk.join("auth_id");
        let saved = std::fs::symlink_metadata(&path).is_ok().then(|| {
            let saved = opk.join("auth_id.saved-by-attack-test");
            std::fs::rename(&path, &saved).unwrap();
            saved
        });
        (path, saved)
    }

    /// A FIFO with `mode` (octal text, as `mkfifo -m` takes it).
    pub fn fifo(user: &str, mode: &str) -> Self {
        let (path, saved) = Self::prepare(user);
        let made = Command::new("mkfifo")
            .args(["-m", mode])
            .arg(&path)
            .status()
            .unwrap();
        assert!(made.success());
        let (uid, gid) = user_ids(user);
        std::os::unix::fs::chown(&path, Some(uid), Some(gid)).unwrap();
        Self { path, saved }
    }

    /// A regular file, 0600, the user's.
    pub fn regular(user: &str, content: &str) -> Self {
        let (path, saved) = Self::prepare(user);
        std::fs::write(&path, content).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let (uid, gid) = user_ids(user);
        std::os::unix::fs::chown(&path, Some(uid), Some(gid)).unwrap();
        Self { path, saved }
    }

    /// A symlink to `target`, owned by the user (as the user would make it).
    pub fn symlink(user: &str, target: &Path) -> Self {
        let (path, saved) = Self::prepare(user);
        std::os::unix::fs::symlink(target, &path).unwrap();
        let (uid, gid) = user_ids(user);
        std::os::unix::fs::lchown(&path, Some(uid), Some(gid)).unwrap();
        Self { path, saved }
    }
}

impl Drop for HomePolicyFile {
    fn drop(&mut self) {
        for pid in readhome_processes(LOGIN_USER) {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
        let _ = std::fs::remove_file(&self.path);
        if let Some(saved) = &self.saved {
            let _ = std::fs::rename(saved, &self.path);
        }
    }
}

/// Processes running `readhome <user>` (as sudo's child or on their own).
fn readhome_processes(user: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmdline.split(|byte| *byte == 0).collect();
        if args
            .windows(2)
            .any(|pair| pair == [b"readhome".as_slice(), user.as_bytes()])
        {
            found.push(pid);
        }
    }
    found
}

/// An issuer on loopback and a login for `alice@example.com`, which the system policy lets
/// in as the test account.
struct Login {
    server: IssuerServer,
    minted: Minted,
}

impl Login {
    fn new() -> Self {
        let server = IssuerServer::start_custom().unwrap();
        let issuer = server.issuer().to_owned();
        let minted = mint(&issuer, "attack-client", "alice@example.com").unwrap();
        server.set_documents(
            Minted::discovery_json(&issuer).as_bytes(),
            minted.jwks_json.as_bytes(),
        );
        Self { server, minted }
    }

    fn files(&self) -> [(&'static str, String); 2] {
        let issuer = self.server.issuer();
        [
            ("providers", format!("{issuer} attack-client oidc\n")),
            (
                "auth_id",
                format!("{LOGIN_USER} alice@example.com {issuer}\n"),
            ),
        ]
    }

    fn verify_command(&self, binary: &Path, etc: &Path, rw: &Path) -> Command {
        let (key_type, key_b64) = self.minted.type_and_base64();
        let mut command = Command::new(binary);
        command
            .arg("verify")
            .arg("--config-dir")
            .arg(etc)
            .arg("--cache-dir")
            .arg(rw.join("cache"))
            .arg("--log-file")
            .arg(rw.join("opkssh.log"))
            .args([LOGIN_USER, key_b64, key_type])
            .env_clear();
        command
    }
}

fn assert_allowed_in_budget(output: &Output, elapsed: Duration, log: &str) {
    assert_eq!(output.status.code(), Some(0), "{output:?}\n{log}");
    assert!(
        String::from_utf8_lossy(&output.stdout).starts_with("cert-authority"),
        "{output:?}"
    );
    assert!(
        elapsed < VERIFY_BUDGET,
        "verify took {elapsed:?}, over its budget\n{log}"
    );
    assert!(log.contains("failed to load user policy"), "{log}");
}

/// Mode 0644: verify (root here, as in the binary tests) opens the FIFO itself.
#[test]
fn home_fifo_readable_policy_does_not_hang_verify() {
    let Some(e2e) = E2e::require() else { return };
    let login = Login::new();
    let files = login.files();
    let etc = e2e.dir().join("etc");
    std::fs::create_dir(&etc).unwrap();
    for (name, text) in &files {
        std::fs::write(etc.join(name), text).unwrap();
        std::fs::set_permissions(etc.join(name), std::fs::Permissions::from_mode(0o640)).unwrap();
    }
    let _fifo = HomePolicyFile::fifo(LOGIN_USER, "644");
    let started = Instant::now();
    let output = run_with_timeout(
        &mut login.verify_command(&e2e::target_binary("opkssh"), &etc, e2e.dir()),
        WAIT,
    );
    let elapsed = started.elapsed();
    let log = std::fs::read_to_string(e2e.dir().join("opkssh.log")).unwrap_or_default();
    assert_allowed_in_budget(&output, elapsed, &log);
    assert!(
        log.contains("FIFOs, devices and sockets are never read"),
        "{log}"
    );
}

/// Mode 0600: `opksshuser` cannot open it, so verify runs `sudo -n opkssh readhome`; root's
/// readhome must refuse the FIFO at once, and nothing may be left running.
#[test]
fn home_fifo_private_policy_leaves_no_root_process_through_sudo() {
    let Some(e2e) = E2e::require() else { return };
    assert!(
        Path::new("/usr/bin/sudo").is_file(),
        "sudo is needed (apt-get install sudo; .ci/run installs it)"
    );
    let login = Login::new();
    let binary = e2e.install_binary(&e2e::target_binary("opkssh"));
    let files = login.files();
    let files: Vec<(&str, &[u8], u32)> = files
        .iter()
        .map(|(name, text)| (*name, text.as_bytes(), 0o640))
        .collect();
    let etc = e2e.install_dir(&files, Some(AKC_USER));
    let rw = e2e.writable_dir(AKC_USER);
    let sudoers = Sudoers::install(&format!(
        "{AKC_USER} ALL=(ALL) NOPASSWD: {} readhome *\n",
        binary.display()
    ));
    let _fifo = HomePolicyFile::fifo(LOGIN_USER, "600");
    let (uid, gid) = user_ids(AKC_USER);
    let mut command = login.verify_command(&binary, &etc, &rw);
    command.uid(uid).gid(gid);
    let started = Instant::now();
    let output = run_with_timeout(&mut command, WAIT);
    let elapsed = started.elapsed();
    let log = std::fs::read_to_string(rw.join("opkssh.log")).unwrap_or_default();
    assert_allowed_in_budget(&output, elapsed, &log);
    assert!(
        log.contains("readhome"),
        "the sudo path was not taken\n{log}"
    );
    // sudo's child may take a moment to be reaped after verify has moved on.
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut left = readhome_processes(LOGIN_USER);
    while !left.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        left = readhome_processes(LOGIN_USER);
    }
    assert!(
        left.is_empty(),
        "readhome processes left behind: {left:?}\n{log}"
    );
    drop(sudoers);
}

/// A sudoers drop-in for the test, checked with visudo, removed on drop.
struct Sudoers(PathBuf);

impl Sudoers {
    fn install(rule: &str) -> Self {
        let path = PathBuf::from(format!(
            "/etc/sudoers.d/opkssh-attack-fifo-{}",
            std::process::id()
        ));
        std::fs::write(&path, rule).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o440)).unwrap();
        let checked = Command::new("visudo")
            .arg("-cf")
            .arg(&path)
            .output()
            .unwrap();
        assert!(checked.status.success(), "{checked:?}");
        Self(path)
    }
}

impl Drop for Sudoers {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
