//! Line diffs for `--dry-run`: what an edit would change in a text file.

/// Files above this many lines are summarized instead of compared line by line.
const MAX_LINES: usize = 4000;
/// Unchanged lines shown around each change.
const CONTEXT: usize = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Keep,
    Remove,
    Add,
}

/// A unified-style diff of `old` and `new` (hunks `@@ -a,b +c,d @@` with `-`, `+` and ` `
/// lines), each line indented by `indent`. Empty when the texts are equal.
pub(crate) fn render(old: &str, new: &str, indent: &str) -> String {
    if old == new {
        return String::new();
    }
    let old_lines: Vec<&str> = old.lines().collect();
    let new_lines: Vec<&str> = new.lines().collect();
    if old_lines.len() > MAX_LINES || new_lines.len() > MAX_LINES {
        return format!(
            "{indent}({} lines replaced by {} lines)\n",
            old_lines.len(),
            new_lines.len()
        );
    }
    let ops = script(&old_lines, &new_lines);
    let mut out = String::new();
    // Walk the script, emitting hunks of changes with CONTEXT lines around them.
    let changed: Vec<bool> = ops.iter().map(|(op, _)| *op != Op::Keep).collect();
    let near_change = |index: usize| {
        let low = index.saturating_sub(CONTEXT);
        let high = (index + CONTEXT + 1).min(changed.len());
        changed
            .get(low..high)
            .is_some_and(|window| window.contains(&true))
    };
    let (mut old_line, mut new_line) = (1_usize, 1_usize);
    let mut index = 0;
    while index < ops.len() {
        if !near_change(index) {
            if let Some((op, _)) = ops.get(index) {
                advance(*op, &mut old_line, &mut new_line);
            }
            index += 1;
            continue;
        }
        let start = index;
        let (hunk_old, hunk_new) = (old_line, new_line);
        while index < ops.len() && near_change(index) {
            index += 1;
        }
        let hunk = ops.get(start..index).unwrap_or_default();
        let old_count = hunk.iter().filter(|(op, _)| *op != Op::Add).count();
        let new_count = hunk.iter().filter(|(op, _)| *op != Op::Remove).count();
        out.push_str(&format!(
            "{indent}@@ -{hunk_old},{old_count} +{hunk_new},{new_count} @@\n"
        ));
        for (op, line) in hunk {
            let sign = match op {
                Op::Keep => ' ',
                Op::Remove => '-',
                Op::Add => '+',
            };
            out.push_str(&format!("{indent}{sign}{line}\n"));
            advance(*op, &mut old_line, &mut new_line);
        }
    }
    if !old.is_empty() && !new.is_empty() && old.ends_with('\n') != new.ends_with('\n') {
        out.push_str(&format!(
            "{indent}(line feed at the end of the file changes)\n"
        ));
    }
    out
}

fn advance(op: Op, old_line: &mut usize, new_line: &mut usize) {
    if op != Op::Add {
        *old_line += 1;
    }
    if op != Op::Remove {
        *new_line += 1;
    }
}

/// An edit script from the longest common subsequence of lines.
fn script<'a>(old: &[&'a str], new: &[&'a str]) -> Vec<(Op, &'a str)> {
    let (rows, columns) = (old.len(), new.len());
    // lengths[i][j]: LCS length of old[i..] and new[j..], flattened.
    let width = columns + 1;
    let mut lengths = vec![0_u32; (rows + 1) * width];
    for i in (0..rows).rev() {
        for j in (0..columns).rev() {
            let value = if old.get(i) == new.get(j) {
                lengths.get((i + 1) * width + j + 1).copied().unwrap_or(0) + 1
            } else {
                let down = lengths.get((i + 1) * width + j).copied().unwrap_or(0);
                let right = lengths.get(i * width + j + 1).copied().unwrap_or(0);
                down.max(right)
            };
            if let Some(cell) = lengths.get_mut(i * width + j) {
                *cell = value;
            }
        }
    }
    let length = |i: usize, j: usize| lengths.get(i * width + j).copied().unwrap_or(0);
    let mut ops = Vec::with_capacity(rows + columns);
    let (mut i, mut j) = (0, 0);
    while i < rows || j < columns {
        match (old.get(i), new.get(j)) {
            (Some(a), Some(b)) if a == b => {
                ops.push((Op::Keep, *a));
                i += 1;
                j += 1;
            }
            (Some(a), Some(_)) if length(i + 1, j) >= length(i, j + 1) => {
                ops.push((Op::Remove, *a));
                i += 1;
            }
            (_, Some(b)) => {
                ops.push((Op::Add, *b));
                j += 1;
            }
            (Some(a), None) => {
                ops.push((Op::Remove, *a));
                i += 1;
            }
            (None, None) => break,
        }
    }
    ops
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_texts_have_no_diff() {
        assert_eq!(render("a\nb\n", "a\nb\n", ""), "");
    }

    #[test]
    fn one_changed_line_with_context() {
        let old = "1\n2\n3\n4\n5\n6\n";
        let new = "1\n2\n3\nfour\n5\n6\n";
        assert_eq!(
            render(old, new, "  "),
            "  @@ -3,3 +3,3 @@\n   3\n  -4\n  +four\n   5\n"
        );
    }

    #[test]
    fn new_and_removed_files() {
        assert_eq!(render("", "a\nb\n", ""), "@@ -1,0 +1,2 @@\n+a\n+b\n");
        assert_eq!(render("a\n", "", ""), "@@ -1,1 +1,0 @@\n-a\n");
    }

    #[test]
    fn separate_hunks() {
        let old = "a\nb\nc\nd\ne\nf\ng\n";
        let new = "A\nb\nc\nd\ne\nf\nG\n";
        assert_eq!(
            render(old, new, ""),
            "@@ -1,2 +1,2 @@\n-a\n+A\n b\n@@ -6,2 +6,2 @@\n f\n-g\n+G\n"
        );
    }
}
