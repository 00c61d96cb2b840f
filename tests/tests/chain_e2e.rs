//! `chain_authorized_keys_command` with the real sshd: `opkssh verify` as sshd's only
//! `AuthorizedKeysCommand`, chaining a root-owned test script that prints an `ssh-ed25519` line
//! for one account and records each call (its arguments and environment) in a file.
//!
//! Gated like every e2e test (`OPKSSH_E2E=1`); the fingerprint comparison with `ssh-keygen`
//! needs only `ssh-keygen` and always runs.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)] // test code: a panic is a failure

use opkssh_tests::e2e::{
    self, AKC_USER, AkcConfig, E2e, LOGIN_USER, LOGIN_USER2, Sshd, VectorIssuers, ssh_login,
    write_private_key,
};
use opkssh_tests::vectors;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

/// verify's whole budget (verifier::decide); the chained command is killed inside it.
const BUDGET: Duration = Duration::from_secs(10);

fn run(command: &mut Command) -> Output {
    let output = command.output().unwrap();
    assert!(output.status.success(), "{command:?}: {output:?}");
    output
}

/// `SHA256:…` as `ssh-keygen -lf` prints it for a public key or certificate file.
fn keygen_fingerprint(path: &Path) -> String {
    let output = run(Command::new("ssh-keygen").arg("-lf").arg(path));
    let text = String::from_utf8(output.stdout).unwrap();
    text.split_whitespace().nth(1).unwrap().to_owned()
}

/// A fresh key pair from ssh-keygen: the private key path and the `.pub` line.
fn keygen(dir: &Path, name: &str, args: &[&str]) -> (PathBuf, String) {
    let key = dir.join(name);
    run(Command::new("ssh-keygen")
        .args(["-q", "-N", "", "-C", name])
        .args(args)
        .arg("-f")
        .arg(&key));
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    (key, public.trim().to_owned())
}

#[test]
fn fingerprints_match_ssh_keygen() {
    let dir = tempfile::tempdir().unwrap();
    for (name, args) in [
        ("ed25519", &["-t", "ed25519"][..]),
        ("ecdsa256", &["-t", "ecdsa", "-b", "256"]),
        ("ecdsa384", &["-t", "ecdsa", "-b", "384"]),
        ("ecdsa521", &["-t", "ecdsa", "-b", "521"]),
        ("rsa", &["-t", "rsa", "-b", "2048"]),
    ] {
        let (key, public) = keygen(dir.path(), name, args);
        let mut fields = public.split_whitespace();
        let (key_type, base64) = (fields.next().unwrap(), fields.next().unwrap());
        assert_eq!(
            opk_core::authorized_keys::fingerprint(key_type, base64).unwrap(),
            keygen_fingerprint(&key.with_extension("pub")),
            "{name}"
        );
        // The line ssh-keygen writes is a well-formed authorized_keys line.
        assert!(
            matches!(
                opk_core::authorized_keys::parse_line(&public),
                Ok(opk_core::authorized_keys::Line::Key(_))
            ),
            "{public}"
        );
    }
    // A certificate's %f is its key's fingerprint (sshd: sshkey_fingerprint of the plain key),
    // which ssh-keygen -lf also prints for the certificate file.
    let (ca, _) = keygen(dir.path(), "ca", &["-t", "ed25519"]);
    let (user, _) = keygen(dir.path(), "user", &["-t", "ecdsa", "-b", "256"]);
    run(Command::new("ssh-keygen")
        .args(["-q", "-s"])
        .arg(&ca)
        .args(["-I", "id", "-n", "alice"])
        .arg(user.with_extension("pub")));
    let cert = dir.path().join("user-cert.pub");
    let line = std::fs::read_to_string(&cert).unwrap();
    let mut fields = line.split_whitespace();
    let (key_type, base64) = (fields.next().unwrap(), fields.next().unwrap());
    assert_eq!(key_type, "ecdsa-sha2-nistp256-cert-v01@openssh.com");
    let fingerprint = opk_core::authorized_keys::fingerprint(key_type, base64).unwrap();
    assert_eq!(fingerprint, keygen_fingerprint(&cert));
    assert_eq!(fingerprint, keygen_fingerprint(&user.with_extension("pub")));
    // Go's opkssh certificates too.
    for vector in vectors("accept").unwrap() {
        let line = vector.trimmed("cert.pub").unwrap();
        let mut fields = line.split_whitespace();
        let (key_type, base64) = (fields.next().unwrap(), fields.next().unwrap());
        assert_eq!(
            opk_core::authorized_keys::fingerprint(key_type, base64).unwrap(),
            keygen_fingerprint(&vector.dir.join("cert.pub")),
            "{}",
            vector.name
        );
    }
}

/// A server whose `opkssh verify` knows the `rs256-ecdsa` vector's issuer, lets its identity
/// in as [`LOGIN_USER`], and chains a command written to `config.yml`.
struct ChainServer {
    sshd: Sshd,
    config_dir: PathBuf,
    writable: PathBuf,
    opkssh: PathBuf,
}

impl ChainServer {
    fn start(e2e: &E2e, issuer: &str) -> ChainServer {
        let opkssh = e2e.install_binary(&e2e::target_binary("opkssh"));
        let providers = format!("{issuer} opkssh-test-client oidc\n");
        let auth_id = format!("{LOGIN_USER} alice@example.com {issuer}\n");
        let config_dir = e2e.install_dir(
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
            config_dir.display(),
            writable.display(),
            writable.display()
        )));
        ChainServer {
            sshd,
            config_dir,
            writable,
            opkssh,
        }
    }

    /// Writes `config.yml` (0640 root:opksshuser, as verify requires).
    fn set_config(&self, text: &str) {
        let path = self.config_dir.join("config.yml");
        std::fs::write(&path, text).unwrap();
        opk_os::file::set_owner(&path, Some(0), Some(e2e::group_id(AKC_USER))).unwrap();
        opk_os::file::set_mode(&path, 0o640).unwrap();
    }

    /// Chains `command` (its `%` tokens as written), with one `env_vars` entry.
    fn chain(&self, command: &str) {
        self.set_config(&format!(
            "env_vars:\n  CHAIN_TEST_VAR: from-config\nchain_authorized_keys_command: \"{command}\"\n"
        ));
    }

    fn verify_log(&self) -> String {
        std::fs::read_to_string(self.writable.join("opkssh.log")).unwrap_or_default()
    }

    /// The decision lines (`info`) logged since `offset` bytes into the log.
    fn decisions_since(&self, offset: usize) -> Vec<String> {
        self.verify_log()
            .get(offset..)
            .unwrap_or_default()
            .lines()
            .filter(|line| line.contains(" deny principal=") || line.contains(" allow principal="))
            .map(str::to_owned)
            .collect()
    }

    fn ssh(&self, user: &str, key: &Path, cert: Option<&Path>) -> Output {
        ssh_login(&self.sshd, user, key, cert, "id -un")
    }

    fn assert_in(&self, user: &str, key: &Path, cert: Option<&Path>) {
        let output = self.ssh(user, key, cert);
        assert_eq!(
            output.status.code(),
            Some(0),
            "{output:?}\nverify log:\n{}\nsshd log:\n{}",
            self.verify_log(),
            self.sshd.log()
        );
        assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), user);
    }

    fn assert_out(&self, user: &str, key: &Path, cert: Option<&Path>) {
        let output = self.ssh(user, key, cert);
        assert_eq!(
            output.status.code(),
            Some(255),
            "{output:?}\nverify log:\n{}",
            self.verify_log()
        );
    }
}

/// Copies a vector's `id_key` (0600) and `cert.pub` into `dir`.
fn vector_identity(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let vector = vectors("accept")
        .unwrap()
        .into_iter()
        .find(|vector| vector.name == name)
        .unwrap();
    let key = write_private_key(
        &dir.join(format!("{name}-id")),
        &std::fs::read(vector.dir.join("id_key")).unwrap(),
    );
    let cert = dir.join(format!("{name}-id-cert.pub"));
    std::fs::copy(vector.dir.join("cert.pub"), &cert).unwrap();
    (key, cert)
}

/// The chained test script: appends `<args>|<sorted environment>` to `calls` and prints
/// `public` (with a comment line) for [`LOGIN_USER`] only.
fn counting_script(calls: &Path, public: &str) -> String {
    format!(
        "#!/bin/sh\n\
         # chained AuthorizedKeysCommand of the chain e2e tests\n\
         printf '%s|%s\\n' \"$*\" \"$(env | sort | tr '\\n' ' ')\" >> '{calls}'\n\
         if [ \"$1\" = '{LOGIN_USER}' ]; then\n\
         \x20 echo '# keys of {LOGIN_USER}'\n\
         \x20 echo '{public}'\n\
         fi\n",
        calls = calls.display()
    )
}

fn calls(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_plain_key_logs_in_through_the_chain_and_an_opkssh_certificate_through_opkssh() {
    let Some(e2e) = E2e::require() else { return };
    let issuers = VectorIssuers::start().unwrap();
    let issuer = issuers.serve_vector("rs256-ecdsa").unwrap();
    let server = ChainServer::start(&e2e, issuer.issuer());
    let (plain, public) = keygen(e2e.dir(), "plain", &["-t", "ed25519"]);
    let calls_file = server.writable.join("calls");
    let script =
        e2e.install_executable("chain.sh", counting_script(&calls_file, &public).as_bytes());
    let command = format!("{} %u %U %f %t %h", script.display());
    server.chain(&command);

    // A plain key gets in through the chain, with sshd's tokens and an empty environment.
    server.assert_in(LOGIN_USER, &plain, None);
    let seen = calls(&calls_file);
    assert!(!seen.is_empty(), "{}", server.verify_log());
    let (uid, _) = e2e::user_ids(LOGIN_USER);
    let home = opk_os::account::user_by_name(LOGIN_USER)
        .unwrap()
        .unwrap()
        .home;
    let fingerprint = keygen_fingerprint(&plain.with_extension("pub"));
    let (args, env) = seen[0].split_once('|').unwrap();
    assert_eq!(
        args,
        format!(
            "{LOGIN_USER} {uid} {fingerprint} ssh-ed25519 {}",
            home.display()
        )
    );
    let mut names: Vec<&str> = env
        .split_whitespace()
        .map(|pair| pair.split_once('=').unwrap().0)
        .collect();
    // sh itself adds PWD (the working directory, /).
    names.retain(|name| *name != "PWD");
    assert_eq!(names, ["CHAIN_TEST_VAR", "PATH"], "{env}");
    assert!(env.contains("PATH=/usr/bin:/bin:/usr/sbin:/sbin "), "{env}");
    assert!(env.contains("PWD=/ "), "{env}");
    let log = server.verify_log();
    assert!(
        log.contains(&format!(
            "deny principal={LOGIN_USER} identity=- reason: key type `ssh-ed25519` is not an opkssh certificate type [certificate type]; chain \"{command}\" ran in "
        )),
        "{log}"
    );
    assert!(
        log.contains(": exit status: 0, 1 line passed, 0 dropped"),
        "{log}"
    );

    // The chain prints nothing for another account: the same key stays out.
    server.assert_out(LOGIN_USER2, &plain, None);

    // An opkssh certificate gets in through opkssh; the chain is not run.
    let (cert_key, cert) = vector_identity(e2e.dir(), "rs256-ecdsa");
    let before = calls(&calls_file).len();
    let offset = server.verify_log().len();
    server.assert_in(LOGIN_USER, &cert_key, Some(&cert));
    assert_eq!(calls(&calls_file).len(), before, "the chain ran");
    let decisions = server.decisions_since(offset);
    assert!(!decisions.is_empty());
    for decision in &decisions {
        assert!(
            decision.contains(&format!(
                "allow principal={LOGIN_USER} identity=alice@example.com"
            )) && decision.contains(&format!(
                "; chain \"{command}\" not run: opkssh let the key in"
            )),
            "{decision}"
        );
    }

    // A certificate opkssh denies (its issuer is not in providers) does not get in: the chain
    // runs for it (and for its bare key), and its line is for another key.
    let (denied_key, denied_cert) = vector_identity(e2e.dir(), "es256-ed25519");
    let before = calls(&calls_file).len();
    let offset = server.verify_log().len();
    server.assert_out(LOGIN_USER, &denied_key, Some(&denied_cert));
    let after = calls(&calls_file);
    let new = after.get(before..).unwrap_or_default();
    let cert_fingerprint = keygen_fingerprint(&denied_cert);
    assert!(
        new.iter().any(|call| call.starts_with(&format!(
            "{LOGIN_USER} {uid} {cert_fingerprint} ssh-ed25519-cert-v01@openssh.com "
        ))),
        "{new:?}"
    );
    assert!(
        server
            .decisions_since(offset)
            .iter()
            .any(|line| line.contains("unrecognized issuer") && line.contains("1 line passed")),
        "{}",
        server.verify_log()
    );
}

#[test]
fn a_chained_command_that_hangs_is_killed_with_its_process_group_within_the_budget() {
    let Some(e2e) = E2e::require() else { return };
    let issuers = VectorIssuers::start().unwrap();
    let issuer = issuers.serve_vector("rs256-ecdsa").unwrap();
    let server = ChainServer::start(&e2e, issuer.issuer());
    let (plain, _) = keygen(e2e.dir(), "plain", &["-t", "ed25519"]);
    // A child in the background and the script itself, both asleep, both named by the marker.
    let marker = format!("opkssh-chain-hang-{}", std::process::id());
    let script = e2e.install_executable(
        "hang.sh",
        format!(
            "#!/bin/sh\n\
             /bin/sh -c 'sleep 600; echo {marker}' &\n\
             echo 'hanging' >&2\n\
             exec /bin/sh -c 'sleep 601; echo {marker}'\n"
        )
        .as_bytes(),
    );
    server.chain(&format!("{} %u", script.display()));
    let offset = server.verify_log().len();
    std::thread::scope(|scope| {
        let login = scope.spawn(|| server.assert_out(LOGIN_USER, &plain, None));
        // While verify waits, both sleeping shells are there to be found (so the check below
        // can see what is left).
        let mut running = Vec::new();
        for _ in 0..80 {
            running = processes_naming(&marker);
            if running.len() >= 2 {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(
            running.len() >= 2,
            "the chained command did not start: {running:?}"
        );
        login.join().unwrap();
    });
    let decisions = server.decisions_since(offset);
    assert_eq!(decisions.len(), 1, "{}", server.verify_log());
    let decision = &decisions[0];
    assert!(
        decision.contains("timed out after")
            && decision.contains("killed with its process group, nothing passed"),
        "{decision}"
    );
    // The whole verify, the kill included, within its budget (plus process start-up).
    let ms: u64 = decision
        .rsplit_once(" (")
        .and_then(|(_, tail)| tail.strip_suffix(" ms)"))
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        ms <= u64::try_from(BUDGET.as_millis()).unwrap() + 1000,
        "{decision}"
    );
    assert!(
        server
            .verify_log()
            .contains("chained command stderr: hanging"),
        "{}",
        server.verify_log()
    );
    // Nothing it started is left (signals are delivered asynchronously: allow a moment).
    let mut left = processes_naming(&marker);
    for _ in 0..20 {
        if left.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        left = processes_naming(&marker);
    }
    assert!(left.is_empty(), "processes left: {left:?}");
}

/// The live processes whose command line contains `marker` (what `pgrep -f` finds), read from
/// /proc: pid and command line. A zombie has an empty command line and is not listed.
fn processes_naming(marker: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.bytes().all(|byte| byte.is_ascii_digit()) {
            continue;
        }
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(marker) {
            found.push((name, cmdline));
        }
    }
    found
}

#[test]
fn chained_garbage_and_ten_megabytes_of_output_get_nothing_through() {
    let Some(e2e) = E2e::require() else { return };
    let issuers = VectorIssuers::start().unwrap();
    let issuer = issuers.serve_vector("rs256-ecdsa").unwrap();
    let server = ChainServer::start(&e2e, issuer.issuer());
    let (plain, public) = keygen(e2e.dir(), "plain", &["-t", "ed25519"]);

    // The right key in lines that are not well-formed: a carriage return or a NUL in the
    // comment (sshd itself accepts both), an unknown option, an open quote; then binary noise
    // (after them, as only the first ten dropped lines are described in the log).
    let garbage = e2e.install_executable(
        "garbage.sh",
        format!(
            "#!/bin/sh\n\
             printf '%s\\r\\n' '{public}'\n\
             printf '%s x\\000y\\n' '{public}'\n\
             printf 'no-such-option %s\\n' '{public}'\n\
             printf 'environment=\"A=B %s\\n' '{public}'\n\
             echo 'not a key at all'\n\
             head -c 2048 /dev/urandom\n"
        )
        .as_bytes(),
    );
    server.chain(&format!("{} %u", garbage.display()));
    let offset = server.verify_log().len();
    server.assert_out(LOGIN_USER, &plain, None);
    let decisions = server.decisions_since(offset);
    assert!(!decisions.is_empty(), "{}", server.verify_log());
    for decision in &decisions {
        assert!(decision.contains(", 0 lines passed, "), "{decision}");
    }
    let log = server.verify_log();
    assert!(log.contains("dropped: control character U+000D"), "{log}");
    assert!(log.contains("dropped: control character U+0000"), "{log}");
    assert!(
        log.contains("dropped: \"no-such-option\" is neither a key type nor an option sshd knows"),
        "{log}"
    );

    // 10 MB of copies of the right line: over the cap, nothing passes (not even the first).
    let flood = e2e.install_executable(
        "flood.sh",
        format!("#!/bin/sh\nyes '{public}' | head -c 10000000\n").as_bytes(),
    );
    server.chain(&format!("{} %u", flood.display()));
    let offset = server.verify_log().len();
    server.assert_out(LOGIN_USER, &plain, None);
    let decisions = server.decisions_since(offset);
    assert!(!decisions.is_empty(), "{}", server.verify_log());
    for decision in &decisions {
        assert!(
            decision.contains(": exit status: 0, output over 65536 bytes, nothing passed"),
            "{decision}"
        );
    }

    // Control: the same line printed once gets in, so what kept it out above was the filter.
    let once = e2e.install_executable(
        "once.sh",
        format!("#!/bin/sh\necho '{public}'\n").as_bytes(),
    );
    server.chain(&format!("{} %u", once.display()));
    server.assert_in(LOGIN_USER, &plain, None);
}

#[test]
fn a_group_writable_chained_command_is_refused_and_audit_says_so() {
    let Some(e2e) = E2e::require() else { return };
    let issuers = VectorIssuers::start().unwrap();
    let issuer = issuers.serve_vector("rs256-ecdsa").unwrap();
    let server = ChainServer::start(&e2e, issuer.issuer());
    let (plain, public) = keygen(e2e.dir(), "plain", &["-t", "ed25519"]);
    let calls_file = server.writable.join("calls");
    let script = e2e.install_file(
        "writable.sh",
        counting_script(&calls_file, &public).as_bytes(),
        0o775,
        None,
    );
    let command = format!("{} %u", script.display());
    server.chain(&command);

    let offset = server.verify_log().len();
    server.assert_out(LOGIN_USER, &plain, None);
    assert!(calls(&calls_file).is_empty(), "the refused command ran");
    let decisions = server.decisions_since(offset);
    assert!(!decisions.is_empty(), "{}", server.verify_log());
    for decision in &decisions {
        assert!(
            decision.contains(&format!("chain \"{command}\" refused: ")),
            "{decision}"
        );
        assert!(decision.contains("got (775)"), "{decision}");
    }
    assert!(
        server.verify_log().contains(&format!(
            "chain_authorized_keys_command \"{command}\" not run: "
        )),
        "{}",
        server.verify_log()
    );

    // The opkssh part keeps working.
    let (cert_key, cert) = vector_identity(e2e.dir(), "rs256-ecdsa");
    server.assert_in(LOGIN_USER, &cert_key, Some(&cert));

    // audit reports it as an error, in text and JSON.
    let audit = Command::new(&server.opkssh)
        .args(["audit", "--skip-user-policy", "--config-dir"])
        .arg(&server.config_dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&audit.stdout);
    assert_eq!(audit.status.code(), Some(1), "{audit:?}");
    let refused = format!(
        "[ERR] ERROR   : {}: chain_authorized_keys_command \"{command}\" is refused, verify does not run it: ",
        server.config_dir.join("config.yml").display()
    );
    assert!(
        text.lines()
            .any(|line| line.starts_with(&refused) && line.contains("got (775)")),
        "{text}"
    );
    let json = Command::new(&server.opkssh)
        .args(["audit", "--json", "--skip-user-policy", "--config-dir"])
        .arg(&server.config_dir)
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let chain = &report["chain_authorized_keys_command"];
    assert_eq!(chain["command"], command.as_str(), "{report}");
    assert_eq!(chain["ok"], false, "{report}");
    assert!(
        chain["error"].as_str().unwrap().contains("got (775)"),
        "{report}"
    );
    let problems = report["config_problems"].as_array().unwrap();
    assert!(
        problems.iter().any(|problem| problem["message"]
            .as_str()
            .unwrap()
            .starts_with("chain_authorized_keys_command")),
        "{report}"
    );

    // Made safe, it runs and audit passes it.
    opk_os::file::set_mode(&script, 0o755).unwrap();
    server.assert_in(LOGIN_USER, &plain, None);
    let audit = Command::new(&server.opkssh)
        .args(["audit", "--skip-user-policy", "--config-dir"])
        .arg(&server.config_dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&audit.stdout);
    assert!(
        text.contains(&format!(
            "[OK] SUCCESS : chain_authorized_keys_command \"{command}\" passes the safety rule"
        )) && !text.contains("is refused"),
        "{text}"
    );
}
