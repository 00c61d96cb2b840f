//! The `install-server` and `uninstall-server` command lines against a temporary root (the
//! hidden `--root`): `--dry-run` prints the plan and changes nothing, a missing
//! `--install-from` file is named, and an sshd drop-in that cannot be outranked is refused by
//! name. The real machine is covered by `tests/tests/install_server.rs` (e2e).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use assert_cmd::Command;
use std::path::Path;

fn root_with_sshd() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let ssh = dir.path().join("etc/ssh/sshd_config.d");
    std::fs::create_dir_all(&ssh).unwrap();
    std::fs::write(
        dir.path().join("etc/ssh/sshd_config"),
        "Include /etc/ssh/sshd_config.d/*.conf\nUsePAM yes\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("opkssh-to-install"), b"binary").unwrap();
    dir
}

fn listing(root: &Path) -> Vec<String> {
    let mut names = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            names.push(path.display().to_string());
            if path.is_dir() {
                stack.push(path);
            }
        }
    }
    names.sort();
    names
}

#[test]
fn dry_run_prints_the_plan_and_changes_nothing() {
    let root = root_with_sshd();
    let before = listing(root.path());
    let prefix = root.path().display().to_string();
    let output = Command::cargo_bin("opkssh")
        .unwrap()
        .args(["install-server", "--dry-run", "--no-home-policy", "--root"])
        .arg(root.path())
        .arg("--install-from")
        .arg(root.path().join("opkssh-to-install"))
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8(output.stdout).unwrap();
    for expected in [
        "change(s) would be made, nothing was changed".to_owned(),
        format!("write {prefix}/usr/local/bin/opkssh (new file, mode 0755, root:opksshuser, 6 bytes from {prefix}/opkssh-to-install)"),
        format!("create directory {prefix}/etc/opk (mode 0750, root:opksshuser)"),
        format!("write {prefix}/etc/ssh/sshd_config.d/60-opk-ssh.conf (new file, mode 0644, root:root)"),
        "    +AuthorizedKeysCommand /usr/local/bin/opkssh verify %u %k %t".to_owned(),
        "    +https://accounts.google.com 206584157355-7cbe4s640tvm7naoludob4ut1emii7sf.apps.googleusercontent.com 24h".to_owned(),
    ] {
        assert!(stdout.contains(&expected), "missing {expected:?} in:\n{stdout}");
    }
    assert!(!stdout.contains("sudoers"), "{stdout}");
    assert_eq!(listing(root.path()), before);

    let output = Command::cargo_bin("opkssh")
        .unwrap()
        .args(["uninstall-server", "--dry-run", "--purge", "--root"])
        .arg(root.path())
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        String::from_utf8(output.stdout).unwrap(),
        "opkssh uninstall-server --dry-run: nothing would change\n"
    );
}

#[test]
fn errors_name_the_file() {
    let root = root_with_sshd();
    Command::cargo_bin("opkssh")
        .unwrap()
        .args(["install-server", "--dry-run", "--root"])
        .arg(root.path())
        .args(["--install-from", "/nonexistent/opkssh"])
        .assert()
        .failure()
        .stderr("Error: /nonexistent/opkssh: the file to install does not exist\n");

    std::fs::write(
        root.path().join("etc/ssh/sshd_config.d/00-keys.conf"),
        "AuthorizedKeysCommand /usr/bin/other %u\nAuthorizedKeysCommandUser nobody\n",
    )
    .unwrap();
    let output = Command::cargo_bin("opkssh")
        .unwrap()
        .args(["install-server", "--dry-run", "--no-home-policy", "--root"])
        .arg(root.path())
        .arg("--install-from")
        .arg(root.path().join("opkssh-to-install"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.starts_with(&format!(
            "Error: {}/etc/ssh/sshd_config.d/00-keys.conf sets AuthorizedKeysCommand",
            root.path().display()
        )) && stderr.contains("--overwrite-config"),
        "{stderr}"
    );
}

// ---------------------------------------------------------------------------------------------
// install-linux.sh's OPKSSH_INSTALL_* variables, and SELinux through stand-in tools
// ---------------------------------------------------------------------------------------------

const GO_VARIABLES: [&str; 12] = [
    "OPKSSH_INSTALL_AUTH_CMD_USER",
    "OPKSSH_INSTALL_AUTH_CMD_GROUP",
    "OPKSSH_INSTALL_SUDOERS_PATH",
    "OPKSSH_INSTALL_HOME_POLICY",
    "OPKSSH_INSTALL_RESTART_SSH",
    "OPKSSH_INSTALL_OVERWRITE_ACTIVE_CONFIG",
    "OPKSSH_INSTALL_LOCAL_INSTALL_FILE",
    "OPKSSH_INSTALL_DIR",
    "OPKSSH_INSTALL_BINARY_NAME",
    "OPKSSH_INSTALL_SELINUX_ENABLE_PROXY",
    "OPKSSH_INSTALL_SELINUX_ENABLE_SQUID",
    "OPKSSH_LOCAL_TE_FILE",
];

/// `opkssh <args> --root <root>` with exactly `vars` of the Go variables set; stdout on
/// success, else the failure's stderr as `Err`.
fn opkssh_in(
    root: &Path,
    args: &[&str],
    vars: &[(&str, &str)],
    path: Option<&str>,
) -> Result<String, String> {
    let mut command = Command::cargo_bin("opkssh").unwrap();
    for name in GO_VARIABLES {
        command.env_remove(name);
    }
    if let Some(path) = path {
        command.env("PATH", path);
    }
    let output = command
        .args(args)
        .arg("--root")
        .arg(root)
        .envs(vars.iter().copied())
        .output()
        .unwrap();
    if output.status.success() {
        Ok(String::from_utf8(output.stdout).unwrap())
    } else {
        Err(String::from_utf8(output.stderr).unwrap())
    }
}

/// `opkssh <args> --root <root>` with exactly `vars` set, expected to fail: its exit status,
/// stdout and stderr.
fn refused(root: &Path, args: &[&str], vars: &[(&str, &str)]) -> (i32, String, String) {
    let mut command = Command::cargo_bin("opkssh").unwrap();
    for name in GO_VARIABLES {
        command.env_remove(name);
    }
    let output = command
        .args(args)
        .arg("--root")
        .arg(root)
        .envs(vars.iter().copied())
        .output()
        .unwrap();
    (
        output.status.code().unwrap(),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

fn dry_run(root: &Path, extra: &[&str], vars: &[(&str, &str)]) -> String {
    let mut args = vec!["install-server", "--dry-run"];
    args.extend_from_slice(extra);
    let local = root.join("opkssh-to-install").display().to_string();
    let mut vars = vars.to_vec();
    if !vars
        .iter()
        .any(|(name, _)| *name == "OPKSSH_INSTALL_LOCAL_INSTALL_FILE")
        && !extra.contains(&"--install-from")
    {
        vars.push(("OPKSSH_INSTALL_LOCAL_INSTALL_FILE", &local));
    }
    opkssh_in(root, &args, &vars, None).unwrap_or_else(|stderr| panic!("{stderr}"))
}

fn assert_has(text: &str, expected: &str) {
    assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
}

fn assert_lacks(text: &str, unexpected: &str) {
    assert!(
        !text.contains(unexpected),
        "unexpected {unexpected:?} in:\n{text}"
    );
}

/// A root with sudo (so home policies can be planned).
fn root_with_sudo() -> tempfile::TempDir {
    let root = root_with_sshd();
    for dir in ["usr/bin", "usr/local", "var/log", "var/cache"] {
        std::fs::create_dir_all(root.path().join(dir)).unwrap();
    }
    std::fs::write(root.path().join("usr/bin/sudo"), b"").unwrap();
    root
}

#[test]
fn go_variables_account_sudoers_and_binary_location() {
    let root = root_with_sudo();
    let prefix = root.path().display().to_string();
    let out = dry_run(
        root.path(),
        &[],
        &[
            ("OPKSSH_INSTALL_AUTH_CMD_USER", "fleetverify"),
            ("OPKSSH_INSTALL_AUTH_CMD_GROUP", "fleetgroup"),
            ("OPKSSH_INSTALL_SUDOERS_PATH", "/etc/sudoers.d/fleet-opkssh"),
            ("OPKSSH_INSTALL_DIR", "/opt/opk/bin"),
            ("OPKSSH_INSTALL_BINARY_NAME", "opk-verify"),
        ],
    );
    assert_has(&out, "using OPKSSH_INSTALL_AUTH_CMD_USER=fleetverify");
    assert_has(
        &out,
        "create group fleetgroup (groupadd --system fleetgroup)",
    );
    assert_has(
        &out,
        "create user fleetverify (useradd --system --no-create-home --comment 'opkssh verifier' --shell /bin/false --gid fleetgroup fleetverify)",
    );
    assert_has(
        &out,
        &format!("create directory {prefix}/etc/opk (mode 0750, root:fleetgroup)"),
    );
    assert_has(
        &out,
        &format!(
            "write {prefix}/opt/opk/bin/opk-verify (new file, mode 0755, root:fleetgroup, 6 bytes from {prefix}/opkssh-to-install)"
        ),
    );
    assert_has(
        &out,
        "    +AuthorizedKeysCommand /opt/opk/bin/opk-verify verify %u %k %t",
    );
    assert_has(&out, "    +AuthorizedKeysCommandUser fleetverify");
    assert_has(
        &out,
        &format!("write {prefix}/etc/sudoers.d/fleet-opkssh (new file, mode 0440, root:root)"),
    );
    assert_has(
        &out,
        "    +fleetverify ALL=(ALL) NOPASSWD: /opt/opk/bin/opk-verify readhome *",
    );
    assert_lacks(&out, "/usr/local/bin/opkssh");
    assert_lacks(&out, &format!("{prefix}/etc/sudoers.d/opkssh "));

    // Defaults without the variables: Go's.
    let out = dry_run(root.path(), &[], &[]);
    assert_has(
        &out,
        &format!("write {prefix}/usr/local/bin/opkssh (new file"),
    );
    assert_has(
        &out,
        &format!("write {prefix}/etc/sudoers.d/opkssh (new file, mode 0440, root:root)"),
    );
    assert_has(
        &out,
        "    +opksshuser ALL=(ALL) NOPASSWD: /usr/local/bin/opkssh readhome *",
    );

    // sshd and sudo need an absolute path.
    let (code, stdout, stderr) = refused(
        root.path(),
        &["install-server", "--dry-run"],
        &[("OPKSSH_INSTALL_DIR", "opt/bin")],
    );
    assert_eq!((code, stdout.as_str()), (2, ""));
    assert_eq!(
        stderr,
        "Error: OPKSSH_INSTALL_DIR=\"opt/bin\": must be an absolute path\n"
    );
}

#[test]
fn go_variables_home_policy_restart_and_flags_win() {
    let root = root_with_sudo();
    let out = dry_run(root.path(), &[], &[("OPKSSH_INSTALL_HOME_POLICY", "false")]);
    assert_lacks(&out, "sudoers");
    // The script reads anything but "true" as false; here only true and false are booleans
    // (bad_values_exit_2_naming_the_variable).
    let out = dry_run(root.path(), &[], &[("OPKSSH_INSTALL_HOME_POLICY", "true")]);
    assert_has(&out, "sudoers.d/opkssh (new file");
    // Empty is unset (`${VAR:-true}`).
    let out = dry_run(root.path(), &[], &[("OPKSSH_INSTALL_HOME_POLICY", "")]);
    assert_has(&out, "sudoers.d/opkssh (new file");
    let out = dry_run(
        root.path(),
        &["--no-home-policy"],
        &[("OPKSSH_INSTALL_HOME_POLICY", "true")],
    );
    assert_lacks(&out, "sudoers");

    let out = dry_run(root.path(), &[], &[("OPKSSH_INSTALL_RESTART_SSH", "false")]);
    assert_has(&out, "and not reload sshd");
    let out = dry_run(root.path(), &[], &[("OPKSSH_INSTALL_RESTART_SSH", "true")]);
    assert_has(&out, "and, if it passes, reload sshd");
    let out = dry_run(
        root.path(),
        &["--no-sshd-restart"],
        &[("OPKSSH_INSTALL_RESTART_SSH", "true")],
    );
    assert_has(&out, "and not reload sshd");

    // --install-from wins over OPKSSH_INSTALL_LOCAL_INSTALL_FILE.
    let prefix = root.path().display().to_string();
    std::fs::write(root.path().join("other-binary"), b"other binary").unwrap();
    let other = format!("{prefix}/other-binary");
    let out = dry_run(
        root.path(),
        &[],
        &[("OPKSSH_INSTALL_LOCAL_INSTALL_FILE", &other)],
    );
    assert_has(&out, &format!("12 bytes from {other})"));
    let flag = format!("{prefix}/opkssh-to-install");
    let out = dry_run(
        root.path(),
        &["--install-from", &flag],
        &[("OPKSSH_INSTALL_LOCAL_INSTALL_FILE", &other)],
    );
    assert_has(&out, &format!("6 bytes from {flag})"));
    let error = opkssh_in(
        root.path(),
        &["install-server", "--dry-run"],
        &[("OPKSSH_INSTALL_LOCAL_INSTALL_FILE", "/nonexistent/opkssh")],
        None,
    )
    .unwrap_err();
    assert_eq!(
        error,
        "Error: /nonexistent/opkssh: the file to install does not exist\n"
    );
}

#[test]
fn go_variable_overwrite_active_config() {
    let root = root_with_sshd();
    std::fs::write(
        root.path().join("etc/ssh/sshd_config.d/00-keys.conf"),
        "AuthorizedKeysCommand /usr/bin/other %u\nAuthorizedKeysCommandUser nobody\n",
    )
    .unwrap();
    let refused = opkssh_in(
        root.path(),
        &[
            "install-server",
            "--dry-run",
            "--no-home-policy",
            "--install-from",
            &root.path().join("opkssh-to-install").display().to_string(),
        ],
        &[("OPKSSH_INSTALL_OVERWRITE_ACTIVE_CONFIG", "false")],
        None,
    )
    .unwrap_err();
    assert_has(&refused, "--overwrite-config");
    let out = dry_run(
        root.path(),
        &["--no-home-policy"],
        &[("OPKSSH_INSTALL_OVERWRITE_ACTIVE_CONFIG", "true")],
    );
    assert_has(&out, "00-keys.conf (replaces the current file");
    assert_has(&out, "    -AuthorizedKeysCommand /usr/bin/other %u");
}

/// Issue 18 item 6: a newline in the account name wrote `PermitRootLogin yes` into the planned
/// sshd drop-in (and exited 0). The value is refused before anything is planned or printed.
#[test]
fn auth_cmd_user_with_a_newline_injects_no_sshd_directive() {
    let root = root_with_sudo();
    let before = listing(root.path());
    let binary = root.path().join("opkssh-to-install").display().to_string();
    for command in ["install-server", "uninstall-server"] {
        let (code, stdout, stderr) = refused(
            root.path(),
            &[command, "--dry-run"],
            &[
                (
                    "OPKSSH_INSTALL_AUTH_CMD_USER",
                    "opksshuser\nPermitRootLogin yes",
                ),
                ("OPKSSH_INSTALL_LOCAL_INSTALL_FILE", &binary),
            ],
        );
        assert_eq!(code, 2, "{command}: {stdout}{stderr}");
        assert_eq!(stdout, "", "{command} planned or printed something");
        assert_eq!(
            stderr,
            "Error: OPKSSH_INSTALL_AUTH_CMD_USER=\"opksshuser\\nPermitRootLogin yes\": must be an account name: a lowercase letter or _, then up to 31 lowercase letters, digits, _ or -\n",
            "{command}"
        );
    }
    assert_eq!(listing(root.path()), before);
}

/// Issue 18 item 6: `OPKSSH_INSTALL_AUTH_CMD_USER=root uninstall-server --remove-user` planned
/// `userdel root`. Root is refused (exit 2, nothing planned), and a system account opkssh did
/// not create is kept with a warning, on this machine's real account database.
#[test]
fn remove_user_never_plans_deleting_root_or_a_system_account() {
    let root = root_with_sudo();
    let commands: [&[&str]; 2] = [
        &["uninstall-server", "--dry-run", "--remove-user"],
        &["install-server", "--dry-run"],
    ];
    for command in commands {
        let (code, stdout, stderr) = refused(
            root.path(),
            command,
            &[("OPKSSH_INSTALL_AUTH_CMD_USER", "root")],
        );
        assert_eq!(code, 2, "{command:?}: {stdout}{stderr}");
        assert_eq!(stdout, "", "{command:?} planned or printed something");
        assert_eq!(
            stderr,
            "Error: OPKSSH_INSTALL_AUTH_CMD_USER=\"root\": must not be root's account or group: sshd never runs opkssh verify as root, and opkssh never changes or deletes root\n"
        );
    }
    let (code, stdout, stderr) = refused(
        root.path(),
        &["uninstall-server", "--dry-run", "--remove-user"],
        &[("OPKSSH_INSTALL_AUTH_CMD_GROUP", "root")],
    );
    assert_eq!((code, stdout.as_str()), (2, ""), "{stderr}");
    for system_account in ["daemon", "bin", "sys"] {
        if !matches!(opk_os::account::user_by_name(system_account), Ok(Some(_))) {
            continue;
        }
        let out = opkssh_in(
            root.path(),
            &["uninstall-server", "--dry-run", "--remove-user"],
            &[
                ("OPKSSH_INSTALL_AUTH_CMD_USER", system_account),
                ("OPKSSH_INSTALL_AUTH_CMD_GROUP", system_account),
            ],
            None,
        )
        .unwrap();
        assert_lacks(&out, "userdel");
        assert_lacks(&out, "groupdel");
        assert_has(
            &out,
            &format!("warning: kept user {system_account}: opkssh did not create it"),
        );
    }
}

/// Every variable and flag is checked by its kind before planning: exit 2, naming it, nothing
/// printed on stdout.
#[test]
fn bad_values_exit_2_naming_the_variable() {
    let root = root_with_sudo();
    let binary = root.path().join("opkssh-to-install").display().to_string();
    let cases: [(&str, &str, &str); 12] = [
        (
            "OPKSSH_INSTALL_SUDOERS_PATH",
            "etc/sudoers.d/opkssh",
            "must be an absolute path",
        ),
        (
            "OPKSSH_INSTALL_LOCAL_INSTALL_FILE",
            "opkssh",
            "must be an absolute path",
        ),
        (
            "OPKSSH_LOCAL_TE_FILE",
            "./opkssh.te",
            "must be an absolute path",
        ),
        (
            "OPKSSH_INSTALL_SUDOERS_PATH",
            "/etc/sudoers.d/opkssh\nroot ALL=(ALL) ALL",
            "must not contain control characters",
        ),
        (
            "OPKSSH_INSTALL_SUDOERS_PATH",
            "/etc/sudoers.d/../shadow",
            "must not contain a .. component",
        ),
        (
            "OPKSSH_INSTALL_DIR",
            "/usr/local/bin\u{1b}[2J",
            "must not contain control characters",
        ),
        (
            "OPKSSH_INSTALL_DIR",
            "/opt/my tools",
            "must not contain spaces",
        ),
        (
            "OPKSSH_INSTALL_BINARY_NAME",
            "../opkssh",
            "must be a file name",
        ),
        ("OPKSSH_INSTALL_HOME_POLICY", "yes", "must be true or false"),
        ("OPKSSH_INSTALL_RESTART_SSH", "1", "must be true or false"),
        (
            "OPKSSH_INSTALL_SELINUX_ENABLE_SQUID",
            "TRUE",
            "must be true or false",
        ),
        (
            "OPKSSH_INSTALL_AUTH_CMD_GROUP",
            "opk group",
            "must be an account name",
        ),
    ];
    for (name, value, reason) in cases {
        for command in ["install-server", "uninstall-server"] {
            let mut vars = vec![(name, value)];
            if name != "OPKSSH_INSTALL_LOCAL_INSTALL_FILE" {
                vars.push(("OPKSSH_INSTALL_LOCAL_INSTALL_FILE", &binary));
            }
            let (code, stdout, stderr) = refused(root.path(), &[command, "--dry-run"], &vars);
            assert_eq!(code, 2, "{command} {name}={value:?}: {stdout}{stderr}");
            assert_eq!(stdout, "", "{command} {name}={value:?}");
            assert!(
                stderr.starts_with(&format!("Error: {name}={value:?}: {reason}")),
                "{command} {name}={value:?}: {stderr}"
            );
        }
    }
    // Flags too: a control character in a file name given by hand.
    let (code, stdout, stderr) = refused(
        root.path(),
        &[
            "install-server",
            "--dry-run",
            "--install-from",
            "/tmp/opk\nssh",
        ],
        &[],
    );
    assert_eq!((code, stdout.as_str()), (2, ""), "{stderr}");
    assert_eq!(
        stderr,
        "Error: --install-from=\"/tmp/opk\\nssh\": must not contain control characters\n"
    );
    let (code, _, stderr) = refused(
        Path::new("relative-root"),
        &["install-server", "--dry-run"],
        &[],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.starts_with("Error: --root=\"relative-root\": must be an absolute path"),
        "{stderr}"
    );
    // Empty is unset, and true/false are the booleans.
    dry_run(
        root.path(),
        &[],
        &[
            ("OPKSSH_INSTALL_SUDOERS_PATH", ""),
            ("OPKSSH_INSTALL_HOME_POLICY", "false"),
            ("OPKSSH_INSTALL_RESTART_SSH", "true"),
        ],
    );
}

/// A root where SELinux is enabled, and stand-ins for semodule, setsebool, getsebool and
/// restorecon that record their arguments in `calls` and keep loaded modules and booleans
/// in `state/` (so a second install sees what the first did). checkmodule and
/// semodule_package are the real ones.
struct SelinuxRoot {
    root: tempfile::TempDir,
    tools: tempfile::TempDir,
}

impl SelinuxRoot {
    fn new() -> Self {
        let root = root_with_sudo();
        std::fs::create_dir_all(root.path().join("sys/fs/selinux")).unwrap();
        std::fs::write(root.path().join("sys/fs/selinux/enforce"), "1").unwrap();
        let tools = tempfile::tempdir().unwrap();
        let t = tools.path().display();
        std::fs::create_dir(tools.path().join("state")).unwrap();
        let scripts = [
            (
                "semodule",
                format!(
                    "echo \"semodule $*\" >>{t}/calls\ncase \"$1\" in\n-i) cp \"$2\" {t}/state/loaded.pp && echo opkssh >{t}/state/modules ;;\n-l) cat {t}/state/modules 2>/dev/null ;;\n-r) grep -qx \"$2\" {t}/state/modules && rm {t}/state/modules ;;\nesac\n"
                ),
            ),
            (
                "setsebool",
                format!(
                    "echo \"setsebool $*\" >>{t}/calls\n[ \"$1\" = -P ] && [ -f {t}/state/modules ] && echo \"$2 --> $3\" >>{t}/state/booleans\n"
                ),
            ),
            (
                "getsebool",
                format!(
                    "grep \"^$1 --> \" {t}/state/booleans 2>/dev/null | tail -1 | grep . || {{ echo \"getsebool: $1: not defined\" >&2; exit 1; }}\n"
                ),
            ),
            (
                "restorecon",
                format!(
                    "echo \"restorecon $*\" >>{t}/calls\nfor p; do [ -e \"$p\" ] || {{ echo \"restorecon: $p: missing\" >&2; exit 1; }}; done\n"
                ),
            ),
        ];
        for (name, body) in scripts {
            let path = tools.path().join(name);
            std::fs::write(&path, format!("#!/bin/sh\nset -e\n{body}")).unwrap();
            std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                .unwrap();
        }
        Self { root, tools }
    }

    fn path_var(&self) -> String {
        format!(
            "{}:/usr/sbin:/usr/bin:/sbin:/bin",
            self.tools.path().display()
        )
    }

    fn calls(&self) -> String {
        std::fs::read_to_string(self.tools.path().join("calls")).unwrap_or_default()
    }

    fn run(&self, args: &[&str], vars: &[(&str, &str)]) -> Result<String, String> {
        opkssh_in(self.root.path(), args, vars, Some(&self.path_var()))
    }
}

/// The real policy compiler, needed by the SELinux tests; missing it fails them under
/// OPKSSH_E2E=1 (CI installs checkpolicy and semodule-utils) and skips them otherwise.
fn have_policy_compiler() -> bool {
    let found = ["checkmodule", "semodule_package"].iter().all(|tool| {
        ["/usr/bin", "/usr/sbin", "/bin"]
            .iter()
            .any(|dir| Path::new(dir).join(tool).is_file())
    });
    if !found {
        assert!(
            std::env::var_os("OPKSSH_E2E").is_none(),
            "checkmodule/semodule_package are missing: apt-get install checkpolicy semodule-utils"
        );
        eprintln!(
            "SKIP: checkmodule/semodule_package are missing (apt-get install checkpolicy semodule-utils)"
        );
    }
    found
}

#[test]
fn selinux_module_is_compiled_loaded_its_booleans_set_and_files_relabeled() {
    if !have_policy_compiler() {
        return;
    }
    let selinux = SelinuxRoot::new();
    let root = selinux.root.path();
    let prefix = root.display().to_string();
    let (user, group) = me();
    let binary = format!("{prefix}/opkssh-to-install");
    let vars = [
        ("OPKSSH_INSTALL_AUTH_CMD_USER", user.as_str()),
        ("OPKSSH_INSTALL_AUTH_CMD_GROUP", group.as_str()),
        ("OPKSSH_INSTALL_LOCAL_INSTALL_FILE", binary.as_str()),
        ("OPKSSH_INSTALL_SELINUX_ENABLE_PROXY", "true"),
    ];

    // The dry run shows the SELinux steps and runs none of them.
    let out = selinux
        .run(
            &["install-server", "--dry-run", "--selinux-enable-squid"],
            &vars,
        )
        .unwrap();
    assert_has(
        &out,
        "compile SELinux module opkssh from opkssh's built-in opkssh.te (checkmodule -M -m, semodule_package) and load it (semodule -i)",
    );
    for boolean in [
        "opkssh_enable_home",
        "opkssh_enable_squid",
        "opkssh_enable_proxy",
    ] {
        assert_has(
            &out,
            &format!("turn on SELinux boolean {boolean} (setsebool -P {boolean} on)"),
        );
    }
    assert_has(
        &out,
        &format!(
            "restore SELinux labels (restorecon {prefix}/usr/local/bin {prefix}/usr/local/bin/opkssh {prefix}/etc/opk "
        ),
    );
    assert_eq!(selinux.calls(), "semodule -l\n", "a dry run only reads");

    let out = selinux
        .run(
            &[
                "install-server",
                "--no-sshd-restart",
                "--selinux-enable-squid",
            ],
            &vars,
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert_has(&out, "change(s) made");
    let calls = selinux.calls();
    let lines: Vec<&str> = calls.lines().collect();
    assert_eq!(lines[0], "semodule -l");
    assert!(
        lines[2].starts_with("semodule -i /") && lines[2].ends_with("/opkssh.pp"),
        "{calls}"
    );
    let work_dir = Path::new(lines[2].trim_start_matches("semodule -i "))
        .parent()
        .unwrap()
        .to_owned();
    assert!(
        !work_dir.exists(),
        "the compile folder {} stayed",
        work_dir.display()
    );
    assert_eq!(
        &lines[3..6],
        [
            "setsebool -P opkssh_enable_home on",
            "setsebool -P opkssh_enable_squid on",
            "setsebool -P opkssh_enable_proxy on"
        ],
        "{calls}"
    );
    let relabel = lines[6];
    for path in [
        "/usr/local/bin/opkssh",
        "/etc/opk",
        "/etc/opk/policy.d",
        "/etc/opk/providers",
        "/var/log/opkssh.log",
        "/etc/sudoers.d/opkssh",
        "/etc/ssh/sshd_config.d/60-opk-ssh.conf",
    ] {
        assert!(
            relabel
                .split(' ')
                .any(|arg| arg == format!("{prefix}{path}")),
            "{path} not relabeled: {relabel}"
        );
    }
    assert_eq!(lines.len(), 7, "{calls}");
    // What semodule loaded is the policy package checkmodule and semodule_package made from
    // install/selinux/opkssh.te: the package magic, then the module and its booleans.
    let package = std::fs::read(selinux.tools.path().join("state/loaded.pp")).unwrap();
    assert_eq!(package[..4], [0x8f, 0xff, 0x7c, 0xf9]);
    for name in [
        "opkssh",
        "opkssh_enable_home",
        "opkssh_enable_squid",
        "opkssh_enable_proxy",
        "http_port_t",
        "sshd_t",
    ] {
        assert!(
            package
                .windows(name.len())
                .any(|window| window == name.as_bytes()),
            "{name} is not in the module"
        );
    }

    // Again: the module is loaded and the booleans are on, so nothing runs.
    let out = selinux
        .run(
            &[
                "install-server",
                "--no-sshd-restart",
                "--selinux-enable-squid",
            ],
            &vars,
        )
        .unwrap();
    assert_has(&out, "already installed as asked, nothing changed");
    assert_eq!(
        selinux.calls(),
        format!("{calls}semodule -l\n"),
        "only the probe ran"
    );

    // uninstall-server takes the module out; --no-selinux keeps it.
    let uninstall_vars = &vars[..2];
    let out = selinux
        .run(
            &["uninstall-server", "--dry-run", "--no-selinux"],
            uninstall_vars,
        )
        .unwrap();
    assert_lacks(&out, "SELinux");
    let out = selinux
        .run(&["uninstall-server", "--no-sshd-restart"], uninstall_vars)
        .unwrap();
    assert_has(&out, "remove SELinux module opkssh (semodule -r opkssh)");
    assert!(
        selinux.calls().ends_with("semodule -r opkssh\n"),
        "{}",
        selinux.calls()
    );
    assert!(!selinux.tools.path().join("state/modules").exists());
}

#[test]
fn selinux_sources_opt_out_and_missing_tools() {
    let selinux = SelinuxRoot::new();
    let root = selinux.root.path();
    let prefix = root.display().to_string();
    let binary = format!("{prefix}/opkssh-to-install");
    let vars = [("OPKSSH_INSTALL_LOCAL_INSTALL_FILE", binary.as_str())];

    // A package's compiled module is loaded as it is.
    std::fs::create_dir_all(root.join("usr/share/selinux/packages")).unwrap();
    std::fs::write(root.join("usr/share/selinux/packages/opkssh.pp"), b"pp").unwrap();
    let out = selinux
        .run(&["install-server", "--dry-run", "--no-home-policy"], &vars)
        .unwrap();
    assert_has(
        &out,
        &format!(
            "load SELinux module opkssh (semodule -i {prefix}/usr/share/selinux/packages/opkssh.pp)"
        ),
    );
    assert_lacks(&out, "setsebool");
    // --install-te-from (or Go's OPKSSH_LOCAL_TE_FILE) names the source to compile.
    let te = format!("{prefix}/custom.te");
    std::fs::write(&te, "module opkssh 9.0;\n").unwrap();
    let out = selinux
        .run(
            &["install-server", "--dry-run", "--no-home-policy"],
            &[vars[0], ("OPKSSH_LOCAL_TE_FILE", &te)],
        )
        .unwrap();
    assert_has(
        &out,
        &format!("compile SELinux module opkssh from {te} (checkmodule"),
    );
    let error = selinux
        .run(
            &[
                "install-server",
                "--dry-run",
                "--install-te-from",
                "/nonexistent.te",
            ],
            &vars,
        )
        .unwrap_err();
    assert_eq!(
        error,
        "Error: /nonexistent.te: the SELinux type enforcement file does not exist\n"
    );
    // Go's variables for the proxy booleans; the flags do the same.
    let out = selinux
        .run(
            &["install-server", "--dry-run", "--no-home-policy"],
            &[vars[0], ("OPKSSH_INSTALL_SELINUX_ENABLE_SQUID", "true")],
        )
        .unwrap();
    assert_has(&out, "setsebool -P opkssh_enable_squid on");
    assert_lacks(&out, "opkssh_enable_proxy");
    let out = selinux
        .run(
            &[
                "install-server",
                "--dry-run",
                "--no-home-policy",
                "--selinux-enable-proxy",
            ],
            &vars,
        )
        .unwrap();
    assert_has(&out, "setsebool -P opkssh_enable_proxy on");
    assert_lacks(&out, "opkssh_enable_squid");

    // --no-selinux leaves it all alone.
    let out = selinux
        .run(&["install-server", "--dry-run", "--no-selinux"], &vars)
        .unwrap();
    assert_lacks(&out, "SELinux");
    assert_lacks(&out, "restorecon");

    // Without the tools: refused by name, unless --no-selinux.
    let error = opkssh_in(
        root,
        &["install-server", "--dry-run"],
        &vars,
        Some("/nonexistent"),
    )
    .unwrap_err();
    assert_has(
        &error,
        "SELinux is enabled, and loading opkssh's policy module needs semodule, setsebool, restorecon",
    );
    assert_has(&error, "--no-selinux");
    assert!(
        opkssh_in(
            root,
            &["install-server", "--dry-run", "--no-selinux"],
            &vars,
            Some("/nonexistent")
        )
        .is_ok()
    );
}

/// The running user's name and primary group name.
fn me() -> (String, String) {
    // Root is never the verifier's account; run as root, the files go to nobody instead.
    let uid = if opk_os::account::is_root() {
        opk_os::account::user_id("nobody").unwrap()
    } else {
        opk_os::account::effective_uid().unwrap()
    };
    let user = opk_os::account::user_by_uid(uid).unwrap().unwrap();
    let group = opk_os::account::group_by_gid(user.gid).unwrap().unwrap();
    (user.name, group.name)
}
