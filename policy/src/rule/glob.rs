//! Go's `path.Match`, used by `repo:` rows against `sub` (behaviour.md §4.3 step 5).
//!
//! `*` matches any run of characters except `/`, `?` one character except `/`, `[...]` a class
//! (`^` negates, `a-z` ranges, `\` escapes); `\` escapes outside classes. A malformed pattern
//! is an error whatever the name, as in Go since 1.16. Works on `char`s where Go works on bytes
//! and runes; the results agree for valid UTF-8.

/// The pattern is malformed (Go: `path.ErrBadPattern`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("syntax error in pattern")]
pub(crate) struct BadPattern;

/// Whether `name` matches the shell pattern `pattern`.
///
/// # Errors
/// [`BadPattern`] when the pattern is malformed.
pub(crate) fn matches(pattern: &str, name: &str) -> Result<bool, BadPattern> {
    let pattern: Vec<char> = pattern.chars().collect();
    let name: Vec<char> = name.chars().collect();
    validate(&pattern)?;
    Ok(match_from(&pattern, &name))
}

fn validate(mut pattern: &[char]) -> Result<(), BadPattern> {
    while !pattern.is_empty() {
        let (_, chunk, rest) = scan_chunk(pattern);
        match_chunk(chunk, &[])?;
        pattern = rest;
    }
    Ok(())
}

fn match_from(mut pattern: &[char], mut name: &[char]) -> bool {
    'pattern: while !pattern.is_empty() {
        let (star, chunk, rest) = scan_chunk(pattern);
        pattern = rest;
        if star && chunk.is_empty() {
            // A trailing `*` matches the rest unless it holds a `/`.
            return !name.contains(&'/');
        }
        if let Ok((tail, true)) = match_chunk(chunk, name)
            && (tail.is_empty() || !pattern.is_empty())
        {
            name = tail;
            continue;
        }
        if star {
            // Let the star eat one more character at a time, never a `/`.
            let mut skip = 0usize;
            while let Some(&c) = name.get(skip) {
                if c == '/' {
                    break;
                }
                skip = skip.saturating_add(1);
                let rest_of_name = name.get(skip..).unwrap_or_default();
                if let Ok((tail, true)) = match_chunk(chunk, rest_of_name) {
                    if pattern.is_empty() && !tail.is_empty() {
                        continue;
                    }
                    name = tail;
                    continue 'pattern;
                }
            }
        }
        return false;
    }
    name.is_empty()
}

/// Splits off leading stars and the chunk up to the next star outside a class.
fn scan_chunk(mut pattern: &[char]) -> (bool, &[char], &[char]) {
    let mut star = false;
    while let Some(('*', rest)) = pattern.split_first() {
        pattern = rest;
        star = true;
    }
    let mut in_range = false;
    let mut index = 0usize;
    while let Some(&c) = pattern.get(index) {
        match c {
            '\\' if index.saturating_add(1) < pattern.len() => {
                index = index.saturating_add(1);
            }
            '[' => in_range = true,
            ']' => in_range = false,
            '*' if !in_range => break,
            _ => {}
        }
        index = index.saturating_add(1);
    }
    let (chunk, rest) = pattern.split_at(index.min(pattern.len()));
    (star, chunk, rest)
}

/// Matches one star-free chunk at the start of `name`; returns the rest of the name and
/// whether it matched. The whole chunk is always read, so syntax errors surface.
fn match_chunk<'n>(
    mut chunk: &[char],
    mut name: &'n [char],
) -> Result<(&'n [char], bool), BadPattern> {
    let mut failed = false;
    while let Some((&first, after)) = chunk.split_first() {
        if !failed && name.is_empty() {
            failed = true;
        }
        match first {
            '[' => {
                let mut current = None;
                if !failed && let Some((&c, rest)) = name.split_first() {
                    current = Some(c);
                    name = rest;
                }
                chunk = after;
                let mut negated = false;
                if let Some(('^', rest)) = chunk.split_first() {
                    negated = true;
                    chunk = rest;
                }
                let mut matched = false;
                let mut ranges = 0usize;
                loop {
                    if let Some((']', rest)) = chunk.split_first()
                        && ranges > 0
                    {
                        chunk = rest;
                        break;
                    }
                    let (low, rest) = escaped_char(chunk)?;
                    chunk = rest;
                    let mut high = low;
                    if let Some(('-', rest)) = chunk.split_first() {
                        let (upper, rest) = escaped_char(rest)?;
                        high = upper;
                        chunk = rest;
                    }
                    if current.is_some_and(|c| low <= c && c <= high) {
                        matched = true;
                    }
                    ranges = ranges.saturating_add(1);
                }
                if matched == negated {
                    failed = true;
                }
            }
            '?' => {
                if !failed {
                    match name.split_first() {
                        Some((&'/', _)) | None => failed = true,
                        Some((_, rest)) => name = rest,
                    }
                }
                chunk = after;
            }
            '\\' => {
                let Some((&literal, rest)) = after.split_first() else {
                    return Err(BadPattern);
                };
                literal_step(literal, &mut name, &mut failed);
                chunk = rest;
            }
            literal => {
                literal_step(literal, &mut name, &mut failed);
                chunk = after;
            }
        }
    }
    if failed {
        Ok((name, false))
    } else {
        Ok((name, true))
    }
}

fn literal_step(literal: char, name: &mut &[char], failed: &mut bool) {
    if *failed {
        return;
    }
    match name.split_first() {
        Some((&c, rest)) if c == literal => *name = rest,
        _ => *failed = true,
    }
}

/// One possibly escaped character of a class (Go: `getEsc`).
fn escaped_char(chunk: &[char]) -> Result<(char, &[char]), BadPattern> {
    let chunk = match chunk.split_first() {
        None | Some(('-' | ']', _)) => return Err(BadPattern),
        Some(('\\', rest)) => rest,
        Some(_) => chunk,
    };
    let Some((&c, rest)) = chunk.split_first() else {
        return Err(BadPattern);
    };
    if rest.is_empty() {
        return Err(BadPattern);
    }
    Ok((c, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Cases from Go's path/match_test.go.
    #[test]
    fn go_match_table() {
        let cases: &[(&str, &str, Result<bool, BadPattern>)] = &[
            ("abc", "abc", Ok(true)),
            ("*", "abc", Ok(true)),
            ("*c", "abc", Ok(true)),
            ("a*", "a", Ok(true)),
            ("a*", "abc", Ok(true)),
            ("a*", "ab/c", Ok(false)),
            ("a*/b", "abc/b", Ok(true)),
            ("a*/b", "a/c/b", Ok(false)),
            ("a*b*c*d*e*/f", "axbxcxdxe/f", Ok(true)),
            ("a*b*c*d*e*/f", "axbxcxdxexxx/f", Ok(true)),
            ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", Ok(false)),
            ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", Ok(false)),
            ("a*b?c*x", "abxbbxdbxebxczzx", Ok(true)),
            ("a*b?c*x", "abxbbxdbxebxczzy", Ok(false)),
            ("ab[c]", "abc", Ok(true)),
            ("ab[b-d]", "abc", Ok(true)),
            ("ab[e-g]", "abc", Ok(false)),
            ("ab[^c]", "abc", Ok(false)),
            ("ab[^b-d]", "abc", Ok(false)),
            ("ab[^e-g]", "abc", Ok(true)),
            ("a\\*b", "a*b", Ok(true)),
            ("a\\*b", "ab", Ok(false)),
            ("a?b", "a☺b", Ok(true)),
            ("a[^a]b", "a☺b", Ok(true)),
            ("a???b", "a☺b", Ok(false)),
            ("a[^a][^a][^a]b", "a☺b", Ok(false)),
            ("[a-ζ]*", "α", Ok(true)),
            ("*[a-ζ]", "A", Ok(false)),
            ("a?b", "a/b", Ok(false)),
            ("a*b", "a/b", Ok(false)),
            ("[\\]a]", "]", Ok(true)),
            ("[\\-]", "-", Ok(true)),
            ("[x\\-]", "x", Ok(true)),
            ("[x\\-]", "-", Ok(true)),
            ("[x\\-]", "z", Ok(false)),
            ("[\\-x]", "x", Ok(true)),
            ("[\\-x]", "-", Ok(true)),
            ("[\\-x]", "a", Ok(false)),
            ("[]a]", "]", Err(BadPattern)),
            ("[-]", "-", Err(BadPattern)),
            ("[x-]", "x", Err(BadPattern)),
            ("[x-]", "-", Err(BadPattern)),
            ("[x-]", "z", Err(BadPattern)),
            ("[-x]", "x", Err(BadPattern)),
            ("[-x]", "-", Err(BadPattern)),
            ("[-x]", "a", Err(BadPattern)),
            ("\\", "a", Err(BadPattern)),
            ("[a-b-c]", "a", Err(BadPattern)),
            ("[", "a", Err(BadPattern)),
            ("[^", "a", Err(BadPattern)),
            ("[^bc", "a", Err(BadPattern)),
            ("a[", "a", Err(BadPattern)),
            ("a[", "ab", Err(BadPattern)),
            ("a[", "x", Err(BadPattern)),
            ("a/b[", "x", Err(BadPattern)),
            ("*x", "xxx", Ok(true)),
        ];
        for (pattern, name, expected) in cases {
            assert_eq!(matches(pattern, name), *expected, "{pattern} {name}");
        }
    }
}
