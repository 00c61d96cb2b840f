//! Errors that name the file and line they come from.

use std::fmt;
use std::path::{Path, PathBuf};

/// A place in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Location {
    /// The file.
    pub path: PathBuf,
    /// 1-based line, `None` for the file as a whole.
    pub line: Option<usize>,
}

impl Location {
    /// A line of a file.
    pub fn line(path: &Path, line: usize) -> Self {
        Self {
            path: path.to_path_buf(),
            line: Some(line),
        }
    }

    /// A whole file.
    pub fn file(path: &Path) -> Self {
        Self {
            path: path.to_path_buf(),
            line: None,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(formatter, "{}:{line}", self.path.display()),
            None => write!(formatter, "{}", self.path.display()),
        }
    }
}

/// A problem in a configuration file, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileError {
    /// Where.
    pub location: Location,
    /// What.
    pub kind: FileErrorKind,
}

impl FileError {
    pub(crate) fn new(location: Location, kind: FileErrorKind) -> Self {
        Self { location, kind }
    }
}

impl fmt::Display for FileError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}: {}", self.location, self.kind)
    }
}

impl std::error::Error for FileError {}

/// What is wrong with a file or one of its lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileErrorKind {
    /// A row does not have three columns; it is skipped.
    WrongColumnCount(usize),
    /// A line could not be split into columns; it is skipped.
    Unparsable(crate::table::SplitError),
    /// An unknown expiration policy in the providers file.
    UnknownExpirationPolicy(String),
    /// A second providers row for an issuer, first seen at the given line.
    DuplicateIssuer {
        /// The issuer.
        issuer: String,
        /// Line of the first row.
        first_line: usize,
    },
    /// The providers file has no usable row.
    NoProviders,
    /// The file could not be read.
    Io(std::io::ErrorKind, String),
    /// The file's mode, owner or type is not the required one.
    Permissions(PermError),
    /// Bad YAML.
    Yaml(String),
    /// A required field is missing or empty.
    MissingField(&'static str),
    /// Some other invalid value.
    Invalid(String),
}

impl fmt::Display for FileErrorKind {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::WrongColumnCount(got) => write!(
                formatter,
                "wrong number of arguments (expected=3, got={got}), row skipped"
            ),
            Self::Unparsable(error) => write!(formatter, "unable to parse ({error}), row skipped"),
            Self::UnknownExpirationPolicy(name) => write!(
                formatter,
                "invalid expiration policy: {name} (expected 12h, 24h, 48h, 1week, oidc, oidc_refreshed (or oidc-refreshed) or never)"
            ),
            Self::DuplicateIssuer { issuer, first_line } => write!(
                formatter,
                "duplicate issuer {issuer} (first configured at line {first_line})"
            ),
            Self::NoProviders => formatter.write_str("no providers configured"),
            Self::Io(_, message) => formatter.write_str(message),
            Self::Permissions(error) => write!(formatter, "insecure permissions: {error}"),
            Self::Yaml(message) => write!(formatter, "invalid YAML: {message}"),
            Self::MissingField(name) => write!(formatter, "missing required field '{name}'"),
            Self::Invalid(message) => formatter.write_str(message),
        }
    }
}

impl FileErrorKind {
    pub(crate) fn io(error: &std::io::Error) -> Self {
        Self::Io(error.kind(), error.to_string())
    }
}

/// Why a file does not meet its requirement (`perms::Requirement`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PermError {
    /// The last component is a symlink.
    Symlink,
    /// Not a regular file (or not a directory where one is required).
    WrongType,
    /// Wrong permission bits.
    Mode {
        /// Allowed modes.
        expected: &'static [u32],
        /// Actual mode.
        got: u32,
    },
    /// Wrong owner.
    Owner {
        /// The required uid.
        expected: u32,
        /// The actual uid.
        got: u32,
    },
    /// Wrong group.
    Group {
        /// The required group name.
        expected: &'static str,
        /// The actual gid.
        got: u32,
    },
    /// The required group does not exist on this machine.
    NoSuchGroup(&'static str),
    /// Owners and modes cannot be read on this system, so no rule about them is met.
    Unsupported(opk_os::Unsupported),
}

impl fmt::Display for PermError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Symlink => formatter.write_str("is a symlink, symlinks are unsafe here"),
            Self::WrongType => formatter.write_str(
                "is not a regular file or directory as required (FIFOs, devices and sockets are never read)",
            ),
            Self::Mode { expected, got } => {
                let expected: Vec<String> =
                    expected.iter().map(|mode| format!("{mode:o}")).collect();
                write!(
                    formatter,
                    "expected one of the following permissions [{}], got ({got:o})",
                    expected.join(", ")
                )
            }
            Self::Owner { expected, got } => write!(
                formatter,
                "expected owner ({}), got ({})",
                user_name(*expected),
                user_name(*got)
            ),
            Self::Group { expected, got } => write!(
                formatter,
                "expected group ({expected}), got ({})",
                group_name(*got)
            ),
            Self::NoSuchGroup(name) => write!(formatter, "group {name} does not exist"),
            Self::Unsupported(unsupported) => write!(formatter, "{unsupported}"),
        }
    }
}

/// `name`, or `uid N` when the user database has no name.
pub(crate) fn user_name(uid: u32) -> String {
    opk_os::account::user_name(uid).unwrap_or_else(|| format!("uid {uid}"))
}

/// A group's name, or `gid N`.
pub(crate) fn group_name(gid: u32) -> String {
    opk_os::account::group_name(gid).unwrap_or_else(|| format!("gid {gid}"))
}

/// The first line of a multi-line message (YAML errors come with a source snippet).
pub(crate) fn first_line(message: &str) -> String {
    message
        .lines()
        .next()
        .unwrap_or_default()
        .trim_start_matches("error: ")
        .to_owned()
}
