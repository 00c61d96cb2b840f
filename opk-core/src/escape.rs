//! The one rule for showing text that came from outside (token claims, certificate fields,
//! file contents, sshd's arguments) in a log line or on a terminal.
//!
//! A claim such as `iss = "https://e\x1b[2K\x1b[1G… allow principal=root"` would otherwise
//! erase a deny line and draw a forged allow when the log is read with `tail -f` or `cat`, and a
//! `\r` or `\n` would start a line that looks like a separate event. So every character a
//! terminal or a line-oriented reader acts on is written as a visible escape:
//!
//! - C0 controls (U+0000–U+001F, tab, CR and LF included) and DEL: `\t`, `\r`, `\n`, `\xNN`;
//! - C1 controls (U+0080–U+009F), which some terminals read as ESC sequences: `\u{NN}`;
//! - the Unicode line and paragraph separators U+2028 and U+2029, and the bidirectional
//!   embedding, override and isolate controls (U+202A–U+202E, U+2066–U+2069) that reorder
//!   what is displayed: `\u{NNNN}`;
//! - the backslash itself, as `\\`, so an escape in the output always means an escaped
//!   character and never text that merely looks like one.
//!
//! Everything else, other Unicode included, is kept as it is.
//!
//! Paths have their own rule, [`path()`]: the same, except that the system's path separator is
//! kept, so a Windows path prints as `C:\users\alice\.ssh\id_ecdsa`, not with every backslash
//! doubled. A message that shows a path escapes each outside value where it is put in, the
//! path with [`path()`], and is then printed as it is. Words made elsewhere (a library error's
//! message) that name files go through [`line_naming()`], given the paths they name: those print
//! by the path rule, and everything else in the words by [`line()`]'s.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::path::Path;

/// Whether `c` is written escaped by [`line()`].
pub fn needs_escape(c: char) -> bool {
    matches!(
        c,
        '\u{0}'..='\u{1f}'
            | '\u{7f}'..='\u{9f}'
            | '\u{2028}'..='\u{202e}'
            | '\u{2066}'..='\u{2069}'
            | '\\'
    )
}

/// `text` as one line that is safe to write to a log or a terminal (see the module docs).
/// Borrowed when nothing needed escaping.
pub fn line(text: &str) -> Cow<'_, str> {
    escaped(text, None)
}

/// `path` as one line for a log or a terminal: [`line()`]'s rule, except that the system's path
/// separator ([`std::path::MAIN_SEPARATOR`]) is kept as it is. On Unix, where `\` is an ordinary
/// file-name character, a backslash is still doubled. Not valid UTF-8: replaced by U+FFFD.
pub fn path(path: &Path) -> String {
    path_with_separator(&path.to_string_lossy(), std::path::MAIN_SEPARATOR).into_owned()
}

/// [`path()`] by the rule of a system whose path separator is `separator` (`\\` for Windows),
/// so that the Windows rule is used and tested on every system.
pub fn path_for(path: &Path, separator: char) -> String {
    path_with_separator(&path.to_string_lossy(), separator).into_owned()
}

fn path_with_separator(text: &str, separator: char) -> Cow<'_, str> {
    escaped(text, Some(separator))
}

/// `text` as one line by [`line()`]'s rule, except where one of `paths` stands in it: there the
/// path prints by [`path()`]'s rule. For words made elsewhere that name files, such as a library
/// error's message, which may also quote outside values: the files print as paths, all else is
/// escaped as always. Where outside text happens to spell one of `paths`, it prints as that
/// path, which is what it says; a control or bidirectional character is escaped everywhere.
pub fn line_naming(text: &str, paths: &[&Path]) -> String {
    line_naming_for(text, paths, std::path::MAIN_SEPARATOR)
}

/// [`line_naming()`] by the rule of a system whose path separator is `separator`.
pub fn line_naming_for(text: &str, paths: &[&Path], separator: char) -> String {
    let mut names: Vec<Cow<'_, str>> = paths
        .iter()
        .map(|path| path.to_string_lossy())
        .filter(|name| !name.is_empty())
        .collect();
    // The longest first, so that a folder does not take the start of a file inside it.
    names.sort_by_key(|name| std::cmp::Reverse(name.len()));
    let mut out = String::with_capacity(text.len().saturating_add(16));
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        let (shown, taken) = match names.iter().find(|name| rest.starts_with(name.as_ref())) {
            Some(name) => (path_with_separator(name, separator), name.len()),
            None => (
                escaped(rest.get(..c.len_utf8()).unwrap_or_default(), None),
                c.len_utf8(),
            ),
        };
        out.push_str(&shown);
        rest = rest.get(taken..).unwrap_or_default();
    }
    out
}

/// [`line()`], keeping `kept` as it is.
fn escaped(text: &str, kept: Option<char>) -> Cow<'_, str> {
    let escape = |c: char| needs_escape(c) && Some(c) != kept;
    if !text.chars().any(escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len().saturating_add(16));
    for c in text.chars() {
        match c {
            c if !escape(c) => out.push(c),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{0}'..='\u{1f}' | '\u{7f}' => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c if needs_escape(c) => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Lines of text joined by `\n`, each escaped by [`line()`] (a `\n` inside one of them shows as
/// `\n`), with a final newline: a report whose line structure no value can change.
pub fn lines<I, S>(lines: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut out = String::new();
    for text in lines {
        out.push_str(&line(text.as_ref()));
        out.push('\n');
    }
    out
}

/// A serialized JSON text made safe for a terminal while staying the same JSON value: the
/// characters [`needs_escape`] names that a JSON encoder may leave raw inside strings (DEL, C1
/// controls, U+2028–U+202E, U+2066–U+2069) become `\uNNNN` escapes. Structural characters and
/// escapes already in the text are untouched (a raw control or backslash can only stand inside
/// a string, where the encoder already escaped C0 controls and backslashes).
pub fn json(text: &str) -> Cow<'_, str> {
    let raw = |c: char| c != '\\' && !c.is_ascii_control() && needs_escape(c) || c == '\u{7f}';
    if !text.chars().any(raw) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len().saturating_add(16));
    for c in text.chars() {
        if raw(c) {
            let _ = write!(out, "\\u{:04x}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_borrowed() {
        assert!(matches!(
            line("alice@example.com issuer=https://op"),
            Cow::Borrowed(_)
        ));
        assert!(matches!(line("Zoë → 東京"), Cow::Borrowed(_)));
    }

    #[test]
    fn every_control_is_visible() {
        assert_eq!(
            line("a\nb\rc\td\u{1b}[2K\u{7f}\u{0}"),
            "a\\nb\\rc\\td\\x1b[2K\\x7f\\x00"
        );
        assert_eq!(line("x\u{9b}31m\u{85}"), "x\\u{9b}31m\\u{85}");
        assert_eq!(
            line("\u{2028}\u{2029}\u{202e}evil\u{2066}"),
            "\\u{2028}\\u{2029}\\u{202e}evil\\u{2066}"
        );
        assert_eq!(line(r"C:\n"), r"C:\\n");
    }

    #[test]
    fn a_windows_path_keeps_its_separators() {
        assert_eq!(
            path_with_separator(r"C:\users\alice\.ssh\id_ecdsa", '\\'),
            r"C:\users\alice\.ssh\id_ecdsa"
        );
        assert!(matches!(
            path_with_separator(r"C:\users\Zoë\.ssh", '\\'),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn a_path_still_escapes_controls_and_bidi() {
        assert_eq!(
            path_with_separator("C:\\users\\a\nb\u{1b}[2K\u{202e}gpj.exe", '\\'),
            "C:\\users\\a\\nb\\x1b[2K\\u{202e}gpj.exe"
        );
        assert_eq!(
            path_with_separator("/home/a\rb/\u{2066}x", '/'),
            "/home/a\\rb/\\u{2066}x"
        );
    }

    #[test]
    fn a_backslash_in_a_unix_path_is_still_doubled() {
        assert_eq!(path_with_separator(r"/home/a\nb", '/'), r"/home/a\\nb");
        assert_eq!(
            path(Path::new("/home/alice/.ssh/id_ecdsa")),
            "/home/alice/.ssh/id_ecdsa"
        );
    }

    #[test]
    fn the_paths_a_message_names_keep_their_separators() {
        let key = Path::new(r"C:\Users\Zoë\.ssh\id_ecdsa");
        let cert = Path::new(r"C:\Users\Zoë\.ssh\id_ecdsa-cert.pub");
        let message = format!(
            "could not parse certificate {}: bad \\ comment\n\u{1b}[2K: see {}",
            cert.display(),
            key.display()
        );
        assert_eq!(
            line_naming_for(&message, &[key, cert], '\\'),
            r"could not parse certificate C:\Users\Zoë\.ssh\id_ecdsa-cert.pub: bad \\ comment\n\x1b[2K: see C:\Users\Zoë\.ssh\id_ecdsa"
        );
        // Paths the message does not name, or an empty one, change nothing.
        let plain = r"C:\other\file: denied";
        assert_eq!(
            line_naming_for(plain, &[key, Path::new("")], '\\'),
            line(plain)
        );
        // A path's own controls are still escaped.
        let odd = Path::new("C:\\a\nb\u{202e}");
        assert_eq!(
            line_naming_for(&format!("{}: x", odd.display()), &[odd], '\\'),
            r"C:\a\nb\u{202e}: x"
        );
    }

    #[test]
    fn on_unix_naming_paths_changes_nothing() {
        let text = "/home/a\\b/key: read \u{1b}[2K\n failed";
        let path = Path::new("/home/a\\b/key");
        assert_eq!(line_naming_for(text, &[path], '/'), line(text));
        assert_eq!(line_naming(text, &[path]), line(text));
    }

    #[test]
    fn no_escaped_text_holds_a_raw_control() {
        let all: String = (0..0x3000_u32).filter_map(char::from_u32).collect();
        let escaped = line(&all);
        assert!(!escaped.chars().any(|c| needs_escape(c) && c != '\\'));
    }

    #[test]
    fn lines_keep_their_structure() {
        assert_eq!(lines(["one", "two\nfake"]), "one\ntwo\\nfake\n");
    }

    #[test]
    fn json_stays_the_same_value() {
        let value =
            serde_json::json!({"iss": "e\u{1b}[2K\u{9b}x\u{7f}\u{2028}\u{202e}\\\"", "n": 1});
        let text = serde_json::to_string_pretty(&value).unwrap();
        let safe = json(&text);
        assert!(
            !safe
                .chars()
                .any(|c| c != '\n' && c != '\\' && needs_escape(c)),
            "{safe}"
        );
        let back: serde_json::Value = serde_json::from_str(&safe).unwrap();
        assert_eq!(back, value);
    }
}
