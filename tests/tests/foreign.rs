//! An `opkssh` built for another target, run through an emulator: `.ci/cross` builds it for
//! aarch64 Linux and runs these tests with `qemu-aarch64` as the runner, and for Windows with
//! Wine as the runner, so a broken arm64 or Windows build fails CI by name. `--version`, the
//! whole `demo` (whose verify is, on arm64, this binary re-executed, so binfmt_misc must hand
//! aarch64 children to qemu), `check`, `inspect` and `logout` of the demo's certificate, the
//! paths in `login`'s errors, a real `login` against the test OP (with `OPKSSH_E2E=1`; under
//! Wine it also shows that a key whose ACL cannot be set or checked is a warning, not a failed
//! login), and (arm64 only: it needs root-owned policy files) `verify` on every Go vector.
//!
//! `OPKSSH_FOREIGN_BIN` is the binary, `OPKSSH_FOREIGN_RUNNER` the command that runs it, split
//! on spaces (e.g. `qemu-aarch64-static -L /usr/aarch64-linux-gnu`; empty: run it directly),
//! and `OPKSSH_FOREIGN_TARGET` its target triple, checked against the file's header so that a
//! wrong path cannot test the native binary instead. Without `OPKSSH_FOREIGN_BIN` every test
//! prints `SKIP foreign: …` and passes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)] // test code: a panic is a failure

use opkssh_tests::e2e::{VectorIssuers, run_with_timeout};
use opkssh_tests::{Vector, vectors};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

/// Generous: qemu-user runs a debug build, and the machine may be busy.
const RUN_TIMEOUT: Duration = Duration::from_secs(180);

/// The foreign binary and how to run it.
struct Foreign {
    binary: PathBuf,
    runner: Vec<String>,
    windows: bool,
}

impl Foreign {
    fn require() -> Option<Self> {
        let Some(binary) = std::env::var_os("OPKSSH_FOREIGN_BIN") else {
            eprintln!("SKIP foreign: set OPKSSH_FOREIGN_BIN (see .ci/cross)");
            return None;
        };
        let binary = PathBuf::from(binary);
        let target = std::env::var("OPKSSH_FOREIGN_TARGET")
            .expect("foreign: set OPKSSH_FOREIGN_TARGET to the binary's target triple");
        check_header(&binary, &target);
        let runner = std::env::var("OPKSSH_FOREIGN_RUNNER")
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        let windows = target.contains("-windows-");
        Some(Self {
            binary,
            runner,
            windows,
        })
    }

    /// The separator of the foreign system's paths.
    fn separator(&self) -> char {
        if self.windows { '\\' } else { '/' }
    }

    /// `path` as the foreign binary names it: under Wine the Linux root is drive `Z:`.
    fn path(&self, path: &Path) -> String {
        let path = path.to_str().expect("foreign: test paths are UTF-8");
        if self.windows {
            format!("Z:{}", path.replace('/', "\\"))
        } else {
            path.to_owned()
        }
    }

    fn command(&self) -> Command {
        let mut command = match self.runner.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(&self.binary);
                command
            }
            None => Command::new(&self.binary),
        };
        command.env_remove("RUST_LOG");
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        run_with_timeout(self.command().args(args), RUN_TIMEOUT)
    }
}

/// The file is an executable for `target`: an ELF for the triple's machine, or a PE for Windows.
fn check_header(binary: &Path, target: &str) {
    let bytes = std::fs::read(binary)
        .unwrap_or_else(|e| panic!("foreign: reading {}: {e}", binary.display()));
    if target.contains("-windows-") {
        assert!(
            bytes.starts_with(b"MZ"),
            "foreign: {} is not a Windows executable",
            binary.display()
        );
        return;
    }
    // ELF, 64-bit, little-endian; e_machine at offset 18.
    let machine = match target.split('-').next() {
        Some("aarch64") => 183_u16,
        Some("x86_64") => 62,
        other => panic!("foreign: no ELF machine known for {other:?}"),
    };
    assert!(
        bytes.starts_with(b"\x7fELF\x02\x01"),
        "foreign: {} is not a 64-bit little-endian ELF file",
        binary.display()
    );
    let found = bytes.get(18..20).map(|b| u16::from_le_bytes([b[0], b[1]]));
    assert_eq!(
        found,
        Some(machine),
        "foreign: {} is not built for {target}",
        binary.display()
    );
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn foreign_binary_prints_its_version() {
    let Some(foreign) = Foreign::require() else {
        return;
    };
    let output = foreign.run(&["--version"]);
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        text(&output.stdout),
        format!("opkssh version {}\n", env!("CARGO_PKG_VERSION"))
    );
}

/// As root the demo's verify is this binary run again as a child, as sshd runs it: under
/// qemu-user that child is an aarch64 process too. Under Wine nobody is root (the demo then
/// runs verify's pipeline and policy in process, and says so).
#[test]
fn foreign_binary_runs_the_demo_with_verify_as_a_child() {
    let Some(foreign) = Foreign::require() else {
        return;
    };
    assert!(
        is_root(),
        "foreign: run as root, so the demo runs verify as a child"
    );
    let output = foreign.run(&["demo"]);
    let verify_step = if foreign.windows {
        "(in process: not root, so the temporary files cannot be root-owned as verify requires"
    } else {
        "(this binary's verify, run as sshd runs it, with --config-dir "
    };
    let stdout = text(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        text(&output.stderr)
    );
    for step in [
        "1. OpenID provider started in this process at http://localhost:",
        "3. Browser step: http://localhost:",
        "4. PK token: ",
        verify_step,
        "   decision: allow",
        "   verify prints for sshd: cert-authority,principals=\"opkssh-wildcard\" ecdsa-sha2-nistp256 AAAA",
        "   and as nobody-else: deny (",
        "Done: ",
    ] {
        assert!(stdout.contains(step), "missing {step:?} in:\n{stdout}");
    }
}

/// The key and certificate the demo made, in `dir` as `login` writes them: named
/// `id_ecdsa`, the certificate with the comment `openpubkey` (the vector layout has none), by
/// which logout knows the pair as its own.
fn demo_key(foreign: &Foreign, dir: &Path) -> PathBuf {
    let out = dir.join("demo");
    let output = foreign.run(&["demo", "--out", &foreign.path(&out)]);
    assert!(output.status.success(), "{output:?}");
    let key = dir.join("id_ecdsa");
    std::fs::copy(out.join("id_key"), &key).unwrap();
    let line = std::fs::read_to_string(out.join("cert.pub")).unwrap();
    std::fs::write(
        dir.join("id_ecdsa-cert.pub"),
        format!("{} openpubkey\n", line.trim_end()),
    )
    .unwrap();
    key
}

/// `check -i` passes on the demo's fresh certificate, `inspect` reads it, and `logout -i`
/// removes the key and its certificate: the client commands a user runs, on the foreign
/// system's paths.
#[test]
fn foreign_binary_checks_inspects_and_logs_out_the_demo_certificate() {
    let Some(foreign) = Foreign::require() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let key = demo_key(&foreign, dir.path());
    let cert = dir.path().join("id_ecdsa-cert.pub");

    let output = foreign.run(&["check", "-i", &foreign.path(&key)]);
    assert_eq!(output.status.code(), Some(0), "check: {output:?}");

    let output = foreign.run(&["inspect", &foreign.path(&cert)]);
    assert!(output.status.success(), "inspect: {output:?}");
    let stdout = text(&output.stdout);
    for line in [
        "Type: ecdsa-sha2-nistp256-cert-v01@openssh.com (User Certificate)",
        "Key ID: demo@example.com",
        "Principals: [opkssh-wildcard]",
        "--- PKToken Structure ---",
    ] {
        assert!(
            stdout.contains(line),
            "inspect: missing {line:?} in:\n{stdout}"
        );
    }

    let output = foreign.run(&["logout", "-i", &foreign.path(&key)]);
    assert!(output.status.success(), "logout: {output:?}");
    assert!(!key.exists(), "logout left {}", key.display());
    assert!(!cert.exists(), "logout left {}", cert.display());

    let output = foreign.run(&["check", "-i", &foreign.path(&key)]);
    assert_eq!(
        output.status.code(),
        Some(1),
        "check after logout: {output:?}"
    );
    // A path prints as the system writes it: on Windows with single backslashes.
    let missing = format!("missing key: {}", foreign.path(&key));
    assert!(
        text(&output.stderr).contains(&missing),
        "check after logout: no {missing:?} in {output:?}"
    );
}

/// A path in a `login` error prints as the system writes it, under Wine with single
/// backslashes: the client config named is a folder, so the login fails before any provider
/// is asked.
#[test]
fn foreign_binary_prints_paths_in_login_errors_as_paths() {
    let Some(foreign) = Foreign::require() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("config.yml");
    std::fs::create_dir(&folder).unwrap();
    let output = foreign.run(&[
        "login",
        "--disable-browser-open",
        "--config-path",
        &foreign.path(&folder),
    ]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let expected = format!(
        "Error: failed to read client config file {}: ",
        foreign.path(&folder)
    );
    assert!(
        text(&output.stderr).contains(&expected),
        "no {expected:?} in {output:?}"
    );
}

/// The real `login` against the test OpenID provider (`tests/e2e/op`, needs `OPKSSH_E2E=1`),
/// its browser step answered from Linux as the Linux tests answer it: `--disable-browser-open`
/// (on Windows `$BROWSER` is not read) prints the URL, an HTTP client logs in as alice, and the
/// callback reaches the login's listener inside the emulator over loopback. Then `check -i` and
/// `logout -i` on the pair it wrote.
#[test]
fn foreign_binary_logs_in_against_the_test_op_and_logs_out() {
    let Some(foreign) = Foreign::require() else {
        return;
    };
    if !opkssh_tests::e2e::enabled() {
        eprintln!("SKIP foreign login: set OPKSSH_E2E=1 (the test OP runs under node)");
        return;
    }
    let op = opkssh_tests::e2e::Op::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("id_ecdsa");
    let provider = format!("{},{},,openid profile email", op.issuer(), op.client_id());

    // A key path in a folder that does not exist: the login fails after the provider's step,
    // and its error names the file it could not create as the system writes it.
    let missing = dir.path().join("missing");
    let mut command = foreign.command();
    command.env_remove("SSH_AUTH_SOCK").args([
        "login",
        "--disable-browser-open",
        "--provider",
        &provider,
        "-i",
        &foreign.path(&missing.join("id_ecdsa")),
    ]);
    let mut login = opkssh_tests::login::LoginProcess::start_command(&mut command);
    let url = login.auth_url();
    opkssh_tests::e2e::http_login(&url, "alice").unwrap();
    let named = format!("{}{}.id_ecdsa", foreign.path(&missing), foreign.separator());
    login.finish().assert_failure(&format!("Error: {named}"));
    assert!(!missing.exists());
    let mut command = foreign.command();
    command.env_remove("SSH_AUTH_SOCK").args([
        "login",
        "--disable-browser-open",
        "--provider",
        &provider,
        "-i",
        &foreign.path(&key),
    ]);
    let mut login = opkssh_tests::login::LoginProcess::start_command(&mut command);
    let url = login.auth_url();
    opkssh_tests::e2e::http_login(&url, "alice").unwrap();
    let run = login.finish();
    run.assert_success();
    let cert = dir.path().join("id_ecdsa-cert.pub");
    assert!(key.is_file() && cert.is_file(), "login wrote no key pair");
    // Wine's whoami prints no SID and its icacls changes nothing: the key's ACL cannot be set
    // or checked there, and login and check say so instead of failing. (On Unix the mode is
    // checked, and no warning is due.)
    let warned = |stderr: &str, warning: &str| {
        stderr.contains(warning) && stderr.contains("whoami /user printed no SID")
    };
    assert_eq!(
        warned(
            &run.stderr,
            "Warning: could not make sure that only you can read "
        ),
        foreign.windows,
        "login: {}",
        run.stderr
    );

    let output = foreign.run(&["check", "-i", &foreign.path(&key)]);
    assert_eq!(output.status.code(), Some(0), "check: {output:?}");
    assert!(
        text(&output.stdout).contains("(alice@example.com from "),
        "check: {output:?}"
    );
    assert_eq!(
        warned(
            &text(&output.stderr),
            "warning: could not check that only you can read "
        ),
        foreign.windows,
        "check: {output:?}"
    );
    let output = foreign.run(&["logout", "-i", &foreign.path(&key)]);
    assert!(output.status.success(), "logout: {output:?}");
    assert!(!key.exists() && !cert.exists(), "logout left the key pair");
}

/// The key's ACL through Windows' own tools, as opkssh.exe runs them: Wine's `whoami` prints no
/// SID and its `icacls` does nothing, so `.ci/cross` builds stand-ins (`.ci/windows/*-standin.c`)
/// that answer as Windows' do, and this test puts them in the prefix's system32 and selects
/// them for its own commands only. The test decides the DACL that `icacls /save` reports and
/// reads the arguments opkssh passed, after Windows' command-line quoting:
/// - `demo` writes its keys with an ACL of the user's SID and SYSTEM's, set on the temporary
///   file (in a folder whose name has a space) before it is renamed into place;
/// - where others can still read it, the write fails, names them, and leaves no key;
/// - `check` accepts the private key, and refuses (exit 1, `key not private`) one that
///   Everyone may read.
#[test]
fn foreign_binary_sets_and_checks_the_key_acl_through_windows_tools() {
    let Some(foreign) = Foreign::require() else {
        return;
    };
    let standins = std::env::var_os("OPKSSH_FOREIGN_ACL_STANDINS");
    let (true, Some(standins)) = (foreign.windows, standins) else {
        eprintln!("SKIP foreign ACL: Windows only, with OPKSSH_FOREIGN_ACL_STANDINS (.ci/cross)");
        return;
    };
    let prefix = std::env::var_os("WINEPREFIX").expect("foreign ACL: WINEPREFIX is not set");
    let system32 = Path::new(&prefix).join("drive_c/windows/system32");
    for tool in ["whoami.exe", "icacls.exe"] {
        std::fs::copy(Path::new(&standins).join(tool), system32.join(tool)).unwrap();
    }
    let overrides = format!(
        "{};whoami.exe,icacls.exe=n",
        std::env::var("WINEDLLOVERRIDES").unwrap_or_default()
    );
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("key folder");
    std::fs::create_dir(&folder).unwrap();
    let log = dir.path().join("icacls.log");
    const USER: &str = "S-1-5-21-1-2-3-1001";
    let private = format!("D:PAI(A;;FA;;;{USER})(A;;FA;;;SY)");
    let open = format!("D:AI(A;;FA;;;{USER})(A;ID;0x1200a9;;;WD)");
    let run = |dacl: &str, args: &[&str]| {
        let mut command = foreign.command();
        command
            .env("WINEDLLOVERRIDES", &overrides)
            .env("OPKSSH_ACL_STANDIN_LOG", foreign.path(&log))
            .env("OPKSSH_ACL_STANDIN_DACL", dacl)
            .args(args);
        run_with_timeout(&mut command, RUN_TIMEOUT)
    };

    let out = folder.join("out");
    let output = run(&private, &["demo", "--out", &foreign.path(&out)]);
    assert!(output.status.success(), "demo: {output:?}");
    let calls = std::fs::read_to_string(&log).unwrap();
    let temporary = format!("{}\\.id_key.opkssh-tmp.", foreign.path(&out));
    let made_private = calls.lines().any(|line| {
        let args: Vec<&str> = line.split('\t').collect();
        args.first()
            .is_some_and(|path| path.starts_with(&temporary))
            && args.get(1..)
                == Some(
                    &[
                        "/inheritance:r",
                        "/grant:r",
                        &format!("*{USER}:F"),
                        "*S-1-5-18:F",
                        "/q",
                    ][..],
                )
    });
    assert!(
        made_private,
        "no icacls call made {temporary}… private:\n{calls}"
    );
    let read_back = calls
        .lines()
        .any(|line| line.starts_with(&temporary) && line.split('\t').nth(1) == Some("/save"));
    assert!(read_back, "no icacls /save of {temporary}…:\n{calls}");

    let key = folder.join("id_ecdsa");
    std::fs::copy(out.join("id_key"), &key).unwrap();
    let line = std::fs::read_to_string(out.join("cert.pub")).unwrap();
    std::fs::write(
        folder.join("id_ecdsa-cert.pub"),
        format!("{} openpubkey\n", line.trim_end()),
    )
    .unwrap();
    let output = run(&private, &["check", "-i", &foreign.path(&key)]);
    assert_eq!(output.status.code(), Some(0), "check: {output:?}");
    assert!(
        !text(&output.stderr).contains("warning"),
        "check: {output:?}"
    );
    let output = run(&open, &["check", "-i", &foreign.path(&key)]);
    assert_eq!(output.status.code(), Some(1), "check: {output:?}");
    let refusal = format!(
        "key not private: {}: S-1-1-0 (Everyone) is granted access (rights 0x1200a9, inherited \
         from the folder)",
        foreign.path(&key)
    );
    assert!(text(&output.stderr).contains(&refusal), "check: {output:?}");

    let refused = folder.join("refused");
    let output = run(&open, &["demo", "--out", &foreign.path(&refused)]);
    assert!(!output.status.success(), "demo: {output:?}");
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("making the file private: others may still use it: S-1-1-0 (Everyone)"),
        "demo: {stderr}"
    );
    assert!(
        !refused.join("id_key").exists(),
        "a key others can read was written"
    );
}

/// A policy directory for one vector, as verify requires it (root-owned, 0640), plus its cache
/// and log.
struct Policy {
    dir: tempfile::TempDir,
}

impl Policy {
    fn for_vector(vector: &Vector, principal: &str) -> Self {
        let issuer = vector.trimmed("issuer.txt").unwrap();
        let client_id = vector.trimmed("client_id.txt").unwrap();
        let expiration = vector.meta_str("expiration_policy").unwrap_or("oidc");
        let email = vector.meta_str("email").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let etc = dir.path().join("etc");
        std::fs::create_dir(&etc).unwrap();
        for (name, contents) in [
            ("providers", format!("{issuer} {client_id} {expiration}\n")),
            ("auth_id", format!("{principal} {email} {issuer}\n")),
        ] {
            let path = etc.join(name);
            std::fs::write(&path, contents).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        }
        Self { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `opkssh verify` with sshd's three arguments and an empty environment, as sshd runs it.
    fn verify(&self, foreign: &Foreign, principal: &str, cert_line: &str) -> Output {
        let (key_type, key_base64) = cert_line.trim_end().split_once(' ').unwrap();
        let mut command = foreign.command();
        command
            .env_clear()
            .arg("verify")
            .arg("--config-dir")
            .arg(self.path("etc"))
            .arg("--cache-dir")
            .arg(self.path("cache"))
            .arg("--log-file")
            .arg(self.path("opkssh.log"))
            .args([principal, key_base64, key_type]);
        run_with_timeout(&mut command, RUN_TIMEOUT)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.path("opkssh.log")).unwrap_or_default()
    }
}

fn assert_denied(output: &Output, policy: &Policy, vector: &str) {
    assert_eq!(
        output.status.code(),
        Some(1),
        "{vector}: {output:?}\n{}",
        policy.log()
    );
    assert!(
        output.stdout.is_empty(),
        "{vector}: stdout must stay empty on a denial: {output:?}"
    );
}

#[test]
fn foreign_binary_gets_the_documented_decision_on_every_go_vector() {
    let Some(foreign) = Foreign::require() else {
        return;
    };
    assert!(
        is_root(),
        "foreign: run as root: verify requires root-owned policy files"
    );
    let issuers = VectorIssuers::start().unwrap();
    let accept = vectors("accept").unwrap();
    for vector in &accept {
        issuers.serve_vector(&vector.name).unwrap();
        let policy = Policy::for_vector(vector, "alice");
        let line = vector.text("cert.pub").unwrap();
        let output = policy.verify(&foreign, "alice", &line);
        assert_eq!(
            output.status.code(),
            Some(0),
            "{}: {output:?}\n{}",
            vector.name,
            policy.log()
        );
        let certificate = opk_core::sshcert::OpksshCertificate::from_line(&line).unwrap();
        assert_eq!(
            text(&output.stdout),
            format!(
                "cert-authority,principals=\"{}\" {}\n",
                certificate.principals().join(","),
                certificate.signature_key_line()
            ),
            "{}",
            vector.name
        );
        assert_denied(
            &policy.verify(&foreign, "mallory", &line),
            &policy,
            &vector.name,
        );
    }
    let reject = vectors("reject").unwrap();
    for vector in &reject {
        issuers.serve_vector(&vector.name).unwrap();
        let policy = Policy::for_vector(vector, "alice");
        let output = policy.verify(&foreign, "alice", &vector.text("cert.pub").unwrap());
        assert_denied(&output, &policy, &vector.name);
        assert!(
            policy.log().contains("deny principal=alice"),
            "{}: {}",
            vector.name,
            policy.log()
        );
    }
    eprintln!(
        "foreign: {} accept vectors allowed, {} reject vectors denied",
        accept.len(),
        reject.len()
    );
}
