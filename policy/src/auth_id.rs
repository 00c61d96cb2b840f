//! `auth_id` files: `principal identity issuer` rows (behaviour.md §3.3; Go: policy/policy.go).
//!
//! System file `/etc/opk/auth_id`; home file `~/.opk/auth_id`, whose rows only count for
//! their owner's account (filtered with [`AuthIdFile::for_principal`]).
//!
//! A row whose principal is `*` is a template: `%u` in its identity stands for the account
//! being logged into ([`crate::rule::Template`]).

use crate::error::{FileError, FileErrorKind, Location};
use crate::rule::TEMPLATE_PRINCIPAL;
use crate::table::{self, LineKind};
use std::path::Path;

/// One `auth_id` row and where it was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthRow {
    /// The account this row lets in (the sshd login name), compared exactly; `*` makes a
    /// template row, whose identity names the account with `%u` ([`crate::rule::Template`]).
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
    /// Lines for other principals that [`AuthIdFile::parse_for`] did not parse.
    unlisted: usize,
}

/// How many rows for other principals [`AuthIdFile::parse_for`] still parses and keeps, in
/// file order, so that `explain` shows why the first ones did not apply.
pub const LISTED_OTHER_PRINCIPALS: usize = 32;

/// The line-by-line state of [`AuthIdFile::parse_for`] and [`AuthIdFile::read_for`].
struct PrincipalFilter<'a> {
    file: AuthIdFile,
    path: &'a Path,
    principal: &'a [u8],
    number: usize,
    listed: usize,
}

impl<'a> PrincipalFilter<'a> {
    fn new(path: &'a Path, principal: &'a str) -> Self {
        Self {
            file: AuthIdFile::default(),
            path,
            principal: principal.as_bytes(),
            number: 0,
            listed: 0,
        }
    }

    /// One line without its `\n`, in file order.
    fn line(&mut self, raw: &[u8]) {
        let raw = if self.number == 0 {
            raw.strip_prefix(table::BOM).unwrap_or(raw)
        } else {
            raw
        };
        self.number = self.number.saturating_add(1);
        if other_principal(raw, self.principal) {
            if self.listed >= LISTED_OTHER_PRINCIPALS {
                self.file.unlisted = self.file.unlisted.saturating_add(1);
                return;
            }
            self.listed = self.listed.saturating_add(1);
        }
        self.file
            .push_line(self.path, self.number, table::parse_line(raw));
    }
}

/// A byte that reads as itself in a word: printable ASCII but for quotes, the escape and the
/// comment sign.
fn plain(byte: u8) -> bool {
    matches!(byte, b'!' | b'$'..=b'&' | b'('..=b'[' | b']'..=b'~')
}

/// Whether a raw line is certainly not a row for `principal`, without parsing it. Its first
/// word starts with a plain byte (so the line is not blank, and shell quoting cannot change
/// that byte) and either that byte is not the principal's first byte, which settles most
/// lines at once, or the whole word is plain and another name. A template row (`*`) can
/// concern every principal, so it is never another principal's. Anything else (quotes,
/// escapes, comments, CR, non-ASCII bytes such as Unicode spaces) goes to the full parser, so
/// the fast path never reads a line differently from it.
fn other_principal(raw: &[u8], principal: &[u8]) -> bool {
    let start = raw
        .iter()
        .position(|byte| *byte != b' ' && *byte != b'\t')
        .unwrap_or(raw.len());
    let word = raw.get(start..).unwrap_or_default();
    match word.first() {
        Some(&first) if plain(first) && first != b'*' && principal.first() != Some(&first) => true,
        Some(&first) if plain(first) => {
            let end = word
                .iter()
                .position(|byte| !plain(*byte))
                .unwrap_or(word.len());
            matches!(word.get(end), Some(b' ' | b'\t'))
                && word
                    .get(..end)
                    .is_some_and(|name| name != principal && name != TEMPLATE_PRINCIPAL.as_bytes())
        }
        _ => false,
    }
}

impl AuthIdFile {
    /// Parses a file; rows that are not three columns and unparsable lines are skipped and
    /// reported in [`AuthIdFile::warnings`]. `path` is only used in locations.
    pub fn parse(content: &[u8], path: &Path) -> Self {
        let mut file = Self::default();
        for line in table::parse(content) {
            file.push_line(path, line.number, line.kind);
        }
        file
    }

    /// Parses the rows that can concern `principal`: a line whose first word is plainly
    /// another principal is counted but not parsed, past the first
    /// [`LISTED_OTHER_PRINCIPALS`] of them. What `verify` needs from a policy of 100,000 rows
    /// is the few for the account being logged into; the full parse of the others was most of
    /// its cost. Such lines are not checked either, so a malformed row for another account
    /// is not among the [`AuthIdFile::warnings`] (`audit` reads every row).
    pub fn parse_for(content: &[u8], path: &Path, principal: &str) -> Self {
        let mut filter = PrincipalFilter::new(path, principal);
        let mut start = 0_usize;
        while start <= content.len() {
            let end = memchr::memchr(b'\n', content.get(start..).unwrap_or_default())
                .map_or(content.len(), |offset| start.saturating_add(offset));
            filter.line(content.get(start..end).unwrap_or_default());
            start = end.saturating_add(1);
        }
        filter.file
    }

    /// [`AuthIdFile::parse_for`] reading `reader` in 64 KiB pieces, refusing more than
    /// `max_size` bytes. A 100,000-row file is 5 MB: reading it into one buffer cost more
    /// (fresh pages to fault in and zero) than deciding the login.
    ///
    /// # Errors
    /// A read failure, or more than `max_size` bytes.
    pub fn read_for(
        mut reader: impl std::io::Read,
        path: &Path,
        principal: &str,
        max_size: u64,
    ) -> Result<Self, FileError> {
        const CHUNK: usize = 64 * 1024;
        let mut filter = PrincipalFilter::new(path, principal);
        let mut buffer = vec![0_u8; CHUNK];
        // The start of a line the last piece cut.
        let mut pending = Vec::new();
        let mut total: u64 = 0;
        loop {
            let count = match reader.read(&mut buffer) {
                Ok(0) => break,
                Ok(count) => count,
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(error) => {
                    return Err(FileError::new(
                        Location::file(path),
                        FileErrorKind::io(&error),
                    ));
                }
            };
            total = total.saturating_add(u64::try_from(count).unwrap_or(u64::MAX));
            if total > max_size {
                return Err(FileError::new(
                    Location::file(path),
                    FileErrorKind::Invalid(format!("file is larger than {max_size} bytes")),
                ));
            }
            let piece = buffer.get(..count).unwrap_or_default();
            let mut start = 0_usize;
            for newline in memchr::memchr_iter(b'\n', piece) {
                let line = piece.get(start..newline).unwrap_or_default();
                if pending.is_empty() {
                    filter.line(line);
                } else {
                    pending.extend_from_slice(line);
                    filter.line(&pending);
                    pending.clear();
                }
                start = newline.saturating_add(1);
            }
            pending.extend_from_slice(piece.get(start..).unwrap_or_default());
        }
        filter.line(&pending);
        Ok(filter.file)
    }

    fn push_line(&mut self, path: &Path, number: usize, kind: LineKind) {
        let location = Location::line(path, number);
        match kind {
            LineKind::Blank => {}
            LineKind::Unparsable(error) => self
                .warnings
                .push(FileError::new(location, FileErrorKind::Unparsable(error))),
            LineKind::Row(columns) => match <[String; 3]>::try_from(columns) {
                Ok([principal, identity, issuer]) => self.rows.push(AuthRow {
                    principal,
                    identity,
                    issuer,
                    location,
                }),
                Err(columns) => self.warnings.push(FileError::new(
                    location,
                    FileErrorKind::WrongColumnCount(columns.len()),
                )),
            },
        }
    }

    /// Lines for other principals that [`AuthIdFile::parse_for`] skipped unparsed.
    pub fn unlisted(&self) -> usize {
        self.unlisted
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
    ///
    /// Template rows (principal `*`) are kept: `verify` reads only the home policy of the
    /// account being logged into, so in a home file a template can only ever expand to its
    /// owner (`* %u@example.com` in alice's file means `alice alice@example.com`), which the
    /// owner could write anyway.
    pub fn for_principal(mut self, principal: &str) -> Self {
        self.rows
            .retain(|row| row.principal == principal || row.principal == TEMPLATE_PRINCIPAL);
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

    #[test]
    fn parse_for_lists_the_first_other_rows_then_counts() {
        let path = Path::new("/etc/opk/auth_id");
        let mut text = String::from("\u{feff}");
        for index in 0..100 {
            text.push_str(&format!("user{index} u{index}@example.com https://op\n"));
        }
        text.push_str("  alice\talice@example.com https://op # mine\n");
        text.push_str("'alice' quoted@example.com https://op\n");
        text.push_str("bob broken\n");
        let file = AuthIdFile::parse_for(text.as_bytes(), path, "alice");
        let full = AuthIdFile::parse(text.as_bytes(), path);
        assert_eq!(file.unlisted(), 100 - LISTED_OTHER_PRINCIPALS + 1);
        assert_eq!(file.rows().len(), LISTED_OTHER_PRINCIPALS + 2);
        assert_eq!(
            file.rows()[..LISTED_OTHER_PRINCIPALS],
            full.rows()[..LISTED_OTHER_PRINCIPALS]
        );
        let mine: Vec<&AuthRow> = file
            .rows()
            .iter()
            .filter(|row| row.principal == "alice")
            .collect();
        assert_eq!(mine.len(), 2);
        assert_eq!(mine[0].location.line, Some(101));
        assert_eq!(mine[1].identity, "quoted@example.com");
        // The broken row is another principal's, past the listed ones: not checked.
        assert!(file.warnings().is_empty());
        assert_eq!(full.warnings().len(), 1);
    }

    /// A reader that hands out at most `.1` bytes a call, to cut lines anywhere.
    struct Trickle<'a>(&'a [u8], usize);

    impl std::io::Read for Trickle<'_> {
        fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
            let count = self.1.min(buffer.len()).min(self.0.len());
            let (head, tail) = self.0.split_at(count);
            buffer[..count].copy_from_slice(head);
            self.0 = tail;
            Ok(count)
        }
    }

    #[test]
    fn read_for_refuses_more_than_the_limit() {
        let text = "alice a@example.com https://op\n".repeat(10);
        let path = Path::new("/p");
        let error = AuthIdFile::read_for(text.as_bytes(), path, "alice", 100).unwrap_err();
        assert_eq!(
            error.kind,
            FileErrorKind::Invalid("file is larger than 100 bytes".into())
        );
        let file = AuthIdFile::read_for(text.as_bytes(), path, "alice", 310).unwrap();
        assert_eq!(file.rows().len(), 10);
    }

    proptest::proptest! {
        /// For the principal asked about, `parse_for` reads exactly what the full parser reads:
        /// the same rows with the same locations, and the same warnings on its lines.
        #[test]
        fn parse_for_agrees_with_parse(
            lines in proptest::collection::vec(
                proptest::string::string_regex(
                    "[ \t]{0,2}(alice|bob|\\*|'alice'|\"alice\"|al\\\\ice|#alice|alice#x|ålice|alice\r)?[ \t]{0,2}([a-z@.'\"#\\\\]{0,8}[ \t]{0,2}){0,4}\r?"
                ).unwrap(),
                0..80,
            ),
            bom in proptest::bool::ANY,
        ) {
            let mut text = lines.join("\n");
            if bom {
                text.insert(0, '\u{feff}');
            }
            let path = Path::new("/p");
            let fast = AuthIdFile::parse_for(text.as_bytes(), path, "alice").for_principal("alice");
            let full = AuthIdFile::parse(text.as_bytes(), path).for_principal("alice");
            proptest::prop_assert_eq!(fast.rows(), full.rows());
            // Streamed in pieces of any size, the same file.
            let streamed = AuthIdFile::read_for(
                Trickle(text.as_bytes(), 7),
                path,
                "alice",
                u64::MAX,
            )
            .unwrap();
            proptest::prop_assert_eq!(
                &streamed,
                &AuthIdFile::parse_for(text.as_bytes(), path, "alice")
            );
            let fast_all = AuthIdFile::parse_for(text.as_bytes(), path, "alice");
            let full_all = AuthIdFile::parse(text.as_bytes(), path);
            // Lines within the listed budget keep their warnings; none is invented.
            for warning in fast_all.warnings() {
                proptest::prop_assert!(full_all.warnings().contains(warning));
            }
        }
    }
}
