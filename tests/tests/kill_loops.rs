//! Data safety under `kill -9`: `opkssh add`, a cold-cache `opkssh verify` and `opkssh login`
//! (after the OP has answered, while it writes the key and certificate) are killed at random
//! points until 200 kills each have landed on a running process. After every kill the policy
//! file is the old or the new complete content (never truncated or mixed), a cache entry is
//! absent or complete, the key and certificate are each complete, and stray temporary files do
//! not pile up beyond one that the next run removes. Gated like the e2e tests (`OPKSSH_E2E=1`):
//! it runs the `opkssh` binary of the test command and, for login, the real test OpenID provider.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)] // test code: a panic is a failure

use opk_core::sshcert::{OpksshCertificate, UserKeyFile};
use opk_os::atomic_file::TEMPORARY_MARKER;
use opkssh_tests::e2e::{self, IssuerServer, Op};
use opkssh_tests::login::LoginProcess;
use opkssh_tests::mint::{Minted, mint};
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Kills that must land while the process still runs (runs that finish first do not count).
const KILLS: usize = 200;
/// Runs a loop may take to land them.
const MAX_RUNS: usize = 3 * KILLS;
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
    let (mut runs, mut landed, mut completed) = (0, 0, 0);
    for i in 0..MAX_RUNS {
        if landed == KILLS {
            break;
        }
        runs += 1;
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
        let stray = temporaries(dir.path(), TEMPORARY_MARKER);
        assert!(
            stray.len() <= 1,
            "kill {i}: temporary files pile up: {stray:?}"
        );
    }
    eprintln!(
        "add: {runs} runs, {landed} killed while running, {completed} completed; file always old or new"
    );
    assert_eq!(
        landed, KILLS,
        "only {landed} kills landed while add ran, in {runs} runs"
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
    let (mut runs, mut landed, mut entries) = (0, 0, 0);
    for i in 0..MAX_RUNS {
        if landed == KILLS {
            break;
        }
        runs += 1;
        // Cold every time: the entry (if any) is removed first.
        for name in entries_in(&cache_dir_or_create(&cache)) {
            std::fs::remove_file(cache.join(name)).unwrap();
        }
        if run_and_kill(&mut verify(), Duration::from_millis(8)) {
            landed += 1;
        }
        for name in entries_in(&cache) {
            let text = std::fs::read_to_string(cache.join(&name)).unwrap();
            let value: serde_json::Value = serde_json::from_str(&text)
                .unwrap_or_else(|error| panic!("kill {i}: broken entry {name}: {error}: {text:?}"));
            assert_eq!(value["issuer"], issuer.as_str(), "kill {i}");
            entries += 1;
        }
        let stray = temporaries(&cache, TEMPORARY_MARKER);
        assert!(
            stray.len() <= 1,
            "kill {i}: temporary files pile up: {stray:?}"
        );
    }
    // And the cache still works.
    let output = verify().output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    eprintln!(
        "cache: {runs} runs, {landed} killed while running, {entries} complete entries found, none broken"
    );
    assert_eq!(
        landed, KILLS,
        "only {landed} kills landed while verify ran, in {runs} runs"
    );
}

/// Complete cache entries (`<hash>.json`, not the hidden temporaries).
fn entries_in(cache: &Path) -> Vec<String> {
    temporaries(cache, ".json")
        .into_iter()
        .filter(|name| name.ends_with(".json") && !name.starts_with('.'))
        .collect()
}

fn cache_dir_or_create(cache: &Path) -> std::path::PathBuf {
    if !cache.exists() {
        let mut builder = std::fs::DirBuilder::new();
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(cache).unwrap();
    }
    cache.to_path_buf()
}

/// Starts a login and answers it: logs in at the OP and delivers the callback in the
/// background, after which the login exchanges the code, verifies the token and writes the key
/// pair.
fn answered_login(home: &Path, provider: &str) -> LoginProcess {
    let mut login = LoginProcess::start(home, &["--provider", provider], &[]);
    let callback = e2e::http_login_stop_at_callback(&login.auth_url(), "alice").unwrap();
    std::thread::spawn(move || {
        let _ = e2e::loopback_agent().get(&callback).call();
    });
    login
}

/// The key pair on disk: each file complete and of the right mode, the certificate's key the
/// private key's public half unless only the key was replaced.
#[derive(Clone, PartialEq, Eq)]
struct KeyPair {
    key: Vec<u8>,
    cert: Vec<u8>,
}

fn read_pair(key_path: &Path) -> Option<KeyPair> {
    let cert_path = std::path::PathBuf::from(format!("{}-cert.pub", key_path.display()));
    let key = std::fs::read(key_path).ok()?;
    let cert = std::fs::read(&cert_path).unwrap();
    let parsed_key = UserKeyFile::from_openssh(std::str::from_utf8(&key).unwrap())
        .unwrap_or_else(|error| panic!("broken private key: {error}"));
    let parsed_cert = OpksshCertificate::from_line(std::str::from_utf8(&cert).unwrap())
        .unwrap_or_else(|error| panic!("broken certificate: {error}"));
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode(key_path), 0o600);
    assert_eq!(mode(&cert_path), 0o644);
    let _ = (parsed_key, parsed_cert);
    Some(KeyPair { key, cert })
}

fn pair_matches(pair: &KeyPair) -> bool {
    let key = UserKeyFile::from_openssh(std::str::from_utf8(&pair.key).unwrap()).unwrap();
    let cert = OpksshCertificate::from_line(std::str::from_utf8(&pair.cert).unwrap()).unwrap();
    cert.matches_upk(&key.key().public_key())
}

#[test]
fn login_killed_while_writing_never_leaves_a_broken_key_or_certificate() {
    if !e2e::enabled() {
        eprintln!("SKIP e2e: set OPKSSH_E2E=1");
        return;
    }
    let op = Op::start(&[]);
    let provider = format!("{},{},,openid profile email", op.issuer(), op.client_id());
    let home = tempfile::tempdir().unwrap();
    let key_path = home.path().join(".ssh").join("id_ecdsa");

    // Whole logins to time the part after the callback (the median of five), and to have an
    // old pair.
    let mut tails: Vec<Duration> = (0..5)
        .map(|_| {
            let login = answered_login(home.path(), &provider);
            let answered = Instant::now();
            login.finish().assert_success();
            answered.elapsed()
        })
        .collect();
    tails.sort();
    let tail = tails[2];
    let mut current = read_pair(&key_path).expect("the logins wrote no key");
    assert!(pair_matches(&current));
    // The writes come last: kill between half of `latest` and `latest`, which starts just after
    // the usual end. The usual time drifts with the machine's load (the other tests finish), so
    // the window follows it: a login that had already exited pulls it in, one killed before
    // writing pushes it out.
    let mut latest = tail.mul_f64(1.1);
    let (mut shortest, mut longest) = (latest, latest);

    let (mut untouched, mut key_only, mut both, mut finished) = (0, 0, 0, 0);
    let (mut runs, mut landed) = (0, 0);
    for i in 0..MAX_RUNS {
        if landed == KILLS {
            break;
        }
        runs += 1;
        let mut login = answered_login(home.path(), &provider);
        let half = latest / 2;
        let delay =
            half + Duration::from_micros(random_below(u64::try_from(half.as_micros()).unwrap()));
        std::thread::sleep(delay);
        if login.has_exited() {
            finished += 1;
            latest = latest.mul_f64(0.9).max(Duration::from_millis(1));
        } else {
            landed += 1;
        }
        login.kill();
        let after = read_pair(&key_path).unwrap_or_else(|| panic!("kill {i}: key removed"));
        if after == current {
            untouched += 1;
            latest = latest.mul_f64(1.05).min(tail * 4);
        } else if after.key != current.key && after.cert == current.cert {
            // Killed between the two renames: the next login replaces both.
            key_only += 1;
        } else {
            assert_ne!(
                after.key, current.key,
                "kill {i}: certificate replaced alone"
            );
            assert!(
                pair_matches(&after),
                "kill {i}: new certificate for another key"
            );
            both += 1;
        }
        current = after;
        shortest = shortest.min(latest);
        longest = longest.max(latest);
        // At most one leftover per file (key, certificate), removed by the next write of it.
        let stray = temporaries(&key_path.with_file_name(""), TEMPORARY_MARKER);
        let mut targets: Vec<&str> = stray
            .iter()
            .filter_map(|name| name.split(TEMPORARY_MARKER).next())
            .collect();
        targets.sort_unstable();
        targets.dedup();
        assert_eq!(
            targets.len(),
            stray.len(),
            "kill {i}: temporary files pile up: {stray:?}"
        );
    }
    // A login after all that leaves a matching pair in the same place.
    answered_login(home.path(), &provider)
        .finish()
        .assert_success();
    let last = read_pair(&key_path).unwrap();
    assert!(pair_matches(&last));
    assert!(temporaries(&key_path.with_file_name(""), TEMPORARY_MARKER).is_empty());
    eprintln!(
        "login: {runs} runs killed up to {shortest:?}..{longest:?} after the callback ({tail:?} \
         callback to exit at the start), {landed} while running: {untouched} before any write, \
         {key_only} between key and certificate, {both} after both ({finished} had already \
         exited); every file complete, the next login repairs"
    );
    assert_eq!(
        landed, KILLS,
        "only {landed} kills landed while login ran, in {runs} runs"
    );
    assert!(
        untouched > 0 && both > 0,
        "kills did not spread over the writing: {untouched} before, {both} after"
    );
}
