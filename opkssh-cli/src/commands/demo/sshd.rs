//! `opkssh demo --sshd`: a private sshd on 127.0.0.1 whose AuthorizedKeysCommand is this
//! binary's `opkssh verify` over the demo's temporary policy, and `ssh … true` through it.
//!
//! sshd only runs an AuthorizedKeysCommand from a root-owned path without group- or
//! world-writable components (so never from /tmp or a build folder): if this binary's own
//! path does not qualify, it is copied to `/usr/local/libexec/opkssh-demo-<random>/opkssh`
//! for the run and removed afterwards. The command runs as root here, because the demo's
//! policy files sit in the demo's private (root, 0700) folder.

use crate::error::CliError;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SSHD: &str = "/usr/sbin/sshd";

fn fail(message: impl std::fmt::Display) -> CliError {
    CliError::Usage(message.to_string())
}

/// Whether sshd would accept `path` as an AuthorizedKeysCommand: every component root-owned
/// and not writable by group or others.
fn root_owned_path(path: &Path) -> bool {
    path.ancestors().all(|component| {
        component.as_os_str().is_empty()
            || std::fs::metadata(component)
                .ok()
                .and_then(|meta| opk_os::file::attributes(&meta).ok())
                .is_some_and(|attributes| attributes.uid == 0 && attributes.mode & 0o022 == 0)
    })
}

/// A copy of this binary sshd accepts, removed on drop when it is a copy.
struct AkcBinary {
    path: PathBuf,
    copied_dir: Option<PathBuf>,
}

impl Drop for AkcBinary {
    fn drop(&mut self) {
        if let Some(dir) = &self.copied_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn akc_binary() -> Result<AkcBinary, CliError> {
    let exe = std::env::current_exe()
        .and_then(std::fs::canonicalize)
        .map_err(|error| fail(format!("finding this binary: {error}")))?;
    if root_owned_path(&exe) {
        return Ok(AkcBinary {
            path: exe,
            copied_dir: None,
        });
    }
    let mut random = [0_u8; 6];
    rand_core::Rng::fill_bytes(&mut rand_core::UnwrapErr(getrandom::SysRng), &mut random);
    let dir = Path::new("/usr/local/libexec").join(format!("opkssh-demo-{}", hex::encode(random)));
    std::fs::create_dir_all(&dir).map_err(|error| fail(format!("{}: {error}", dir.display())))?;
    opk_os::file::set_mode(&dir, 0o755).map_err(|error| fail(error.to_string()))?;
    let guard = AkcBinary {
        path: dir.join("opkssh"),
        copied_dir: Some(dir),
    };
    std::fs::copy(&exe, &guard.path)
        .map_err(|error| fail(format!("copying {}: {error}", exe.display())))?;
    opk_os::file::set_mode(&guard.path, 0o755).map_err(|error| fail(error.to_string()))?;
    if !root_owned_path(&guard.path) {
        return Err(fail(format!(
            "{} is not on a root-owned path sshd would accept",
            guard.path.display()
        )));
    }
    Ok(guard)
}

struct Sshd(Child);

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> Result<u16, CliError> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .map_err(|error| fail(error.to_string()))
}

pub(crate) fn run(
    work: &Path,
    policy_dir: &Path,
    principal: &str,
    key_path: &Path,
    cert_path: &Path,
) -> Result<(), CliError> {
    if !opk_os::account::is_root() {
        return Err(fail("--sshd needs root (sshd must run as root)"));
    }
    if !Path::new(SSHD).exists() || Command::new("ssh").arg("-V").output().is_err() {
        return Err(fail(
            "--sshd needs OpenSSH: install openssh-server and openssh-client",
        ));
    }
    let binary = akc_binary()?;
    let host_key = work.join("host_ed25519");
    let keygen = Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "opkssh-demo-host",
            "-f",
        ])
        .arg(&host_key)
        .output()
        .map_err(|error| fail(format!("ssh-keygen: {error}")))?;
    if !keygen.status.success() {
        return Err(fail("ssh-keygen could not make a host key"));
    }
    let host_pub = std::fs::read_to_string(work.join("host_ed25519.pub"))
        .map_err(|error| fail(error.to_string()))?;
    let host_pub: Vec<&str> = host_pub.split_whitespace().take(2).collect();
    // sshd's privilege-separation directory (a tmpfs /run loses it on reboot).
    if !Path::new("/run/sshd").is_dir() {
        std::fs::create_dir_all("/run/sshd").map_err(|error| fail(error.to_string()))?;
        let _ = opk_os::file::set_mode(Path::new("/run/sshd"), 0o755);
    }
    let port = free_port()?;
    let command = format!(
        "{} verify --config-dir {} --log-file {} --cache-dir {} %u %k %t",
        binary.path.display(),
        policy_dir.display(),
        work.join("opkssh.log").display(),
        work.join("cache").display()
    );
    let config = format!(
        "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nPidFile none\nUsePAM no\n\
         PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n\
         AuthorizedKeysFile none\nAuthorizedKeysCommand {command}\n\
         AuthorizedKeysCommandUser root\nPermitRootLogin prohibit-password\nLoginGraceTime 30\n",
        host_key.display()
    );
    let config_path = work.join("sshd_config");
    std::fs::write(&config_path, &config).map_err(|error| fail(error.to_string()))?;
    let known_hosts = work.join("known_hosts");
    std::fs::write(
        &known_hosts,
        format!("[127.0.0.1]:{port} {}\n", host_pub.join(" ")),
    )
    .map_err(|error| fail(error.to_string()))?;
    let log_path = work.join("sshd.log");
    let log = std::fs::File::create(&log_path).map_err(|error| fail(error.to_string()))?;
    let child = Command::new(SSHD)
        .args(["-D", "-e", "-f"])
        .arg(&config_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(|error| fail(format!("starting sshd: {error}")))?;
    let mut sshd = Sshd(child);
    let deadline = Instant::now() + Duration::from_secs(15);
    let read_log = || {
        let mut text = String::new();
        if let Ok(mut file) = std::fs::File::open(&log_path) {
            let _ = file.read_to_string(&mut text);
        }
        text
    };
    loop {
        if read_log().contains("Server listening on") {
            break;
        }
        if let Ok(Some(status)) = sshd.0.try_wait() {
            return Err(fail(format!("sshd exited ({status}):\n{}", read_log())));
        }
        if Instant::now() > deadline {
            return Err(fail(format!("sshd did not start:\n{}", read_log())));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    println!("7. sshd on 127.0.0.1:{port} with AuthorizedKeysCommand {command}");
    let started = Instant::now();
    let ssh = Command::new("ssh")
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
        .arg(format!("UserKnownHostsFile={}", known_hosts.display()))
        .arg("-i")
        .arg(key_path)
        .arg("-o")
        .arg(format!("CertificateFile={}", cert_path.display()))
        .arg("-p")
        .arg(port.to_string())
        .arg(format!("{principal}@127.0.0.1"))
        .arg("true")
        .stdin(Stdio::null())
        .output()
        .map_err(|error| fail(format!("running ssh: {error}")))?;
    println!(
        "   ssh -i {} -o CertificateFile={} -p {port} {principal}@127.0.0.1 true: exit {} ({} ms)",
        key_path.display(),
        cert_path.display(),
        ssh.status.code().unwrap_or(-1),
        started.elapsed().as_millis()
    );
    if !ssh.status.success() {
        let log = read_log();
        let tail: Vec<&str> = log.lines().rev().take(15).collect();
        return Err(fail(format!(
            "ssh was not let in: {}\nsshd log (last lines):\n{}",
            String::from_utf8_lossy(&ssh.stderr).trim(),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        )));
    }
    let accepted = read_log()
        .lines()
        .find(|line| line.contains("Accepted publickey"))
        .map(str::to_owned);
    if let Some(line) = accepted {
        println!("   sshd: {}", line.trim());
    }
    Ok(())
}
