//! `opkssh login --agent` / `--agent-only` and `opkssh logout` with OpenSSH's real `ssh-agent`:
//! the real binary logs in against the real OpenID provider, the certificate lands in the
//! agent with the ID token's remaining lifetime, `ssh` gets into a real sshd (whose
//! AuthorizedKeysCommand is our `opkssh verify`) with nothing but the agent, a later login
//! evicts dead and superseded opkssh certificates and nothing else, and logout empties the
//! agent of them. A plain `opkssh login` adds to the agent too when `SSH_AUTH_SOCK` is set (best
//! effort, with `--lifetime` or `agent_lifetime`), and `--no-agent` leaves the agent alone.
//! Under Windows' agent rules (`OPKSSH_AGENT_RULES=windows`: Win32-OpenSSH's agent refuses
//! lifetimes) the key goes in without one, the login says what removes it, the next login
//! evicts it, and an agent that refuses the key leaves a login that says no agent was used.
//!
//! Gated like the harness: without `OPKSSH_E2E=1` every test prints `SKIP e2e: …` and passes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)] // test code: a panic is a failure

use opk_core::sshcert::OpksshCertificate;
use opkssh_tests::e2e::{
    self, E2e, LOGIN_USER, Op, SSH_TIMEOUT, VerifyServer, http_login, run_with_timeout,
};
use opkssh_tests::login::{LoginProcess, LoginRun, login_through_op};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A scope list that gets email and groups from the test OP.
const SCOPES: &str = "openid profile email groups offline_access";

fn provider_spec(op: &Op) -> String {
    format!("{},{},,{SCOPES}", op.issuer(), op.client_id())
}

/// OpenSSH's `ssh-agent -d -a <socket>`: in the foreground, its debug log (which names each
/// added identity's lifetime) in a file. Killed and reaped on drop.
struct SshAgent {
    child: Child,
    socket: PathBuf,
    log: PathBuf,
}

impl SshAgent {
    fn start(dir: &Path) -> SshAgent {
        let socket = dir.join("agent.sock");
        let log = dir.join("agent.log");
        let child = e2e::start_ssh_agent(&socket, "-d", |command| {
            command.stderr(std::fs::File::create(&log).unwrap());
        });
        SshAgent { child, socket, log }
    }

    fn ssh_add(&self, args: &[&str]) -> Output {
        run_with_timeout(
            Command::new("ssh-add")
                .args(args)
                .env("SSH_AUTH_SOCK", &self.socket),
            SSH_TIMEOUT,
        )
    }

    /// `ssh-add -L`: one line per identity, `<type> <base64> <comment>`.
    fn listed(&self) -> Vec<String> {
        String::from_utf8(self.ssh_add(&["-L"]).stdout)
            .unwrap()
            .lines()
            .filter(|line| !line.starts_with("The agent has no identities"))
            .map(str::to_owned)
            .collect()
    }

    /// The listed opkssh certificates with their comments.
    fn opkssh_certificates(&self) -> Vec<(OpksshCertificate, String)> {
        self.listed()
            .iter()
            .filter_map(|line| {
                let certificate = OpksshCertificate::from_line(line).ok()?;
                let comment = certificate.comment().to_owned();
                Some((certificate, comment))
            })
            .collect()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A fresh Ed25519 key of the user's own (not opkssh's), added with `ssh-add`; returns its
    /// public key line.
    fn add_own_key(&self, dir: &Path) -> String {
        let key = dir.join("own_key");
        let keygen = run_with_timeout(
            Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-C", "me@laptop", "-f"])
                .arg(&key),
            SSH_TIMEOUT,
        );
        assert!(keygen.status.success(), "{keygen:?}");
        let added = self.ssh_add(&[key.to_str().unwrap()]);
        assert!(added.status.success(), "{added:?}");
        std::fs::read_to_string(key.with_extension("pub"))
            .unwrap()
            .trim_end()
            .to_owned()
    }
}

impl Drop for SshAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A browser login through the OP's pages as `who`, with `SSH_AUTH_SOCK` set to `agent` (or
/// unset); it must succeed.
fn login(home: &Path, agent: Option<&Path>, args: &[&str], who: &str) -> LoginRun {
    let env: Vec<(&str, &OsStr)> = agent
        .map(|socket| ("SSH_AUTH_SOCK", socket.as_os_str()))
        .into_iter()
        .collect();
    let run = login_through_op(home, args, &env, who);
    run.assert_success();
    run
}

/// The `N` of `Added opkssh certificate to ssh-agent: <comment> (lifetime N s)`.
fn printed_lifetime(run: &LoginRun, comment: &str) -> u32 {
    let prefix = format!("Added opkssh certificate to ssh-agent: {comment} (lifetime ");
    run.stdout
        .lines()
        .find_map(|line| {
            line.strip_prefix(&prefix)?
                .strip_suffix(" s)")?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no {prefix:?} line in:\n{}", run.stdout))
}

/// sshd with our verify as AuthorizedKeysCommand, the OP as provider and one `auth_id` row.
struct Server(VerifyServer);

impl Server {
    fn start(e2e: &E2e, op: &Op, email: &str) -> Server {
        Server(VerifyServer::start(
            e2e,
            &format!("{} {} oidc\n", op.issuer(), op.client_id()),
            &format!("{LOGIN_USER} {email} {}\n", op.issuer()),
        ))
    }

    fn verify_log(&self) -> String {
        self.0.verify_log()
    }

    /// `ssh` with the agent as its only source of keys: no identity or certificate file (the
    /// one `-i` names does not exist, which also keeps ssh off the default `~/.ssh/id_*`).
    fn ssh_with_agent(&self, agent: &SshAgent, home: &Path) -> Output {
        let mut command = Command::new("ssh");
        command
            .args(["-F", "none"])
            .args(["-o", "BatchMode=yes"])
            .args(["-o", "IdentitiesOnly=no"])
            .arg("-o")
            .arg(format!("IdentityAgent={}", agent.socket.display()))
            .arg("-i")
            .arg(home.join("no-such-key"))
            .arg("-o")
            .arg(format!(
                "UserKnownHostsFile={}",
                self.0.sshd.known_hosts().display()
            ))
            .args(["-o", "StrictHostKeyChecking=yes"])
            .arg("-p")
            .arg(self.0.sshd.port().to_string())
            .arg(format!("{LOGIN_USER}@127.0.0.1"))
            .args(["id", "-un"])
            .env("HOME", home)
            .env_remove("SSH_AUTH_SOCK");
        run_with_timeout(&mut command, SSH_TIMEOUT)
    }

    fn assert_agent_gets_in(&self, agent: &SshAgent, home: &Path) {
        let output = self.ssh_with_agent(agent, home);
        assert_eq!(
            output.status.code(),
            Some(0),
            "{output:?}\nverify log:\n{}\nsshd log:\n{}",
            self.verify_log(),
            self.0.sshd.log()
        );
        assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), LOGIN_USER);
    }
}

/// Every file under `dir`, recursively.
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

fn logout(home: &Path, agent: &SshAgent) -> Output {
    run_with_timeout(
        Command::new(e2e::target_binary("opkssh"))
            .arg("logout")
            .env("HOME", home)
            .env("SSH_AUTH_SOCK", &agent.socket),
        SSH_TIMEOUT,
    )
}

#[test]
fn agent_only_login_gets_ssh_in_through_the_agent_and_logout_takes_it_out() {
    let Some(e2e) = E2e::require() else { return };
    let op = Op::start(&[]);
    let agent = SshAgent::start(e2e.dir());
    let home = e2e.dir().join("home");
    std::fs::create_dir(&home).unwrap();

    let run = login(
        &home,
        Some(&agent.socket),
        &["--provider", &provider_spec(&op), "--agent-only"],
        "alice",
    );
    let comment = format!("openpubkey {} alice@example.com", op.issuer());
    // The OP's ID tokens live an hour; the agent keeps the key as long.
    let lifetime = printed_lifetime(&run, &comment);
    assert!((3500..=3600).contains(&lifetime), "{lifetime}");
    // No key files, nothing at all in HOME.
    assert_eq!(files_under(&home), Vec::<PathBuf>::new());
    assert!(
        !run.stdout.contains("Writing opk ssh public key"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("Keys generated for identity"),
        "{}",
        run.stdout
    );

    // The agent holds exactly that certificate, with that comment and lifetime.
    let held = agent.opkssh_certificates();
    assert_eq!(held.len(), 1, "{:?}", agent.listed());
    let (certificate, listed_comment) = &held[0];
    assert_eq!(listed_comment, &comment);
    assert_eq!(
        certificate.cert_type_name(),
        "ecdsa-sha2-nistp256-cert-v01@openssh.com"
    );
    assert_eq!(certificate.key_id(), "alice@example.com");
    assert!(certificate.pk_token().is_ok());
    let short_list = String::from_utf8(agent.ssh_add(&["-l"]).stdout).unwrap();
    assert!(
        short_list.contains(&format!("{comment} (ECDSA-CERT)")),
        "{short_list}"
    );
    assert!(
        agent
            .log()
            .contains(&format!("\"{comment}\" (life: {lifetime})")),
        "{}",
        agent.log()
    );

    // ssh with nothing but the agent gets in through verify.
    let server = Server::start(&e2e, &op, "alice@example.com");
    server.assert_agent_gets_in(&agent, &home);
    assert!(
        server
            .verify_log()
            .contains("allow principal=e2euser identity=alice@example.com"),
        "{}",
        server.verify_log()
    );

    // logout takes every opkssh certificate out of the agent, and only those.
    let own = agent.add_own_key(e2e.dir());
    let out = logout(&home, &agent);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        stdout.contains("No opkssh keys found to remove"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "Removed opkssh certificate from ssh-agent: {comment} (SHA256:"
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains("Successfully removed 1 opkssh certificate(s) from ssh-agent"),
        "{stdout}"
    );
    assert_eq!(agent.listed(), [own]);
    // Now ssh has only the user's own key, which the server does not accept.
    let denied = server.ssh_with_agent(&agent, &home);
    assert_eq!(denied.status.code(), Some(255), "{denied:?}");

    // A second logout finds nothing and is fine.
    let again = logout(&home, &agent);
    assert!(again.status.success(), "{again:?}");
    assert!(!String::from_utf8_lossy(&again.stdout).contains("ssh-agent"));
}

#[test]
fn the_next_login_evicts_dead_and_earlier_opkssh_certificates_and_nothing_else() {
    let Some(e2e) = E2e::require() else { return };
    let op = Op::start(&[]);
    // A second OP whose ID tokens live 15 s.
    let ttl = Duration::from_secs(15);
    let short_op = Op::start(&[("OP_ID_TOKEN_TTL", &ttl.as_secs().to_string())]);
    let agent = SshAgent::start(e2e.dir());
    let home = e2e.dir().join("home");
    std::fs::create_dir(&home).unwrap();
    let own = agent.add_own_key(e2e.dir());

    // 1. alice's first certificate, from the long-lived OP.
    login(
        &home,
        Some(&agent.socket),
        &["--provider", &provider_spec(&op), "--agent-only"],
        "alice",
    );
    let first = agent.opkssh_certificates();
    assert_eq!(first.len(), 1);
    // 2. bob through the short OP: the agent drops it by itself when the token expires.
    let bob = login(
        &home,
        Some(&agent.socket),
        &["--provider", &provider_spec(&short_op), "--agent-only"],
        "bob",
    );
    let bob_comment = format!("openpubkey {} bob@example.com", short_op.issuer());
    assert!(printed_lifetime(&bob, &bob_comment) <= 15);
    // 3. alice through the short OP into files, then loaded with plain ssh-add: no lifetime,
    //    so it outlives its token in the agent. ssh-add loads the key and the certificate.
    let old_key = e2e.dir().join("old_key");
    login(
        &home,
        None,
        &[
            "--provider",
            &provider_spec(&short_op),
            "-i",
            old_key.to_str().unwrap(),
        ],
        "alice",
    );
    let short_logins_done = Instant::now();
    let loaded = agent.ssh_add(&[old_key.to_str().unwrap()]);
    assert!(loaded.status.success(), "{loaded:?}");
    let old_plain = run_with_timeout(
        Command::new("ssh-keygen").arg("-y").arg("-f").arg(&old_key),
        SSH_TIMEOUT,
    );
    assert!(old_plain.status.success(), "{old_plain:?}");
    let old_plain = String::from_utf8(old_plain.stdout)
        .unwrap()
        .trim_end()
        .to_owned();
    assert_eq!(agent.listed().len(), 5, "{:#?}", agent.listed());
    let old_cert_line = std::fs::read_to_string(format!("{}-cert.pub", old_key.display())).unwrap();
    let old_cert = OpksshCertificate::from_line(&old_cert_line).unwrap();

    // Every short-OP token has expired (exp <= issue + 15 s <= the end of its login + 15 s).
    std::thread::sleep((ttl + Duration::from_secs(2)).saturating_sub(short_logins_done.elapsed()));
    assert!(
        !agent
            .listed()
            .iter()
            .any(|line| line.ends_with(&bob_comment)),
        "the agent kept bob past his lifetime: {:#?}",
        agent.listed()
    );

    // 4. alice again, Ed25519, with --agent: key files and the agent.
    let new_key = e2e.dir().join("new_key");
    let run = login(
        &home,
        Some(&agent.socket),
        &[
            "--provider",
            &provider_spec(&op),
            "--agent",
            "-t",
            "ed25519",
            "-i",
            new_key.to_str().unwrap(),
        ],
        "alice",
    );
    eprintln!("login --agent stderr:\n{}", run.stderr);
    assert!(new_key.exists() && PathBuf::from(format!("{}-cert.pub", new_key.display())).exists());
    let removed: Vec<&str> = run
        .stderr
        .lines()
        .filter(|line| line.starts_with("Removed opkssh certificate from ssh-agent: "))
        .collect();
    assert_eq!(removed.len(), 2, "{}", run.stderr);
    let first_comment = &first[0].1;
    assert!(
        removed
            .iter()
            .any(|line| line.contains(first_comment.as_str())
                && line.contains(&first[0].0.fingerprint())
                && line.ends_with("): an earlier certificate for the same identity")),
        "{}",
        run.stderr
    );
    assert!(
        removed
            .iter()
            .any(|line| line.contains(&old_cert.fingerprint())
                && line.contains("): its ID token expired ")),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("bob"), "{}", run.stderr);

    // Left: the user's own key, the old plain key ssh-add loaded, alice's new certificate.
    let new_comment = format!("openpubkey {} alice@example.com", op.issuer());
    let new_cert_line = std::fs::read_to_string(format!("{}-cert.pub", new_key.display())).unwrap();
    let new_cert = OpksshCertificate::from_line(&new_cert_line).unwrap();
    let mut listed = agent.listed();
    listed.sort();
    let mut expected = vec![
        own,
        old_plain,
        new_cert
            .to_line(opk_core::sshcert::CertComment::None)
            .trim_end()
            .to_owned()
            + " "
            + &new_comment,
    ];
    expected.sort();
    assert_eq!(listed, expected);

    // The Ed25519 certificate in the agent gets ssh in.
    let server = Server::start(&e2e, &op, "alice@example.com");
    server.assert_agent_gets_in(&agent, &home);
}

#[test]
fn agent_flags_without_a_reachable_agent_fail_before_the_login_url() {
    let Some(e2e) = E2e::require() else { return };
    let op = Op::start(&[]);
    let home = e2e.dir().join("home");
    std::fs::create_dir(&home).unwrap();
    let not_a_socket = e2e.dir().join("plain-file");
    std::fs::write(&not_a_socket, "").unwrap();
    let absent = e2e.dir().join("absent.sock");
    op.take_request_counts();
    let cases: [(&str, Option<&Path>, &str); 4] = [
        ("--agent", None, "SSH_AUTH_SOCK is not set"),
        ("--agent-only", None, "SSH_AUTH_SOCK is not set"),
        (
            "--agent",
            Some(&absent),
            &format!("cannot reach the ssh-agent at {}", absent.display()),
        ),
        (
            "--agent-only",
            Some(&not_a_socket),
            &format!("cannot reach the ssh-agent at {}", not_a_socket.display()),
        ),
    ];
    for (flag, socket, message) in cases {
        let mut command = Command::new(e2e::target_binary("opkssh"));
        command
            .args(["login", "--disable-browser-open", "--provider"])
            .arg(provider_spec(&op))
            .arg(flag)
            .env("HOME", &home)
            .env_remove("OPKSSH_PROVIDERS")
            .env_remove("OPKSSH_DEFAULT")
            .env_remove("SSH_AUTH_SOCK");
        if let Some(socket) = socket {
            command.env("SSH_AUTH_SOCK", socket);
        }
        let output = run_with_timeout(&mut command, Duration::from_secs(30));
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            output.status.code(),
            Some(1),
            "{flag} {socket:?}: {output:?}"
        );
        assert!(
            stderr.contains(&format!("Error: cannot use the ssh-agent: {message}")),
            "{flag} {socket:?}: {stderr}"
        );
        assert!(!stdout.contains("Open your browser"), "{stdout}");
    }
    // The OP never heard of these logins, and nothing was written.
    assert_eq!(op.request_counts(), Default::default());
    assert_eq!(files_under(&home), Vec::<PathBuf>::new());
}

#[test]
fn auto_refresh_replaces_the_certificate_in_the_agent() {
    let Some(e2e) = E2e::require() else { return };
    // ID tokens live 65 s; the loop refreshes at exp - 60 s, so about every 5 s.
    let op = Op::start(&[("OP_ID_TOKEN_TTL", "65")]);
    let agent = SshAgent::start(e2e.dir());
    let home = e2e.dir().join("home");
    std::fs::create_dir(&home).unwrap();
    let provider = provider_spec(&op);
    let mut login = LoginProcess::start(
        &home,
        &["--auto-refresh", "--agent-only", "--provider", &provider],
        &[("SSH_AUTH_SOCK", agent.socket.as_os_str())],
    );
    // stdout and stderr are read as one stream (eviction is reported on stderr).
    let url = login.auth_url();
    http_login(&url, "alice").unwrap();
    login.wait_for("Added opkssh certificate to ssh-agent: ");
    let first = agent.opkssh_certificates();
    assert_eq!(first.len(), 1, "{:?}", agent.listed());

    login.wait_for("Refreshing id_token...");
    let removed = login.wait_for("Removed opkssh certificate from ssh-agent: ");
    assert!(
        removed.contains(&first[0].0.fingerprint())
            && removed.ends_with("): an earlier certificate for the same identity"),
        "{removed}"
    );
    login.wait_for("Added opkssh certificate to ssh-agent: ");
    // One certificate still, the refreshed one: same key, the PK token now carries the
    // refreshed ID token.
    let now_held = agent.opkssh_certificates();
    assert_eq!(now_held.len(), 1, "{:?}", agent.listed());
    let (refreshed, comment) = &now_held[0];
    assert_eq!(comment, &first[0].1);
    assert_ne!(refreshed.as_bytes(), first[0].0.as_bytes());
    assert_eq!(refreshed.fingerprint(), first[0].0.fingerprint());
    let token = opk_core::pktoken::PkToken::from_compact(refreshed.pk_token().unwrap()).unwrap();
    assert!(token.refreshed_id_token().is_some());
    assert_eq!(files_under(&home), Vec::<PathBuf>::new());

    let server = Server::start(&e2e, &op, "alice@example.com");
    server.assert_agent_gets_in(&agent, &home);
}

/// The key file `opkssh login` wrote by default in `home` and its certificate.
fn default_pair(home: &Path) -> (PathBuf, PathBuf) {
    let key = home.join(".ssh").join("id_ecdsa");
    let cert = home.join(".ssh").join("id_ecdsa-cert.pub");
    assert!(key.is_file() && cert.is_file(), "{:?}", files_under(home));
    (key, cert)
}

#[test]
fn a_plain_login_adds_to_a_running_agent_with_the_chosen_lifetime() {
    let Some(e2e) = E2e::require() else { return };
    let op = Op::start(&[]);
    let agent = SshAgent::start(e2e.dir());
    let home = e2e.dir().join("home");
    std::fs::create_dir(&home).unwrap();
    let comment = format!("openpubkey {} alice@example.com", op.issuer());
    let spec = provider_spec(&op);

    // 1. No agent flag at all: the key files and the agent, with the default lifetime (24 h)
    //    cut to what is left of the OP's one-hour ID token.
    let run = login(&home, Some(&agent.socket), &["--provider", &spec], "alice");
    let (_, cert) = default_pair(&home);
    let lifetime = printed_lifetime(&run, &comment);
    assert!((3500..=3600).contains(&lifetime), "{lifetime}");
    assert!(!run.stderr.contains("Warning"), "{}", run.stderr);
    let held = agent.opkssh_certificates();
    assert_eq!(held.len(), 1, "{:?}", agent.listed());
    let written = OpksshCertificate::from_line(&std::fs::read_to_string(&cert).unwrap()).unwrap();
    assert_eq!(held[0].0.as_bytes(), written.as_bytes());
    // The agent's own log names the lifetime constraint it received.
    assert!(
        agent
            .log()
            .contains(&format!("\"{comment}\" (life: {lifetime})")),
        "{}",
        agent.log()
    );

    // 2. agent_lifetime in the client config is used...
    let config_dir = home.join(".opk");
    std::fs::create_dir_all(&config_dir).unwrap();
    std::fs::write(config_dir.join("config.yml"), "agent_lifetime: 20m\n").unwrap();
    let run = login(&home, Some(&agent.socket), &["--provider", &spec], "alice");
    assert_eq!(printed_lifetime(&run, &comment), 1200);
    assert!(agent.log().contains(&format!("\"{comment}\" (life: 1200)")));
    // ...the earlier certificate went out of the agent...
    assert_eq!(agent.opkssh_certificates().len(), 1, "{:?}", agent.listed());

    // 3. ...and --lifetime wins over it. A 4 s lifetime: the agent drops the key by itself.
    let run = login(
        &home,
        Some(&agent.socket),
        &["--provider", &spec, "--lifetime", "4s"],
        "alice",
    );
    let added = Instant::now();
    assert_eq!(printed_lifetime(&run, &comment), 4);
    assert!(agent.log().contains(&format!("\"{comment}\" (life: 4)")));
    assert_eq!(agent.opkssh_certificates().len(), 1, "{:?}", agent.listed());
    std::thread::sleep(Duration::from_secs(6).saturating_sub(added.elapsed()));
    assert_eq!(
        agent.opkssh_certificates().len(),
        0,
        "the agent kept the key past --lifetime 4s: {:?}",
        agent.listed()
    );
    // The key files stay: only the agent's copy had a lifetime.
    default_pair(&home);
}

#[test]
fn without_an_agent_login_warns_and_no_agent_touches_none() {
    let Some(e2e) = E2e::require() else { return };
    let op = Op::start(&[]);
    let spec = provider_spec(&op);

    // SSH_AUTH_SOCK names no agent: the login succeeds and warns.
    let home = e2e.dir().join("home");
    std::fs::create_dir(&home).unwrap();
    let absent = e2e.dir().join("absent.sock");
    let run = login(&home, Some(&absent), &["--provider", &spec], "alice");
    default_pair(&home);
    assert!(
        run.stderr.contains(&format!(
            "Warning: no ssh-agent was used, the key was not added to one: cannot reach the \
             ssh-agent at {}",
            absent.display()
        )),
        "{}",
        run.stderr
    );
    assert!(
        !run.stdout.contains("Added opkssh certificate"),
        "{}",
        run.stdout
    );

    // SSH_AUTH_SOCK unset: no agent is expected, nothing to warn about.
    let quiet_home = e2e.dir().join("quiet");
    std::fs::create_dir(&quiet_home).unwrap();
    let run = login(&quiet_home, None, &["--provider", &spec], "alice");
    default_pair(&quiet_home);
    assert!(!run.stderr.contains("ssh-agent"), "{}", run.stderr);

    // --no-agent with a running agent: the agent gets nothing (and, with SSH_AUTH_SOCK on a
    // dead socket, nothing is even tried: no warning).
    let agent = SshAgent::start(e2e.dir());
    let no_agent_home = e2e.dir().join("no-agent");
    std::fs::create_dir(&no_agent_home).unwrap();
    let run = login(
        &no_agent_home,
        Some(&agent.socket),
        &["--provider", &spec, "--no-agent"],
        "alice",
    );
    default_pair(&no_agent_home);
    assert!(!run.stdout.contains("ssh-agent"), "{}", run.stdout);
    assert!(!run.stderr.contains("ssh-agent"), "{}", run.stderr);
    assert_eq!(agent.listed(), Vec::<String>::new());
    let short_list = agent.ssh_add(&["-l"]);
    assert!(
        String::from_utf8_lossy(&short_list.stdout).contains("The agent has no identities"),
        "{short_list:?}"
    );
    let run = login(
        &no_agent_home,
        Some(&absent),
        &["--provider", &spec, "--no-agent"],
        "alice",
    );
    assert!(!run.stderr.contains("ssh-agent"), "{}", run.stderr);
}

/// The `Added opkssh certificate to ssh-agent:` line of an add without a lifetime.
fn added_without_lifetime(comment: &str) -> String {
    format!(
        "Added opkssh certificate to ssh-agent: {comment} (no lifetime, which this ssh-agent \
         does not take: it keeps the key until the next opkssh login or opkssh logout removes it)"
    )
}

/// A login through the OP as `who` with `SSH_AUTH_SOCK` set to `agent` and Windows' agent rules
/// (the test seam `OPKSSH_AGENT_RULES=windows`); it must succeed.
fn login_under_windows_rules(home: &Path, agent: &SshAgent, args: &[&str], who: &str) -> LoginRun {
    let env: [(&str, &OsStr); 2] = [
        ("SSH_AUTH_SOCK", agent.socket.as_os_str()),
        ("OPKSSH_AGENT_RULES", OsStr::new("windows")),
    ];
    let run = login_through_op(home, args, &env, who);
    run.assert_success();
    run
}

/// Win32-OpenSSH's agent refuses `SSH_AGENT_CONSTRAIN_LIFETIME`. Under its rules, against
/// OpenSSH's agent: the key goes in with the plain add and no lifetime (the agent's log says
/// `life: 0`, even for `--lifetime`), the login says the key stays until the next login or
/// logout removes it, the agent indeed keeps a certificate past its token's expiry, and the
/// next logins evict the expired and the superseded ones. An agent that refuses the key (a
/// locked one) leaves a successful login that says no agent was used.
#[test]
fn under_windows_agent_rules_no_lifetime_is_sent_and_the_next_login_evicts() {
    let Some(e2e) = E2e::require() else { return };
    let op = Op::start(&[]);
    let ttl = Duration::from_secs(10);
    let short_op = Op::start(&[("OP_ID_TOKEN_TTL", &ttl.as_secs().to_string())]);
    let agent = SshAgent::start(e2e.dir());
    let home = e2e.dir().join("home");
    std::fs::create_dir(&home).unwrap();
    let own = agent.add_own_key(e2e.dir());
    let alice = |op: &Op| format!("openpubkey {} alice@example.com", op.issuer());
    let bob = format!("openpubkey {} bob@example.com", op.issuer());

    // 1. alice through the short OP, key files and agent, asking for a 5 s lifetime.
    let run = login_under_windows_rules(
        &home,
        &agent,
        &["--provider", &provider_spec(&short_op), "--lifetime", "5s"],
        "alice",
    );
    let short_login_done = Instant::now();
    assert!(
        run.stdout
            .contains(&added_without_lifetime(&alice(&short_op))),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("(lifetime "), "{}", run.stdout);
    let log = agent.log();
    assert!(
        log.contains(&format!("\"{}\" (life: 0)", alice(&short_op))),
        "a lifetime reached the agent:\n{log}"
    );
    // The plain add (17), never the constrained one (25) that Win32-OpenSSH's agent drops.
    let types: Vec<&str> = log
        .lines()
        .filter_map(|line| line.trim_end().rsplit_once(") type ").map(|(_, kind)| kind))
        .collect();
    assert!(types.contains(&"17") && !types.contains(&"25"), "{log}");
    let (_, cert) = default_pair(&home);
    let first = OpksshCertificate::from_line(&std::fs::read_to_string(&cert).unwrap()).unwrap();

    // 2. bob through the long-lived OP, agent only.
    let run = login_under_windows_rules(
        &home,
        &agent,
        &["--provider", &provider_spec(&op), "--agent-only"],
        "bob",
    );
    assert!(
        run.stdout.contains(&added_without_lifetime(&bob)),
        "{}",
        run.stdout
    );
    let bob_first = agent
        .opkssh_certificates()
        .into_iter()
        .find(|(_, comment)| comment == &bob)
        .unwrap()
        .0;

    // 3. alice's token expires; nothing takes her certificate out of the agent.
    std::thread::sleep((ttl + Duration::from_secs(2)).saturating_sub(short_login_done.elapsed()));
    assert!(
        agent
            .opkssh_certificates()
            .iter()
            .any(|(held, _)| held.as_bytes() == first.as_bytes()),
        "{:#?}",
        agent.listed()
    );

    // 4. alice again: her expired certificate goes, bob's (alive, another identity) stays.
    let run = login_under_windows_rules(
        &home,
        &agent,
        &["--provider", &provider_spec(&op), "--agent-only"],
        "alice",
    );
    let removed: Vec<&str> = run
        .stderr
        .lines()
        .filter(|line| line.starts_with("Removed opkssh certificate from ssh-agent: "))
        .collect();
    assert_eq!(removed.len(), 1, "{}", run.stderr);
    assert!(
        removed[0].contains(&first.fingerprint())
            && removed[0].contains("): its ID token expired "),
        "{}",
        run.stderr
    );
    assert!(
        run.stdout.contains(&added_without_lifetime(&alice(&op))),
        "{}",
        run.stdout
    );

    // 5. bob again: his earlier certificate is superseded.
    let run = login_under_windows_rules(
        &home,
        &agent,
        &["--provider", &provider_spec(&op), "--agent-only"],
        "bob",
    );
    let removed: Vec<&str> = run
        .stderr
        .lines()
        .filter(|line| line.starts_with("Removed opkssh certificate from ssh-agent: "))
        .collect();
    assert_eq!(removed.len(), 1, "{}", run.stderr);
    assert!(
        removed[0].contains(&bob_first.fingerprint())
            && removed[0].ends_with("): an earlier certificate for the same identity"),
        "{}",
        run.stderr
    );
    // The user's own key and one certificate per identity, none with a lifetime.
    let held = agent.opkssh_certificates();
    let mut comments: Vec<&str> = held.iter().map(|(_, comment)| comment.as_str()).collect();
    comments.sort_unstable();
    let mut expected = [alice(&op), bob.clone()];
    expected.sort_unstable();
    assert_eq!(comments, expected, "{:#?}", agent.listed());
    assert!(agent.listed().contains(&own));
    assert!(!agent.log().contains("type 25"), "{}", agent.log());

    // 6. An agent that refuses the key (OpenSSH's, locked): the login succeeds, writes the key
    //    files and says no agent was used.
    let askpass = e2e.dir().join("askpass");
    std::fs::write(&askpass, "#!/bin/sh\necho lock-password\n").unwrap();
    std::fs::set_permissions(
        &askpass,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let lock = run_with_timeout(
        Command::new("ssh-add")
            .arg("-x")
            .env("SSH_AUTH_SOCK", &agent.socket)
            .env("SSH_ASKPASS", &askpass)
            .env("SSH_ASKPASS_REQUIRE", "force")
            .stdin(Stdio::null()),
        SSH_TIMEOUT,
    );
    assert!(lock.status.success(), "{lock:?}");
    let locked_home = e2e.dir().join("locked");
    std::fs::create_dir(&locked_home).unwrap();
    let run = login_under_windows_rules(
        &locked_home,
        &agent,
        &["--provider", &provider_spec(&op)],
        "alice",
    );
    default_pair(&locked_home);
    assert!(
        run.stderr.contains(
            "Warning: no ssh-agent was used, the key was not added to one: the ssh-agent \
             refused to add the certificate (the login succeeded; --no-agent skips the agent)"
        ),
        "{}",
        run.stderr
    );
    assert!(
        !run.stdout.contains("Added opkssh certificate"),
        "{}",
        run.stdout
    );
}
