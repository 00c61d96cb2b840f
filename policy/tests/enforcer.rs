#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
//! The enforcer on real files, real modes and real plugin processes. Runs as root (tests
//! here and in CI do), so files are root-owned as the rules require.

use policy::{Check, ConfigDir, DenyLists, Enforcer, HomeAccess, PolicyInput, TraceSource};
use serde_json::{Map, Value, json};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const ISSUER: &str = "https://accounts.example.com";

fn write(path: &Path, content: &str, mode: u32) {
    std::fs::write(path, content).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

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
            &format!("{ISSUER} client 24h\n"),
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

    fn plugin(&self, name: &str, script: &str, extra_yaml: &str) -> PathBuf {
        let command = self.root.join(format!("{name}.sh"));
        write(&command, script, 0o755);
        write(
            &self.root.join("policy.d").join(format!("{name}.yml")),
            &format!(
                "name: {name}\ncommand: {} --flag 'two words'\n{extra_yaml}",
                command.display()
            ),
            0o640,
        );
        command
    }

    fn enforcer(&self) -> Enforcer {
        Enforcer::new(ConfigDir::new(&self.root)).with_home_access(HomeAccess::Skip)
    }
}

fn claims(value: Value) -> Map<String, Value> {
    value.as_object().unwrap().clone()
}

fn alice() -> Map<String, Value> {
    claims(json!({
        "iss": ISSUER, "sub": "sub-alice", "email": "alice@example.com", "email_verified": "True",
        "aud": ["client", "other"], "exp": 4102444800_i64, "iat": 1700000000, "groups": ["ops", "dev"]
    }))
}

#[test]
fn system_rows_allow_with_file_and_line() {
    let tree = Tree::new(
        "# admins\nroot bob@example.com https://accounts.example.com\nalice alice@example.com https://accounts.example.com\n",
    );
    let input = PolicyInput::danger_from_claims(alice(), "alice");
    let evaluation = tree.enforcer().evaluate(&input);
    assert!(evaluation.decision.is_allow(), "{evaluation:?}");
    assert_eq!(
        evaluation.decision.trace().source,
        TraceSource::Row(policy::Location::line(&tree.root.join("auth_id"), 3))
    );
    // The one-line log form names the file and line.
    let line = evaluation.decision.to_string();
    assert!(line.starts_with("allow: "), "{line}");
    assert!(
        line.contains(&format!("{}:3", tree.root.join("auth_id").display())),
        "{line}"
    );
}

#[test]
fn wrong_mode_system_policy_is_not_used() {
    let tree = Tree::new("alice alice@example.com https://accounts.example.com\n");
    std::fs::set_permissions(
        tree.root.join("auth_id"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let input = PolicyInput::danger_from_claims(alice(), "alice");
    let evaluation = tree.enforcer().evaluate(&input);
    assert_eq!(evaluation.decision.trace().check, Check::PolicyUnavailable);
    assert!(
        evaluation
            .notes
            .iter()
            .any(|note| note.contains("expected one of the following permissions [640], got (644)")),
        "{:?}",
        evaluation.notes
    );
    // Owned by someone other than root: refused too (stricter than Go).
    std::fs::set_permissions(
        tree.root.join("auth_id"),
        std::fs::Permissions::from_mode(0o640),
    )
    .unwrap();
    std::os::unix::fs::chown(tree.root.join("auth_id"), Some(65534), None).unwrap();
    let evaluation = tree.enforcer().evaluate(&input);
    assert_eq!(evaluation.decision.trace().check, Check::PolicyUnavailable);
}

#[test]
fn deny_lists_come_before_plugins_and_rows() {
    let tree = Tree::new("alice alice@example.com https://accounts.example.com\n");
    let marker = tree.root.join("ran");
    tree.plugin(
        "allow-all",
        &format!("#!/bin/sh\ntouch {}\necho allow\n", marker.display()),
        "",
    );
    let input = PolicyInput::danger_from_claims(alice(), "alice");
    let evaluation = tree
        .enforcer()
        .with_deny_lists(DenyLists {
            emails: vec!["ALICE@example.com".into()],
            users: vec![],
        })
        .evaluate(&input);
    assert_eq!(evaluation.decision.trace().check, Check::DenyEmail);
    assert!(
        !marker.exists(),
        "plugins must not run after a deny-list hit"
    );
}

/// Stricter than Go: `deny_emails` also applies to the email the userinfo endpoint returns,
/// since rows and plugins match userinfo claims too.
#[test]
fn deny_emails_apply_to_the_userinfo_email() {
    let tree = Tree::new("root oidc-match-end:email:@corp.com https://accounts.example.com\n");
    let mut claims = alice();
    claims.remove("email");
    let userinfo = json!({"sub": "sub-alice", "email": "Bad@corp.com"}).to_string();
    let deny = DenyLists {
        emails: vec!["bad@CORP.com".into()],
        users: vec![],
    };
    let input = PolicyInput::danger_from_claims(claims.clone(), "root").with_userinfo(userinfo);
    // The row alone would let the userinfo email in.
    assert!(tree.enforcer().evaluate(&input).decision.is_allow());
    let evaluation = tree
        .enforcer()
        .with_deny_lists(deny.clone())
        .evaluate(&input);
    let trace = evaluation.decision.trace();
    assert_eq!(trace.check, Check::DenyEmail, "{evaluation:?}");
    assert_eq!(trace.detail, "denied email bad@CORP.com (from userinfo)");
    // Another userinfo email is not denied.
    let other = json!({"sub": "sub-alice", "email": "good@corp.com"}).to_string();
    let input = PolicyInput::danger_from_claims(claims, "root").with_userinfo(other);
    assert!(
        tree.enforcer()
            .with_deny_lists(deny)
            .evaluate(&input)
            .decision
            .is_allow()
    );
}

#[test]
fn plugin_allows_with_full_environment() {
    let tree = Tree::new("");
    let env_dump = tree.root.join("env");
    tree.plugin(
        "dump",
        &format!(
            "#!/bin/sh\nenv | grep '^OPKSSH_PLUGIN_' | sort > {}\necho \"$@\" > {}.args\nprintf '  allow\\n'\n",
            env_dump.display(),
            env_dump.display()
        ),
        "",
    );
    let input = PolicyInput::danger_from_claims(alice(), "alice").with_ssh(policy::SshRequest {
        cert_b64: "AAAAcert".into(),
        key_type: "ecdsa-sha2-nistp256-cert-v01@openssh.com".into(),
        extra_args: vec!["x".into(), "y z".into()],
    });
    let evaluation = tree.enforcer().evaluate(&input);
    assert!(evaluation.decision.is_allow(), "{evaluation:?}");
    assert_eq!(evaluation.decision.trace().check, Check::Plugin);
    assert!(
        evaluation
            .notes
            .iter()
            .any(|note| note == "Access granted by policy plugin")
    );
    let env = std::fs::read_to_string(&env_dump).unwrap();
    for expected in [
        "OPKSSH_PLUGIN_U=alice",
        "OPKSSH_PLUGIN_K=AAAAcert",
        "OPKSSH_PLUGIN_T=ecdsa-sha2-nistp256-cert-v01@openssh.com",
        "OPKSSH_PLUGIN_ISS=https://accounts.example.com",
        "OPKSSH_PLUGIN_SUB=sub-alice",
        "OPKSSH_PLUGIN_EMAIL=alice@example.com",
        "OPKSSH_PLUGIN_EMAIL_VERIFIED=true",
        r#"OPKSSH_PLUGIN_AUD=["client","other"]"#,
        "OPKSSH_PLUGIN_EXP=4102444800",
        "OPKSSH_PLUGIN_IAT=1700000000",
        "OPKSSH_PLUGIN_NBF=",
        "OPKSSH_PLUGIN_JTI=",
        r#"OPKSSH_PLUGIN_GROUPS=["ops","dev"]"#,
        r#"OPKSSH_PLUGIN_EXTRA_ARGS=["x","y z"]"#,
        "OPKSSH_PLUGIN_USERINFO=",
        "OPKSSH_PLUGIN_CONFIG=",
        "OPKSSH_PLUGIN_PAYLOAD=",
    ] {
        assert!(
            env.lines().any(|line| line.starts_with(expected)),
            "missing {expected} in\n{env}"
        );
    }
    let args = std::fs::read_to_string(format!("{}.args", env_dump.display())).unwrap();
    assert_eq!(args, "--flag two words\n");
}

#[test]
fn plugin_must_say_exactly_allow_and_exit_zero() {
    for (script, why) in [
        ("#!/bin/sh\necho allow\nexit 1\n", "non-zero exit"),
        ("#!/bin/sh\necho allowed\n", "allowed"),
        ("#!/bin/sh\necho ALLOW\n", "upper case"),
        ("#!/bin/sh\necho allow; echo allow\n", "twice"),
        ("#!/bin/sh\necho deny\n", "deny"),
        ("#!/bin/sh\nexit 0\n", "silent"),
    ] {
        let tree = Tree::new("");
        tree.plugin("p", script, "");
        let input = PolicyInput::danger_from_claims(alice(), "alice");
        let evaluation = tree.enforcer().evaluate(&input);
        assert!(!evaluation.decision.is_allow(), "{why}: {evaluation:?}");
        assert_eq!(evaluation.decision.trace().check, Check::NoMatch, "{why}");
    }
    // stderr counts as output, as with Go's CombinedOutput.
    let tree = Tree::new("");
    tree.plugin("p", "#!/bin/sh\necho allow >&2\n", "");
    let input = PolicyInput::danger_from_claims(alice(), "alice");
    assert!(tree.enforcer().evaluate(&input).decision.is_allow());
}

#[test]
fn every_plugin_runs_and_any_allow_grants() {
    let tree = Tree::new("");
    let first = tree.root.join("first-ran");
    tree.plugin(
        "a-deny",
        &format!("#!/bin/sh\ntouch {}\necho deny\n", first.display()),
        "",
    );
    tree.plugin("b-allow", "#!/bin/sh\necho allow\n", "");
    let input = PolicyInput::danger_from_claims(alice(), "alice");
    let evaluation = tree.enforcer().evaluate(&input);
    assert!(evaluation.decision.is_allow());
    assert_eq!(
        evaluation.decision.trace().source,
        TraceSource::Plugin(tree.root.join("policy.d/b-allow.yml"))
    );
    assert!(first.exists());
    assert_eq!(
        evaluation
            .notes
            .iter()
            .filter(|note| note.starts_with("Policy plugin result"))
            .count(),
        2
    );
}

#[test]
fn hanging_plugin_is_cut_at_its_timeout_and_denies() {
    let tree = Tree::new("");
    tree.plugin("hang", "#!/bin/sh\nsleep 30\necho allow\n", "timeout: 1s\n");
    let input = PolicyInput::danger_from_claims(alice(), "alice");
    let started = Instant::now();
    let evaluation = tree.enforcer().evaluate(&input);
    let took = started.elapsed();
    assert!(!evaluation.decision.is_allow(), "{evaluation:?}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert!(took >= Duration::from_secs(1), "took {took:?}");
    assert!(
        evaluation
            .notes
            .iter()
            .any(|note| note.contains("timed out after 1s")),
        "{:?}",
        evaluation.notes
    );
}

#[test]
fn insecure_plugins_do_not_run() {
    type Spoil = fn(&Tree, &Path);
    let cases: [(&str, Spoil); 4] = [
        ("plugin file mode", |tree, _| {
            std::fs::set_permissions(
                tree.root.join("policy.d/p.yml"),
                std::fs::Permissions::from_mode(0o644),
            )
            .unwrap();
        }),
        ("command mode", |_, command| {
            std::fs::set_permissions(command, std::fs::Permissions::from_mode(0o777)).unwrap();
        }),
        ("command owner", |_, command| {
            std::os::unix::fs::chown(command, Some(65534), None).unwrap();
        }),
        ("directory mode", |tree, _| {
            std::fs::set_permissions(
                tree.root.join("policy.d"),
                std::fs::Permissions::from_mode(0o777),
            )
            .unwrap();
        }),
    ];
    for (why, spoil) in cases {
        let tree = Tree::new("");
        let marker = tree.root.join("ran");
        let command = tree.plugin(
            "p",
            &format!("#!/bin/sh\ntouch {}\necho allow\n", marker.display()),
            "",
        );
        spoil(&tree, &command);
        let input = PolicyInput::danger_from_claims(alice(), "alice");
        let evaluation = tree.enforcer().evaluate(&input);
        assert!(!evaluation.decision.is_allow(), "{why}");
        assert!(!marker.exists(), "{why}: plugin ran");
        assert!(
            evaluation
                .notes
                .iter()
                .any(|note| note.contains("insecure permissions")),
            "{why}: {:?}",
            evaluation.notes
        );
    }
}

#[test]
fn bad_plugin_files_are_reported() {
    let tree = Tree::new("");
    write(
        &tree.root.join("policy.d/noname.yml"),
        "command: /bin/true\n",
        0o640,
    );
    write(
        &tree.root.join("policy.d/relative.yml"),
        "name: r\ncommand: true\n",
        0o640,
    );
    write(
        &tree.root.join("policy.d/badtimeout.yml"),
        "name: t\ncommand: /bin/true\ntimeout: forever\n",
        0o640,
    );
    write(
        &tree.root.join("policy.d/ignored.yaml"),
        "name: y\ncommand: /bin/true\n",
        0o640,
    );
    let input = PolicyInput::danger_from_claims(alice(), "alice");
    let notes = tree.enforcer().evaluate(&input).notes;
    let joined = notes.join("\n");
    assert!(joined.contains("missing required field 'name'"), "{joined}");
    assert!(joined.contains("must be an absolute path"), "{joined}");
    assert!(joined.contains("invalid timeout"), "{joined}");
    assert!(!joined.contains("ignored.yaml"), "{joined}");
}

#[test]
fn missing_plugin_directory_is_skipped() {
    let tree = Tree::new("alice alice@example.com https://accounts.example.com\n");
    std::fs::remove_dir(tree.root.join("policy.d")).unwrap();
    let input = PolicyInput::danger_from_claims(alice(), "bob");
    let evaluation = tree.enforcer().evaluate(&input);
    assert_eq!(evaluation.decision.trace().check, Check::NoMatch);
    assert!(
        evaluation
            .notes
            .iter()
            .any(|note| note.starts_with("Skipping policy plugins"))
    );
}

#[test]
fn plugins_run_only_when_no_row_allows() {
    let tree = Tree::new("alice alice@example.com https://accounts.example.com\n");
    let marker = tree.root.join("ran");
    tree.plugin(
        "p",
        &format!("#!/bin/sh\ntouch {}\necho allow\n", marker.display()),
        "",
    );
    let input = PolicyInput::danger_from_claims(alice(), "alice");
    let evaluation = tree.enforcer().evaluate(&input);
    assert!(matches!(evaluation.decision.trace().check, Check::Row(_)));
    assert!(
        !marker.exists(),
        "a row already allowed; no plugin should run"
    );
    // For another principal the rows do not allow, so the plugin runs and grants.
    let input = PolicyInput::danger_from_claims(alice(), "bob");
    let evaluation = tree.enforcer().evaluate(&input);
    assert_eq!(evaluation.decision.trace().check, Check::Plugin);
    assert!(marker.exists());
}

#[test]
fn plugin_allows_even_without_policy_files_as_in_go() {
    let tree = Tree::new("");
    std::fs::remove_file(tree.root.join("auth_id")).unwrap();
    tree.plugin("p", "#!/bin/sh\necho allow\n", "");
    let input = PolicyInput::danger_from_claims(alice(), "alice");
    let evaluation = tree.enforcer().evaluate(&input);
    assert_eq!(evaluation.decision.trace().check, Check::Plugin);
    // Without the plugin the reason is the missing policy.
    std::fs::remove_file(tree.root.join("policy.d/p.yml")).unwrap();
    let evaluation = tree.enforcer().evaluate(&input);
    assert_eq!(evaluation.decision.trace().check, Check::PolicyUnavailable);
    assert!(
        evaluation
            .decision
            .to_string()
            .starts_with("deny: error loading policy")
    );
}

#[test]
fn unmappable_claims_skip_plugins() {
    let tree = Tree::new("");
    tree.plugin("p", "#!/bin/sh\necho allow\n", "");
    let mut claims = alice();
    claims.insert("email_verified".into(), json!(1));
    let input = PolicyInput::danger_from_claims(claims, "alice");
    let evaluation = tree.enforcer().evaluate(&input);
    assert!(!evaluation.decision.is_allow());
    assert!(
        evaluation
            .notes
            .iter()
            .any(|note| note.starts_with("Error checking policy plugins: email_verified")),
        "{:?}",
        evaluation.notes
    );
}

#[test]
fn plugin_that_leaves_a_process_holding_its_output_is_cut_and_cleaned_up() {
    let tree = Tree::new("");
    let pid_file = tree.root.join("bg.pid");
    tree.plugin(
        "bg",
        &format!(
            "#!/bin/sh\nsleep 30 &\necho $! > {}\necho allow\nexit 0\n",
            pid_file.display()
        ),
        "timeout: 1\n",
    );
    let input = PolicyInput::danger_from_claims(alice(), "bob");
    let started = Instant::now();
    let evaluation = tree.enforcer().evaluate(&input);
    assert!(!evaluation.decision.is_allow(), "{evaluation:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        evaluation
            .notes
            .iter()
            .any(|note| note.contains("timed out"))
    );
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    // The background process was killed with the plugin's process group.
    let mut gone = false;
    for _ in 0..100 {
        let status = std::fs::read_to_string(format!("/proc/{}/stat", pid.trim()));
        if status.map_or(true, |stat| stat.contains(") Z ")) {
            gone = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(gone, "background process {pid} survived");
}

#[test]
fn config_env_vars_reach_plugins_but_cannot_forge_plugin_variables() {
    let tree = Tree::new("");
    let dump = tree.root.join("env");
    tree.plugin(
        "env",
        &format!(
            "#!/bin/sh\necho \"$HTTPS_PROXY $OPKSSH_PLUGIN_U\" > {}\necho allow\n",
            dump.display()
        ),
        "",
    );
    let env_vars = [
        ("HTTPS_PROXY".to_owned(), "http://proxy:3128".to_owned()),
        ("OPKSSH_PLUGIN_U".to_owned(), "root".to_owned()),
    ]
    .into_iter()
    .collect();
    let input = PolicyInput::danger_from_claims(alice(), "bob");
    let evaluation = tree.enforcer().with_env_vars(env_vars).evaluate(&input);
    assert!(evaluation.decision.is_allow());
    assert_eq!(
        std::fs::read_to_string(&dump).unwrap(),
        "http://proxy:3128 bob\n"
    );
}

#[test]
fn empty_userinfo_counts_as_none() {
    let tree = Tree::new("alice alice@example.com https://accounts.example.com\n");
    let input = PolicyInput::danger_from_claims(alice(), "alice").with_userinfo(String::new());
    assert!(tree.enforcer().evaluate(&input).decision.is_allow());
}

#[test]
fn server_config_must_be_0640_root_opksshuser() {
    let status = std::process::Command::new("groupadd")
        .args(["-f", "opksshuser"])
        .status()
        .unwrap();
    assert!(status.success());
    let gid = policy::perms::group_id("opksshuser").unwrap();
    let tree = Tree::new("");
    let dir = ConfigDir::new(&tree.root);
    assert_eq!(dir.load_server_config_if_present().unwrap(), None);
    let config = tree.root.join("config.yml");
    write(
        &config,
        "deny_users: [root]\nenv_vars:\n  HTTPS_PROXY: http://p:3128\n",
        0o640,
    );
    // root:root is not enough: the group must be opksshuser (Go checks it with stat).
    let error = dir.load_server_config().unwrap_err();
    assert!(
        error.to_string().contains("expected group (opksshuser)"),
        "{error}"
    );
    std::os::unix::fs::chown(&config, Some(0), Some(gid)).unwrap();
    let loaded = dir.load_server_config_if_present().unwrap().unwrap();
    assert_eq!(loaded.deny_users, ["root"]);
    std::os::unix::fs::chown(&config, Some(65534), Some(gid)).unwrap();
    assert!(dir.load_server_config_if_present().is_err());
    std::os::unix::fs::chown(&config, Some(0), Some(gid)).unwrap();
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert!(dir.load_server_config_if_present().is_err());
}
