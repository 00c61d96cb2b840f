//! User-facing errors: every library error becomes one `Error: <message>` line on stderr and
//! exit status 1, as in the Go tool (behaviour.md §1).

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
    Policy(#[from] crate::commands::CommandError),
    /// Command-line usage error.
    #[error("{0}")]
    Usage(String),
}
