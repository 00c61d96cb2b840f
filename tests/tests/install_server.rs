//! `opkssh install-server` and `uninstall-server` on this machine's real `/etc`, and the Debian
//! package built by `cargo deb`, each followed by a real `ssh` login through a real `sshd`
//! started with the system's own `/etc/ssh/sshd_config` (so the installed drop-in is what lets
//! the login in). Gated like the e2e tests (`OPKSSH_E2E=1`, root). Everything the installer,
//! the package and the tests touch is saved first and put back when a test ends, passed or
//! failed ([`MachineBackup`]); the `opksshuser` account is deleted for the run (so that the
//! installer creates it) and recreated afterwards for the other e2e tests.
//!
//! The package test needs the `.deb`: `.ci/run` builds it with `debian/build-deb` (cargo deb)
//! and sets `OPKSSH_DEB`; without it that test prints SKIP. The RPM test (`OPKSSH_RPM`, built
//! with `rpm/build-rpm`: rpmbuild and `opkssh.spec`) changes nothing on the machine: it reads
//! the package with `rpm`, runs its scriptlets with a recorder for the binary, and installs it
//! into a scratch root. `package_arches.rs` compares the arm64 packages with these.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // test code: a panic is a failure

use opk_core::sshcert::private_key_to_openssh;
use opkssh_tests::e2e::{self, AKC_USER, E2e, IssuerServer, LOGIN_USER, LOGIN_USER2};
use opkssh_tests::mint::{Minted, mint};
use std::collections::BTreeMap;
use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const CLIENT_ID: &str = "install-e2e";
const EMAIL: &str = "alice@example.com";
const INSTALLED: &str = "/usr/local/bin/opkssh";
const PACKAGED: &str = "/usr/bin/opkssh";
const DROP_IN: &str = "/etc/ssh/sshd_config.d/60-opk-ssh.conf";
const SUDOERS: &str = "/etc/sudoers.d/opkssh";
const LOG: &str = "/var/log/opkssh.log";
const CACHE: &str = "/var/cache/opkssh";
/// Copying the 100 MB debug binary with fsync can be slow on a busy disk.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(300);

// ---------------------------------------------------------------------------------------------
// What the tests touch, saved and restored
// ---------------------------------------------------------------------------------------------

fn home_policy_dir(user: &str) -> PathBuf {
    let out = run(Command::new("getent").args(["passwd", user]));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    PathBuf::from(text.trim().split(':').nth(5).unwrap()).join(".opk")
}

fn touched() -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = [
        INSTALLED,
        PACKAGED,
        "/etc/opk",
        "/etc/ssh/sshd_config",
        "/etc/ssh/sshd_config.d",
        SUDOERS,
        LOG,
        CACHE,
    ]
    .iter()
    .map(PathBuf::from)
    .collect();
    paths.push(home_policy_dir(LOGIN_USER2));
    paths
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    Dir,
    File(Vec<u8>),
    Link(PathBuf),
}

/// One file or folder: what it is, its mode, and its owner by name (an account deleted and
/// recreated keeps its name, not its number).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    node: Node,
    mode: u32,
    user: String,
    group: String,
}

type State = BTreeMap<PathBuf, Entry>;

fn user_name(uid: u32) -> String {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map_or_else(|| uid.to_string(), |user| user.name)
}

fn group_name(gid: u32) -> String {
    nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(gid))
        .ok()
        .flatten()
        .map_or_else(|| gid.to_string(), |group| group.name)
}

fn capture_into(path: &Path, state: &mut State) {
    let Ok(metadata) = fs::symlink_metadata(path) else {
        return;
    };
    let node = if metadata.file_type().is_symlink() {
        Node::Link(fs::read_link(path).unwrap())
    } else if metadata.is_dir() {
        Node::Dir
    } else {
        Node::File(fs::read(path).unwrap())
    };
    state.insert(
        path.to_owned(),
        Entry {
            node,
            mode: metadata.mode() & 0o7777,
            user: user_name(metadata.uid()),
            group: group_name(metadata.gid()),
        },
    );
    if metadata.is_dir() {
        for entry in fs::read_dir(path).unwrap() {
            capture_into(&entry.unwrap().path(), state);
        }
    }
}

fn capture() -> State {
    let mut state = State::new();
    for path in touched() {
        capture_into(&path, &mut state);
    }
    state
}

fn account_exists(name: &str) -> bool {
    run(Command::new("getent").args(["passwd", name]))
        .status
        .success()
}

fn group_exists(name: &str) -> bool {
    run(Command::new("getent").args(["group", name]))
        .status
        .success()
}

fn package_installed() -> bool {
    let out = run(Command::new("dpkg-query").args(["-W", "-f=${Status}", "opkssh"]));
    String::from_utf8_lossy(&out.stdout).contains("installed")
        && !String::from_utf8_lossy(&out.stdout).contains("not-installed")
}

/// Everything [`touched`] holds, the `opksshuser` account, and whether the package is
/// installed; put back on drop.
struct MachineBackup {
    state: State,
    had_account: bool,
    had_package: bool,
}

impl MachineBackup {
    fn take() -> Self {
        Self {
            state: capture(),
            had_account: account_exists(AKC_USER),
            had_package: package_installed(),
        }
    }

    /// Fails unless opkssh is absent, then removes what `opkssh verify` runs with default paths
    /// may have left (the log and the cache), so the machine starts without any of it; all is
    /// put back on drop.
    fn require_clean_machine(&self) {
        for installed in [INSTALLED, PACKAGED, "/etc/opk", DROP_IN, SUDOERS] {
            assert!(
                !Path::new(installed).exists(),
                "{installed} exists: opkssh is installed on this machine; these tests need one without it"
            );
        }
        let _ = fs::remove_file(LOG);
        let _ = fs::remove_dir_all(CACHE);
    }

    /// Deletes the account so that the installer has to create it.
    fn delete_account(&self) {
        if account_exists(AKC_USER) {
            assert_success(&run(Command::new("userdel").arg(AKC_USER)), "userdel");
        }
        if group_exists(AKC_USER) {
            assert_success(&run(Command::new("groupdel").arg(AKC_USER)), "groupdel");
        }
    }
}

impl Drop for MachineBackup {
    fn drop(&mut self) {
        if !self.had_package && package_installed() {
            let _ = run(Command::new("dpkg").args(["-P", "opkssh"]));
        }
        if self.had_account {
            e2e::ensure_users();
        } else if account_exists(AKC_USER) {
            let _ = run(Command::new("userdel").arg(AKC_USER));
        }
        for top in touched() {
            if let Ok(metadata) = fs::symlink_metadata(&top) {
                let _ = if metadata.is_dir() {
                    fs::remove_dir_all(&top)
                } else {
                    fs::remove_file(&top)
                };
            }
        }
        for (path, entry) in &self.state {
            let made = match &entry.node {
                Node::Dir => fs::create_dir(path),
                Node::File(bytes) => fs::write(path, bytes),
                Node::Link(target) => std::os::unix::fs::symlink(target, path),
            };
            if let Err(error) = made {
                eprintln!("restore {}: {error}", path.display());
                continue;
            }
            let uid = nix::unistd::User::from_name(&entry.user)
                .ok()
                .flatten()
                .map_or_else(|| entry.user.parse().unwrap_or(0), |user| user.uid.as_raw());
            let gid = nix::unistd::Group::from_name(&entry.group)
                .ok()
                .flatten()
                .map_or_else(
                    || entry.group.parse().unwrap_or(0),
                    |group| group.gid.as_raw(),
                );
            let _ = std::os::unix::fs::lchown(path, Some(uid), Some(gid));
            if !matches!(entry.node, Node::Link(_)) {
                let _ = fs::set_permissions(path, fs::Permissions::from_mode(entry.mode));
            }
        }
        let restored = capture();
        if restored != self.state {
            eprintln!("install_server: the machine was not restored exactly");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Commands, sshd, ssh
// ---------------------------------------------------------------------------------------------

fn run(command: &mut Command) -> Output {
    e2e::run_with_timeout(command, COMMAND_TIMEOUT)
}

fn assert_success(output: &Output, what: &str) {
    assert!(
        output.status.success(),
        "{what} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Runs an opkssh binary; asserts success and returns stdout.
fn opkssh(binary: &Path, args: &[&str]) -> String {
    let output = run(Command::new(binary).args(args));
    assert_success(&output, &format!("{} {}", binary.display(), args.join(" ")));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    eprintln!("$ opkssh {}\n{stdout}", args.join(" "));
    stdout
}

fn free_port() -> u16 {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `/usr/sbin/sshd -D -e -f /etc/ssh/sshd_config` on 127.0.0.1 and a free port, with a
/// private host key and no pid file: the machine's configuration and drop-ins, nothing else.
struct SystemSshd {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl SystemSshd {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let host_key = dir.path().join("host_key");
        assert_success(
            &run(Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(&host_key)),
            "ssh-keygen",
        );
        let host_pub = fs::read_to_string(dir.path().join("host_key.pub")).unwrap();
        let host_pub: Vec<&str> = host_pub.split_whitespace().take(2).collect();
        let log_path = dir.path().join("sshd.log");
        for _attempt in 0..3 {
            let port = free_port();
            fs::write(
                dir.path().join("known_hosts"),
                format!("[127.0.0.1]:{port} {}\n", host_pub.join(" ")),
            )
            .unwrap();
            let log = fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log_path)
                .unwrap();
            let start = log.metadata().unwrap().len();
            let mut child = Command::new("/usr/sbin/sshd")
                .args(["-D", "-e", "-f", "/etc/ssh/sshd_config", "-h"])
                .arg(&host_key)
                .arg("-o")
                .arg(format!("ListenAddress=127.0.0.1:{port}"))
                .args(["-o", "PidFile=none", "-o", "LogLevel=DEBUG1"])
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap();
            let listening = format!("Server listening on 127.0.0.1 port {port}");
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let text = fs::read(&log_path).unwrap_or_default();
                let text = String::from_utf8_lossy(
                    text.get(usize::try_from(start).unwrap()..)
                        .unwrap_or_default(),
                )
                .into_owned();
                if text.contains(&listening) {
                    return Self { child, port, dir };
                }
                if let Some(status) = child.try_wait().unwrap() {
                    assert!(
                        text.contains("Address already in use"),
                        "sshd exited ({status}):\n{text}"
                    );
                    break;
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("sshd did not listen within 30 s:\n{text}");
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        panic!("sshd did not start");
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }

    /// `ssh user@127.0.0.1 echo ok` with only this key and certificate; true if it printed ok.
    fn login(&self, user: &str, key: &Path, cert: &Path) -> bool {
        let output = run(Command::new("ssh")
            .args([
                "-F",
                "none",
                "-o",
                "BatchMode=yes",
                "-o",
                "IdentitiesOnly=yes",
            ])
            .args([
                "-o",
                "IdentityAgent=none",
                "-o",
                "StrictHostKeyChecking=yes",
            ])
            .arg("-o")
            .arg(format!(
                "UserKnownHostsFile={}",
                self.dir.path().join("known_hosts").display()
            ))
            .arg("-o")
            .arg(format!("CertificateFile={}", cert.display()))
            .arg("-i")
            .arg(key)
            .arg("-p")
            .arg(self.port.to_string())
            .arg(format!("{user}@127.0.0.1"))
            .arg("echo ok"));
        let ok = output.status.success() && String::from_utf8_lossy(&output.stdout).trim() == "ok";
        if !ok {
            eprintln!(
                "ssh {user}: {} {}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        ok
    }
}

impl Drop for SystemSshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("---- sshd log ----\n{}", self.log());
        }
    }
}

/// A local issuer, a login minted for it, its providers row, and `opkssh add` for
/// [`LOGIN_USER`] with the given binary. Returns the server and the key and certificate.
fn issuer_and_policy(e2e: &E2e, binary: &Path) -> (IssuerServer, PathBuf, PathBuf) {
    let server = IssuerServer::start_custom().unwrap();
    let issuer = server.issuer().to_owned();
    let minted = mint(&issuer, CLIENT_ID, EMAIL).unwrap();
    server.set_documents(
        Minted::discovery_json(&issuer).as_bytes(),
        minted.jwks_json.as_bytes(),
    );
    // Appending keeps the installed file's mode and owner.
    fs::OpenOptions::new()
        .append(true)
        .open("/etc/opk/providers")
        .unwrap()
        .write_all(format!("{issuer} {CLIENT_ID} 24h\n").as_bytes())
        .unwrap();
    let out = opkssh(binary, &["add", LOGIN_USER, EMAIL, &issuer]);
    assert!(
        out.contains("Successfully added new policy to /etc/opk/auth_id"),
        "{out}"
    );
    let key = e2e::write_private_key(
        &e2e.dir().join("id_ecdsa"),
        private_key_to_openssh(&minted.user_key).unwrap().as_bytes(),
    );
    let cert = e2e.dir().join("id_ecdsa-cert.pub");
    fs::write(&cert, &minted.cert_line).unwrap();
    (server, key, cert)
}

fn assert_entry(path: &str, mode: u32, user: &str, group: &str) -> Entry {
    let mut state = State::new();
    capture_into(Path::new(path), &mut state);
    let entry = state
        .remove(Path::new(path))
        .unwrap_or_else(|| panic!("{path} is missing"));
    assert_eq!(
        (entry.mode, entry.user.as_str(), entry.group.as_str()),
        (mode, user, group),
        "{path}"
    );
    entry
}

fn text_of(entry: &Entry) -> String {
    match &entry.node {
        Node::File(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        other => panic!("not a file: {other:?}"),
    }
}

/// The /etc/opk tree, log and cache as Go's installer (and ours) make them.
fn assert_server_layout(binary: &str) {
    assert_entry("/etc/opk", 0o750, "root", AKC_USER);
    assert_entry("/etc/opk/policy.d", 0o750, "root", AKC_USER);
    let providers = assert_entry("/etc/opk/providers", 0o640, "root", AKC_USER);
    let providers = text_of(&providers);
    assert_eq!(providers.lines().count(), 4, "{providers}");
    assert!(
        providers.starts_with("https://accounts.google.com "),
        "{providers}"
    );
    for empty in ["/etc/opk/auth_id", "/etc/opk/config.yml"] {
        assert_eq!(text_of(&assert_entry(empty, 0o640, "root", AKC_USER)), "");
    }
    assert_entry(LOG, 0o660, "root", AKC_USER);
    assert_entry(CACHE, 0o700, AKC_USER, AKC_USER);
    let drop_in = text_of(&assert_entry(DROP_IN, 0o644, "root", "root"));
    assert!(
        drop_in.ends_with(&format!(
            "AuthorizedKeysCommand {binary} verify %u %k %t\nAuthorizedKeysCommandUser {AKC_USER}\n"
        )),
        "{drop_in}"
    );
    let sudoers = text_of(&assert_entry(SUDOERS, 0o440, "root", "root"));
    assert!(
        sudoers.contains(&format!(
            "\n{AKC_USER} ALL=(ALL) NOPASSWD: {binary} readhome *\n"
        )),
        "{sudoers}"
    );
    // sudo accepts the whole configuration with our file in it, and so does sshd.
    assert_success(&run(Command::new("visudo").arg("-c")), "visudo -c");
    assert_success(
        &run(Command::new("/usr/sbin/sshd").args(["-t", "-f", "/etc/ssh/sshd_config"])),
        "sshd -t",
    );
}

fn require_sudo() {
    assert!(
        Path::new("/usr/bin/sudo").is_file() && Path::new("/usr/sbin/visudo").is_file(),
        "sudo is needed for the home-policy rule (apt-get install sudo; .ci/run installs it)"
    );
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[test]
fn install_server_then_ssh_then_uninstall_server() {
    let Some(e2e) = E2e::require() else { return };
    require_sudo();
    let backup = MachineBackup::take();
    backup.require_clean_machine();
    backup.delete_account();
    let before = capture();
    let opkssh_built = e2e::target_binary("opkssh");

    // A dry run lists the changes and makes none.
    let out = opkssh(
        &opkssh_built,
        &["install-server", "--dry-run", "--no-sshd-restart"],
    );
    for expected in [
        "change(s) would be made, nothing was changed",
        "create group opksshuser (groupadd --system opksshuser)",
        "create user opksshuser",
        "write /usr/local/bin/opkssh (new file, mode 0755, root:opksshuser",
        "create directory /etc/opk (mode 0750, root:opksshuser)",
        "write /etc/ssh/sshd_config.d/60-opk-ssh.conf (new file, mode 0644, root:root)",
        "+AuthorizedKeysCommand /usr/local/bin/opkssh verify %u %k %t",
        "+opksshuser ALL=(ALL) NOPASSWD: /usr/local/bin/opkssh readhome *",
    ] {
        assert!(out.contains(expected), "dry run lacks {expected:?}:\n{out}");
    }
    assert_eq!(capture(), before, "--dry-run changed files");
    assert!(!account_exists(AKC_USER), "--dry-run created the account");

    // The real install: the account, the binary and the layout.
    opkssh(&opkssh_built, &["install-server", "--no-sshd-restart"]);
    let passwd =
        String::from_utf8_lossy(&run(Command::new("getent").args(["passwd", AKC_USER])).stdout)
            .into_owned();
    let fields: Vec<&str> = passwd.trim().split(':').collect();
    assert!(fields[6].ends_with("nologin"), "{passwd}");
    assert!(
        fields[2].parse::<u32>().unwrap() < 1000,
        "not a system uid: {passwd}"
    );
    assert_eq!(fields[3], e2e::group_id(AKC_USER).to_string(), "{passwd}");
    let binary = assert_entry(INSTALLED, 0o755, "root", AKC_USER);
    assert!(binary.node == Node::File(fs::read(&opkssh_built).unwrap()));
    assert_server_layout(INSTALLED);
    assert!(
        fs::read_to_string(LOG)
            .unwrap()
            .contains("Successfully installed opkssh")
    );

    // Again: nothing to do, nothing touched.
    let installed = capture();
    let out = opkssh(&opkssh_built, &["install-server", "--no-sshd-restart"]);
    assert!(
        out.contains("already installed as asked, nothing changed"),
        "{out}"
    );
    assert_eq!(capture(), installed);

    // Policy, written with the installed binary: the system file for LOGIN_USER, a home file
    // (read through sudo opkssh readhome) for LOGIN_USER2.
    let (_server, key, cert) = issuer_and_policy(&e2e, Path::new(INSTALLED));
    let home_opk = home_policy_dir(LOGIN_USER2);
    let (uid, gid) = e2e::user_ids(LOGIN_USER2);
    fs::create_dir_all(&home_opk).unwrap();
    std::os::unix::fs::chown(&home_opk, Some(uid), Some(gid)).unwrap();
    fs::set_permissions(&home_opk, fs::Permissions::from_mode(0o700)).unwrap();
    let issuer = _server.issuer().to_owned();
    let home_auth_id = home_opk.join("auth_id");
    fs::write(&home_auth_id, format!("{LOGIN_USER2} {EMAIL} {issuer}\n")).unwrap();
    std::os::unix::fs::chown(&home_auth_id, Some(uid), Some(gid)).unwrap();
    fs::set_permissions(&home_auth_id, fs::Permissions::from_mode(0o600)).unwrap();

    // sshd with the system configuration lets both in.
    let sshd = SystemSshd::start();
    assert!(sshd.login(LOGIN_USER, &key, &cert), "{}", sshd.log());
    assert!(sshd.login(LOGIN_USER2, &key, &cert), "{}", sshd.log());
    // The home policy really comes through the sudoers rule.
    let parked = e2e.dir().join("sudoers-parked");
    fs::rename(SUDOERS, &parked).unwrap();
    assert!(
        !sshd.login(LOGIN_USER2, &key, &cert),
        "home policy read without sudo"
    );
    fs::rename(&parked, SUDOERS).unwrap();
    assert!(sshd.login(LOGIN_USER2, &key, &cert), "{}", sshd.log());
    drop(sshd);

    // Uninstall: a dry run first, then everything it added goes, the account too.
    let with_policy = capture();
    let out = opkssh(
        &opkssh_built,
        &[
            "uninstall-server",
            "--dry-run",
            "--purge",
            "--remove-user",
            "--no-sshd-restart",
        ],
    );
    for expected in [
        "remove /etc/ssh/sshd_config.d/60-opk-ssh.conf",
        "remove /etc/sudoers.d/opkssh",
        "remove /usr/local/bin/opkssh",
        "remove /etc/opk and everything in it",
        "delete user opksshuser (userdel opksshuser)",
    ] {
        assert!(out.contains(expected), "dry run lacks {expected:?}:\n{out}");
    }
    assert_eq!(capture(), with_policy, "uninstall --dry-run changed files");
    opkssh(
        Path::new(INSTALLED),
        &[
            "uninstall-server",
            "--purge",
            "--remove-user",
            "--no-sshd-restart",
        ],
    );
    assert!(!account_exists(AKC_USER) && !group_exists(AKC_USER));
    fs::remove_dir_all(&home_opk).unwrap();
    assert_eq!(
        capture(),
        before,
        "uninstall-server did not restore the machine"
    );
    let out = opkssh(
        &opkssh_built,
        &["uninstall-server", "--purge", "--no-sshd-restart"],
    );
    assert!(out.contains("nothing changed"), "{out}");

    // A fresh sshd with the restored configuration no longer asks opkssh.
    let sshd = SystemSshd::start();
    assert!(!sshd.login(LOGIN_USER, &key, &cert), "login still works");
    drop(sshd);
    drop(backup);
    drop(e2e);
}

/// `sshd -T` for a connection as `user`: the `AuthorizedKeysCommand` sshd would run for it.
fn effective_command(user: &str) -> String {
    let output = run(Command::new("/usr/sbin/sshd").args([
        "-T",
        "-f",
        "/etc/ssh/sshd_config",
        "-C",
        &format!("user={user},host=localhost,addr=127.0.0.1"),
    ]));
    assert_success(&output, "sshd -T");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|line| line.strip_prefix("authorizedkeyscommand "))
        .unwrap_or("none")
        .to_owned()
}

/// Issue 21: EC2 Instance Connect's lines, as its drop-in (CentOS Stream 9, RHEL 9) and inside a
/// `Match` block of sshd_config, on this machine's real sshd configuration. `install-server`
/// keeps the command as `chain_authorized_keys_command`, the real `sshd -t` accepts what it
/// wrote, and the real `sshd -T` shows opkssh in force for a connection the block matches and
/// one it does not; after `uninstall-server` the files are back byte for byte and sshd runs
/// EC2 Instance Connect again (the Match block's line included).
#[test]
fn install_server_chains_ec2_instance_connect_on_the_real_sshd() {
    let Some(e2e) = E2e::require() else { return };
    let backup = MachineBackup::take();
    backup.require_clean_machine();
    let opkssh_built = e2e::target_binary("opkssh");
    let eic = "/opt/aws/bin/eic_run_authorized_keys %u %f";
    let lines =
        format!("AuthorizedKeysCommand {eic}\nAuthorizedKeysCommandUser ec2-instance-connect\n");
    let eic_drop_in = "/etc/ssh/sshd_config.d/60-ec2-instance-connect.conf";
    let main = fs::read_to_string("/etc/ssh/sshd_config").unwrap();
    assert!(
        main.contains("Include /etc/ssh/sshd_config.d/*.conf"),
        "this test needs Debian's sshd_config, which includes the drop-ins"
    );
    let with_block = format!("{main}Match User ec2-user\n{lines}");
    fs::write("/etc/ssh/sshd_config", &with_block).unwrap();
    fs::write(eic_drop_in, &lines).unwrap();
    let before = capture();
    assert_eq!(effective_command("ec2-user"), eic);
    assert_eq!(effective_command(LOGIN_USER), eic);

    let out = opkssh(
        &opkssh_built,
        &["install-server", "--no-sshd-restart", "--no-home-policy"],
    );
    for expected in [
        format!(
            "sshd_config.d/60-ec2-instance-connect.conf line 1: `AuthorizedKeysCommand {eic}` is kept"
        ),
        "(in the block of `Match User ec2-user`, line ".to_owned(),
        format!(
            "sshd ran `{eic}` as ec2-instance-connect (AuthorizedKeysCommandUser); chained, it runs as {AKC_USER}"
        ),
    ] {
        assert!(
            out.contains(&expected),
            "install-server lacks {expected:?}:\n{out}"
        );
    }
    assert_eq!(
        fs::read_to_string("/etc/opk/config.yml").unwrap(),
        format!(
            "# opkssh install-server kept the AuthorizedKeysCommand it replaced in sshd here; opkssh uninstall-server removes the next line\nchain_authorized_keys_command: \"{eic}\"\n"
        )
    );
    assert_success(
        &run(Command::new("/usr/sbin/sshd").args(["-t", "-f", "/etc/ssh/sshd_config"])),
        "sshd -t",
    );
    let ours = format!("{INSTALLED} verify %u %k %t");
    assert_eq!(effective_command("ec2-user"), ours);
    assert_eq!(effective_command(LOGIN_USER), ours);
    assert_eq!(fs::read_to_string(eic_drop_in).unwrap(), lines);

    opkssh(
        Path::new(INSTALLED),
        &["uninstall-server", "--no-sshd-restart"],
    );
    assert_eq!(
        fs::read_to_string("/etc/ssh/sshd_config").unwrap(),
        with_block
    );
    assert_eq!(fs::read_to_string("/etc/opk/config.yml").unwrap(), "");
    assert_eq!(effective_command("ec2-user"), eic);
    assert_eq!(effective_command(LOGIN_USER), eic);
    let after = capture();
    for file in [
        "/etc/ssh/sshd_config",
        "/etc/ssh/sshd_config.d",
        eic_drop_in,
    ] {
        assert_eq!(
            after.get(Path::new(file)),
            before.get(Path::new(file)),
            "{file}"
        );
    }
    drop(backup);
    drop(e2e);
}

#[test]
fn debian_package_installs_the_server_layout_and_purges_clean() {
    let Some(e2e) = E2e::require() else { return };
    let Some(deb) = std::env::var_os("OPKSSH_DEB") else {
        eprintln!(
            "SKIP deb: OPKSSH_DEB is not set (.ci/run builds the package with debian/build-deb and sets it)"
        );
        return;
    };
    require_sudo();
    let backup = MachineBackup::take();
    assert!(
        !backup.had_package,
        "the opkssh package is already installed"
    );
    backup.require_clean_machine();
    let before = capture();

    let out = run(Command::new("dpkg").arg("-i").arg(&deb));
    assert_success(&out, "dpkg -i");
    eprintln!("{}", String::from_utf8_lossy(&out.stdout));
    assert!(package_installed());
    assert_entry(PACKAGED, 0o755, "root", "root");
    let version = opkssh(Path::new(PACKAGED), &["--version"]);
    assert_eq!(
        version.trim(),
        format!("opkssh version {}", env!("CARGO_PKG_VERSION"))
    );
    assert!(!Path::new(INSTALLED).exists());
    let conffiles = String::from_utf8_lossy(
        &run(Command::new("dpkg-query").args(["-W", "-f=${Conffiles}", "opkssh"])).stdout,
    )
    .into_owned();
    for conffile in [
        "/etc/opk/providers",
        "/etc/opk/auth_id",
        "/etc/opk/config.yml",
    ] {
        assert!(
            conffiles.contains(conffile),
            "{conffile} is not a conffile: {conffiles}"
        );
    }
    assert_server_layout(PACKAGED);
    // Manual pages and shell completions, generated from the binary when the package was built,
    // and the agent's systemd user unit and launchd example.
    const DOCS: [&str; 8] = [
        "/usr/share/selinux/packages/opkssh.pp",
        "/usr/lib/systemd/user/opkssh-agent.service",
        "/usr/share/doc/opkssh/examples/dev.openpubkey.opkssh-agent.plist",
        "/usr/share/man/man1/opkssh.1.gz",
        "/usr/share/man/man1/opkssh-install-server.1.gz",
        "/usr/share/bash-completion/completions/opkssh",
        "/usr/share/zsh/vendor-completions/_opkssh",
        "/usr/share/fish/vendor_completions.d/opkssh.fish",
    ];
    for path in DOCS {
        assert!(Path::new(path).is_file(), "{path} is not in the package");
    }

    // A login through the packaged binary.
    let (_server, key, cert) = issuer_and_policy(&e2e, Path::new(PACKAGED));
    let sshd = SystemSshd::start();
    assert!(sshd.login(LOGIN_USER, &key, &cert), "{}", sshd.log());
    drop(sshd);

    // Purge: the binary, the drop-in, the sudoers rule, /etc/opk, the log and the cache go;
    // the account stays (as Debian packages keep the system accounts they made).
    assert_success(&run(Command::new("dpkg").args(["-P", "opkssh"])), "dpkg -P");
    assert!(!package_installed());
    assert!(account_exists(AKC_USER));
    assert_eq!(capture(), before, "dpkg -P did not restore the machine");
    for path in DOCS {
        assert!(!Path::new(path).exists(), "{path} stayed after dpkg -P");
    }
    drop(backup);
    drop(e2e);
}

// ---------------------------------------------------------------------------------------------
// The RPM package (no machine changes: it is installed into a scratch root)
// ---------------------------------------------------------------------------------------------

/// Files and modes of the RPM, as `rpm -i --root` lays them out, keyed by path.
fn tree_modes(root: &Path, skip: &Path) -> BTreeMap<String, u32> {
    fn walk(path: &Path, root: &Path, skip: &Path, out: &mut BTreeMap<String, u32>) {
        for entry in fs::read_dir(path).unwrap() {
            let path = entry.unwrap().path();
            if path == skip {
                continue;
            }
            let metadata = fs::symlink_metadata(&path).unwrap();
            if metadata.is_dir() {
                walk(&path, root, skip, out);
            } else {
                let name = format!("/{}", path.strip_prefix(root).unwrap().display());
                out.insert(name, metadata.mode() & 0o7777);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, skip, &mut out);
    out
}

/// Regular files and modes in a .deb (`dpkg-deb -c`), keyed by path.
fn deb_modes(deb: &Path) -> BTreeMap<String, u32> {
    let out = run(Command::new("dpkg-deb").arg("-c").arg(deb));
    assert_success(&out, "dpkg-deb -c");
    let mut modes = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(perms), Some(path)) = (fields.first(), fields.last()) else {
            continue;
        };
        if !perms.starts_with('-') {
            continue;
        }
        let mode = perms.as_bytes()[1..].chunks(3).fold(0, |mode, rwx| {
            let bits = u32::from(rwx[0] == b'r') << 2
                | u32::from(rwx[1] == b'w') << 1
                | u32::from(rwx[2] == b'x');
            mode << 3 | bits
        });
        modes.insert(path.trim_start_matches('.').to_owned(), mode);
    }
    modes
}

/// The body of one scriptlet in `rpm -qp --scripts` output: the lines after its
/// `<name> scriptlet...:` header, up to the next header.
fn scriptlet(scripts: &str, name: &str) -> String {
    let is_header = |line: &str| {
        line.split_once(" scriptlet")
            .is_some_and(|(word, rest)| !word.contains(' ') && rest.ends_with(':'))
    };
    let mut lines = scripts
        .lines()
        .skip_while(|line| !(line.starts_with(&format!("{name} scriptlet")) && is_header(line)));
    assert!(lines.next().is_some(), "no {name} scriptlet in:\n{scripts}");
    lines
        .take_while(|line| !is_header(line))
        .map(|line| format!("{line}\n"))
        .collect()
}

#[test]
fn rpm_package_has_the_deb_files_config_and_scriptlets() {
    let Some(rpm) = std::env::var_os("OPKSSH_RPM") else {
        eprintln!(
            "SKIP rpm: OPKSSH_RPM is not set (.ci/run builds the package with rpm/build-rpm and sets it)"
        );
        return;
    };
    let rpm = PathBuf::from(rpm);
    let arch = run(Command::new("rpm").args(["--eval", "%{_arch}"]));
    assert_success(&arch, "rpm --eval");
    assert_eq!(
        rpm.file_name().unwrap().to_string_lossy(),
        format!(
            "opkssh-{}-1.{}.rpm",
            env!("CARGO_PKG_VERSION"),
            String::from_utf8_lossy(&arch.stdout).trim()
        )
    );

    // The file list, with /etc/opk as %config(noreplace) ("cn") and nothing else config.
    let out = run(Command::new("rpm")
        .args(["-qp", "--qf", "[%{FILENAMES} %{FILEFLAGS:fflags}\\n]"])
        .arg(&rpm));
    assert_success(&out, "rpm -qp --qf");
    let listing = String::from_utf8_lossy(&out.stdout).into_owned();
    for path in [
        "/etc/opk/providers",
        "/etc/opk/auth_id",
        "/etc/opk/config.yml",
    ] {
        assert!(
            listing.lines().any(|line| line == format!("{path} cn")),
            "{path} is not %config(noreplace):\n{listing}"
        );
    }
    for path in [
        "/usr/bin/opkssh",
        "/usr/share/man/man1/opkssh.1.gz",
        "/usr/share/man/man1/opkssh-install-server.1.gz",
        "/usr/share/bash-completion/completions/opkssh",
        "/usr/share/zsh/site-functions/_opkssh",
        "/usr/share/fish/vendor_completions.d/opkssh.fish",
        "/usr/share/selinux/packages/opkssh.pp",
        "/usr/lib/systemd/user/opkssh-agent.service",
        "/usr/share/doc/opkssh/examples/dev.openpubkey.opkssh-agent.plist",
    ] {
        assert!(
            listing
                .lines()
                .any(|line| line.split(' ').next() == Some(path)),
            "{path} is not in the package:\n{listing}"
        );
    }
    assert_eq!(
        listing.lines().filter(|line| line.ends_with(" cn")).count(),
        3,
        "{listing}"
    );
    let requires = run(Command::new("rpm").args(["-qp", "--requires"]).arg(&rpm));
    assert!(
        String::from_utf8_lossy(&requires.stdout)
            .lines()
            .any(|line| line == "openssh-server")
    );

    // The scriptlets, run with a recorder in place of /usr/bin/opkssh: post-install sets the
    // server up on install and upgrade; pre-uninstall takes it down on erase ($1 = 0) only.
    let out = run(Command::new("rpm").args(["-qp", "--scripts"]).arg(&rpm));
    assert_success(&out, "rpm -qp --scripts");
    let scripts = String::from_utf8_lossy(&out.stdout).into_owned();
    let work = tempfile::tempdir().unwrap();
    let calls = work.path().join("calls");
    let recorder = work.path().join("opkssh");
    fs::write(
        &recorder,
        format!("#!/bin/sh\necho \"$*\" >>{}\n", calls.display()),
    )
    .unwrap();
    fs::set_permissions(&recorder, fs::Permissions::from_mode(0o755)).unwrap();
    let run_scriptlet = |name: &str, arg: &str| -> String {
        let _ = fs::remove_file(&calls);
        let body = scriptlet(&scripts, name);
        assert!(body.contains("/usr/bin/opkssh "), "{body}");
        let body = body.replace("/usr/bin/opkssh ", &format!("{} ", recorder.display()));
        let out = run(Command::new("sh").args(["-e", "-c", &body, "scriptlet", arg]));
        assert_success(&out, name);
        fs::read_to_string(&calls).unwrap_or_default()
    };
    assert_eq!(
        run_scriptlet("postinstall", "1"),
        "install-server --from-package\n"
    );
    assert_eq!(
        run_scriptlet("postinstall", "2"),
        "install-server --from-package\n"
    );
    assert_eq!(
        run_scriptlet("preuninstall", "0"),
        "uninstall-server --from-package\n"
    );
    assert_eq!(
        run_scriptlet("preuninstall", "1"),
        "",
        "an upgrade took the server down"
    );

    // Installed into a scratch root: the binary runs, the SELinux module is a policy package,
    // and every file has the mode the .deb gives it.
    let root = tempfile::tempdir().unwrap();
    let out = run(Command::new("rpm")
        .arg("-i")
        .arg("--root")
        .arg(root.path())
        .args(["--dbpath", "/rpmdb", "--nodeps", "--noscripts"])
        .arg(&rpm));
    assert_success(&out, "rpm -i --root");
    let version = opkssh(&root.path().join("usr/bin/opkssh"), &["--version"]);
    assert_eq!(
        version.trim(),
        format!("opkssh version {}", env!("CARGO_PKG_VERSION"))
    );
    let module = fs::read(root.path().join("usr/share/selinux/packages/opkssh.pp")).unwrap();
    assert_eq!(
        module[..4],
        [0x8f, 0xff, 0x7c, 0xf9],
        "not a policy package"
    );
    let mut rpm_modes = tree_modes(root.path(), &root.path().join("rpmdb"));
    assert_eq!(rpm_modes.get("/usr/bin/opkssh"), Some(&0o755));
    assert_eq!(rpm_modes.get("/etc/opk/providers"), Some(&0o640));
    match std::env::var_os("OPKSSH_DEB") {
        None => eprintln!("SKIP rpm/deb comparison: OPKSSH_DEB is not set"),
        Some(deb) => {
            // zsh looks for completions in a distribution-specific folder.
            let zsh = rpm_modes.remove("/usr/share/zsh/site-functions/_opkssh");
            rpm_modes.insert(
                "/usr/share/zsh/vendor-completions/_opkssh".into(),
                zsh.unwrap(),
            );
            let mut deb_modes = deb_modes(Path::new(&deb));
            // dpkg's own bookkeeping, not a file of ours.
            deb_modes.remove("/usr/share/doc/opkssh/changelog.Debian.gz");
            deb_modes.remove("/usr/share/doc/opkssh/copyright");
            assert_eq!(rpm_modes, deb_modes, "the rpm and the deb differ");
        }
    }
}
