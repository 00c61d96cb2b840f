//! Shared helpers for the cross-crate tests: locating and loading the Go interop vectors, and
//! the end-to-end harness ([`e2e`]).

pub mod e2e;
pub mod login;
pub mod mint;
pub mod proxy;

use anyhow::{Context as _, Result, bail};
use std::path::{Path, PathBuf};

/// The folder of Go-made vectors: `tests/vectors/go-opkssh` in this repository, or
/// `$OPKSSH_VECTORS` when set.
pub fn vectors_root() -> PathBuf {
    if let Some(dir) = std::env::var_os("OPKSSH_VECTORS") {
        return PathBuf::from(dir);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("vectors/go-opkssh")
}

/// One vector folder.
#[derive(Debug, Clone)]
pub struct Vector {
    /// Folder name, e.g. `rs256-ecdsa`.
    pub name: String,
    /// The folder.
    pub dir: PathBuf,
    /// `meta.json`.
    pub meta: serde_json::Value,
}

impl Vector {
    /// Reads a file of the vector as text.
    ///
    /// # Errors
    /// The file is missing or not UTF-8.
    pub fn text(&self, file: &str) -> Result<String> {
        let path = self.dir.join(file);
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
    }

    /// Reads a file of the vector as text without its trailing line feed.
    ///
    /// # Errors
    /// As [`Vector::text`].
    pub fn trimmed(&self, file: &str) -> Result<String> {
        Ok(self.text(file)?.trim_end_matches('\n').to_owned())
    }

    /// A string member of `meta.json`.
    pub fn meta_str(&self, name: &str) -> Option<&str> {
        self.meta.get(name).and_then(serde_json::Value::as_str)
    }
}

/// Every vector under `accept/` or `reject/`. Fails if the folder is missing or empty, so a
/// lost checkout cannot make the interop tests pass vacuously.
///
/// # Errors
/// Missing or empty folder, unreadable `meta.json`.
pub fn vectors(kind: &str) -> Result<Vec<Vector>> {
    let root = vectors_root().join(kind);
    let entries = std::fs::read_dir(&root)
        .with_context(|| format!("vector folder {} is missing", root.display()))?;
    let mut found = Vec::new();
    for entry in entries {
        let dir = entry?.path();
        if !dir.is_dir() {
            continue;
        }
        let name = dir
            .file_name()
            .and_then(|name| name.to_str())
            .unwrap_or_default()
            .to_owned();
        let meta_path = dir.join("meta.json");
        let meta = serde_json::from_str(
            &std::fs::read_to_string(&meta_path)
                .with_context(|| format!("reading {}", meta_path.display()))?,
        )?;
        found.push(Vector { name, dir, meta });
    }
    if found.is_empty() {
        bail!("vector folder {} is empty", root.display());
    }
    found.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(found)
}

/// One vector by kind (`accept` or `reject`) and folder name.
///
/// # Errors
/// The vector folder is missing.
pub fn vector(kind: &str, name: &str) -> Result<Vector> {
    vectors(kind)?
        .into_iter()
        .find(|vector| vector.name == name)
        .with_context(|| format!("no vector {kind}/{name}"))
}
