//! A unified diff of two texts, line by line, for `wrap --dry-run`.
//!
//! Myers' algorithm: O((N+M)·D) time and O(D²) memory for D changed lines,
//! after the common head and tail are set aside. A plain LCS table would be
//! O(N·M), and `~/.claude.json` can run to tens of thousands of lines.

use std::fmt::Write;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Equal,
    Delete,
    Insert,
}

/// The diff of `old` to `new` with `context` lines around each change, or
/// an empty string when they are equal. Lines are compared with their line
/// ending, so a missing final newline is a change, shown as `diff` does.
pub fn unified(old: &str, new: &str, old_label: &str, new_label: &str, context: usize) -> String {
    let a: Vec<&str> = old.split_inclusive('\n').collect();
    let b: Vec<&str> = new.split_inclusive('\n').collect();
    let ops = script(&a, &b);
    let mut out = String::new();
    if ops.iter().all(|op| *op == Op::Equal) {
        return out;
    }
    // Line numbers (0-based counts) in `a` and `b` before each op.
    let (mut ia, mut ib) = (vec![0], vec![0]);
    for op in &ops {
        ia.push(ia[ia.len() - 1] + usize::from(*op != Op::Insert));
        ib.push(ib[ib.len() - 1] + usize::from(*op != Op::Delete));
    }
    let _ = writeln!(out, "--- {old_label}\n+++ {new_label}");
    for hunk in hunks(&ops, context) {
        let _ = writeln!(
            out,
            "@@ -{} +{} @@",
            range(ia[hunk.start], ia[hunk.end] - ia[hunk.start]),
            range(ib[hunk.start], ib[hunk.end] - ib[hunk.start])
        );
        for i in hunk {
            let (sign, line) = match ops[i] {
                Op::Equal => (' ', a[ia[i]]),
                Op::Delete => ('-', a[ia[i]]),
                Op::Insert => ('+', b[ib[i]]),
            };
            out.push(sign);
            out.push_str(line);
            if !line.ends_with('\n') {
                out.push_str("\n\\ No newline at end of file\n");
            }
        }
    }
    out
}

/// `start,len` as a hunk header writes it: 1-based, except that an empty
/// range names the line before it, and `,1` is left out.
fn range(before: usize, len: usize) -> String {
    match len {
        0 => format!("{before},0"),
        1 => format!("{}", before + 1),
        _ => format!("{},{len}", before + 1),
    }
}

/// Op index ranges of the hunks: each change with `context` equal lines
/// around it, merged where they would touch or overlap.
fn hunks(ops: &[Op], context: usize) -> Vec<std::ops::Range<usize>> {
    let mut out: Vec<std::ops::Range<usize>> = Vec::new();
    for (i, _) in ops.iter().enumerate().filter(|(_, op)| **op != Op::Equal) {
        let start = i.saturating_sub(context);
        let end = (i + 1 + context).min(ops.len());
        match out.last_mut() {
            Some(last) if start <= last.end => last.end = end,
            _ => out.push(start..end),
        }
    }
    out
}

/// The edit script from `a` to `b`, one op per line.
fn script(a: &[&str], b: &[&str]) -> Vec<Op> {
    let head = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let tail = a[head..].iter().rev().zip(b[head..].iter().rev()).take_while(|(x, y)| x == y).count();
    let mut ops = vec![Op::Equal; head];
    ops.extend(myers(&a[head..a.len() - tail], &b[head..b.len() - tail]));
    ops.extend(std::iter::repeat_n(Op::Equal, tail));
    ops
}

/// Myers' greedy shortest edit script ("An O(ND) Difference Algorithm and
/// Its Variations", 1986), recording each round's frontier to walk back.
fn myers(a: &[&str], b: &[&str]) -> Vec<Op> {
    let (n, m) = (a.len() as isize, b.len() as isize);
    // `v[k]`: the furthest x reached on diagonal k = x - y; k runs over
    // -(d+1)..=d+1 in round d, stored at k + `off`.
    let off = n + m + 1;
    let mut v = vec![0isize; (2 * off + 1) as usize];
    // Round d's frontier as it was before the round: diagonals -d-1..=d+1.
    let mut trace: Vec<Vec<isize>> = Vec::new();
    'rounds: for d in 0..=(n + m) {
        trace.push(v[(off - d - 1) as usize..=(off + d + 1) as usize].to_vec());
        for k in (-d..=d).step_by(2) {
            let at = |k: isize| (k + off) as usize;
            let mut x =
                if k == -d || (k != d && v[at(k - 1)] < v[at(k + 1)]) { v[at(k + 1)] } else { v[at(k - 1)] + 1 };
            let mut y = x - k;
            while x < n && y < m && a[x as usize] == b[y as usize] {
                x += 1;
                y += 1;
            }
            v[at(k)] = x;
            if x >= n && y >= m {
                break 'rounds;
            }
        }
    }
    let (mut x, mut y) = (n, m);
    let mut ops = Vec::new();
    for (d, frontier) in trace.iter().enumerate().rev() {
        let d = d as isize;
        let at = |k: isize| frontier[(k + d + 1) as usize];
        let k = x - y;
        let prev_k = if k == -d || (k != d && at(k - 1) < at(k + 1)) { k + 1 } else { k - 1 };
        let prev_x = at(prev_k);
        let prev_y = prev_x - prev_k;
        while x > prev_x && y > prev_y {
            ops.push(Op::Equal);
            x -= 1;
            y -= 1;
        }
        if d > 0 {
            ops.push(if x == prev_x { Op::Insert } else { Op::Delete });
        }
        x = prev_x;
        y = prev_y;
    }
    ops.reverse();
    ops
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
    fn the_script_is_shortest() {
        // Myers' paper's example: ABCABBA -> CBABAC takes 5 edits.
        let a: Vec<&str> = "ABCABBA".split("").filter(|s| !s.is_empty()).collect();
        let b: Vec<&str> = "CBABAC".split("").filter(|s| !s.is_empty()).collect();
        let edits = script(&a, &b).into_iter().filter(|op| *op != Op::Equal).count();
        assert_eq!(edits, 5);
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
