#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
//! `add`, `audit`, `permissions` and `readhome` against temporary config trees: file
//! contents, modes, owners, exit codes, 50 concurrent `add`s, and real users for the home
//! policy. Tests run as root (here and in CI); users and the `opksshuser` group are created
//! as needed.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

const OPKSSH: &str = env!("CARGO_BIN_EXE_opkssh");
const GOOGLE: &str = "https://accounts.google.com";

fn write(path: &Path, content: &str, mode: u32) {
    std::fs::write(path, content).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().mode() & 0o7777
}

/// A config tree: `<tmp>/opk/{providers,auth_id}` (0640 root) and `policy.d` (0750).
struct Tree {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl Tree {
    fn new(auth_id: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("opk");
        std::fs::create_dir(&root).unwrap();
        write(
            &root.join("providers"),
            &format!("{GOOGLE} client-id 24h\nhttp://oidc.local:9998 web oidc\n"),
            0o640,
        );
        write(&root.join("auth_id"), auth_id, 0o640);
        std::fs::create_dir(root.join("policy.d")).unwrap();
        std::fs::set_permissions(
            root.join("policy.d"),
            std::fs::Permissions::from_mode(0o750),
        )
        .unwrap();
        Self { _dir: dir, root }
    }

    fn auth_id(&self) -> PathBuf {
        self.root.join("auth_id")
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(OPKSSH)
            .args(args)
            .arg("--config-dir")
            .arg(&self.root)
            .output()
            .unwrap()
    }
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

static SYSTEM_DB: Mutex<()> = Mutex::new(());

fn ensure_group() {
    let _guard = SYSTEM_DB
        .lock()
        .unwrap_or_else(|poison| poison.into_inner());
    let status = Command::new("groupadd")
        .args(["-f", "opksshuser"])
        .status()
        .unwrap();
    assert!(status.success());
}

/// A real account whose home is a temp directory; removed on drop.
struct User {
    name: String,
    uid: u32,
    gid: u32,
    home: PathBuf,
    _dir: tempfile::TempDir,
}

impl User {
    fn new(tag: &str) -> Self {
        let _guard = SYSTEM_DB
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let name = format!("opkt{tag}{}", std::process::id() % 100_000);
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let home = dir.path().join(&name);
        let _ = Command::new("userdel")
            .arg(&name)
            .stderr(std::process::Stdio::null())
            .status();
        let status = Command::new("useradd")
            .args(["-m", "-d"])
            .arg(&home)
            .args(["-s", "/bin/sh", &name])
            .status()
            .unwrap();
        assert!(status.success(), "useradd {name}");
        let metadata = std::fs::metadata(&home).unwrap();
        Self {
            name,
            uid: metadata.uid(),
            gid: metadata.gid(),
            home,
            _dir: dir,
        }
    }

    fn policy(&self) -> PathBuf {
        self.home.join(".opk").join("auth_id")
    }

    /// Writes the home policy as the user would: owned by them, 0600.
    fn write_policy(&self, content: &str) {
        let dir = self.home.join(".opk");
        std::fs::create_dir_all(&dir).unwrap();
        std::os::unix::fs::chown(&dir, Some(self.uid), Some(self.gid)).unwrap();
        write(&self.policy(), content, 0o600);
        std::os::unix::fs::chown(self.policy(), Some(self.uid), Some(self.gid)).unwrap();
    }

    fn command(&self) -> Command {
        let mut command = Command::new(OPKSSH);
        command.uid(self.uid).gid(self.gid).current_dir("/");
        command
    }
}

impl Drop for User {
    fn drop(&mut self) {
        let _guard = SYSTEM_DB
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let _ = Command::new("userdel").arg(&self.name).status();
    }
}

// ---------------------------------------------------------------------------------- add

#[test]
fn add_appends_and_keeps_comments_mode_and_owner() {
    let original = "# Policy for this host\n\nroot alice@example.com https://accounts.google.com # admin\nstray row\n";
    let tree = Tree::new(original);
    std::os::unix::fs::chown(tree.auth_id(), Some(0), Some(65534)).unwrap();
    let output = tree.run(&["add", "bob", "bob@example.com", "google"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        format!(
            "Successfully added new policy to {}\n",
            tree.auth_id().display()
        )
    );
    assert_eq!(
        std::fs::read_to_string(tree.auth_id()).unwrap(),
        format!("{original}bob bob@example.com https://accounts.google.com\n")
    );
    assert_eq!(mode(&tree.auth_id()), 0o640);
    assert_eq!(std::fs::metadata(tree.auth_id()).unwrap().gid(), 65534);

    // Same identity and issuer: inserted right after the first such row.
    let output = tree.run(&["add", "dev", "alice@example.com", GOOGLE]);
    assert!(output.status.success());
    let lines: Vec<String> = std::fs::read_to_string(tree.auth_id())
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(
        lines[3],
        "dev alice@example.com https://accounts.google.com"
    );
    assert_eq!(lines[4], "stray row");

    // The exact row again: no change, still success.
    let before = std::fs::read(tree.auth_id()).unwrap();
    let output = tree.run(&["add", "dev", "alice@example.com", GOOGLE]);
    assert!(output.status.success());
    assert!(
        stderr(&output).contains("already has access"),
        "{}",
        stderr(&output)
    );
    assert_eq!(std::fs::read(tree.auth_id()).unwrap(), before);
}

#[test]
fn add_expands_every_alias_and_quotes_like_go() {
    let tree = Tree::new("");
    for (alias, issuer) in [
        ("google", "https://accounts.google.com"),
        (
            "azure",
            "https://login.microsoftonline.com/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0",
        ),
        (
            "microsoft",
            "https://login.microsoftonline.com/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0",
        ),
        ("gitlab", "https://gitlab.com"),
        ("hello", "https://issuer.hello.coop"),
        ("Google", "Google"),
    ] {
        let output = tree.run(&["add", alias, "x@example.com", alias]);
        assert!(output.status.success(), "{alias}: {}", stderr(&output));
        let content = std::fs::read_to_string(tree.auth_id()).unwrap();
        assert!(
            content.contains(&format!("{alias} x@example.com {issuer}\n")),
            "{alias}: {content}"
        );
    }
    let output = tree.run(&[
        "add",
        "dev",
        r#"oidc:"https://acme.com/groups":ssh"#,
        "gitlab",
    ]);
    assert!(output.status.success());
    assert!(
        std::fs::read_to_string(tree.auth_id())
            .unwrap()
            .ends_with("dev oidc:\\\"https://acme.com/groups\\\":ssh https://gitlab.com\n")
    );
}

#[test]
fn add_refuses_rows_that_never_match() {
    let tree = Tree::new("# keep\n");
    for (principal, identity, issuer, why) in [
        ("root", "oidc-match-end:email:", "google", "#596"),
        ("root", "OIDC:", "google", "#596"),
        ("root", "repo:", "google", "#596"),
        ("root", "oidc:groups", "google", "malformed oidc"),
        (
            "root",
            "oidc:https://acme.com/groups:ssh",
            "google",
            "quotes around a URL claim",
        ),
        ("root", "a#b@example.com", "google", "starts a comment"),
        ("root", "", "google", "identity is empty"),
        ("", "a@example.com", "google", "principal is empty"),
        ("ro ot", "a@example.com", "google", "white space"),
        ("root", "a@example.com", "", "issuer is empty"),
        ("root", "a@example.com", "https://x #y", "issuer"),
        ("root", "repo:org/[", "google", "not a valid glob"),
        ("*", "alice@example.com", "google", "has no %u"),
        ("alice", "%u@example.com", "google", "not *"),
        ("*", "oidc-match-end:email:%u@x.com", "google", "template"),
    ] {
        let output = tree.run(&["add", principal, identity, issuer]);
        assert_eq!(output.status.code(), Some(1), "{why}");
        let err = stderr(&output);
        assert!(
            err.contains("Failed to add to policy: refusing"),
            "{why}: {err}"
        );
        assert!(err.contains("Error: refusing"), "{why}: {err}");
        assert!(err.contains(why), "{why}: {err}");
        assert!(stdout(&output).is_empty());
    }
    assert_eq!(std::fs::read_to_string(tree.auth_id()).unwrap(), "# keep\n");
    // A template row that verify can match is written.
    let output = tree.run(&["add", "*", "%u@example.com", "google"]);
    assert!(output.status.success(), "{}", stderr(&output));
    // A suffix without @ matches other domains too: written, with a warning.
    let output = tree.run(&["add", "root", "oidc-match-end:email:example.com", "google"]);
    assert!(output.status.success());
    assert!(
        stderr(&output).contains("warning: email suffix"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn add_never_creates_or_loosens_the_system_file() {
    let tree = Tree::new("");
    std::fs::remove_file(tree.auth_id()).unwrap();
    let output = tree.run(&["add", "root", "a@example.com", "google"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("failed to load policy"),
        "{}",
        stderr(&output)
    );
    assert!(!tree.auth_id().exists());

    let tree = Tree::new("# x\n");
    std::fs::set_permissions(tree.auth_id(), std::fs::Permissions::from_mode(0o644)).unwrap();
    let output = tree.run(&["add", "root", "a@example.com", "google"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("[640], got (644)"),
        "{}",
        stderr(&output)
    );
    assert_eq!(std::fs::read_to_string(tree.auth_id()).unwrap(), "# x\n");
}

#[test]
fn fifty_concurrent_adds_give_fifty_rows() {
    let tree = Tree::new("# header stays\nroot admin@example.com https://accounts.google.com\n");
    let children: Vec<_> = (0..50)
        .map(|index| {
            Command::new(OPKSSH)
                .args([
                    "add",
                    &format!("user{index}"),
                    &format!("u{index}@example.com"),
                    "google",
                ])
                .arg("--config-dir")
                .arg(&tree.root)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success(), "{}", stderr(&output));
    }
    let content = std::fs::read_to_string(tree.auth_id()).unwrap();
    let lines: Vec<&str> = content.lines().collect();
    assert_eq!(lines.len(), 52, "{content}");
    assert_eq!(lines[0], "# header stays");
    for index in 0..50 {
        let row = format!("user{index} u{index}@example.com https://accounts.google.com");
        assert_eq!(
            lines.iter().filter(|line| **line == row).count(),
            1,
            "{row}"
        );
    }
    assert_eq!(mode(&tree.auth_id()), 0o640);
    let leftovers = std::fs::read_dir(&tree.root)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|entry| {
            entry
                .file_name()
                .to_string_lossy()
                .contains(opk_os::atomic_file::TEMPORARY_MARKER)
        })
        .count();
    assert_eq!(leftovers, 0);
}

#[test]
fn unprivileged_add_writes_own_home_policy() {
    let user = User::new("add");
    let tree = Tree::new("# system\n");
    // The tree is under a 0700 root directory, so the user gets a permission error.
    let output = user
        .command()
        .args([
            "add",
            &user.name,
            "me@example.com",
            "google",
            "--config-dir",
        ])
        .arg(&tree.root)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        format!(
            "Successfully added new policy to {}\n",
            user.policy().display()
        )
    );
    let metadata = std::fs::metadata(user.policy()).unwrap();
    assert_eq!(metadata.mode() & 0o7777, 0o600);
    assert_eq!((metadata.uid(), metadata.gid()), (user.uid, user.gid));
    assert_eq!(mode(&user.home.join(".opk")), 0o750);
    assert_eq!(
        std::fs::read_to_string(user.policy()).unwrap(),
        format!("{} me@example.com https://accounts.google.com\n", user.name)
    );
    assert_eq!(
        std::fs::read_to_string(tree.auth_id()).unwrap(),
        "# system\n"
    );

    // For another principal the user's rights are not enough: exit 1, nothing written.
    let output = user
        .command()
        .args(["add", "root", "me@example.com", "google", "--config-dir"])
        .arg(&tree.root)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
    assert!(
        !Path::new("/root/.opk/auth_id").exists() || {
            !std::fs::read_to_string("/root/.opk/auth_id")
                .unwrap_or_default()
                .contains("me@example.com")
        }
    );
}

// ------------------------------------------------------------------------------ readhome

#[test]
fn readhome_prints_the_file_byte_for_byte() {
    let user = User::new("rh");
    let content = format!(
        "# mine\n{} me@example.com https://accounts.google.com",
        user.name
    );
    user.write_policy(&content);
    let output = Command::new(OPKSSH)
        .args(["readhome", &user.name])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output), content);
    assert!(stderr(&output).is_empty());
}

#[test]
fn readhome_refuses_unsafe_files() {
    let user = User::new("rs");
    let fail = |what: &str, expected: &str| {
        let output = Command::new(OPKSSH)
            .args(["readhome", &user.name])
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(1), "{what}");
        assert!(
            stdout(&output).is_empty(),
            "{what}: leaked {}",
            stdout(&output)
        );
        let err = stderr(&output);
        assert!(
            err.starts_with("Failed to read user's home policy file: "),
            "{what}: {err}"
        );
        assert!(err.contains(expected), "{what}: {err}");
    };
    // Symlink to a file the user could not read.
    user.write_policy("x");
    std::fs::remove_file(user.policy()).unwrap();
    std::os::unix::fs::symlink("/etc/shadow", user.policy()).unwrap();
    fail("symlink", "is a symlink, symlink are unsafe");
    std::fs::remove_file(user.policy()).unwrap();
    // Wrong mode.
    user.write_policy("x");
    std::fs::set_permissions(user.policy(), std::fs::Permissions::from_mode(0o644)).unwrap();
    fail("mode", "got (644)");
    // Wrong owner.
    std::fs::set_permissions(user.policy(), std::fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::chown(user.policy(), Some(0), Some(0)).unwrap();
    fail("owner", "expected file owner");
    // Missing.
    std::fs::remove_file(user.policy()).unwrap();
    fail("missing", "failed to open");

    for (name, expected) in [
        ("Root", "is not a valid linux username"),
        ("a b", "is not a valid linux username"),
        ("../root", "is not a valid linux username"),
        ("no-such-user-opk", "failed to find user"),
    ] {
        let output = Command::new(OPKSSH)
            .args(["readhome", name])
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(1));
        assert!(
            stderr(&output).contains(expected),
            "{name}: {}",
            stderr(&output)
        );
    }
}

#[test]
fn symlinked_home_policy_is_refused_by_verify_policy() {
    // The policy crate's direct read (what verify tries before sudo) refuses it too.
    let user = User::new("vs");
    let target = user.home.join("real");
    write(
        &target,
        &format!("{} me@example.com {GOOGLE}\n", user.name),
        0o600,
    );
    std::os::unix::fs::chown(&target, Some(user.uid), Some(user.gid)).unwrap();
    std::fs::create_dir_all(user.home.join(".opk")).unwrap();
    std::os::unix::fs::symlink(&target, user.policy()).unwrap();
    let error = policy::home::load(&user.name, &policy::HomeAccess::Direct).unwrap_err();
    assert!(error.contains("symlink"), "{error}");
    // Without the symlink the same content is accepted.
    std::fs::remove_file(user.policy()).unwrap();
    std::fs::rename(&target, user.policy()).unwrap();
    let (_, file) = policy::home::load(&user.name, &policy::HomeAccess::Direct).unwrap();
    assert_eq!(file.rows().len(), 1);
}

/// `preferred_username`, `nickname` and `name` are names most providers let users pick: a
/// template over one gives an account to whoever picks its name. Written, with a warning.
#[test]
fn add_warns_about_templates_over_user_chosen_claims() {
    let tree = Tree::new("");
    for claim in ["preferred_username", "nickname", "name"] {
        let output = tree.run(&["add", "*", &format!("oidc:{claim}:%u"), "google"]);
        assert!(output.status.success(), "{}", stderr(&output));
        assert!(
            stderr(&output).contains(&format!(
                "warning: template over the claim \"{claim}\", which most providers let users choose or change themselves"
            )),
            "{claim}: {}",
            stderr(&output)
        );
    }
    // A template over sub, or a verified email, gets no such warning.
    for identity in ["oidc:sub:%u", "%u@example.com"] {
        let output = tree.run(&["add", "*", identity, "google"]);
        assert!(output.status.success(), "{}", stderr(&output));
        assert!(!stderr(&output).contains("warning"), "{}", stderr(&output));
    }
}

// --------------------------------------------------------------------------------- audit

#[test]
fn audit_warns_about_templates_over_user_chosen_claims() {
    let tree = Tree::new(&format!(
        "* oidc:preferred_username:%u {GOOGLE}\n* oidc:nickname:%u {GOOGLE}\n* oidc:name:%u {GOOGLE}\n* oidc:sub:%u {GOOGLE}\n"
    ));
    let output = tree.run(&["audit", "--skip-user-policy"]);
    let out = stdout(&output);
    let auth = tree.auth_id().display().to_string();
    for (line, claim) in [(1, "preferred_username"), (2, "nickname"), (3, "name")] {
        let tag = format!("[{auth}:{line}]");
        let row = out.lines().find(|row| row.ends_with(&tag));
        assert!(
            row.is_some_and(|row| row.contains("WARNING")
                && row.contains(&format!(
                    "template over the claim \"{claim}\", which most providers let users choose"
                ))),
            "line {line} ({claim}) not warned about:\n{out}"
        );
    }
    let tag = format!("[{auth}:4]");
    assert!(
        out.lines()
            .any(|row| row.ends_with(&tag) && row.contains("SUCCESS")),
        "{out}"
    );
}

#[test]
fn audit_clean_tree_exits_zero() {
    let tree = Tree::new("root alice@example.com https://accounts.google.com\n");
    let output = tree.run(&["audit", "--skip-user-policy"]);
    assert!(
        output.status.success(),
        "{}{}",
        stdout(&output),
        stderr(&output)
    );
    let out = stdout(&output);
    assert!(out.contains("[OK] SUCCESS : root alice@example.com https://accounts.google.com (issuer matches provider entry)"), "{out}");
    assert!(out.contains("Exit Code: 0 (no issues detected)"));
    assert!(stderr(&output).contains(&format!("validating {}...", tree.auth_id().display())));
}

#[test]
fn audit_lists_every_mistake_with_file_and_line() {
    let auth_id = [
        "# every kind of mistake",                                             // 1
        "root alice@example.com https://accounts.google.com",                  // 2 ok
        "root bob@example.com https://accounts.google.com/",                   // 3 trailing slash
        "root carol@example.com http://accounts.google.com",                   // 4 http vs https
        "root dave@example.com https://unknown.example.com",                   // 5 unknown issuer
        "root erin@example.com http://oidc.local:9998",                        // 6 http warning
        "root oidc-match-end:email: https://accounts.google.com",              // 7 #596
        "root oidc:groups https://accounts.google.com",                        // 8 malformed
        "root oidc:\"https://acme.com/groups\":x https://accounts.google.com", // 9 lost quotes
        "root repo:org/[ https://accounts.google.com",                         // 10 bad glob
        "root oidc-match-end:email:example.com https://accounts.google.com",   // 11 no @
        "root two-columns",                                                    // 12 columns
        "root 'open https://accounts.google.com",                              // 13 quoting
        "",                                                                    // 14
    ]
    .join("\n");
    let tree = Tree::new(&auth_id);
    // providers: a short row, a bad expiration and a duplicate issuer.
    write(
        &tree.root.join("providers"),
        "https://accounts.google.com client-id 24h\nhttp://oidc.local:9998 web oidc\nshort row\nhttps://b.example b oidc-refresh\nhttps://accounts.google.com other 12h\n",
        0o640,
    );
    // config.yml with bad YAML, a plugin without a command, a plugin with a relative one.
    ensure_group();
    write(&tree.root.join("config.yml"), "deny_users: [root\n", 0o640);
    let gid = policy::perms::group_id("opksshuser").unwrap();
    std::os::unix::fs::chown(tree.root.join("config.yml"), Some(0), Some(gid)).unwrap();
    write(&tree.root.join("policy.d/a.yml"), "name: a\n", 0o640);
    write(
        &tree.root.join("policy.d/b.yml"),
        "name: b\ncommand: check.sh\n",
        0o640,
    );
    write(
        &tree.root.join("policy.d/c.yml"),
        "name: c\ncommand: /bin/true\n",
        0o644,
    );

    let output = tree.run(&["audit", "--skip-user-policy"]);
    assert_eq!(output.status.code(), Some(1));
    let out = stdout(&output);
    let auth = tree.auth_id().display().to_string();
    let providers = tree.root.join("providers").display().to_string();
    for (line, needle) in [
        (2, "[OK] SUCCESS"),
        (3, "Remove the trailing slash"),
        (4, "Change the scheme http://"),
        (5, "issuer not found in /etc/opk/providers"),
        (
            6,
            "[WARN] WARNING : root erin@example.com http://oidc.local:9998 (issuer does not use https scheme)",
        ),
        (7, "#596"),
        (8, "malformed oidc rule"),
        (9, "quotes around a URL claim name were removed"),
        (10, "not a valid glob"),
        (11, "does not start with `@`"),
        (12, "wrong number of arguments (expected=3, got=2)"),
        (13, "Unterminated single-quoted string"),
    ] {
        let tag = format!("[{auth}:{line}]");
        let row = out.lines().find(|row| row.ends_with(&tag));
        assert!(
            row.is_some_and(|row| row.contains(needle)),
            "line {line} ({needle}) not reported:\n{out}"
        );
    }
    for needle in [
        format!("{providers}:3: wrong number of arguments (expected=3, got=2)"),
        format!("{providers}:4: invalid expiration policy: oidc-refresh"),
        format!(
            "{providers}:5: duplicate issuer https://accounts.google.com (first configured at line 1)"
        ),
        format!("{}: invalid YAML", tree.root.join("config.yml").display()),
        "missing required field 'command'".to_owned(),
        "must be an absolute path".to_owned(),
        "c.yml) has insecure permissions: expected one of the following permissions [640], got (644)".to_owned(),
    ] {
        assert!(out.contains(&needle), "missing {needle:?}:\n{out}");
    }
    assert!(out.contains("Exit Code: 1 (errors detected)"), "{out}");
    assert!(stderr(&output).contains("Error: audit completed and discovered errors"));

    let output = tree.run(&["audit", "--skip-user-policy", "--json"]);
    assert_eq!(output.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["ok"], false);
    let rows = json["system_policy"]["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 12);
    assert_eq!(rows[0]["line_number"], 2);
    assert_eq!(rows[0]["status"], "SUCCESS");
    assert_eq!(rows[5]["line_number"], 7);
    assert_eq!(rows[5]["status"], "ERROR");
    assert_eq!(
        json["providers_file"]["problems"].as_array().unwrap().len(),
        3
    );
    assert_eq!(json["providers_file"]["problems"][1]["line_number"], 4);
    assert_eq!(json["config_problems"].as_array().unwrap().len(), 4);
}

#[test]
fn audit_needs_a_readable_providers_file() {
    let tree = Tree::new("");
    std::fs::set_permissions(
        tree.root.join("providers"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let output = tree.run(&["audit", "--skip-user-policy"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("Error: failed to load providers"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn audit_reads_home_policies_with_their_owner() {
    let user = User::new("au");
    user.write_policy(&format!(
        "{} me@example.com https://accounts.google.com\nroot me@example.com https://accounts.google.com\n",
        user.name
    ));
    let tree = Tree::new("");
    let output = tree.run(&["audit", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let home = json["home_policy"]
        .as_array()
        .unwrap()
        .iter()
        .find(|home| home["file_path"] == user.policy().display().to_string())
        .unwrap();
    let rows = home["rows"].as_array().unwrap();
    assert_eq!(rows[0]["status"], "SUCCESS");
    assert_eq!(rows[1]["status"], "WARNING");
    assert_eq!(rows[1]["line_number"], 2);
    assert_eq!(home["perms_error"], "");
    assert_eq!(output.status.code(), Some(1));
}

// --------------------------------------------------------------------------- permissions

#[test]
fn permissions_check_fix_install() {
    ensure_group();
    let tree = Tree::new("");
    let gid = policy::perms::group_id("opksshuser").unwrap();
    write(&tree.root.join("config.yml"), "", 0o600);
    write(
        &tree.root.join("policy.d/p.yml"),
        "name: p\ncommand: /bin/true\n",
        0o644,
    );
    std::fs::remove_file(tree.auth_id()).unwrap();

    let output = tree.run(&["permissions", "check"]);
    assert_eq!(output.status.code(), Some(1));
    let out = stdout(&output);
    assert!(
        out.contains(&format!(
            "Problem: {}: file does not exist",
            tree.auth_id().display()
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "Problem: {}: expected group (opksshuser)",
            tree.root.join("providers").display()
        )),
        "{out}"
    );
    assert!(
        out.contains("p.yml: expected one of the following permissions [640], got (644)"),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "{}: owner=root mode=644",
            tree.root.join("policy.d/p.yml").display()
        )),
        "{out}"
    );
    assert!(
        stderr(&output).contains("Error: permissions check failed: 4 problems found"),
        "{}",
        stderr(&output)
    );

    let output = tree.run(&["permissions", "check", "--json"]);
    assert!(output.status.success());
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json[0]["exists"], false);

    let output = tree.run(&["permissions", "fix", "--dry-run"]);
    assert!(output.status.success());
    let out = stdout(&output);
    assert!(
        out.contains(&format!(
            "Action: create file: {}",
            tree.auth_id().display()
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "Action: chmod {} to -rw-r-----",
            tree.auth_id().display()
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "Action: chown {} to root:opksshuser",
            tree.auth_id().display()
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "Action: chmod {} to 0640",
            tree.root.join("policy.d/p.yml").display()
        )),
        "{out}"
    );
    assert!(out.ends_with("dry-run complete\n"));
    assert!(!tree.auth_id().exists(), "dry run changed something");

    // Without --yes and with no answer on stdin, nothing happens.
    let output = Command::new(OPKSSH)
        .args(["permissions", "fix", "--config-dir"])
        .arg(&tree.root)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(stdout(&output).contains("Apply these changes? [y/N]: "));
    assert!(!tree.auth_id().exists());

    let output = tree.run(&["permissions", "fix", "--yes"]);
    assert!(
        output.status.success(),
        "{}{}",
        stdout(&output),
        stderr(&output)
    );
    assert!(stdout(&output).ends_with("fix completed successfully\n"));
    for file in [
        tree.auth_id(),
        tree.root.join("providers"),
        tree.root.join("config.yml"),
    ] {
        let metadata = std::fs::metadata(&file).unwrap();
        assert_eq!(metadata.mode() & 0o7777, 0o640, "{}", file.display());
        assert_eq!(
            (metadata.uid(), metadata.gid()),
            (0, gid),
            "{}",
            file.display()
        );
    }
    let plugin = std::fs::metadata(tree.root.join("policy.d/p.yml")).unwrap();
    assert_eq!(
        (plugin.mode() & 0o7777, plugin.uid(), plugin.gid()),
        (0o640, 0, 0)
    );

    let output = tree.run(&["permissions", "check"]);
    assert!(
        output.status.success(),
        "{}{}",
        stdout(&output),
        stderr(&output)
    );

    // install = fix --yes, idempotent; it also creates policy.d.
    std::fs::remove_file(tree.root.join("policy.d/p.yml")).unwrap();
    std::fs::remove_dir(tree.root.join("policy.d")).unwrap();
    let output = tree.run(&["permissions", "install"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(mode(&tree.root.join("policy.d")), 0o750);
    let output = tree.run(&["permissions", "install"]);
    assert!(output.status.success());
}

#[test]
fn permissions_fix_needs_root() {
    let user = User::new("pf");
    let output = user
        .command()
        .args([
            "permissions",
            "fix",
            "--yes",
            "--config-dir",
            "/nonexistent-opk",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("fix requires elevated privileges"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn home_policy_through_sudo_readhome() {
    let user = User::new("su");
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("argv");
    // A stand-in for sudo: records its arguments, prints rows on stdout and noise on stderr.
    let fake_sudo = dir.path().join("sudo");
    write(
        &fake_sudo,
        &format!(
            "#!/bin/sh\nprintf '%s\\n' \"$*\" > {}\necho '{} me@example.com {GOOGLE}'\necho 'root me@example.com {GOOGLE}'\necho 'sudo: a warning that is not a row x' >&2\n",
            log.display(),
            user.name
        ),
        0o755,
    );
    let access = policy::HomeAccess::DirectThenSudo {
        sudo: fake_sudo.clone(),
        program: PathBuf::from(OPKSSH),
    };
    // No home file, and the home is searchable: no sudo needed, nothing to read.
    let error = policy::home::load(&user.name, &access).unwrap_err();
    assert!(error.contains("No such file"), "{error}");
    assert!(!log.exists(), "sudo ran for a file that is not there");
    // A file the direct read refuses (as opksshuser cannot read homes): sudo readhome is used.
    user.write_policy("ignored by the fake sudo\n");
    std::fs::set_permissions(user.policy(), std::fs::Permissions::from_mode(0o640)).unwrap();
    let (path, file) = policy::home::load(&user.name, &access).unwrap();
    assert_eq!(path, user.policy());
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        format!("-n {OPKSSH} readhome {}\n", user.name)
    );
    // Only stdout, and only the user's own rows.
    assert_eq!(file.rows().len(), 1);
    assert_eq!(file.rows()[0].principal, user.name);
    assert!(file.warnings().is_empty());

    // sudo running the real readhome, which refuses the 0640 file too: a warning, not rows.
    write(&fake_sudo, "#!/bin/sh\nshift\nexec \"$@\"\n", 0o755);
    let error = policy::home::load(&user.name, &access).unwrap_err();
    assert!(error.contains("readhome"), "{error}");
    // With a proper file the direct read works and sudo is not needed.
    user.write_policy(&format!("{} me@example.com {GOOGLE}\n", user.name));
    write(&fake_sudo, "#!/bin/sh\nexit 1\n", 0o755);
    let (_, file) = policy::home::load(&user.name, &access).unwrap();
    assert_eq!(file.rows().len(), 1);
}
