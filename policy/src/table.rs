//! The whitespace table syntax shared by `/etc/opk/providers` and `auth_id` files
//! (behaviour.md §3.1; Go: policy/files/table.go with github.com/kballard/go-shellquote).
//!
//! A UTF-8 BOM is stripped, lines are split on `\n`, everything from the first `#` is a comment
//! (even inside quotes), the rest is trimmed and split like a POSIX shell word list: single
//! quotes, double quotes and backslash escapes, no expansion.
//!
//! Stricter than Go: a line that is not valid UTF-8 is reported and skipped (Go would read
//! replacement characters into the row).

/// How one line of a table file reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineKind {
    /// Empty, or only whitespace and a comment.
    Blank,
    /// The shell-split columns.
    Row(Vec<String>),
    /// Quoting that does not close, a dangling backslash, or bytes that are not UTF-8.
    Unparsable(SplitError),
}

/// One line of a table file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// 1-based line number in the file, counting every `\n`.
    pub number: usize,
    /// What the line holds.
    pub kind: LineKind,
}

/// Why a line could not be split into columns. The texts are go-shellquote's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SplitError {
    /// `'` without its closing quote.
    #[error("Unterminated single-quoted string")]
    UnterminatedSingleQuote,
    /// `"` without its closing quote.
    #[error("Unterminated double-quoted string")]
    UnterminatedDoubleQuote,
    /// A backslash at the end of the line.
    #[error("Unterminated backslash-escape")]
    UnterminatedEscape,
    /// The line is not valid UTF-8.
    #[error("line is not valid UTF-8")]
    NotUtf8,
}

/// The UTF-8 byte order mark, ignored at the start of a file.
pub(crate) const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Splits a whole file into lines and parses each (Go: `files.ReadRowsWithDetails`).
pub fn parse(content: &[u8]) -> Vec<Line> {
    let content = content.strip_prefix(BOM).unwrap_or(content);
    content
        .split(|byte| *byte == b'\n')
        .enumerate()
        .map(|(index, raw)| Line {
            number: index.saturating_add(1),
            kind: parse_line(raw),
        })
        .collect()
}

/// The text a line keeps once its comment is cut and it is trimmed (Go: `files.CleanRow`).
pub fn clean(raw: &[u8]) -> &[u8] {
    let before_comment = raw.split(|byte| *byte == b'#').next().unwrap_or_default();
    before_comment.trim_ascii()
}

/// Parses one raw line (without its `\n`).
pub(crate) fn parse_line(raw: &[u8]) -> LineKind {
    let cleaned = clean(raw);
    let Ok(text) = std::str::from_utf8(cleaned) else {
        return LineKind::Unparsable(SplitError::NotUtf8);
    };
    // Go trims Unicode white space too; ASCII trimming above plus this keeps the same result.
    let text = text.trim();
    if text.is_empty() {
        return LineKind::Blank;
    }
    match split(text) {
        Ok(words) => LineKind::Row(words),
        Err(error) => LineKind::Unparsable(error),
    }
}

const SPLIT_CHARS: [char; 3] = [' ', '\n', '\t'];
const DOUBLE_ESCAPES: [char; 5] = ['$', '`', '"', '\n', '\\'];

/// Splits `input` by /bin/sh word rules without expansion (go-shellquote `Split`).
///
/// # Errors
/// [`SplitError`] for an open quote or a trailing backslash.
pub fn split(input: &str) -> Result<Vec<String>, SplitError> {
    let mut words = Vec::new();
    let mut chars = input.chars().peekable();
    loop {
        // Skip separators, and backslash-newline pairs between words.
        match chars.peek() {
            None => return Ok(words),
            Some(c) if SPLIT_CHARS.contains(c) => {
                chars.next();
                continue;
            }
            Some('\\') => {
                let mut ahead = chars.clone();
                ahead.next();
                match ahead.peek() {
                    None => return Err(SplitError::UnterminatedEscape),
                    Some('\n') => {
                        chars = ahead;
                        chars.next();
                        continue;
                    }
                    Some(_) => {}
                }
            }
            Some(_) => {}
        }
        words.push(split_word(&mut chars)?);
    }
}

fn split_word(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Result<String, SplitError> {
    let mut word = String::new();
    while let Some(c) = chars.next() {
        match c {
            '\'' => loop {
                match chars.next() {
                    None => return Err(SplitError::UnterminatedSingleQuote),
                    Some('\'') => break,
                    Some(inner) => word.push(inner),
                }
            },
            '"' => loop {
                match chars.next() {
                    None => return Err(SplitError::UnterminatedDoubleQuote),
                    Some('"') => break,
                    Some('\\') => match chars.peek().copied() {
                        Some(next) if DOUBLE_ESCAPES.contains(&next) => {
                            chars.next();
                            if next != '\n' {
                                word.push(next);
                            }
                        }
                        // Any other escaped character keeps its backslash.
                        _ => word.push('\\'),
                    },
                    Some(inner) => word.push(inner),
                }
            },
            '\\' => match chars.next() {
                None => return Err(SplitError::UnterminatedEscape),
                Some('\n') => {}
                Some(escaped) => word.push(escaped),
            },
            c if SPLIT_CHARS.contains(&c) => return Ok(word),
            c => word.push(c),
        }
    }
    Ok(word)
}

const SPECIAL: &str = "\\'\"`${[|&;<>()*?!";
const EXTRA_SPECIAL: &str = " \t\n";

/// Quotes one word so that [`split`] gives it back (go-shellquote `quote`): backslash-escapes
/// special characters, or single-quotes the whole word when it holds white space.
pub fn quote(word: &str) -> String {
    if word.is_empty() {
        return "''".to_owned();
    }
    if word.chars().any(|c| EXTRA_SPECIAL.contains(c)) {
        return quote_whole(word);
    }
    let mut out = String::with_capacity(word.len());
    for (index, c) in word.chars().enumerate() {
        if SPECIAL.contains(c) || (index == 0 && c == '~') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn quote_whole(word: &str) -> String {
    let mut out = String::with_capacity(word.len().saturating_add(2));
    let mut in_quote = false;
    for c in word.chars() {
        if c == '\'' {
            if in_quote {
                out.push('\'');
                in_quote = false;
            }
            out.push_str("\\'");
        } else {
            if !in_quote {
                out.push('\'');
                in_quote = true;
            }
            out.push(c);
        }
    }
    if in_quote {
        out.push('\'');
    }
    out
}

/// Joins quoted words with single spaces (go-shellquote `Join`).
pub fn join(words: &[&str]) -> String {
    words
        .iter()
        .map(|word| quote(word))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(input: &str) -> Vec<String> {
        split(input).unwrap()
    }

    #[test]
    fn splits_like_go_shellquote() {
        assert_eq!(words("a b\tc"), ["a", "b", "c"]);
        assert_eq!(words("  a   b  "), ["a", "b"]);
        assert_eq!(words("'a b' c"), ["a b", "c"]);
        assert_eq!(words(r#""a \"b\" \$ \x" c"#), ["a \"b\" $ \\x", "c"]);
        assert_eq!(words(r"a\ b c"), ["a b", "c"]);
        assert_eq!(
            words(r#"oidc:\"https://acme.com/groups\":ssh"#),
            [r#"oidc:"https://acme.com/groups":ssh"#]
        );
        assert_eq!(
            words(r#"oidc:"https://acme.com/groups":ssh"#),
            ["oidc:https://acme.com/groups:ssh"]
        );
        assert_eq!(words("''"), [""]);
        assert_eq!(words("a''b"), ["ab"]);
        assert_eq!(words("a\\\nb"), ["ab"]);
        assert_eq!(words("\\\na"), ["a"]);
        assert_eq!(words("\"a\\\nb\""), ["ab"]);
    }

    #[test]
    fn split_errors() {
        assert_eq!(split("'a"), Err(SplitError::UnterminatedSingleQuote));
        assert_eq!(split("\"a"), Err(SplitError::UnterminatedDoubleQuote));
        assert_eq!(split("\"a\\"), Err(SplitError::UnterminatedDoubleQuote));
        assert_eq!(split("a\\"), Err(SplitError::UnterminatedEscape));
        assert_eq!(split("\\"), Err(SplitError::UnterminatedEscape));
    }

    #[test]
    fn quotes_like_go_shellquote() {
        assert_eq!(quote(""), "''");
        assert_eq!(quote("alice@example.com"), "alice@example.com");
        assert_eq!(
            quote(r#"oidc:"https://acme.com/groups":ssh"#),
            r#"oidc:\"https://acme.com/groups\":ssh"#
        );
        assert_eq!(quote("~x~"), r"\~x~");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's a"), r"'it'\''s a'");
        assert_eq!(quote("'a b'"), r"\''a b'\'");
        assert_eq!(quote("a*b?[c]"), r"a\*b\?\[c]");
    }

    #[test]
    fn quote_round_trips() {
        for word in [
            "",
            "a",
            "a b",
            "'",
            "''",
            "\"",
            "a\\b",
            "x y 'z'",
            "$HOME",
            "~root",
            "tab\there",
            "new\nline",
            "ünï cödé",
        ] {
            assert_eq!(split(&quote(word)).unwrap(), [word], "{word:?}");
        }
    }

    #[test]
    fn parses_files() {
        let file = b"\xEF\xBB\xBFa b c # comment\n\n   # only\r\n'x y' z\r\nunterminated 'q\n\xFF\xFE bad\nq 'w#e' r\n";
        let lines = parse(file);
        let kinds: Vec<_> = lines.iter().map(|line| line.kind.clone()).collect();
        assert_eq!(
            kinds[0],
            LineKind::Row(vec!["a".into(), "b".into(), "c".into()])
        );
        assert_eq!(kinds[1], LineKind::Blank);
        assert_eq!(kinds[2], LineKind::Blank);
        assert_eq!(kinds[3], LineKind::Row(vec!["x y".into(), "z".into()]));
        assert_eq!(
            kinds[4],
            LineKind::Unparsable(SplitError::UnterminatedSingleQuote)
        );
        assert_eq!(kinds[5], LineKind::Unparsable(SplitError::NotUtf8));
        // `#` cuts even inside quotes, so the quote never closes.
        assert_eq!(
            kinds[6],
            LineKind::Unparsable(SplitError::UnterminatedSingleQuote)
        );
        assert_eq!(lines[6].number, 7);
        assert_eq!(kinds.len(), 8);
    }
}
