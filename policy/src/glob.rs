//! Command-line patterns for `match`.
//!
//! Only `*` (any run of characters, spaces and slashes included) and `?`
//! (one character): a command line is not a path, so path-aware globbing
//! would only surprise, and a dependency is not worth two metacharacters.

use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Glob {
    text: String,
}

impl Glob {
    pub(crate) fn new(text: &str) -> Self {
        Glob { text: text.to_owned() }
    }

    /// Whole-string match. Backtracks only to the last `*`, which is enough
    /// because a later `*` can absorb anything an earlier one could: the
    /// cost stays O(pattern x text) even for adversarial patterns.
    pub(crate) fn matches(&self, text: &str) -> bool {
        let p: Vec<char> = self.text.chars().collect();
        let t: Vec<char> = text.chars().collect();
        let (mut pi, mut ti) = (0, 0);
        let mut star: Option<(usize, usize)> = None;
        while ti < t.len() {
            match p.get(pi) {
                Some('*') => {
                    star = Some((pi, ti));
                    pi += 1;
                }
                Some(&c) if c == '?' || c == t[ti] => {
                    pi += 1;
                    ti += 1;
                }
                _ => match star {
                    Some((sp, st)) => {
                        pi = sp + 1;
                        ti = st + 1;
                        star = Some((sp, st + 1));
                    }
                    None => return false,
                },
            }
        }
        p[pi..].iter().all(|&c| c == '*')
    }
}

impl fmt::Display for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, text: &str) -> bool {
        Glob::new(pattern).matches(text)
    }

    #[test]
    fn literal_patterns_match_only_themselves() {
        assert!(m("node server.js", "node server.js"));
        assert!(!m("node server.js", "node server.jsx"));
        assert!(!m("node", "node server.js"));
        assert!(m("", ""));
        assert!(!m("", "x"));
    }

    #[test]
    fn star_spans_spaces_and_slashes() {
        let p = "npx * @modelcontextprotocol/server-github*";
        assert!(m(p, "npx -y @modelcontextprotocol/server-github"));
        assert!(m(p, "npx -y --quiet @modelcontextprotocol/server-github@1.2.3"));
        assert!(!m(p, "npx @modelcontextprotocol/server-github"));
        assert!(!m(p, "node npx -y @modelcontextprotocol/server-github"));
        assert!(m("*/bin/uvx *", "/home/u/.local/bin/uvx mcp-server-fetch"));
    }

    #[test]
    fn star_matches_empty_and_everything() {
        assert!(m("*", ""));
        assert!(m("*", "anything at all"));
        assert!(m("a*", "a"));
        assert!(m("*a*", "banana"));
        assert!(!m("*x*", "banana"));
    }

    #[test]
    fn question_mark_is_exactly_one_character() {
        assert!(m("python3.1?", "python3.12"));
        assert!(!m("python3.1?", "python3.1"));
        assert!(!m("python3.1?", "python3.123"));
        assert!(m("?", "é"));
    }

    #[test]
    fn other_metacharacters_are_literal() {
        assert!(m("[a]", "[a]"));
        assert!(!m("[a]", "a"));
        assert!(m("a\\*", "a\\bc"));
        assert!(m("{x,y}", "{x,y}"));
    }

    #[test]
    fn backtracking_finds_later_occurrences() {
        assert!(m("*ab", "aab"));
        assert!(m("a*b*c", "axxbyybzzc"));
        assert!(!m("a*b*c", "axxbyybzz"));
        assert!(m("*.js", "a.js.js"));
    }

    #[test]
    fn adversarial_patterns_stay_fast() {
        let text = "a".repeat(2_000);
        let pattern = format!("{}b", "*a".repeat(50));
        assert!(!m(&pattern, &text));
    }
}
