//! The discovery and JWKS cache shared by all verify processes.
//!
//! sshd starts one verify per key offer, at least two per login, and the Go tool fetches
//! discovery and the JWKS every time (no cache: ~10 s logins reported, and every login fails
//! while the IdP is unreachable). Here one file per issuer holds both, written atomically; a
//! fresh entry answers with no network at all; an unknown `kid` triggers one rate-limited
//! refresh (key rotation); a file lock makes concurrent cold starts fetch once; and when the
//! IdP is unreachable an entry up to the stale limit is used, and that choice is logged.

use crate::deadline::Deadline;
use crate::http::{FetchError, LazyHttp, allowed_url};
use opk_core::jwk::Jwks;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::fs::File;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How the cache behaves.
#[derive(Debug, Clone)]
pub struct CacheSettings {
    /// The folder; `/var/cache/opkssh` by default.
    pub dir: PathBuf,
    /// Entries younger than this are used without asking the IdP (default 1 h).
    pub max_age: Duration,
    /// When the IdP cannot be reached, entries younger than this are still used (default
    /// 24 h; zero fails closed).
    pub stale_limit: Duration,
    /// At most one refresh per issuer in this interval is caused by an unknown `kid`, so a
    /// forged `kid` cannot make every login fetch.
    pub unknown_kid_refresh_interval: Duration,
    /// Whether a missing folder is created. `explain`, often run as root, leaves it to
    /// `verify`: a folder root made would be one `opksshuser` cannot use.
    pub create_dir: bool,
}

impl CacheSettings {
    /// The defaults, in `dir`.
    pub fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            max_age: Duration::from_secs(3600),
            stale_limit: Duration::from_secs(24 * 3600),
            unknown_kid_refresh_interval: Duration::from_secs(60),
            create_dir: true,
        }
    }
}

/// Where the keys came from, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// From a cache entry within its max age: no network.
    Cached,
    /// Fetched from the IdP by this process.
    Fetched,
    /// Fetched by another process while this one waited for the lock.
    FetchedByPeer,
    /// The IdP could not be reached; an entry within the stale limit was used.
    Stale {
        /// The entry's age in seconds.
        age_seconds: u64,
    },
}

/// One issuer's keys and endpoints.
#[derive(Debug, Clone)]
pub struct IssuerKeys {
    /// The key set.
    pub jwks: Jwks,
    /// The userinfo endpoint from discovery, if any.
    pub userinfo_endpoint: Option<String>,
    /// Where they came from.
    pub freshness: Freshness,
}

/// Why no keys could be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeysError {
    /// Fetching failed and no usable cache entry exists.
    #[error("{0}")]
    Fetch(FetchError),
    /// The IdP failed and the cached entry is older than the stale limit.
    #[error("{error}; cached keys are {age_seconds} s old, over the stale limit")]
    TooStale {
        /// The failure.
        error: Box<KeysError>,
        /// The entry's age.
        age_seconds: u64,
    },
    /// Discovery answered, but not for this issuer.
    #[error("discovery document names issuer `{found}`, expected `{expected}`")]
    DiscoveryIssuer {
        /// The configured issuer.
        expected: String,
        /// What the document says.
        found: String,
    },
    /// The discovery document is malformed.
    #[error("discovery document for {0} is malformed or has no usable jwks_uri")]
    Discovery(String),
    /// The JWKS is malformed or has no usable key.
    #[error("jwks of {0} is malformed or has no usable key")]
    Jwks(String),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    issuer: String,
    fetched_at: u64,
    jwks_uri: String,
    userinfo_endpoint: Option<String>,
    jwks: String,
    /// When an unknown `kid` last forced a refresh.
    #[serde(default)]
    kid_refresh_at: u64,
}

/// Notes for the log: what the cache did and why (insecure files skipped, stale use...).
pub type Notes = Vec<String>;

fn unix(now: SystemTime) -> u64 {
    now.duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

/// The cache over one folder.
#[derive(Debug)]
pub struct JwksCache<'a> {
    settings: &'a CacheSettings,
    http: &'a LazyHttp<'a>,
}

impl<'a> JwksCache<'a> {
    /// A cache that builds its HTTP client only if it has to fetch.
    pub fn new(settings: &'a CacheSettings, http: &'a LazyHttp<'a>) -> Self {
        Self { settings, http }
    }

    fn paths(&self, issuer: &str) -> (PathBuf, PathBuf) {
        let digest = hex::encode(Sha256::digest(issuer.as_bytes()));
        let stem = digest.get(..32).unwrap_or(&digest);
        (
            self.settings.dir.join(format!("{stem}.json")),
            self.settings.dir.join(format!("{stem}.lock")),
        )
    }

    /// The keys of `issuer`, knowing the token wants `kid`.
    ///
    /// # Errors
    /// [`KeysError`] when neither the cache nor the IdP can provide them.
    pub fn keys_for(
        &self,
        issuer: &str,
        kid: Option<&str>,
        now: SystemTime,
        deadline: &Deadline,
        notes: &mut Notes,
    ) -> Result<IssuerKeys, KeysError> {
        let now_seconds = unix(now);
        let usable_dir = self.prepare_dir(notes);
        let (entry_path, lock_path) = self.paths(issuer);
        let cached = if usable_dir {
            read_entry(&entry_path, issuer, notes)
        } else {
            None
        };
        let mut forced = false;
        if let Some(entry) = &cached {
            let age = now_seconds.saturating_sub(entry.fetched_at);
            if age <= self.settings.max_age.as_secs() {
                if knows_kid(entry, kid) {
                    return to_keys(entry, Freshness::Cached, issuer);
                }
                if now_seconds.saturating_sub(entry.kid_refresh_at)
                    < self.settings.unknown_kid_refresh_interval.as_secs()
                {
                    notes.push(format!("kid {kid:?} unknown, but the jwks was refreshed for an unknown kid less than {} s ago", self.settings.unknown_kid_refresh_interval.as_secs()));
                    return to_keys(entry, Freshness::Cached, issuer);
                }
                notes.push(format!("kid {kid:?} not in the cached jwks: refreshing"));
                forced = true;
            }
        }

        // One fetch at a time per issuer across processes; whoever waited re-reads first.
        let lock = if usable_dir {
            lock_file(&lock_path, deadline, notes)
        } else {
            None
        };
        if lock.is_some()
            && let Some(entry) = read_entry(&entry_path, issuer, notes)
        {
            let newer = cached
                .as_ref()
                .is_none_or(|old| entry.fetched_at > old.fetched_at);
            let age = now_seconds.saturating_sub(entry.fetched_at);
            let peer_refreshed_for_kid = now_seconds.saturating_sub(entry.kid_refresh_at)
                < self.settings.unknown_kid_refresh_interval.as_secs();
            if newer
                && age <= self.settings.max_age.as_secs()
                && (knows_kid(&entry, kid) || peer_refreshed_for_kid)
            {
                return to_keys(&entry, Freshness::FetchedByPeer, issuer);
            }
        }

        let fetched = self.fetch(issuer, deadline).and_then(|mut entry| {
            entry.fetched_at = now_seconds;
            entry.kid_refresh_at = if forced {
                now_seconds
            } else {
                cached.as_ref().map_or(0, |old| old.kid_refresh_at)
            };
            to_keys(&entry, Freshness::Fetched, issuer).map(|keys| (entry, keys))
        });
        match fetched {
            Ok((entry, keys)) => {
                if lock.is_some()
                    && let Err(error) = write_entry(&entry_path, &entry)
                {
                    notes.push(format!(
                        "could not write the jwks cache {}: {error}",
                        entry_path.display()
                    ));
                }
                drop(lock);
                Ok(keys)
            }
            // Whatever went wrong (unreachable, hung, garbage, wrong issuer), keys we verified
            // earlier are better than none, up to the stale limit; a response is never cached
            // unless it holds usable keys.
            Err(error) => {
                // Only from a folder we trust: an insecure folder's entries are never read.
                let reread = if usable_dir {
                    read_entry(&entry_path, issuer, notes)
                } else {
                    None
                };
                let Some(entry) = reread.or(cached) else {
                    return Err(error);
                };
                let age_seconds = now_seconds.saturating_sub(entry.fetched_at);
                if age_seconds > self.settings.stale_limit.as_secs() {
                    return Err(KeysError::TooStale {
                        error: Box::new(error),
                        age_seconds,
                    });
                }
                notes.push(format!(
                    "{error}; using cached keys {age_seconds} s old (stale limit {} s)",
                    self.settings.stale_limit.as_secs()
                ));
                to_keys(&entry, Freshness::Stale { age_seconds }, issuer)
            }
        }
    }

    fn fetch(&self, issuer: &str, deadline: &Deadline) -> Result<Entry, KeysError> {
        let http = self.http.client();
        let discovery_url = format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        );
        let body = http
            .get(&discovery_url, None, deadline)
            .map_err(KeysError::Fetch)?;
        let document: serde_json::Value =
            serde_json::from_slice(&body).map_err(|_| KeysError::Discovery(issuer.to_owned()))?;
        let found = document
            .get("issuer")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default();
        if found != issuer {
            return Err(KeysError::DiscoveryIssuer {
                expected: issuer.to_owned(),
                found: found.to_owned(),
            });
        }
        let jwks_uri = document
            .get("jwks_uri")
            .and_then(serde_json::Value::as_str)
            .filter(|uri| allowed_url(uri))
            .ok_or_else(|| KeysError::Discovery(issuer.to_owned()))?
            .to_owned();
        let userinfo_endpoint = document
            .get("userinfo_endpoint")
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned);
        let jwks = http
            .get(&jwks_uri, None, deadline)
            .map_err(KeysError::Fetch)?;
        let jwks = String::from_utf8(jwks).map_err(|_| KeysError::Jwks(issuer.to_owned()))?;
        Ok(Entry {
            issuer: issuer.to_owned(),
            fetched_at: 0,
            jwks_uri,
            userinfo_endpoint,
            jwks,
            kid_refresh_at: 0,
        })
    }

    /// The folder must be ours and writable by nobody else, or the cache is not used at all.
    fn prepare_dir(&self, notes: &mut Notes) -> bool {
        let dir = &self.settings.dir;
        if std::fs::symlink_metadata(dir).is_err() {
            if !self.settings.create_dir {
                notes.push(format!(
                    "jwks cache {} does not exist; keys fetched without it",
                    dir.display()
                ));
                return false;
            }
            let builder = opk_os::file::dir_builder(0o700);
            // Concurrent cold starts race to create it; losing that race is fine, the checks
            // below then judge the folder the winner made.
            match builder.create(dir) {
                Ok(()) => {}
                Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(error) => {
                    notes.push(format!("jwks cache {} unavailable: {error}", dir.display()));
                    return false;
                }
            }
        }
        match std::fs::symlink_metadata(dir) {
            Ok(metadata) if metadata.is_dir() && secure(&metadata) => true,
            Ok(_) => {
                notes.push(format!("jwks cache {} ignored: not a directory owned by this user and writable only by it", dir.display()));
                false
            }
            Err(error) => {
                notes.push(format!("jwks cache {} unavailable: {error}", dir.display()));
                false
            }
        }
    }
}

/// Owned by the effective user and not writable by group or others (never, where owners and
/// modes cannot be read).
pub(crate) fn secure(metadata: &std::fs::Metadata) -> bool {
    opk_os::file::attributes(metadata).is_ok_and(|attributes| {
        Some(attributes.uid) == opk_os::account::effective_uid() && attributes.mode & 0o022 == 0
    })
}

fn knows_kid(entry: &Entry, kid: Option<&str>) -> bool {
    let Ok(jwks) = Jwks::from_json(entry.jwks.as_bytes()) else {
        return false;
    };
    jwks.find(kid).is_ok()
}

fn to_keys(entry: &Entry, freshness: Freshness, issuer: &str) -> Result<IssuerKeys, KeysError> {
    let jwks =
        Jwks::from_json(entry.jwks.as_bytes()).map_err(|_| KeysError::Jwks(issuer.to_owned()))?;
    if jwks.keys().is_empty() {
        return Err(KeysError::Jwks(issuer.to_owned()));
    }
    Ok(IssuerKeys {
        jwks,
        userinfo_endpoint: entry.userinfo_endpoint.clone(),
        freshness,
    })
}

/// Opens a file of the cache for reading, with its metadata: never through a symlink, and
/// never waiting (a FIFO in an entry's place opens at once and fails the caller's
/// `is_file` check instead of holding verify).
pub(crate) fn open_cache_file(path: &Path) -> Option<(File, std::fs::Metadata)> {
    opk_os::file::open_for_reading(path, true).ok()
}

/// Reads an entry if the file is secure, well-formed and for this issuer (a hash collision or a
/// planted file cannot answer for another issuer).
fn read_entry(path: &Path, issuer: &str, notes: &mut Notes) -> Option<Entry> {
    let (mut file, metadata) = open_cache_file(path)?;
    if !metadata.is_file() || !secure(&metadata) {
        notes.push(format!(
            "jwks cache file {} ignored: not owned by this user or writable by others",
            path.display()
        ));
        return None;
    }
    let mut text = String::new();
    std::io::Read::by_ref(&mut file)
        .take(2 * crate::http::MAX_BODY)
        .read_to_string(&mut text)
        .ok()?;
    match serde_json::from_str::<Entry>(&text) {
        Ok(entry) if entry.issuer == issuer => Some(entry),
        Ok(_) => {
            notes.push(format!(
                "jwks cache file {} is for another issuer: ignored",
                path.display()
            ));
            None
        }
        Err(_) => {
            notes.push(format!(
                "jwks cache file {} is malformed: ignored",
                path.display()
            ));
            None
        }
    }
}

/// Writes an entry atomically, readable by the cache's owner only.
fn write_entry(path: &Path, entry: &Entry) -> std::io::Result<()> {
    let text = serde_json::to_vec(entry).map_err(std::io::Error::other)?;
    opk_os::atomic_file::replace(path, &text, opk_os::atomic_file::FileMode::mode(0o600))
        .map_err(|error| std::io::Error::new(error.source.kind(), error.to_string()))
}

/// Takes the issuer's lock, waiting at most until the deadline. Without it the fetch still
/// happens (correctness does not depend on the lock, only the request count does).
fn lock_file(path: &Path, deadline: &Deadline, notes: &mut Notes) -> Option<File> {
    let guards = opk_os::file::Guards {
        no_follow: true,
        non_blocking: false,
        create_mode: Some(0o600),
    };
    let file = guards
        .options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .ok()?;
    loop {
        match file.try_lock() {
            Ok(()) => return Some(file),
            Err(std::fs::TryLockError::WouldBlock) if !deadline.passed() => {
                std::thread::sleep(Duration::from_millis(5))
            }
            Err(_) => {
                notes.push(format!("could not lock {}", path.display()));
                return None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A FIFO in a cache entry's place (only the cache's owner could put one there) must not
    /// hold verify: it opens at once and is not a file.
    #[test]
    fn a_fifo_in_the_cache_does_not_block() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let fifo = dir.path().join("entry.json");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status()?;
        assert!(made.success());
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let opened = open_cache_file(&fifo).map(|(_, metadata)| metadata.is_file());
            let _ = sender.send(opened);
        });
        let opened = receiver
            .recv_timeout(std::time::Duration::from_secs(5))
            .map_err(|_| std::io::Error::other("open_cache_file blocked on a FIFO"))?;
        assert_eq!(opened, Some(false));
        Ok(())
    }

    /// A verify killed mid-write leaves its temporary file; the next write of that entry
    /// removes it (kill loop find: they piled up, one per kill).
    #[test]
    fn leftovers_of_killed_writers_are_removed() -> std::io::Result<()> {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("0123abcd.json");
        let mut child = std::process::Command::new("true").spawn()?;
        child.wait()?;
        let marker = opk_os::atomic_file::TEMPORARY_MARKER;
        let dead = child.id();
        let own_leftover = format!(".0123abcd.json{marker}{dead}.0");
        let other_entrys = format!(".ffff.json{marker}{dead}.0");
        std::fs::write(dir.path().join(&own_leftover), "{")?;
        std::fs::write(dir.path().join(&other_entrys), "{")?;
        let entry = Entry {
            issuer: "https://op.example".into(),
            fetched_at: 1,
            jwks_uri: "https://op.example/jwks".into(),
            userinfo_endpoint: None,
            jwks: "{}".into(),
            kid_refresh_at: 0,
        };
        write_entry(&path, &entry)?;
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir.path())? {
            names.push(entry?.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        assert_eq!(names, [other_entrys, "0123abcd.json".to_owned()]);
        assert_eq!(
            std::fs::metadata(&path)?.permissions().mode() & 0o777,
            0o600
        );
        Ok(())
    }
}
