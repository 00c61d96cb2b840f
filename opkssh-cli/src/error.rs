//! User-facing errors: every library error becomes one `Error: <message>` line on stderr and
//! exit status 1, as in the Go tool (behaviour.md §1); a refused flag or variable value exits 2.

use std::fmt;

/// A failed command.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CliError {
    /// A file could not be read.
    #[error("failed to read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The input is not an opkssh certificate.
    #[error("{0}")]
    Certificate(#[from] opk_core::sshcert::CertError),
    /// The certificate's PK token is malformed.
    #[error("the certificate's PK token is malformed: {0}")]
    PkToken(#[from] opk_core::pktoken::PkTokenError),
    /// A server-policy command failed.
    #[error("{0}")]
    Policy(#[from] CommandError),
    /// Command-line usage error.
    #[error("{0}")]
    Usage(String),
    /// A flag's or an environment variable's value refused before anything was done (the
    /// message names it): exit status 2.
    #[error("{0}")]
    InvalidValue(String),
}

impl CliError {
    /// The exit status: 2 for a refused value, else 1 as in the Go tool.
    pub(crate) fn exit_code(&self) -> std::process::ExitCode {
        match self {
            Self::InvalidValue(_) => std::process::ExitCode::from(2),
            _ => std::process::ExitCode::FAILURE,
        }
    }
}

/// A policy command's failure: printed by `main` as `Error: <message>`, exit 1. The lead's
/// `CliError` can wrap it (`#[error("{0}")] Policy(#[from] CommandError)`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CommandError(pub(crate) String);

impl fmt::Display for CommandError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

impl std::error::Error for CommandError {}

impl CommandError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}
