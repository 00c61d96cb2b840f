//! `auth_id` files: `principal identity issuer` rows (behaviour.md §3.3; Go: policy/policy.go).
//!
//! System file `/etc/opk/auth_id`; home file `~/.opk/auth_id`, whose rows only count for
//! their owner's account (filtered with [`AuthIdFile::for_principal`]).

use crate::error::{FileError, FileErrorKind, Location};
use crate::table::{self, LineKind};
use std::path::Path;

/// One `auth_id` row and where it was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthRow {
    /// The account this row lets in (the sshd login name), compared exactly.
    pub principal: String,
    /// The identity attribute (email, sub, `oidc:…`, `oidc-match-end:email:…`, `repo:…`).
    pub identity: String,
    /// The issuer, compared exactly with the token's `iss`.
    pub issuer: String,
    /// File and line.
    pub location: Location,
}

/// A parsed `auth_id` file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuthIdFile {
    rows: Vec<AuthRow>,
    warnings: Vec<FileError>,
}

impl AuthIdFile {
    /// Parses a file; rows that are not three columns and unparsable lines are skipped and
    /// reported in [`AuthIdFile::warnings`]. `path` is only used in locations.
    pub fn parse(content: &[u8], path: &Path) -> Self {
        let mut file = Self::default();
        for line in table::parse(content) {
            let location = Location::line(path, line.number);
            match line.kind {
                LineKind::Blank => {}
                LineKind::Unparsable(error) => file
                    .warnings
                    .push(FileError::new(location, FileErrorKind::Unparsable(error))),
                LineKind::Row(columns) => match <[String; 3]>::try_from(columns) {
                    Ok([principal, identity, issuer]) => file.rows.push(AuthRow {
                        principal,
                        identity,
                        issuer,
                        location,
                    }),
                    Err(columns) => file.warnings.push(FileError::new(
                        location,
                        FileErrorKind::WrongColumnCount(columns.len()),
                    )),
                },
            }
        }
        file
    }

    /// The rows, in file order.
    pub fn rows(&self) -> &[AuthRow] {
        &self.rows
    }

    /// Skipped lines.
    pub fn warnings(&self) -> &[FileError] {
        &self.warnings
    }

    /// Keeps only rows for `principal`: a home file only grants its owner's account.
    pub fn for_principal(mut self, principal: &str) -> Self {
        self.rows.retain(|row| row.principal == principal);
        self
    }

    /// Consumes the file, giving its rows.
    pub fn into_rows(self) -> Vec<AuthRow> {
        self.rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_filters() {
        let path = Path::new("/home/alice/.opk/auth_id");
        let file = AuthIdFile::parse(
            b"alice alice@example.com https://accounts.google.com\nroot bob@example.com https://accounts.google.com\nalice 'oidc:\"https://acme.com/groups\":ssh' https://op # c\nbroken row\n",
            path,
        );
        assert_eq!(file.rows().len(), 3);
        assert_eq!(file.warnings().len(), 1);
        assert_eq!(file.warnings()[0].location.line, Some(4));
        assert_eq!(
            file.rows()[2].identity,
            r#"oidc:"https://acme.com/groups":ssh"#
        );
        let home = file.for_principal("alice");
        assert_eq!(home.rows().len(), 2);
        assert_eq!(home.rows()[1].location.line, Some(3));
    }
}
