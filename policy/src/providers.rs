//! `/etc/opk/providers`: `issuer client_id expiration_policy` rows (behaviour.md §3.2; Go:
//! policy/providerloader.go).
//!
//! Like Go, a row with the wrong column count is skipped with a warning, while an unknown
//! expiration policy, a duplicate issuer or an empty file makes the whole file unusable, so
//! every login fails. Unlike Go, the error names the line.

use crate::error::{FileError, FileErrorKind, Location};
use crate::table::{self, LineKind};
use opk_core::verify::{ExpirationPolicy, Provider};
use std::path::Path;

/// One usable providers row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderRow {
    /// The issuer column, exactly as written.
    pub issuer: String,
    /// The client id column.
    pub client_id: String,
    /// The parsed expiration column.
    pub expiration: ExpirationPolicy,
    /// 1-based line.
    pub line: usize,
    provider: Provider,
}

impl ProviderRow {
    /// The verifier's view of this row.
    pub fn provider(&self) -> &Provider {
        &self.provider
    }
}

/// A parsed providers file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Providers {
    rows: Vec<ProviderRow>,
    warnings: Vec<FileError>,
}

impl Providers {
    /// Parses a providers file. `path` is only used in messages.
    ///
    /// # Errors
    /// The first fatal problem: an unknown expiration policy, a duplicate issuer (Go keys
    /// verifiers by issuer, so the second row would be ambiguous), or no usable row.
    pub fn parse(content: &[u8], path: &Path) -> Result<Self, FileError> {
        let scan = scan(content, path);
        if let Some(fatal) = scan.problems.into_iter().find(is_fatal) {
            return Err(fatal);
        }
        Ok(Self {
            rows: scan.rows,
            warnings: scan.warnings,
        })
    }

    /// Every problem in a providers file, fatal or not, for `audit`, and the issuer column
    /// of every three-column row (as Go's validator keys them).
    pub fn audit(content: &[u8], path: &Path) -> (Vec<String>, Vec<FileError>) {
        let scan = scan(content, path);
        let mut problems = scan.warnings;
        problems.extend(scan.problems);
        problems.sort_by_key(|problem| problem.location.line);
        (scan.issuers, problems)
    }

    /// The provider whose issuer equals `issuer` exactly.
    pub fn lookup(&self, issuer: &str) -> Option<&Provider> {
        self.row(issuer).map(ProviderRow::provider)
    }

    /// The row whose issuer equals `issuer` exactly.
    pub fn row(&self, issuer: &str) -> Option<&ProviderRow> {
        self.rows.iter().find(|row| row.provider.issuer() == issuer)
    }

    /// Every usable row, in file order.
    pub fn rows(&self) -> &[ProviderRow] {
        &self.rows
    }

    /// Skipped rows, for the log.
    pub fn warnings(&self) -> &[FileError] {
        &self.warnings
    }

    /// Whether a row's issuer column equals `issuer` exactly (audit's check; Go compares the
    /// column, not the normalised issuer).
    pub fn has_issuer_column(&self, issuer: &str) -> bool {
        self.rows.iter().any(|row| row.issuer == issuer)
    }
}

/// An expiration column. Upstream's docs spell the refreshed policy `oidc-refreshed` and its
/// code accepts only `oidc_refreshed`, so a server configured from the docs locked everyone
/// out (behaviour.md §8.1); both spellings mean the same policy here.
fn parse_expiration(name: &str) -> Result<ExpirationPolicy, opk_core::verify::UnknownPolicy> {
    match name {
        "oidc-refreshed" => Ok(ExpirationPolicy::OidcRefreshed),
        other => other.parse(),
    }
}

fn is_fatal(error: &FileError) -> bool {
    !matches!(
        error.kind,
        FileErrorKind::WrongColumnCount(_) | FileErrorKind::Unparsable(_)
    )
}

struct Scan {
    rows: Vec<ProviderRow>,
    issuers: Vec<String>,
    warnings: Vec<FileError>,
    problems: Vec<FileError>,
}

fn scan(content: &[u8], path: &Path) -> Scan {
    let mut scan = Scan {
        rows: Vec::new(),
        issuers: Vec::new(),
        warnings: Vec::new(),
        problems: Vec::new(),
    };
    for line in table::parse(content) {
        let location = Location::line(path, line.number);
        let columns = match line.kind {
            LineKind::Blank => continue,
            LineKind::Unparsable(error) => {
                scan.warnings
                    .push(FileError::new(location, FileErrorKind::Unparsable(error)));
                continue;
            }
            LineKind::Row(columns) => columns,
        };
        let [issuer, client_id, expiration] = match <[String; 3]>::try_from(columns) {
            Ok(row) => row,
            Err(columns) => {
                scan.warnings.push(FileError::new(
                    location,
                    FileErrorKind::WrongColumnCount(columns.len()),
                ));
                continue;
            }
        };
        scan.issuers.push(issuer.clone());
        let Ok(expiration) = parse_expiration(&expiration) else {
            scan.problems.push(FileError::new(
                location,
                FileErrorKind::UnknownExpirationPolicy(expiration),
            ));
            continue;
        };
        let provider = Provider::new(&issuer, &client_id, expiration);
        if let Some(first) = scan
            .rows
            .iter()
            .find(|row| row.provider.issuer() == provider.issuer())
        {
            scan.problems.push(FileError::new(
                location,
                FileErrorKind::DuplicateIssuer {
                    issuer: provider.issuer().to_owned(),
                    first_line: first.line,
                },
            ));
            continue;
        }
        scan.rows.push(ProviderRow {
            issuer,
            client_id,
            expiration,
            line: line.number,
            provider,
        });
    }
    if scan.rows.is_empty() && scan.problems.is_empty() {
        scan.problems.push(FileError::new(
            Location::file(path),
            FileErrorKind::NoProviders,
        ));
    }
    scan
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn path() -> PathBuf {
        PathBuf::from("/etc/opk/providers")
    }

    #[test]
    fn parses_rows_and_skips_bad_ones() {
        let file = b"# providers\nhttps://accounts.google.com 206584157355-7cbe4s640tvm7naoludob4ut1emii7sf.apps.googleusercontent.com 24h\nhttps://gitlab.com 8d8b7024572c7fd501f64374dec6bba37096783dfcd792b3988104be08cb6923 24h extra\n\nhttps://token.actions.githubusercontent.com github oidc\n";
        let providers = Providers::parse(file, &path()).unwrap();
        assert_eq!(providers.rows().len(), 2);
        let google = providers.lookup("https://accounts.google.com").unwrap();
        assert_eq!(google.expiration(), ExpirationPolicy::MaxAge24h);
        assert!(providers.lookup("https://accounts.google.com/").is_none());
        assert!(providers.lookup("https://ACCOUNTS.google.com").is_none());
        assert_eq!(providers.warnings().len(), 1);
        assert_eq!(
            providers.warnings()[0].to_string(),
            "/etc/opk/providers:3: wrong number of arguments (expected=3, got=4), row skipped"
        );
        assert_eq!(
            providers
                .row("https://token.actions.githubusercontent.com")
                .unwrap()
                .line,
            5
        );
    }

    #[test]
    fn bad_expiration_names_its_line() {
        let file = b"https://a a 24h\nhttps://b b oidc-refresh\n";
        let error = Providers::parse(file, &path()).unwrap_err();
        assert_eq!(error.location.line, Some(2));
        assert_eq!(
            error.kind,
            FileErrorKind::UnknownExpirationPolicy("oidc-refresh".into())
        );
        assert_eq!(
            error.to_string(),
            "/etc/opk/providers:2: invalid expiration policy: oidc-refresh (expected 12h, 24h, 48h, 1week, oidc, oidc_refreshed (or oidc-refreshed) or never)"
        );
    }

    #[test]
    fn oidc_refreshed_is_accepted_in_both_spellings() {
        let file = b"https://a a oidc_refreshed\nhttps://b b oidc-refreshed\n";
        let providers = Providers::parse(file, &path()).unwrap();
        for issuer in ["https://a", "https://b"] {
            assert_eq!(
                providers.row(issuer).unwrap().expiration,
                ExpirationPolicy::OidcRefreshed,
                "{issuer}"
            );
            assert_eq!(
                providers.lookup(issuer).unwrap().expiration(),
                ExpirationPolicy::OidcRefreshed
            );
        }
        // Only that one spelling: other policies keep their single name.
        for near in [
            "OIDC-refreshed",
            "oidc-Refreshed",
            "oidc-refreshed ",
            "1-week",
        ] {
            let file = format!("https://a a '{near}'\n");
            assert!(
                Providers::parse(file.as_bytes(), &path()).is_err(),
                "{near:?}"
            );
        }
    }

    #[test]
    fn duplicate_issuer_names_both_lines() {
        let file = b"https://a a 24h\n\nhttps://a b oidc\n";
        let error = Providers::parse(file, &path()).unwrap_err();
        assert_eq!(
            error.to_string(),
            "/etc/opk/providers:3: duplicate issuer https://a (first configured at line 1)"
        );
        // Forgejo issuers are normalised without the trailing slash, so these collide too.
        let file =
            b"https://codeberg.org/api/actions x oidc\nhttps://codeberg.org/api/actions/ y oidc\n";
        assert!(matches!(
            Providers::parse(file, &path()).unwrap_err().kind,
            FileErrorKind::DuplicateIssuer { first_line: 1, .. }
        ));
    }

    #[test]
    fn empty_file_is_fatal() {
        assert_eq!(
            Providers::parse(b"# nothing\n", &path()).unwrap_err().kind,
            FileErrorKind::NoProviders
        );
        assert_eq!(
            Providers::parse(b"a b\n", &path()).unwrap_err().kind,
            FileErrorKind::NoProviders
        );
    }

    #[test]
    fn audit_lists_every_problem() {
        let file =
            b"https://a a 24h\nhttps://b b oidc-refresh\nhttps://a c oidc\nshort row\n'open\n";
        let (issuers, problems) = Providers::audit(file, &path());
        assert_eq!(issuers, ["https://a", "https://b", "https://a"]);
        let lines: Vec<_> = problems
            .iter()
            .map(|problem| problem.location.line)
            .collect();
        assert_eq!(lines, [Some(2), Some(3), Some(4), Some(5)]);
    }

    #[test]
    fn every_expiration_name() {
        for name in [
            "12h",
            "24h",
            "48h",
            "1week",
            "oidc",
            "oidc_refreshed",
            "never",
        ] {
            let file = format!("https://a a {name}\n");
            let providers = Providers::parse(file.as_bytes(), &path()).unwrap();
            assert_eq!(providers.rows()[0].expiration.as_str(), name);
        }
    }
}
