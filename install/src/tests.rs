//! Plans against a temporary root: a fresh Debian-like machine, one already installed,
//! sshd_config without an Include, another AuthorizedKeysCommand already configured, and the
//! round trip install → uninstall. Applying needs no root: files are given to the running
//! user, and accounts are never touched outside `/`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use super::sshd_config::{BLOCK_BEGIN, DISABLED_MARK, DROP_IN_HEADER};
use super::*;
use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};

const DEBIAN_SSHD_CONFIG: &str = "# See sshd_config(5).\n\nInclude /etc/ssh/sshd_config.d/*.conf\n\nKbdInteractiveAuthentication no\nUsePAM yes\nX11Forwarding yes\nPrintMotd no\nAcceptEnv LANG LC_*\nSubsystem\tsftp\t/usr/lib/openssh/sftp-server\n";
const BINARY: &[u8] = b"\x7fELF pretend opkssh binary\0";

struct Root {
    dir: tempfile::TempDir,
    layout: Layout,
    binary: PathBuf,
}

impl Root {
    /// A Debian-like machine with OpenSSH and sudo, nothing of opkssh.
    fn debian() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout {
            root: dir.path().join("root"),
        };
        for folder in [
            "/etc/ssh/sshd_config.d",
            "/etc/sudoers.d",
            "/var/log",
            "/var/cache",
            "/usr/local/bin",
        ] {
            std::fs::create_dir_all(layout.path(folder)).unwrap();
        }
        std::fs::write(layout.path(SSHD_CONFIG), DEBIAN_SSHD_CONFIG).unwrap();
        std::fs::write(
            layout.path("/etc/sudoers"),
            "root ALL=(ALL:ALL) ALL\n@includedir /etc/sudoers.d\n",
        )
        .unwrap();
        let binary = dir.path().join("opkssh-new");
        std::fs::write(&binary, BINARY).unwrap();
        Self {
            dir,
            layout,
            binary,
        }
    }

    fn path(&self, absolute: &str) -> PathBuf {
        self.layout.path(absolute)
    }

    fn write(&self, absolute: &str, text: &str) {
        std::fs::write(self.path(absolute), text).unwrap();
    }

    fn read(&self, absolute: &str) -> String {
        std::fs::read_to_string(self.path(absolute)).unwrap()
    }

    /// Options installing as the running user (so files can be given to it without root).
    fn options(&self) -> InstallOptions {
        let (user, group) = me();
        InstallOptions {
            layout: self.layout.clone(),
            user,
            group,
            ..InstallOptions::new(Binary::Copy(self.binary.clone()))
        }
    }

    fn uninstall_options(&self) -> UninstallOptions {
        let (user, group) = me();
        UninstallOptions {
            layout: self.layout.clone(),
            remove_binary: true,
            purge: false,
            remove_user: false,
            user,
            group,
            ..UninstallOptions::new()
        }
    }

    fn environment(&self) -> Environment {
        Environment {
            layout: self.layout.clone(),
            accounts: false,
            sshd: None,
            visudo: crate::tools::tool_path("visudo"),
            reload: false,
        }
    }

    fn install(&self, options: &InstallOptions) -> Plan {
        let plan = plan_install(options, &machine()).unwrap();
        apply(&plan, &self.environment(), &mut |_| {}).unwrap();
        plan
    }

    /// Every file and folder under the root: kind, mode, owner, contents.
    fn snapshot(&self) -> BTreeMap<PathBuf, (bool, u32, u32, u32, Vec<u8>)> {
        fn walk(
            path: &Path,
            base: &Path,
            out: &mut BTreeMap<PathBuf, (bool, u32, u32, u32, Vec<u8>)>,
        ) {
            let metadata = std::fs::symlink_metadata(path).unwrap();
            let contents = if metadata.is_file() {
                std::fs::read(path).unwrap()
            } else {
                Vec::new()
            };
            out.insert(
                path.strip_prefix(base).unwrap().to_owned(),
                (
                    metadata.is_dir(),
                    metadata.mode() & 0o7777,
                    metadata.uid(),
                    metadata.gid(),
                    contents,
                ),
            );
            if metadata.is_dir() {
                for entry in std::fs::read_dir(path).unwrap() {
                    walk(&entry.unwrap().path(), base, out);
                }
            }
        }
        let mut out = BTreeMap::new();
        walk(&self.layout.root, &self.layout.root, &mut out);
        out
    }
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

fn machine() -> Machine {
    let (user, group) = me();
    let mut machine = Machine::probe(&Layout::system(), &[&user, &group]);
    machine.sudo = true;
    machine.nologin = "/usr/sbin/nologin".into();
    machine
}

/// A machine where opksshuser does not exist yet.
fn machine_without_opksshuser() -> Machine {
    let mut machine = Machine {
        sudo: true,
        nologin: "/usr/sbin/nologin".into(),
        ..Machine::default()
    };
    machine.users.insert("root".into(), (0, 0));
    machine.groups.insert("root".into(), (0, Vec::new()));
    machine
}

fn mode_of(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().mode() & 0o7777
}

fn write_change<'a>(plan: &'a Plan, path: &Path) -> (&'a [u8], u32, &'a Owner) {
    match plan.change_for(path) {
        Some(Change::WriteFile {
            contents,
            mode,
            owner,
            ..
        }) => (contents, *mode, owner),
        other => panic!("{}: expected a write, got {other:?}", path.display()),
    }
}

#[test]
fn fresh_machine_gets_the_go_layout() {
    let root = Root::debian();
    let options = InstallOptions {
        layout: root.layout.clone(),
        ..InstallOptions::new(Binary::Copy(root.binary.clone()))
    };
    let plan = plan_install(&options, &machine_without_opksshuser()).unwrap();
    assert_eq!(
        plan.changes[..2],
        [
            Change::CreateGroup {
                name: "opksshuser".into()
            },
            Change::CreateUser {
                name: "opksshuser".into(),
                group: "opksshuser".into(),
                shell: "/usr/sbin/nologin".into()
            }
        ]
    );
    let group_owned = Owner::new("root", "opksshuser");
    let (bytes, mode, owner) = write_change(&plan, &root.path(BINARY_PATH));
    assert_eq!((bytes, mode, owner), (BINARY, 0o755, &group_owned));
    for dir in [CONFIG_DIR, "/etc/opk/policy.d"] {
        assert_eq!(
            plan.change_for(&root.path(dir)),
            Some(&Change::CreateDir {
                path: root.path(dir),
                mode: 0o750,
                owner: group_owned.clone()
            })
        );
    }
    for (file, expected) in [
        ("/etc/opk/auth_id", ""),
        ("/etc/opk/config.yml", ""),
        ("/etc/opk/providers", DEFAULT_PROVIDERS),
    ] {
        let (bytes, mode, owner) = write_change(&plan, &root.path(file));
        assert_eq!(
            (bytes, mode, owner),
            (expected.as_bytes(), 0o640, &group_owned),
            "{file}"
        );
    }
    assert_eq!(DEFAULT_PROVIDERS.lines().count(), 4);
    let (bytes, mode, owner) = write_change(&plan, &root.path(LOG_FILE));
    assert_eq!((bytes, mode, owner), (&b""[..], 0o660, &group_owned));
    assert_eq!(
        plan.change_for(&root.path(CACHE_DIR)),
        Some(&Change::CreateDir {
            path: root.path(CACHE_DIR),
            mode: 0o700,
            owner: Owner::new("opksshuser", "opksshuser")
        })
    );
    let (bytes, mode, owner) = write_change(&plan, &root.path(SUDOERS_FILE));
    assert_eq!((mode, owner), (0o440, &Owner::root()));
    assert!(
        String::from_utf8_lossy(bytes)
            .ends_with("\nopksshuser ALL=(ALL) NOPASSWD: /usr/local/bin/opkssh readhome *\n")
    );
    assert_eq!(plan.sshd_changes.len(), 1);
    let drop_in = root.path("/etc/ssh/sshd_config.d/60-opk-ssh.conf");
    let (bytes, mode, owner) = write_change(&plan, &drop_in);
    assert_eq!((mode, owner), (0o644, &Owner::root()));
    assert_eq!(
        String::from_utf8_lossy(bytes),
        format!(
            "{DROP_IN_HEADER}AuthorizedKeysCommand /usr/local/bin/opkssh verify %u %k %t\nAuthorizedKeysCommandUser opksshuser\n"
        )
    );
    assert!(plan.warnings.is_empty(), "{:?}", plan.warnings);
    assert!(plan.log_record.is_some());
    // Planning changed nothing.
    assert!(!root.path(CONFIG_DIR).exists());
}

#[test]
fn install_then_nothing_to_do_then_uninstall_restores() {
    let root = Root::debian();
    let before = root.snapshot();
    let options = root.options();
    let (user, group) = me();
    let uid_of = |name: &str| opk_os::account::user_id(name).unwrap();
    let gid_of = |name: &str| opk_os::account::group_id(name).unwrap();
    let (root_uid, root_gid) = (0, gid_of("root"));
    let (uid, gid) = (uid_of(&user), gid_of(&group));
    let plan = root.install(&options);
    assert!(!plan.is_empty());

    // The tree on disk, with modes and owners.
    for (path, mode, owner) in [
        (BINARY_PATH, 0o755, (root_uid, gid)),
        (CONFIG_DIR, 0o750, (root_uid, gid)),
        ("/etc/opk/policy.d", 0o750, (root_uid, gid)),
        ("/etc/opk/auth_id", 0o640, (root_uid, gid)),
        ("/etc/opk/config.yml", 0o640, (root_uid, gid)),
        ("/etc/opk/providers", 0o640, (root_uid, gid)),
        (LOG_FILE, 0o660, (root_uid, gid)),
        (CACHE_DIR, 0o700, (uid, gid)),
        (SUDOERS_FILE, 0o440, (root_uid, root_gid)),
        (
            "/etc/ssh/sshd_config.d/60-opk-ssh.conf",
            0o644,
            (root_uid, root_gid),
        ),
    ] {
        let metadata = std::fs::metadata(root.path(path)).unwrap();
        assert_eq!(metadata.mode() & 0o7777, mode, "{path}");
        assert_eq!((metadata.uid(), metadata.gid()), owner, "{path}");
    }
    assert_eq!(std::fs::read(root.path(BINARY_PATH)).unwrap(), BINARY);
    assert_eq!(root.read("/etc/opk/providers"), DEFAULT_PROVIDERS);
    assert_eq!(root.read(SSHD_CONFIG), DEBIAN_SSHD_CONFIG);
    assert!(root.read(SUDOERS_FILE).contains(&format!(
        "{user} ALL=(ALL) NOPASSWD: /usr/local/bin/opkssh readhome *"
    )));
    let log = root.read(LOG_FILE);
    assert!(log.contains("Successfully installed opkssh"), "{log}");

    // A second run finds nothing to do, and applying it changes nothing (no second log line).
    let after_install = root.snapshot();
    let again = plan_install(&options, &machine()).unwrap();
    assert!(again.is_empty(), "{again:#?}");
    assert!(again.log_record.is_none());
    apply(&again, &root.environment(), &mut |_| {
        panic!("no change expected")
    })
    .unwrap();
    assert_eq!(root.snapshot(), after_install);

    // Policy written meanwhile survives a reinstall and an uninstall without --purge.
    root.write("/etc/opk/auth_id", "alice alice@example.com google\n");
    let uninstall = root.uninstall_options();
    let plan = plan_uninstall(&uninstall, &machine()).unwrap();
    assert!(
        plan.warnings
            .iter()
            .any(|w| w.contains("kept") && w.contains("/etc/opk")),
        "{:?}",
        plan.warnings
    );
    apply(&plan, &root.environment(), &mut |_| {}).unwrap();
    for gone in [
        BINARY_PATH,
        SUDOERS_FILE,
        CACHE_DIR,
        "/etc/ssh/sshd_config.d/60-opk-ssh.conf",
    ] {
        assert!(!root.path(gone).exists(), "{gone} is left");
    }
    assert_eq!(
        root.read("/etc/opk/auth_id"),
        "alice alice@example.com google\n"
    );
    assert!(root.path(LOG_FILE).exists());
    assert!(plan_uninstall(&uninstall, &machine()).unwrap().is_empty());

    // --purge takes the rest: the machine is as before.
    let purge = UninstallOptions {
        purge: true,
        ..uninstall
    };
    let plan = plan_uninstall(&purge, &machine()).unwrap();
    apply(&plan, &root.environment(), &mut |_| {}).unwrap();
    assert_eq!(root.snapshot(), before);
    let _ = group;
}

#[test]
fn existing_config_is_kept_and_wrong_modes_are_reported() {
    let root = Root::debian();
    std::fs::create_dir_all(root.path("/etc/opk/policy.d")).unwrap();
    root.write("/etc/opk/providers", "https://issuer.example client 24h\n");
    root.write(
        "/etc/opk/auth_id",
        "root root@example.com https://issuer.example\n",
    );
    std::fs::set_permissions(
        root.path("/etc/opk/providers"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let plan = plan_install(&root.options(), &machine()).unwrap();
    for kept in ["/etc/opk/providers", "/etc/opk/auth_id"] {
        assert!(plan.change_for(&root.path(kept)).is_none(), "{kept}");
    }
    assert!(
        plan.warnings
            .iter()
            .any(|w| w.contains("/etc/opk/providers has mode 0644")),
        "{:?}",
        plan.warnings
    );
    // config.yml is missing and is created.
    assert!(plan.change_for(&root.path("/etc/opk/config.yml")).is_some());
}

#[test]
fn an_empty_providers_file_gets_the_defaults_and_keeps_its_mode() {
    let root = Root::debian();
    std::fs::create_dir_all(root.path(CONFIG_DIR)).unwrap();
    root.write("/etc/opk/providers", "");
    std::fs::set_permissions(
        root.path("/etc/opk/providers"),
        std::fs::Permissions::from_mode(0o640),
    )
    .unwrap();
    let plan = plan_install(&root.options(), &machine()).unwrap();
    let (bytes, mode, _) = write_change(&plan, &root.path("/etc/opk/providers"));
    assert_eq!((bytes, mode), (DEFAULT_PROVIDERS.as_bytes(), 0o640));
}

#[test]
fn sshd_config_without_include_is_edited_and_restored() {
    let root = Root::debian();
    let original = "Port 22\nAuthorizedKeysCommand /usr/bin/sss_ssh_authorizedkeys %u\nAuthorizedKeysCommandUser nobody\nUsePAM yes\n";
    root.write(SSHD_CONFIG, original);
    std::fs::set_permissions(
        root.path(SSHD_CONFIG),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let options = InstallOptions {
        home_policy: HomePolicy::Off,
        ..root.options()
    };
    let before = root.snapshot();
    let plan = root.install(&options);
    assert_eq!(plan.sshd_changes.len(), 1);
    assert!(
        plan.warnings
            .iter()
            .any(|w| w.contains("has no Include of sshd_config.d")),
        "{:?}",
        plan.warnings
    );
    let (user, _) = me();
    assert_eq!(
        root.read(SSHD_CONFIG),
        format!(
            "Port 22\n{DISABLED_MARK}\n#AuthorizedKeysCommand /usr/bin/sss_ssh_authorizedkeys %u\n{DISABLED_MARK}\n#AuthorizedKeysCommandUser nobody\nUsePAM yes\n{BLOCK_BEGIN}\nAuthorizedKeysCommand /usr/local/bin/opkssh verify %u %k %t\nAuthorizedKeysCommandUser {user}\n# opkssh install-server: end\n"
        )
    );
    // The edit keeps the file's mode; no drop-in and no sudoers file were written.
    assert_eq!(mode_of(&root.path(SSHD_CONFIG)), 0o600);
    assert!(!root.path("/etc/ssh/sshd_config.d/60-opk-ssh.conf").exists());
    assert!(!root.path(SUDOERS_FILE).exists());
    assert!(plan_install(&options, &machine()).unwrap().is_empty());

    let purge = UninstallOptions {
        purge: true,
        ..root.uninstall_options()
    };
    let plan = plan_uninstall(&purge, &machine()).unwrap();
    apply(&plan, &root.environment(), &mut |_| {}).unwrap();
    assert_eq!(root.read(SSHD_CONFIG), original);
    assert_eq!(root.snapshot(), before);
}

#[test]
fn another_authorized_keys_command_is_outranked_or_overwritten() {
    let theirs = "AuthorizedKeysCommand /usr/bin/sss_ssh_authorizedkeys %u\nAuthorizedKeysCommandUser nobody\n";
    // Without --overwrite-config: a drop-in that sorts first, and a warning naming theirs.
    let root = Root::debian();
    root.write("/etc/ssh/sshd_config.d/50-sss.conf", theirs);
    let plan = root.install(&root.options());
    assert!(
        plan.warnings
            .iter()
            .any(|w| w.contains("50-sss.conf sets") && w.contains("49-opk-ssh.conf comes first")),
        "{:?}",
        plan.warnings
    );
    assert!(root.path("/etc/ssh/sshd_config.d/49-opk-ssh.conf").exists());
    assert_eq!(root.read("/etc/ssh/sshd_config.d/50-sss.conf"), theirs);
    assert!(
        plan_install(&root.options(), &machine())
            .unwrap()
            .is_empty()
    );

    // With it: their lines are commented out in place, and restored by uninstall.
    let root = Root::debian();
    root.write("/etc/ssh/sshd_config.d/50-sss.conf", theirs);
    let options = InstallOptions {
        overwrite_config: true,
        ..root.options()
    };
    root.install(&options);
    let edited = root.read("/etc/ssh/sshd_config.d/50-sss.conf");
    assert!(edited.starts_with(&format!(
        "{DISABLED_MARK}\n#AuthorizedKeysCommand /usr/bin/sss_ssh_authorizedkeys %u\n"
    )));
    assert!(edited.contains("AuthorizedKeysCommand /usr/local/bin/opkssh verify %u %k %t\n"));
    assert_eq!(
        std::fs::read_dir(root.path(SSHD_CONFIG_DIR))
            .unwrap()
            .count(),
        1
    );
    assert!(plan_install(&options, &machine()).unwrap().is_empty());
    let plan = plan_uninstall(&root.uninstall_options(), &machine()).unwrap();
    apply(&plan, &root.environment(), &mut |_| {}).unwrap();
    assert_eq!(root.read("/etc/ssh/sshd_config.d/50-sss.conf"), theirs);

    // A drop-in no name can outrank: refused, naming the file.
    let root = Root::debian();
    root.write("/etc/ssh/sshd_config.d/00-first.conf", theirs);
    let error = plan_install(&root.options(), &machine()).unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("/etc/ssh/sshd_config.d/00-first.conf sets AuthorizedKeysCommand")
            && message.contains("--overwrite-config"),
        "{message}"
    );
}

#[test]
fn home_policy_needs_sudo_unless_packaged() {
    let root = Root::debian();
    let mut machine = machine();
    machine.sudo = false;
    assert!(matches!(
        plan_install(&root.options(), &machine),
        Err(InstallError::NoSudo)
    ));
    let options = InstallOptions {
        home_policy: HomePolicy::IfSudo,
        ..root.options()
    };
    let plan = plan_install(&options, &machine).unwrap();
    assert!(plan.change_for(&root.path(SUDOERS_FILE)).is_none());
    assert!(
        plan.warnings
            .iter()
            .any(|w| w.contains("sudo is not installed"))
    );
    let options = InstallOptions {
        home_policy: HomePolicy::Off,
        ..root.options()
    };
    assert!(plan_install(&options, &machine).is_ok());
}

#[test]
fn sudoers_rule_is_added_beside_other_rules_and_taken_out_again() {
    let root = Root::debian();
    let (user, _) = me();
    let other = format!("# site rule\n{user} ALL=(ALL) NOPASSWD: /usr/bin/true\n");
    root.write(SUDOERS_FILE, &other);
    std::fs::set_permissions(
        root.path(SUDOERS_FILE),
        std::fs::Permissions::from_mode(0o440),
    )
    .unwrap();
    root.install(&root.options());
    let text = root.read(SUDOERS_FILE);
    assert!(text.starts_with(&other), "{text}");
    assert!(text.ends_with(&format!(
        "{user} ALL=(ALL) NOPASSWD: /usr/local/bin/opkssh readhome *\n"
    )));
    let plan = plan_uninstall(&root.uninstall_options(), &machine()).unwrap();
    apply(&plan, &root.environment(), &mut |_| {}).unwrap();
    assert_eq!(root.read(SUDOERS_FILE), other);
}

#[test]
fn visudo_rejects_a_broken_sudoers_rule() {
    let Some(visudo) = crate::tools::tool_path("visudo") else {
        eprintln!("SKIP: visudo is not installed");
        return;
    };
    let root = Root::debian();
    let options = InstallOptions {
        user: "bad user(".into(),
        ..root.options()
    };
    let mut plan = Plan::default();
    plan_sudoers(&mut plan, &machine(), &options).unwrap();
    let environment = Environment {
        visudo: Some(visudo),
        ..root.environment()
    };
    let error = apply(&plan, &environment, &mut |_| {}).unwrap_err();
    assert!(
        matches!(&error, InstallError::SudoersRejected { path, .. } if *path == root.path(SUDOERS_FILE)),
        "{error}"
    );
    assert!(!root.path(SUDOERS_FILE).exists());
}

#[test]
fn packaged_binary_is_referenced_and_its_files_are_owned() {
    let root = Root::debian();
    std::fs::create_dir_all(root.path("/usr/bin")).unwrap();
    std::fs::write(root.path(PACKAGE_BINARY_PATH), BINARY).unwrap();
    // dpkg unpacks conffiles root:root (here: the running user) with the package's mode.
    std::fs::create_dir_all(root.path(CONFIG_DIR)).unwrap();
    std::fs::set_permissions(
        root.path(CONFIG_DIR),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    root.write("/etc/opk/providers", DEFAULT_PROVIDERS);
    let options = InstallOptions {
        binary: Binary::Packaged,
        home_policy: HomePolicy::IfSudo,
        ..root.options()
    };
    let plan = root.install(&options);
    assert!(plan.change_for(&root.path(BINARY_PATH)).is_none());
    assert!(!root.path(BINARY_PATH).exists());
    assert_eq!(mode_of(&root.path(CONFIG_DIR)), 0o750);
    assert!(
        root.read("/etc/ssh/sshd_config.d/60-opk-ssh.conf")
            .contains("AuthorizedKeysCommand /usr/bin/opkssh verify %u %k %t\n")
    );
    assert!(
        root.read(SUDOERS_FILE)
            .contains("NOPASSWD: /usr/bin/opkssh readhome *")
    );
    assert!(plan_install(&options, &machine()).unwrap().is_empty());
}

#[test]
fn a_symlinked_sshd_config_is_refused_by_name() {
    let root = Root::debian();
    let real = root.dir.path().join("elsewhere");
    std::fs::write(&real, "Port 22\n").unwrap();
    std::fs::remove_file(root.path(SSHD_CONFIG)).unwrap();
    std::os::unix::fs::symlink(&real, root.path(SSHD_CONFIG)).unwrap();
    let message = plan_install(&root.options(), &machine())
        .unwrap_err()
        .to_string();
    assert!(
        message.starts_with(&format!(
            "{}: is a symlink",
            root.path(SSHD_CONFIG).display()
        )),
        "{message}"
    );
}

#[test]
fn accounts_are_not_touched_outside_the_real_root() {
    let root = Root::debian();
    let options = InstallOptions {
        layout: root.layout.clone(),
        ..InstallOptions::new(Binary::Copy(root.binary.clone()))
    };
    let plan = plan_install(&options, &machine_without_opksshuser()).unwrap();
    let error = apply(&plan, &root.environment(), &mut |_| {}).unwrap_err();
    assert!(
        matches!(error, InstallError::AccountsOutsideRoot(_)),
        "{error}"
    );
    assert!(!root.path(CONFIG_DIR).exists(), "applied before refusing");
}

/// A refused sshd configuration is rolled back, with the real `sshd -t`. The planned drop-in is
/// given an `AuthorizedKeysCommandUser` with two arguments, which sshd refuses (planning itself
/// refuses such a name: `invalid_values_plan_nothing`).
#[test]
fn sshd_rejecting_the_change_restores_its_files() {
    let sshd = Path::new("/usr/sbin/sshd");
    if !sshd.is_file() {
        eprintln!("SKIP: /usr/sbin/sshd is not installed");
        return;
    }
    let root = Root::debian();
    let host_key = root.dir.path().join("host_key");
    let status = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&host_key)
        .status()
        .unwrap();
    assert!(status.success());
    // No Include: sshd -t reads only this file (not the machine's drop-ins).
    let original = format!(
        "HostKey {}\nPort 22\nAuthorizedKeysCommand /usr/bin/other %u\nAuthorizedKeysCommandUser nobody\n",
        host_key.display()
    );
    root.write(SSHD_CONFIG, &original);
    let environment = Environment {
        sshd: Some(sshd.to_owned()),
        ..root.environment()
    };
    assert_eq!(environment.sshd_test(), Some(Ok(())));
    let options = InstallOptions {
        home_policy: HomePolicy::Off,
        ..root.options()
    };
    let mut plan = plan_install(&options, &machine()).unwrap();
    let user_line = format!("AuthorizedKeysCommandUser {}", options.user);
    for change in &mut plan.sshd_changes {
        if let Change::WriteFile { contents, .. } = change {
            let text = String::from_utf8(contents.clone()).unwrap();
            *contents = text
                .replace(&user_line, "AuthorizedKeysCommandUser opkssh user")
                .into_bytes();
        }
    }
    let error = apply(&plan, &environment, &mut |_| {}).unwrap_err();
    let message = error.to_string();
    assert!(
        matches!(error, InstallError::SshdRejected { .. }) && message.contains("extra arguments"),
        "{message}"
    );
    assert_eq!(root.read(SSHD_CONFIG), original);
    // The other files stay installed; a fixed run would continue from there.
    assert!(root.path("/etc/opk/providers").exists());
}

/// Issue 18 item 6, at the library: an account name or path that would say more than meant in
/// sshd's configuration, sudoers or a command is refused before anything is planned.
#[test]
fn invalid_values_plan_nothing() {
    let root = Root::debian();
    let injected = InstallOptions {
        user: "opksshuser\nPermitRootLogin yes".into(),
        ..root.options()
    };
    let error = plan_install(&injected, &machine()).unwrap_err();
    assert_eq!(
        error.to_string(),
        "user \"opksshuser\\nPermitRootLogin yes\": must be an account name: a lowercase letter or _, then up to 31 lowercase letters, digits, _ or -"
    );
    let relative = InstallOptions {
        sudoers_path: "etc/sudoers.d/opkssh".into(),
        ..root.options()
    };
    assert!(matches!(
        plan_install(&relative, &machine()),
        Err(InstallError::InvalidValue {
            what: "sudoers path",
            error: ValueError::NotAbsolute,
            ..
        })
    ));
    let uninstall = UninstallOptions {
        group: "opk\tgroup".into(),
        remove_user: true,
        ..root.uninstall_options()
    };
    assert!(matches!(
        plan_uninstall(&uninstall, &machine()),
        Err(InstallError::InvalidValue { what: "group", .. })
    ));
}

/// A machine with root, the distribution's system accounts, a person, and accounts opkssh made
/// (by name, as Go makes it, or by its comment).
fn machine_with_accounts() -> Machine {
    let mut machine = Machine {
        sudo: true,
        nologin: "/usr/sbin/nologin".into(),
        uid_min: 1000,
        ..Machine::default()
    };
    for (name, uid, comment) in [
        ("root", 0, "root"),
        ("toor", 0, ""),
        ("daemon", 1, "daemon"),
        ("sshd", 105, ""),
        ("alice", 1001, "Alice"),
        ("opksshuser", 998, ""),
        ("fleetverify", 997, ACCOUNT_COMMENT),
        ("lookalike", 1002, ACCOUNT_COMMENT),
    ] {
        machine.users.insert(name.into(), (uid, uid));
        machine.comments.insert(name.into(), comment.into());
        machine.groups.insert(name.into(), (uid, Vec::new()));
    }
    machine.groups.insert("sudo".into(), (27, Vec::new()));
    machine
}

fn uninstall_plan(user: &str, group: &str) -> Result<Plan, InstallError> {
    let root = Root::debian();
    let options = UninstallOptions {
        remove_user: true,
        user: user.into(),
        group: group.into(),
        ..root.uninstall_options()
    };
    plan_uninstall(&options, &machine_with_accounts())
}

fn account_changes(plan: &Plan) -> Vec<String> {
    plan.all_changes()
        .filter(|change| {
            matches!(
                change,
                Change::DeleteUser { .. }
                    | Change::DeleteGroup { .. }
                    | Change::CreateUser { .. }
                    | Change::CreateGroup { .. }
                    | Change::AddToGroup { .. }
            )
        })
        .map(Change::summary)
        .collect()
}

/// Issue 18 item 6: `OPKSSH_INSTALL_AUTH_CMD_USER=root uninstall-server --remove-user` planned
/// `userdel root`. Root is refused outright (under any name), and only the account opkssh
/// created is deleted: system accounts and people's accounts stay, with a warning.
#[test]
fn remove_user_never_deletes_root_or_an_account_opkssh_did_not_create() {
    for (user, group) in [
        ("root", "opksshuser"),
        ("toor", "toor"),
        ("opksshuser", "root"),
    ] {
        let error = uninstall_plan(user, group).unwrap_err();
        assert!(
            matches!(
                error,
                InstallError::InvalidValue {
                    error: ValueError::Root,
                    ..
                }
            ),
            "{user}:{group}: {error}"
        );
    }
    for user in ["daemon", "sshd", "alice", "lookalike"] {
        let plan = uninstall_plan(user, user).unwrap();
        assert_eq!(account_changes(&plan), Vec::<String>::new(), "{user}");
        assert!(
            plan.warnings.iter().any(|warning| warning
                .starts_with(&format!("kept user {user}: opkssh did not create it"))),
            "{user}: {:?}",
            plan.warnings
        );
    }
    // Its own account goes, with its group; another group it was given stays.
    let plan = uninstall_plan("opksshuser", "opksshuser").unwrap();
    assert_eq!(
        account_changes(&plan),
        [
            "delete user opksshuser (userdel opksshuser)",
            "delete group opksshuser (groupdel opksshuser, if userdel left it)"
        ]
    );
    let plan = uninstall_plan("fleetverify", "fleetverify").unwrap();
    assert_eq!(account_changes(&plan).len(), 2, "{plan:?}");
    let plan = uninstall_plan("fleetverify", "sudo").unwrap();
    assert_eq!(
        account_changes(&plan),
        ["delete user fleetverify (userdel fleetverify)"]
    );
    assert!(
        plan.warnings
            .iter()
            .any(|w| w.starts_with("kept group sudo"))
    );
}

/// install-server creates its own account, adds only that one to the group, uses another
/// existing account as it is, and never runs verify as root.
#[test]
fn install_changes_only_its_own_account_and_never_uses_root() {
    let root = Root::debian();
    let plan_for = |user: &str, group: &str, machine: &Machine| {
        let options = InstallOptions {
            user: user.into(),
            group: group.into(),
            ..root.options()
        };
        plan_install(&options, machine)
    };
    let machine = machine_with_accounts();
    for (user, group) in [
        ("root", "opksshuser"),
        ("toor", "opksshuser"),
        ("newverify", "root"),
    ] {
        assert!(
            matches!(
                plan_for(user, group, &machine),
                Err(InstallError::InvalidValue {
                    error: ValueError::Root,
                    ..
                })
            ),
            "{user}:{group}"
        );
    }
    for user in ["daemon", "alice", "lookalike"] {
        let error = plan_for(user, "opksshuser", &machine).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "{user} is an existing account opkssh did not create, so opkssh does not change it: add it to group opksshuser yourself (usermod -aG opksshuser {user}) and run again, or let opkssh create its own account"
            )
        );
    }
    let mut member = machine.clone();
    member
        .groups
        .get_mut("opksshuser")
        .unwrap()
        .1
        .push("daemon".into());
    let plan = plan_for("daemon", "opksshuser", &member).unwrap();
    assert_eq!(account_changes(&plan), Vec::<String>::new());
    let plan = plan_for("fleetverify", "opksshuser", &machine).unwrap();
    assert_eq!(
        account_changes(&plan),
        ["add user fleetverify to group opksshuser (usermod -aG opksshuser fleetverify)"]
    );
    let plan = plan_for("newverify", "newverify", &machine).unwrap();
    assert_eq!(
        account_changes(&plan),
        [
            "create group newverify (groupadd --system newverify)",
            "create user newverify (useradd --system --no-create-home --comment 'opkssh verifier' --shell /usr/sbin/nologin --gid newverify newverify)"
        ]
    );
}

/// Issue 18 item 6 (a review idea): the log's owner and mode were set by path, following a
/// symlink that someone able to write to `/var/log` swaps in between the plan and the change.
/// Here the link points at a file the test owns: neither its mode, owner nor contents change,
/// and the installation record is not appended through it either.
#[test]
fn a_symlink_planted_at_the_log_is_not_chowned_chmodded_or_appended_through() {
    use std::os::unix::fs::MetadataExt as _;
    let root = Root::debian();
    let victim = root.dir.path().join("victim");
    std::fs::write(&victim, "the test's own file\n").unwrap();
    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o600)).unwrap();
    let victim_before = std::fs::metadata(&victim).unwrap();
    let log = root.path(LOG_FILE);
    let plant = || {
        std::fs::remove_file(&log).unwrap();
        std::os::unix::fs::symlink(&victim, &log).unwrap();
    };
    let assert_victim_untouched = |what: &str| {
        let now = std::fs::metadata(&victim).unwrap();
        assert_eq!(
            now.mode() & 0o7777,
            0o600,
            "{what}: mode changed through the link"
        );
        assert_eq!(
            (now.uid(), now.gid()),
            (victim_before.uid(), victim_before.gid()),
            "{what}: owner changed through the link"
        );
        assert_eq!(
            std::fs::read_to_string(&victim).unwrap(),
            "the test's own file\n",
            "{what}: written through the link"
        );
    };

    // A log with the wrong mode: the plan sets it, and meanwhile the log becomes a link.
    std::fs::write(&log, "").unwrap();
    std::fs::set_permissions(&log, std::fs::Permissions::from_mode(0o644)).unwrap();
    let options = root.options();
    let plan = plan_install(&options, &machine()).unwrap();
    assert!(
        matches!(plan.change_for(&log), Some(Change::SetAttributes { .. })),
        "{plan:?}"
    );
    plant();
    let error = apply(&plan, &root.environment(), &mut |_| {}).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "{}: is a symlink (put there since the plan was made); its owner and mode were left alone",
            log.display()
        )
    );
    assert_victim_untouched("set attributes");

    // A log already right: only the record is appended once the rest is installed.
    std::fs::remove_file(&log).unwrap();
    std::fs::write(&log, "").unwrap();
    std::fs::set_permissions(&log, std::fs::Permissions::from_mode(0o660)).unwrap();
    let gid = opk_os::account::group_id(&options.group).unwrap();
    std::os::unix::fs::chown(&log, Some(0), Some(gid)).unwrap();
    let plan = plan_install(&options, &machine()).unwrap();
    assert!(plan.change_for(&log).is_none() && plan.log_record.is_some());
    plant();
    let outcome = apply(&plan, &root.environment(), &mut |_| {}).unwrap();
    assert!(
        outcome.notes.iter().any(|note| note.starts_with(&format!(
            "could not record the installation in {}",
            log.display()
        ))),
        "{:?}",
        outcome.notes
    );
    assert_victim_untouched("append");
}

#[test]
fn the_package_ships_the_default_providers() {
    assert_eq!(
        include_str!("../../opkssh-cli/debian/etc/opk/providers"),
        DEFAULT_PROVIDERS
    );
}
