//! Adding a row to an `auth_id` file, as `opkssh add` does (behaviour.md §2.6), but better
//! than Go: comments, blank lines and rows it does not understand are kept byte for byte;
//! only the new row is inserted (after the first row with the same identity and issuer, as
//! Go places it) or appended. The file is replaced atomically (temp file, fsync, rename,
//! directory fsync) while an exclusive lock on its directory is held, so concurrent `add`s
//! all land and a crash leaves the old file.

use crate::auth_id::AuthIdFile;
use crate::table;
use std::fs::File;
use std::path::{Path, PathBuf};

/// What adding did to the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddPlan {
    /// The exact row is already there (at this line); nothing to write.
    AlreadyPresent {
        /// 1-based line of the existing row.
        line: usize,
    },
    /// The new content, and the 1-based line where the row now is.
    Insert {
        /// The whole new file.
        content: Vec<u8>,
        /// Line of the new row.
        line: usize,
    },
}

/// Plans adding `principal identity issuer` to a file's content.
pub fn plan_add(content: &[u8], principal: &str, identity: &str, issuer: &str) -> AddPlan {
    let parsed = AuthIdFile::parse(content, Path::new(""));
    let mut after = None;
    for row in parsed.rows() {
        if row.identity == identity && row.issuer == issuer {
            if row.principal == principal {
                return AddPlan::AlreadyPresent {
                    line: row.location.line.unwrap_or_default(),
                };
            }
            if after.is_none() {
                after = row.location.line;
            }
        }
    }
    let new_row = table::join(&[principal, identity, issuer]);
    // Split keeping line terminators, so untouched lines stay byte-identical.
    let mut lines: Vec<&[u8]> = content.split_inclusive(|byte| *byte == b'\n').collect();
    let (index, eol): (usize, &[u8]) = match after {
        Some(line) => {
            // Reuse the CRLF style of the row we follow.
            let previous = lines
                .get(line.saturating_sub(1))
                .copied()
                .unwrap_or_default();
            let eol: &[u8] = if previous.ends_with(b"\r\n") {
                b"\r\n"
            } else {
                b"\n"
            };
            (line, eol)
        }
        None => (lines.len(), b"\n"),
    };
    // A last line without a newline needs one before anything follows it.
    let mut fixed_last = Vec::new();
    if let Some(last) = index.checked_sub(1).and_then(|at| lines.get(at).copied())
        && !last.ends_with(b"\n")
    {
        fixed_last.extend_from_slice(last);
        fixed_last.push(b'\n');
        if let Some(slot) = index.checked_sub(1).and_then(|at| lines.get_mut(at)) {
            *slot = &fixed_last;
        }
    }
    let mut new_line = new_row.into_bytes();
    new_line.extend_from_slice(eol);
    lines.insert(index.min(lines.len()), &new_line);
    AddPlan::Insert {
        content: lines.concat(),
        line: index.saturating_add(1),
    }
}

/// Why a file could not be updated.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    /// Locking, reading, writing or renaming failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// On which path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The current file breaks its permission rules or cannot be read.
    #[error("{0}")]
    File(#[from] crate::FileError),
}

impl EditError {
    /// Whether the OS refused access (`add` then falls back to the home policy).
    pub fn is_permission_denied(&self) -> bool {
        match self {
            Self::Io { source, .. } => source.kind() == std::io::ErrorKind::PermissionDenied,
            Self::File(error) => matches!(
                error.kind,
                crate::FileErrorKind::Io(std::io::ErrorKind::PermissionDenied, _)
            ),
        }
    }
}

fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> EditError + 'a {
    move |source| EditError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// Adds a row to the file at `path` under an exclusive lock on its directory, checking the
/// file against `requirement` first. The file must exist.
///
/// # Errors
/// [`EditError`]; the file is unchanged on any error.
pub fn add_row(
    path: &Path,
    requirement: &crate::perms::Requirement,
    principal: &str,
    identity: &str,
    issuer: &str,
) -> Result<AddPlan, EditError> {
    add_row_with(path, requirement, principal, identity, issuer, || Ok(()))
}

pub(crate) fn add_row_with(
    path: &Path,
    requirement: &crate::perms::Requirement,
    principal: &str,
    identity: &str,
    issuer: &str,
    before_rename: impl FnOnce() -> std::io::Result<()>,
) -> Result<AddPlan, EditError> {
    // A system file may be a symlink (Go writes through it): edit the file it points to, in
    // its own directory, so the link stays a link.
    let resolved;
    let path = if requirement.no_symlink {
        path
    } else {
        resolved = std::fs::canonicalize(path).map_err(io("failed to resolve", path))?;
        resolved.as_path()
    };
    let dir = path
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let lock = File::open(dir).map_err(io("failed to open directory", dir))?;
    lock.lock().map_err(io("failed to lock directory", dir))?;
    let (file, metadata) = crate::perms::open(path, requirement.no_symlink)?;
    crate::perms::check(&metadata, requirement).map_err(|error| {
        crate::FileError::new(
            crate::Location::file(path),
            crate::FileErrorKind::Permissions(error),
        )
    })?;
    let content = crate::perms::read_limited(file, path, requirement.max_size)?;
    let plan = plan_add(&content, principal, identity, issuer);
    if let AddPlan::Insert { content, .. } = &plan {
        replace(path, content, &metadata, before_rename)?;
    }
    drop(lock);
    Ok(plan)
}

/// Writes `content` over `path` atomically, keeping the old file's mode and owner.
fn replace(
    path: &Path,
    content: &[u8],
    old: &std::fs::Metadata,
    before_rename: impl FnOnce() -> std::io::Result<()>,
) -> Result<(), EditError> {
    let mode = opk_os::atomic_file::FileMode::of(old).map_err(|unsupported| EditError::Io {
        action: "failed to read the owner and mode of",
        path: path.to_owned(),
        source: unsupported.into(),
    })?;
    opk_os::atomic_file::replace_with(path, content, mode, before_rename).map_err(|error| {
        EditError::Io {
            action: error.step,
            path: error.path,
            source: error.source,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::perms::Requirement;
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};

    const I: &str = "https://accounts.google.com";

    fn insert(content: &str, principal: &str, identity: &str) -> (String, usize) {
        match plan_add(content.as_bytes(), principal, identity, I) {
            AddPlan::Insert { content, line } => (String::from_utf8(content).unwrap(), line),
            AddPlan::AlreadyPresent { line } => panic!("already present at {line}"),
        }
    }

    #[test]
    fn appends_and_keeps_everything_else() {
        let original =
            "# admins\n\nroot alice@example.com https://accounts.google.com # first\nbroken row\n";
        let (content, line) = insert(original, "bob", "bob@example.com");
        assert_eq!(
            content,
            format!("{original}bob bob@example.com https://accounts.google.com\n")
        );
        assert_eq!(line, 5);
    }

    #[test]
    fn inserts_after_first_same_identity_and_issuer() {
        let original = "root alice@example.com https://accounts.google.com\r\nx y z\nalice alice@example.com https://accounts.google.com\n";
        let (content, line) = insert(original, "dev", "alice@example.com");
        assert_eq!(
            content,
            "root alice@example.com https://accounts.google.com\r\ndev alice@example.com https://accounts.google.com\r\nx y z\nalice alice@example.com https://accounts.google.com\n"
        );
        assert_eq!(line, 2);
    }

    #[test]
    fn duplicate_is_a_no_op() {
        let original = "# c\nroot alice@example.com https://accounts.google.com\n";
        assert_eq!(
            plan_add(original.as_bytes(), "root", "alice@example.com", I),
            AddPlan::AlreadyPresent { line: 2 }
        );
    }

    #[test]
    fn missing_final_newline_and_empty_file() {
        let (content, _) = insert("# no newline", "a", "b@c");
        assert_eq!(content, "# no newline\na b@c https://accounts.google.com\n");
        let (content, line) = insert("", "a", "b@c");
        assert_eq!(content, "a b@c https://accounts.google.com\n");
        assert_eq!(line, 1);
        let (content, _) = insert("a x@y https://accounts.google.com", "b", "x@y");
        assert_eq!(
            content,
            "a x@y https://accounts.google.com\nb x@y https://accounts.google.com\n"
        );
    }

    #[test]
    fn quotes_the_new_row_like_go() {
        let (content, _) = insert("", "dev", r#"oidc:"https://acme.com/groups":ssh"#);
        assert_eq!(
            content,
            "dev oidc:\\\"https://acme.com/groups\\\":ssh https://accounts.google.com\n"
        );
        let parsed = AuthIdFile::parse(content.as_bytes(), Path::new(""));
        assert_eq!(
            parsed.rows()[0].identity,
            r#"oidc:"https://acme.com/groups":ssh"#
        );
    }

    #[test]
    fn crash_before_rename_leaves_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth_id");
        std::fs::write(&path, "# keep me\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let error = add_row_with(&path, &Requirement::SYSTEM_FILE, "a", "b@c", I, || {
            Err(std::io::Error::other("simulated crash"))
        })
        .unwrap_err();
        assert!(error.to_string().contains("simulated crash"));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "# keep me\n");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "temp file left behind");
    }

    /// A writer killed with SIGKILL leaves its temporary file; the next add removes it (kill
    /// loop find: they piled up, one per kill).
    #[test]
    fn leftovers_of_killed_writers_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth_id");
        std::fs::write(&path, "").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        child.wait().unwrap();
        let leftover = format!(
            ".auth_id{}{}.0",
            opk_os::atomic_file::TEMPORARY_MARKER,
            child.id()
        );
        std::fs::write(dir.path().join(leftover), "half").unwrap();
        add_row(&path, &Requirement::SYSTEM_FILE, "a", "b@c", I).unwrap();
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("auth_id")]);
    }

    #[test]
    fn edits_through_a_symlinked_system_file() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real_auth_id");
        std::fs::write(&real, "# real\n").unwrap();
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o640)).unwrap();
        let link = dir.path().join("auth_id");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        add_row(&link, &Requirement::SYSTEM_FILE, "a", "b@c", I).unwrap();
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(
            std::fs::read_to_string(&real).unwrap(),
            "# real\na b@c https://accounts.google.com\n"
        );
        // A home file must not be a symlink at all.
        assert!(add_row(&link, &Requirement::home_file(0), "a", "x@y", I).is_err());
    }

    #[test]
    fn keeps_mode_and_owner() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth_id");
        std::fs::write(&path, "").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::os::unix::fs::chown(&path, Some(65534), Some(65534)).unwrap();
        let plan = add_row(&path, &Requirement::home_file(65534), "a", "b@c", I).unwrap();
        assert!(matches!(plan, AddPlan::Insert { line: 1, .. }));
        let metadata = std::fs::metadata(&path).unwrap();
        assert_eq!(metadata.mode() & 0o7777, 0o600);
        assert_eq!((metadata.uid(), metadata.gid()), (65534, 65534));
        // A wrong mode is refused and nothing changes.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(add_row(&path, &Requirement::home_file(65534), "c", "d@e", I).is_err());
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "a b@c https://accounts.google.com\n"
        );
    }
}
