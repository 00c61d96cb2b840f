//! Data safety under `kill -9`: `opkssh add` and a cold-cache `opkssh verify` are killed at
//! random points, 200 times each. After every kill the policy file is the old or the new
//! complete content (never truncated or mixed), a cache entry is absent or complete, and stray
//! temporary files do not pile up beyond one that the next run removes. Gated like the e2e
//! tests (`OPKSSH_E2E=1`): it runs the `opkssh` binary of the test command.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)] // test code: a panic is a failure

use opkssh_tests::e2e::{self, IssuerServer};
use opkssh_tests::mint::{Minted, mint};
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const KILLS: usize = 200;
const ISSUER: &str = "https://accounts.google.com";

fn random_below(bound: u64) -> u64 {
    let mut bytes = [0_u8; 8];
    getrandom::fill(&mut bytes).unwrap();
    u64::from_le_bytes(bytes) % bound
}

/// Spawns `command`, kills it with SIGKILL after a random delay below `max` (or lets it finish
/// if it is faster); true if the kill landed while it ran.
fn run_and_kill(command: &mut Command, max: Duration) -> bool {
    let mut child = command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let delay = Duration::from_micros(random_below(u64::try_from(max.as_micros()).unwrap()));
    let started = Instant::now();
    while started.elapsed() < delay {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        std::thread::sleep(Duration::from_micros(50));
    }
    let killed = child.try_wait().unwrap().is_none();
    let _ = child.kill();
    child.wait().unwrap();
    killed
}

fn temporaries(dir: &Path, marker: &str) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains(marker))
        .collect()
}

#[test]
fn add_killed_at_random_points_never_leaves_a_broken_policy() {
    if !e2e::enabled() {
        eprintln!("SKIP e2e: set OPKSSH_E2E=1");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let auth_id = dir.path().join("auth_id");
    let header = "# opkssh policy\n";
    std::fs::write(&auth_id, header).unwrap();
    std::fs::set_permissions(&auth_id, std::fs::Permissions::from_mode(0o640)).unwrap();
    let mut rows: Vec<String> = Vec::new();
    let (mut landed, mut completed) = (0, 0);
    for i in 0..KILLS {
        let row = format!("user{i} user{i}@example.com {ISSUER}");
        let killed = run_and_kill(
            Command::new(e2e::target_binary("opkssh"))
                .arg("add")
                .arg("--config-dir")
                .arg(dir.path())
                .args([
                    format!("user{i}"),
                    format!("user{i}@example.com"),
                    ISSUER.to_owned(),
                ]),
            Duration::from_millis(6),
        );
        let content = std::fs::read_to_string(&auth_id).unwrap();
        let old: String = std::iter::once(header.to_owned())
            .chain(rows.iter().map(|row| format!("{row}\n")))
            .collect();
        let new = format!("{old}{row}\n");
        if content == new {
            rows.push(row);
            completed += 1;
        } else {
            assert_eq!(content, old, "kill {i}: neither the old nor the new file");
        }
        if killed {
            landed += 1;
        }
        let mode = std::fs::metadata(&auth_id).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o640, "kill {i}: mode changed");
        let stray = temporaries(dir.path(), "opkssh-add");
        assert!(
            stray.len() <= 1,
            "kill {i}: temporary files pile up: {stray:?}"
        );
    }
    eprintln!(
        "add: {KILLS} runs, {landed} killed while running, {completed} completed; file always old or new"
    );
    assert!(
        landed >= KILLS / 4,
        "only {landed} kills landed while add ran"
    );
}

#[test]
fn cold_cache_verify_killed_at_random_points_never_leaves_a_broken_entry() {
    if !e2e::enabled() {
        eprintln!("SKIP e2e: set OPKSSH_E2E=1");
        return;
    }
    let server = IssuerServer::start_custom().unwrap();
    let issuer = server.issuer().to_owned();
    let minted = mint(&issuer, "kill-client", "alice@example.com").unwrap();
    server.set_documents(
        Minted::discovery_json(&issuer).as_bytes(),
        minted.jwks_json.as_bytes(),
    );
    let dir = tempfile::tempdir().unwrap();
    let etc = dir.path().join("etc");
    std::fs::create_dir(&etc).unwrap();
    for (name, text) in [
        ("providers", format!("{issuer} kill-client oidc\n")),
        ("auth_id", format!("alice alice@example.com {issuer}\n")),
    ] {
        std::fs::write(etc.join(name), text).unwrap();
        std::fs::set_permissions(etc.join(name), std::fs::Permissions::from_mode(0o640)).unwrap();
    }
    let cache = dir.path().join("cache");
    let (key_type, key_b64) = minted.type_and_base64();
    let verify = || {
        let mut command = Command::new(e2e::target_binary("opkssh"));
        command
            .arg("verify")
            .arg("--config-dir")
            .arg(&etc)
            .arg("--cache-dir")
            .arg(&cache)
            .arg("--log-file")
            .arg(dir.path().join("opkssh.log"))
            .args(["alice", key_b64, key_type])
            .env_clear();
        command
    };
    let (mut landed, mut entries) = (0, 0);
    for i in 0..KILLS {
        // Cold every time: the entry (if any) is removed first.
        for name in temporaries(&cache_dir_or_create(&cache), ".json") {
            std::fs::remove_file(cache.join(name)).unwrap();
        }
        if run_and_kill(&mut verify(), Duration::from_millis(8)) {
            landed += 1;
        }
        for name in temporaries(&cache, ".json") {
            let text = std::fs::read_to_string(cache.join(&name)).unwrap();
            let value: serde_json::Value = serde_json::from_str(&text)
                .unwrap_or_else(|error| panic!("kill {i}: broken entry {name}: {error}: {text:?}"));
            assert_eq!(value["issuer"], issuer.as_str(), "kill {i}");
            entries += 1;
        }
        let stray = temporaries(&cache, ".tmp");
        assert!(
            stray.len() <= 1,
            "kill {i}: temporary files pile up: {stray:?}"
        );
    }
    // And the cache still works.
    let output = verify().output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    eprintln!(
        "cache: {KILLS} runs, {landed} killed while running, {entries} complete entries found, none broken"
    );
    assert!(
        landed >= KILLS / 4,
        "only {landed} kills landed while verify ran"
    );
}

fn cache_dir_or_create(cache: &Path) -> std::path::PathBuf {
    if !cache.exists() {
        let mut builder = std::fs::DirBuilder::new();
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(cache).unwrap();
    }
    cache.to_path_buf()
}
