//! Replacing a file so that nothing is lost, used by every writer in opkssh (policy edits, the
//! verifier's key cache, login's keys and certificates, the installer).
//!
//! The new content goes to a temporary file in the target's folder, created exclusively and
//! without following links, with its final owner and mode before any byte is written (a private
//! key is never readable by others, not even for an instant). It is flushed to disk, renamed
//! over the target, and the folder is flushed so the rename survives a power cut. A crash at
//! any point leaves the old file or the new one, never a mix. On Windows, a file whose mode is
//! for its owner alone gets an ACL for its user alone instead, also before the first byte
//! ([`crate::private_file`]).
//!
//! A writer killed with SIGKILL cannot remove its temporary file. The name carries the writer's
//! process id (`.<name>.opkssh-tmp.<pid>.<n>`), so the next writer of the same file removes the
//! leftovers of processes that no longer exist, and a kill loop cannot fill the folder.

use crate::file::Guards;
use crate::private_file::{Privacy, PrivacyError};
use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// What marks a temporary file of this module, between the target's name and the pid.
pub const TEMPORARY_MARKER: &str = ".opkssh-tmp.";

/// The owner, group and mode the new file gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileMode {
    /// Permission bits (`0o600`, `0o640`, …), set exactly, whatever the umask (on Windows the
    /// file keeps the ACL it inherits from its folder).
    pub mode: u32,
    /// Owner and group; `None` keeps the writer's (on Windows an owner cannot be given:
    /// the write fails).
    pub owner: Option<(u32, u32)>,
}

impl FileMode {
    /// `mode`, owned by the writer.
    pub const fn mode(mode: u32) -> Self {
        FileMode { mode, owner: None }
    }

    /// The mode and owner of an existing file (to replace it without changing either).
    ///
    /// # Errors
    /// [`Unsupported`](crate::Unsupported) where files have no Unix owner and mode.
    pub fn of(metadata: &std::fs::Metadata) -> Result<Self, crate::Unsupported> {
        let attributes = crate::file::attributes(metadata)?;
        Ok(FileMode {
            mode: attributes.mode,
            owner: Some((attributes.uid, attributes.gid)),
        })
    }
}

/// Which step of a replacement failed, and on which file.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {step}: {source}")]
pub struct AtomicWriteError {
    /// The target, or the temporary file for the steps before the rename.
    pub path: PathBuf,
    /// What was being done.
    pub step: &'static str,
    /// The failure.
    #[source]
    pub source: std::io::Error,
}

/// Replaces `path` with `contents`, giving the new file exactly `mode`.
///
/// # Errors
/// [`AtomicWriteError`]; the old file is unchanged and the temporary file removed.
pub fn replace(path: &Path, contents: &[u8], mode: FileMode) -> Result<(), AtomicWriteError> {
    replace_with(path, contents, mode, || Ok(()))
}

/// [`replace`], calling `before_rename` once the new content is durable (a last check of the
/// target, or a test's simulated crash at the last moment).
pub fn replace_with(
    path: &Path,
    contents: &[u8],
    mode: FileMode,
    before_rename: impl FnOnce() -> std::io::Result<()>,
) -> Result<(), AtomicWriteError> {
    let prepared = prepare(path, contents, mode)?;
    before_rename().map_err(|source| AtomicWriteError {
        path: prepared.temporary.clone(),
        step: "before renaming",
        source,
    })?;
    prepared.commit()?;
    sync_folder(path);
    Ok(())
}

/// New content for a file, complete and flushed in its temporary file, not yet in place.
/// Dropping it without [`commit`](Self::commit) removes the temporary file.
///
/// Preparing several files first and committing them one after the other keeps the time in
/// which some are new and others old down to the renames themselves.
#[derive(Debug)]
#[must_use = "nothing is replaced until commit"]
pub struct Prepared {
    temporary: PathBuf,
    target: PathBuf,
    committed: bool,
    privacy: Option<Privacy>,
}

impl Prepared {
    /// For a file whose mode is for its owner alone: how far it is known to be private
    /// ([`crate::private_file::restrict`]; on Windows, whether its ACL could be checked).
    /// `None` for other modes.
    pub fn privacy(&self) -> Option<&Privacy> {
        self.privacy.as_ref()
    }

    /// Renames the new content over the target. The folder is not flushed: call
    /// [`sync_folder`] once after the last commit.
    ///
    /// # Errors
    /// [`AtomicWriteError`]; the target is unchanged.
    pub fn commit(mut self) -> Result<(), AtomicWriteError> {
        std::fs::rename(&self.temporary, &self.target).map_err(|source| AtomicWriteError {
            path: self.target.clone(),
            step: "renaming into place",
            source,
        })?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for Prepared {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.temporary);
        }
    }
}

/// Flushes the folder of `path` so renames into it survive a power cut. A file system that
/// cannot do it loses nothing else, so a failure is ignored.
pub fn sync_folder(path: &Path) {
    let folder = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    if let Ok(folder) = File::open(folder) {
        let _ = folder.sync_all();
    }
}

/// Writes `contents` to a new temporary file beside `path`, with `mode`, flushed to disk.
///
/// # Errors
/// [`AtomicWriteError`]; no temporary file is left.
pub fn prepare(path: &Path, contents: &[u8], mode: FileMode) -> Result<Prepared, AtomicWriteError> {
    let fail = |path: &Path, step| {
        let path = path.to_owned();
        move |source| AtomicWriteError { path, step, source }
    };
    let (Some(name), Some(dir)) = (path.file_name(), path.parent()) else {
        return Err(AtomicWriteError {
            path: path.to_owned(),
            step: "not a file path",
            source: std::io::ErrorKind::InvalidInput.into(),
        });
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let mut prefix = std::ffi::OsString::from(".");
    prefix.push(name);
    prefix.push(TEMPORARY_MARKER);
    remove_leftovers(dir, &prefix.to_string_lossy());
    prefix.push(std::process::id().to_string());
    let mut attempt = 0_u32;
    let (temporary, mut file) = loop {
        let mut temporary_name = prefix.clone();
        temporary_name.push(format!(".{attempt}"));
        let temporary = dir.join(temporary_name);
        let guards = Guards {
            no_follow: true,
            non_blocking: false,
            create_mode: Some(mode.mode & 0o777),
        };
        match guards
            .options()
            .write(true)
            .create_new(true)
            .open(&temporary)
        {
            Ok(file) => break (temporary, file),
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists && attempt < 100 => {
                attempt += 1;
            }
            Err(error) => return Err(fail(&temporary, "creating a temporary file")(error)),
        }
    };
    let mut prepared = Prepared {
        temporary,
        target: path.to_owned(),
        committed: false,
        privacy: None,
    };
    // Owner first, then mode: chown clears set-id bits; the mode is then set exactly because
    // the umask may have narrowed it at creation.
    if let Some(owner) = mode.owner {
        crate::file::set_file_owner(&file, owner)
            .map_err(fail(&prepared.temporary, "setting the owner"))?;
    }
    crate::file::set_file_mode(&file, mode.mode)
        .map_err(fail(&prepared.temporary, "setting the mode"))?;
    // A mode for the owner alone is, on Windows, an ACL for the user alone: set and checked
    // before any byte is written, like the mode.
    if mode.mode & 0o077 == 0 {
        let privacy = crate::private_file::restrict(&prepared.temporary).map_err(|error| {
            let source = match error {
                PrivacyError::NotPrivate { why, .. } => std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    format!("others may still use it: {why}"),
                ),
                PrivacyError::Io { source, .. } => source,
            };
            fail(&prepared.temporary, "making the file private")(source)
        })?;
        prepared.privacy = Some(privacy);
    }
    file.write_all(contents)
        .map_err(fail(&prepared.temporary, "writing"))?;
    file.sync_all()
        .map_err(fail(&prepared.temporary, "flushing"))?;
    Ok(prepared)
}

/// Removes `<prefix><pid>.<n>` files in `dir` whose writer process no longer exists. A pid that
/// exists, or that this process may not signal, is left alone: its owner may still be writing.
fn remove_leftovers(dir: &Path, prefix: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|name| name.strip_prefix(prefix))
            .and_then(|rest| rest.split_once('.'))
            .and_then(|(pid, _)| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if crate::process::is_gone(pid) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

#[cfg(all(test, unix))]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use super::*;
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn replaces_with_exact_mode_whatever_the_umask() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("id_ecdsa");
        std::fs::write(&path, "old").unwrap();
        replace(&path, b"new", FileMode::mode(0o600)).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o7777, 0o600);
        replace(&path, b"wider", FileMode::mode(0o664)).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o7777, 0o664);
        assert_eq!(names(dir.path()), ["id_ecdsa"]);
    }

    #[test]
    fn keeps_owner_and_mode_of_an_existing_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth_id");
        std::fs::write(&path, "").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        std::os::unix::fs::chown(&path, Some(65534), Some(65534)).ok();
        let before = std::fs::metadata(&path).unwrap();
        replace(&path, b"row\n", FileMode::of(&before).unwrap()).unwrap();
        let after = std::fs::metadata(&path).unwrap();
        assert_eq!(
            (after.mode() & 0o7777, after.uid(), after.gid()),
            (0o640, before.uid(), before.gid())
        );
    }

    #[test]
    fn a_crash_before_the_rename_leaves_the_old_file_and_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth_id");
        std::fs::write(&path, "# keep me\n").unwrap();
        let error = replace_with(&path, b"new", FileMode::mode(0o640), || {
            Err(std::io::Error::other("simulated crash"))
        })
        .unwrap_err();
        assert_eq!(error.step, "before renaming");
        assert_eq!(std::fs::read(&path).unwrap(), b"# keep me\n");
        assert_eq!(names(dir.path()), ["auth_id"]);
    }

    #[test]
    fn leftovers_of_dead_writers_are_removed_and_live_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.json");
        let dead = {
            let mut child = std::process::Command::new("true").spawn().unwrap();
            child.wait().unwrap();
            child.id()
        };
        let live = std::process::id();
        for name in [
            format!(".x.json{TEMPORARY_MARKER}{dead}.0"),
            format!(".x.json{TEMPORARY_MARKER}{live}.7"),
            format!(".y.json{TEMPORARY_MARKER}{dead}.0"),
            format!(".x.json{TEMPORARY_MARKER}notapid.0"),
        ] {
            std::fs::write(dir.path().join(name), "half").unwrap();
        }
        replace(&path, b"{}", FileMode::mode(0o600)).unwrap();
        let mut expected = vec![
            format!(".x.json{TEMPORARY_MARKER}notapid.0"),
            format!(".x.json{TEMPORARY_MARKER}{live}.7"),
            format!(".y.json{TEMPORARY_MARKER}{dead}.0"),
            "x.json".to_owned(),
        ];
        expected.sort();
        assert_eq!(names(dir.path()), expected);
    }

    #[test]
    fn a_symlink_in_place_of_the_temporary_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth_id");
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "victim").unwrap();
        for attempt in 0..=100 {
            std::os::unix::fs::symlink(
                &victim,
                dir.path().join(format!(
                    ".auth_id{TEMPORARY_MARKER}{}.{attempt}",
                    std::process::id()
                )),
            )
            .unwrap();
        }
        assert!(replace(&path, b"new", FileMode::mode(0o600)).is_err());
        assert_eq!(std::fs::read(&victim).unwrap(), b"victim");
        assert!(!path.exists());
    }

    #[test]
    fn prepared_files_are_invisible_until_committed_and_removed_if_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let (key, cert) = (dir.path().join("id"), dir.path().join("id-cert.pub"));
        std::fs::write(&key, "old key").unwrap();
        let new_key = prepare(&key, b"new key", FileMode::mode(0o600)).unwrap();
        let new_cert = prepare(&cert, b"new cert", FileMode::mode(0o644)).unwrap();
        assert_eq!(std::fs::read(&key).unwrap(), b"old key");
        assert!(!cert.exists());
        new_key.commit().unwrap();
        drop(new_cert);
        sync_folder(&key);
        assert_eq!(std::fs::read(&key).unwrap(), b"new key");
        assert_eq!(names(dir.path()), ["id"]);
    }

    #[test]
    fn a_path_without_a_file_name_is_an_error() {
        assert!(replace(Path::new("/"), b"", FileMode::mode(0o600)).is_err());
    }
}
