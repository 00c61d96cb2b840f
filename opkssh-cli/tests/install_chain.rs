//! `install-server` on a host whose sshd already runs an `AuthorizedKeysCommand` (EC2 Instance
//! Connect, SSSD), against a temporary root (the hidden `--root`): the command is kept as
//! `chain_authorized_keys_command` in `/etc/opk/config.yml`, `--dry-run` shows it, the
//! account it now runs as is warned about, `uninstall-server` puts sshd's files back byte for
//! byte and takes the line out, and `--no-chain` replaces the command as before.
//!
//! EC2 Instance Connect's configuration text, from aws/aws-ec2-instance-connect-config:
//! - Amazon Linux has the two lines in `/etc/ssh/sshd_config` itself:
//!   `integration-test/test/custom_config.sh` checks for
//!   `^AuthorizedKeysCommand[[:blank:]]/opt/aws/bin/eic_run_authorized_keys[[:blank:]]%u[[:blank:]]%f$`
//!   there when `integration-test/config/amazon-linux` says `SSHD_CONFIG_MODIFIED="1"`, and the
//!   AWS EC2 user guide ("Install EC2 Instance Connect") shows them in `/etc/ssh/sshd_config`
//!   on Amazon Linux 2, with `AuthorizedKeysCommandUser ec2-instance-connect`, and in
//!   `/etc/ssh/sshd_config.d/60-ec2-instance-connect.conf` on CentOS Stream 9, RHEL 9 and macOS.
//! - The Debian/Ubuntu package (`debian/postinst`, `src/deb_systemd/ssh.service.d/ec2-instance-connect.conf`)
//!   and the RPM (`rpmsrc/SPECS/generic.spec`) do not edit sshd_config: they start sshd with
//!   `-o "AuthorizedKeysCommand /usr/share/ec2-instance-connect/eic_run_authorized_keys %%u %%f"`
//!   (`/opt/aws/bin/…` in the RPM) and `-o "AuthorizedKeysCommandUser ec2-instance-connect"`
//!   in a systemd `ExecStart` override, and only when sshd_config sets no
//!   `AuthorizedKeysCommand`.
//! - None of these ships a `Match` block. The `Match` variant below is the Amazon Linux lines,
//!   byte for byte, inside a `Match User ec2-user` block, as they end up when a `Match` block
//!   precedes the end of the file they are appended to.
//!
//! SSSD's lines are those of sss_ssh_authorizedkeys(1).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use assert_cmd::Command;
use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;

const EIC_COMMAND: &str = "/opt/aws/bin/eic_run_authorized_keys %u %f";
const EIC_LINES: &str = "AuthorizedKeysCommand /opt/aws/bin/eic_run_authorized_keys %u %f\nAuthorizedKeysCommandUser ec2-instance-connect\n";
/// An Amazon Linux 2 style sshd_config (no drop-in folder): OpenSSH's stock lines and
/// per-user example, then EC2 Instance Connect's two lines at the end.
const AL2_HEAD: &str = "HostKey /etc/ssh/ssh_host_ed25519_key\nSyslogFacility AUTHPRIV\nAuthorizedKeysFile .ssh/authorized_keys\nPasswordAuthentication no\nUsePAM yes\nSubsystem sftp\t/usr/libexec/openssh/sftp-server\n\n# Example of overriding settings on a per-user basis\n#Match User anoncvs\n#\tX11Forwarding no\n#\tAllowTcpForwarding no\n#\tPermitTTY no\n#\tForceCommand cvs server\n\n";
const SSSD_LINES: &str =
    "AuthorizedKeysCommand /usr/bin/sss_ssh_authorizedkeys %u\nAuthorizedKeysCommandUser nobody\n";
const CHAIN_MARK: &str = "# opkssh install-server kept the AuthorizedKeysCommand it replaced in sshd here; opkssh uninstall-server removes the next line";

struct Host {
    root: tempfile::TempDir,
}

impl Host {
    /// A machine with sshd's files as given (`(path under /etc/ssh, text)`), nothing of opkssh.
    fn new(sshd_files: &[(&str, &str)]) -> Self {
        let root = tempfile::tempdir().unwrap();
        for dir in ["etc/ssh", "var/log", "var/cache", "usr/local"] {
            std::fs::create_dir_all(root.path().join(dir)).unwrap();
        }
        for (name, text) in sshd_files {
            let path = root.path().join("etc/ssh").join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        std::fs::write(root.path().join("opkssh-to-install"), b"binary").unwrap();
        Self { root }
    }

    fn path(&self, absolute: &str) -> PathBuf {
        self.root.path().join(absolute.trim_start_matches('/'))
    }

    fn read(&self, absolute: &str) -> String {
        std::fs::read_to_string(self.path(absolute)).unwrap()
    }

    fn prefix(&self) -> String {
        self.root.path().display().to_string()
    }

    /// `opkssh <args> --root <root> --install-from …`, as the running user (or nobody under
    /// root) so that files can be given to it and no account is created: stdout, or stderr as
    /// `Err`.
    fn run(&self, args: &[&str], own_account: bool) -> Result<String, String> {
        let mut command = Command::cargo_bin("opkssh").unwrap();
        for (name, _) in std::env::vars() {
            if name.starts_with("OPKSSH_") {
                command.env_remove(name);
            }
        }
        if own_account {
            let (user, group) = me();
            command
                .env("OPKSSH_INSTALL_AUTH_CMD_USER", user)
                .env("OPKSSH_INSTALL_AUTH_CMD_GROUP", group);
        }
        command.args(args);
        if args.first() == Some(&"install-server") {
            command
                .env(
                    "OPKSSH_INSTALL_LOCAL_INSTALL_FILE",
                    self.path("/opkssh-to-install"),
                )
                .arg("--no-home-policy");
        }
        let output = command
            .arg("--root")
            .arg(self.root.path())
            .output()
            .unwrap();
        if output.status.success() {
            Ok(String::from_utf8(output.stdout).unwrap())
        } else {
            Err(String::from_utf8(output.stderr).unwrap())
        }
    }

    fn ok(&self, args: &[&str]) -> String {
        self.run(args, true)
            .unwrap_or_else(|stderr| panic!("{stderr}"))
    }

    /// Every file under `/etc/ssh`, with its contents.
    fn sshd_files(&self) -> Vec<(PathBuf, Vec<u8>)> {
        let mut out = Vec::new();
        let mut stack = vec![self.path("/etc/ssh")];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    out.push((path.clone(), std::fs::read(&path).unwrap()));
                }
            }
        }
        out.sort();
        out
    }
}

/// The running user's name and primary group name (nobody's under root).
fn me() -> (String, String) {
    let uid = if opk_os::account::is_root() {
        opk_os::account::user_id("nobody").unwrap()
    } else {
        opk_os::account::effective_uid().unwrap()
    };
    let user = opk_os::account::user_by_uid(uid).unwrap().unwrap();
    let group = opk_os::account::group_by_gid(user.gid).unwrap().unwrap();
    (user.name, group.name)
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

fn chained(command: &str) -> String {
    format!("{CHAIN_MARK}\nchain_authorized_keys_command: \"{command}\"\n")
}

/// Installs, checks config.yml and that a second run changes nothing, uninstalls, checks that
/// sshd's files are back byte for byte and the line is gone.
fn install_and_uninstall(host: &Host, command: &str) {
    let before = host.sshd_files();
    let out = host.ok(&["install-server"]);
    assert_has(&out, "opkssh install-server: ");
    assert_eq!(host.read("/etc/opk/config.yml"), chained(command));
    let mode = std::fs::metadata(host.path("/etc/opk/config.yml"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o640);
    assert_ne!(host.sshd_files(), before);
    assert_has(
        &host.ok(&["install-server"]),
        "already installed as asked, nothing changed",
    );

    let out = host.ok(&["uninstall-server", "--dry-run"]);
    assert_has(&out, &format!("    -{CHAIN_MARK}"));
    host.ok(&["uninstall-server"]);
    assert_eq!(host.sshd_files(), before, "sshd's files are not restored");
    assert_eq!(host.read("/etc/opk/config.yml"), "");
}

#[test]
fn ec2_instance_connect_in_sshd_config_is_chained() {
    let original = format!("{AL2_HEAD}{EIC_LINES}");
    let host = Host::new(&[("sshd_config", &original)]);
    let prefix = host.prefix();
    let (user, _) = me();

    let out = host.ok(&["install-server", "--dry-run"]);
    for expected in [
        format!(
            "warning: {prefix}/etc/ssh/sshd_config line 15: `AuthorizedKeysCommand {EIC_COMMAND}` is kept: /etc/opk/config.yml gets chain_authorized_keys_command, and opkssh verify runs it for every key that is not an opkssh certificate it accepts (--no-chain replaces it instead)"
        ),
        format!(
            "warning: sshd ran `{EIC_COMMAND}` as ec2-instance-connect (AuthorizedKeysCommandUser); chained, it runs as {user}, the account sshd runs opkssh verify as: with {user}'s rights, not ec2-instance-connect's, it can read /etc/opk, and whatever only ec2-instance-connect may use (files it owns, sudo rules, firewall rules by user) is out of its reach; check it as {user} (sudo -u {user} /opt/aws/bin/eic_run_authorized_keys …) or pass --no-chain"
        ),
        format!("write {prefix}/etc/opk/config.yml (new file, mode 0640"),
        format!("    +{CHAIN_MARK}"),
        format!("    +chain_authorized_keys_command: \"{EIC_COMMAND}\""),
        format!("    -AuthorizedKeysCommand {EIC_COMMAND}"),
        format!("    +#AuthorizedKeysCommand {EIC_COMMAND}"),
        "    +AuthorizedKeysCommand /usr/local/bin/opkssh verify %u %k %t".to_owned(),
    ] {
        assert_has(&out, &expected);
    }
    assert_lacks(&out, "only for the connections");
    assert!(!host.path("/etc/opk").exists(), "a dry run changed nothing");

    install_and_uninstall(&host, EIC_COMMAND);
    assert_eq!(host.read("/etc/ssh/sshd_config"), original);
}

#[test]
fn ec2_instance_connect_in_a_match_block_is_chained() {
    let original = format!("{AL2_HEAD}Match User ec2-user\n{EIC_LINES}");
    let host = Host::new(&[("sshd_config", &original)]);
    let prefix = host.prefix();

    let out = host.ok(&["install-server", "--dry-run"]);
    for expected in [
        format!(
            "warning: {prefix}/etc/ssh/sshd_config line 16: `AuthorizedKeysCommand {EIC_COMMAND}` (in the block of `Match User ec2-user`, line 15) is commented out, so that opkssh applies to the connections its block matches too, and kept: /etc/opk/config.yml gets chain_authorized_keys_command"
        ),
        format!(
            "warning: sshd ran `{EIC_COMMAND}` only for the connections `Match User ec2-user` matches; chained, it runs for every login opkssh does not accept, so it may let in logins outside that block: if the block limits it on purpose (to some users or addresses), pass --no-chain instead"
        ),
        format!("warning: sshd ran `{EIC_COMMAND}` as ec2-instance-connect"),
        format!("    +chain_authorized_keys_command: \"{EIC_COMMAND}\""),
        // opkssh's lines go before the block, the block's lines are commented out.
        "    +AuthorizedKeysCommand /usr/local/bin/opkssh verify %u %k %t\n".to_owned(),
        format!(
            "     Match User ec2-user\n    -AuthorizedKeysCommand {EIC_COMMAND}\n    -AuthorizedKeysCommandUser ec2-instance-connect\n    +# opkssh install-server commented out the next line; opkssh uninstall-server restores it\n    +#AuthorizedKeysCommand {EIC_COMMAND}\n"
        ),
        "    +#AuthorizedKeysCommandUser ec2-instance-connect".to_owned(),
    ] {
        assert_has(&out, &expected);
    }
    assert_lacks(&out, "inside a Match block");

    install_and_uninstall(&host, EIC_COMMAND);
    assert_eq!(host.read("/etc/ssh/sshd_config"), original);

    // --no-chain: the block keeps its command (opkssh does not apply there), as before.
    let out = host.ok(&["install-server", "--no-chain", "--dry-run"]);
    assert_has(
        &out,
        "sshd_config sets AuthorizedKeysCommand inside a Match block; for the connections it matches, that command is used instead of opkssh",
    );
    assert_lacks(&out, "chain_authorized_keys_command");
    assert_lacks(&out, "#AuthorizedKeysCommand");
}

#[test]
fn ec2_instance_connect_drop_in_is_chained_behind_an_earlier_drop_in() {
    // CentOS Stream 9 / RHEL 9: sshd_config includes the drop-ins first.
    let main = "Include /etc/ssh/sshd_config.d/*.conf\nAuthorizedKeysFile .ssh/authorized_keys\nSubsystem sftp\t/usr/libexec/openssh/sftp-server\n";
    let host = Host::new(&[
        ("sshd_config", main),
        ("sshd_config.d/60-ec2-instance-connect.conf", EIC_LINES),
    ]);
    let out = host.ok(&["install-server", "--dry-run"]);
    assert_has(
        &out,
        &format!(
            "warning: {}/etc/ssh/sshd_config.d/60-ec2-instance-connect.conf line 1: `AuthorizedKeysCommand {EIC_COMMAND}` is kept",
            host.prefix()
        ),
    );
    assert_has(&out, "sshd_config.d/59-opk-ssh.conf (new file");
    install_and_uninstall(&host, EIC_COMMAND);
    assert!(!host.path("/etc/ssh/sshd_config.d/59-opk-ssh.conf").exists());
}

#[test]
fn sssd_is_chained_and_its_account_named() {
    let main = "Include /etc/ssh/sshd_config.d/*.conf\nUsePAM yes\n";
    let host = Host::new(&[
        ("sshd_config", main),
        ("sshd_config.d/50-sssd.conf", SSSD_LINES),
    ]);
    // As the default account, which is not SSSD's `nobody`.
    let out = host
        .run(&["install-server", "--dry-run"], false)
        .unwrap_or_else(|stderr| panic!("{stderr}"));
    assert_has(
        &out,
        "warning: sshd ran `/usr/bin/sss_ssh_authorizedkeys %u` as nobody (AuthorizedKeysCommandUser); chained, it runs as opksshuser, the account sshd runs opkssh verify as: with opksshuser's rights, not nobody's, it can read /etc/opk,",
    );
    assert_has(
        &out,
        "    +chain_authorized_keys_command: \"/usr/bin/sss_ssh_authorizedkeys %u\"",
    );
    install_and_uninstall(&host, "/usr/bin/sss_ssh_authorizedkeys %u");
}

#[test]
fn no_chain_replaces_the_command_as_before() {
    let original = format!("{AL2_HEAD}{EIC_LINES}");
    let host = Host::new(&[("sshd_config", &original)]);
    let before = host.sshd_files();
    let out = host.ok(&["install-server", "--no-chain", "--dry-run"]);
    assert_has(&out, &format!("    +#AuthorizedKeysCommand {EIC_COMMAND}"));
    assert_lacks(&out, "chain_authorized_keys_command");
    assert_lacks(&out, "is kept");
    host.ok(&["install-server", "--no-chain"]);
    let replaced = host.sshd_files();
    assert_eq!(host.read("/etc/opk/config.yml"), "");

    // Chaining later adds the line and touches nothing of sshd's; --no-chain takes it out.
    let out = host.ok(&["install-server"]);
    assert_has(&out, "1 change(s) made");
    assert_eq!(host.read("/etc/opk/config.yml"), chained(EIC_COMMAND));
    assert_eq!(host.sshd_files(), replaced);
    host.ok(&["install-server", "--no-chain"]);
    assert_eq!(host.read("/etc/opk/config.yml"), "");

    host.ok(&["uninstall-server"]);
    assert_eq!(host.sshd_files(), before);
}

#[test]
fn config_yml_is_kept_byte_for_byte_and_never_clobbered() {
    let original = format!("{AL2_HEAD}{EIC_LINES}");
    let host = Host::new(&[("sshd_config", &original)]);
    std::fs::create_dir_all(host.path("/etc/opk")).unwrap();
    // No final line feed: the one byte uninstalling does not take back.
    let config = "# proxy for verify\nenv_vars:\n  HTTPS_PROXY: http://proxy.internal:3128\ndeny_users: [\"root\"]";
    std::fs::write(host.path("/etc/opk/config.yml"), config).unwrap();
    host.ok(&["install-server"]);
    assert_eq!(
        host.read("/etc/opk/config.yml"),
        format!("{config}\n{}", chained(EIC_COMMAND))
    );
    host.ok(&["uninstall-server"]);
    assert_eq!(host.read("/etc/opk/config.yml"), format!("{config}\n"));
    assert_eq!(host.read("/etc/ssh/sshd_config"), original);

    // The administrator's own value: kept when it is the same, refused when it is not.
    let theirs = "chain_authorized_keys_command: /usr/local/bin/other-keys %u\n";
    std::fs::write(host.path("/etc/opk/config.yml"), theirs).unwrap();
    let error = host.run(&["install-server"], true).unwrap_err();
    assert_eq!(
        error,
        format!(
            "Error: {}/etc/opk/config.yml: chain_authorized_keys_command is already set, to \"/usr/local/bin/other-keys %u\"; opkssh keeps sshd's AuthorizedKeysCommand \"{EIC_COMMAND}\" there: fix or remove that, or pass --no-chain to replace the command without keeping it\n",
            host.prefix()
        )
    );
    assert_eq!(host.read("/etc/opk/config.yml"), theirs);
    assert_eq!(host.read("/etc/ssh/sshd_config"), original);
    let same = format!("chain_authorized_keys_command: \"{EIC_COMMAND}\"\n");
    std::fs::write(host.path("/etc/opk/config.yml"), &same).unwrap();
    host.ok(&["install-server"]);
    assert_eq!(host.read("/etc/opk/config.yml"), same);
    host.ok(&["uninstall-server"]);
    assert_eq!(host.read("/etc/opk/config.yml"), same);
    assert_eq!(host.read("/etc/ssh/sshd_config"), original);
}

#[test]
fn two_different_commands_are_refused_by_name() {
    let main = format!(
        "{EIC_LINES}Match User git\n    AuthorizedKeysCommand /usr/bin/sss_ssh_authorizedkeys %u\n"
    );
    let host = Host::new(&[("sshd_config", &main)]);
    let error = host
        .run(&["install-server", "--dry-run"], true)
        .unwrap_err();
    assert_has(
        &error,
        &format!(
            "Error: {}/etc/ssh/sshd_config line 1: `AuthorizedKeysCommand {EIC_COMMAND}`, and sshd_config line 4: `AuthorizedKeysCommand /usr/bin/sss_ssh_authorizedkeys %u` (in the block of `Match User git`, line 3): opkssh keeps one command",
            host.prefix()
        ),
    );
    assert_has(&error, "--no-chain");
    assert!(
        host.ok(&["install-server", "--no-chain", "--dry-run"])
            .contains("would be made")
    );
}

#[test]
fn a_command_on_sshds_command_line_is_named() {
    // The Debian/Ubuntu package's override, src/deb_systemd/ssh.service.d/ec2-instance-connect.conf.
    let unit = "[Service]\nExecStart=\nExecStart=/usr/sbin/sshd -D -o \"PermitUserEnvironment EIC_*\" -o \"AuthorizedKeysCommand /usr/share/ec2-instance-connect/eic_run_authorized_keys %%u %%f\" -o \"AuthorizedKeysCommandUser ec2-instance-connect\" $SSHD_OPTS\n";
    let host = Host::new(&[(
        "sshd_config",
        "Include /etc/ssh/sshd_config.d/*.conf\nUsePAM yes\n",
    )]);
    let override_dir = host.path("/lib/systemd/system/ssh.service.d");
    std::fs::create_dir_all(&override_dir).unwrap();
    std::fs::write(override_dir.join("ec2-instance-connect.conf"), unit).unwrap();
    let out = host.ok(&["install-server", "--dry-run"]);
    assert_has(
        &out,
        &format!(
            "warning: {}/lib/systemd/system/ssh.service.d/ec2-instance-connect.conf: `{}` gives sshd an AuthorizedKeysCommand on its command line, which wins over sshd_config and its drop-ins: sshd keeps running that command, not opkssh, until the override is gone",
            host.prefix(),
            unit.lines().nth(2).unwrap()
        ),
    );
    // Nothing in sshd's files to keep.
    assert_lacks(&out, "chain_authorized_keys_command");

    // An override of the same name under /etc hides the package's.
    let masked = host.path("/etc/systemd/system/ssh.service.d");
    std::fs::create_dir_all(&masked).unwrap();
    std::fs::write(
        masked.join("ec2-instance-connect.conf"),
        "[Service]\nExecStart=\nExecStart=/usr/sbin/sshd -D $SSHD_OPTS\n",
    )
    .unwrap();
    assert_lacks(
        &host.ok(&["install-server", "--dry-run"]),
        "on its command line",
    );
}
