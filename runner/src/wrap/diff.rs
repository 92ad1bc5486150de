//! A unified diff of two texts, line by line, for `wrap --dry-run`: the
//! `similar` crate's Myers diff (O((N+M)·D) for D changed lines, and
//! `~/.claude.json` can run to tens of thousands of lines), printed in the
//! format of `diff -u`.

use similar::TextDiff;

/// The diff of `old` to `new` with `context` lines around each change, or
/// an empty string when they are equal. Lines are compared with their line
/// ending, so a missing final newline is a change, shown as `diff` does.
pub fn unified(old: &str, new: &str, old_label: &str, new_label: &str, context: usize) -> String {
    TextDiff::from_lines(old, new).unified_diff().context_radius(context).header(old_label, new_label).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Applies a unified diff to `old`, strictly: every context and removed
    /// line must match. Proves that a diff says what it should.
    fn patch(old: &str, diff: &str) -> String {
        let old: Vec<&str> = old.split_inclusive('\n').collect();
        let mut out = String::new();
        let mut next = 0;
        let mut lines = diff.split_inclusive('\n').skip(2).peekable();
        while let Some(line) = lines.next() {
            if let Some(header) = line.strip_prefix("@@ -") {
                let spec = header.split(' ').next().expect("range");
                let mut parts = spec.split(',');
                let start: usize = parts.next().expect("start").parse().expect("number");
                let len: usize = parts.next().map_or(1, |l| l.parse().expect("number"));
                let first = if len == 0 { start } else { start - 1 };
                out.extend(old[next..first].iter().copied());
                next = first;
                continue;
            }
            let no_eol = lines.peek().is_some_and(|l| l.starts_with('\\'));
            let body = &line[1..];
            let body = if no_eol { body.strip_suffix('\n').expect("newline") } else { body };
            match line.as_bytes()[0] {
                b' ' => {
                    assert_eq!(old[next], body);
                    out.push_str(body);
                    next += 1;
                }
                b'-' => {
                    assert_eq!(old[next], body);
                    next += 1;
                }
                b'+' => out.push_str(body),
                b'\\' => {}
                other => panic!("unexpected line start {other}"),
            }
        }
        out.extend(old[next..].iter().copied());
        out
    }

    fn numbered(n: usize) -> String {
        (1..=n).map(|i| format!("line {i}\n")).collect()
    }

    #[test]
    fn equal_texts_give_no_diff() {
        assert_eq!(unified("a\nb\n", "a\nb\n", "x", "x", 3), "");
        assert_eq!(unified("", "", "x", "x", 3), "");
    }

    #[test]
    fn one_change_with_three_lines_of_context() {
        let old = numbered(10);
        let new = old.replace("line 5\n", "line five\n");
        let want = "--- a\n+++ b\n@@ -2,7 +2,7 @@\n line 2\n line 3\n line 4\n-line 5\n+line five\n line 6\n line 7\n line 8\n";
        assert_eq!(unified(&old, &new, "a", "b", 3), want);
    }

    #[test]
    fn distant_changes_get_separate_hunks_and_close_ones_merge() {
        let old = numbered(30);
        let far = old.replace("line 3\n", "x\n").replace("line 25\n", "y\n");
        let d = unified(&old, &far, "a", "b", 3);
        assert_eq!(d.matches("@@ -").count(), 2, "{d}");
        assert!(d.contains("@@ -1,6 +1,6 @@\n") && d.contains("@@ -22,7 +22,7 @@\n"), "{d}");
        let near = old.replace("line 3\n", "x\n").replace("line 9\n", "y\n");
        assert_eq!(unified(&old, &near, "a", "b", 3).matches("@@ -").count(), 1);
    }

    #[test]
    fn insertions_and_deletions_at_the_ends() {
        assert_eq!(unified("", "a\n", "a", "b", 3), "--- a\n+++ b\n@@ -0,0 +1 @@\n+a\n");
        assert_eq!(unified("a\nb\n", "b\n", "a", "b", 3), "--- a\n+++ b\n@@ -1,2 +1 @@\n-a\n b\n");
        assert_eq!(unified("a\n", "a\nb\n", "a", "b", 3), "--- a\n+++ b\n@@ -1 +1,2 @@\n a\n+b\n");
    }

    #[test]
    fn missing_final_newline_is_marked() {
        let d = unified("a\nb", "a\nc", "a", "b", 3);
        assert_eq!(
            d,
            "--- a\n+++ b\n@@ -1,2 +1,2 @@\n a\n-b\n\\ No newline at end of file\n+c\n\\ No newline at end of file\n"
        );
        let d = unified("a\n", "a", "a", "b", 3);
        assert_eq!(d, "--- a\n+++ b\n@@ -1 +1 @@\n-a\n+a\n\\ No newline at end of file\n");
    }

    #[test]
    fn the_diff_is_shortest() {
        // Myers' paper's example: ABCABBA -> CBABAC takes 5 edits.
        let lines = |s: &str| s.chars().map(|c| format!("{c}\n")).collect::<String>();
        let d = unified(&lines("ABCABBA"), &lines("CBABAC"), "a", "b", 3);
        let edits = d.lines().skip(2).filter(|l| l.starts_with('-') || l.starts_with('+')).count();
        assert_eq!(edits, 5, "{d}");
    }

    #[test]
    fn patching_with_the_diff_gives_the_new_text() {
        let old = numbered(40);
        let cases = [
            old.replace("line 1\n", "").replace("line 40\n", "forty"),
            old.replace("line 10\n", "a\nb\nc\n").replace("line 20\n", "").replace("line 21\n", "x\n"),
            numbered(3),
            String::new(),
            old.lines().rev().map(|l| format!("{l}\n")).collect(),
            old.replace("line 2", "line 2x").replace("line 3", "line 3x"),
        ];
        for new in cases {
            for context in [0, 1, 3] {
                let d = unified(&old, &new, "a", "b", context);
                assert_eq!(patch(&old, &d), new, "context {context}:\n{d}");
            }
        }
    }
}
