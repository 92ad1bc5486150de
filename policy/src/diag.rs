//! Diagnostics: compiler-style errors, all of them at once.
//!
//! A policy file is edited by hand and checked with `mcp-runner policy
//! check`; reporting every mistake in one run, each with `file:line:col`,
//! saves the user an edit-run loop per error.

use std::fmt;
use std::io;

use crate::located::Location;

/// One problem, at one place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// The policy file's path (or the origin given to `from_str`).
    pub origin: String,
    /// `None` when the problem has no position (an unreadable file).
    pub location: Option<Location>,
    /// Lower case, no trailing period, says what would be valid.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.location {
            Some(at) => write!(f, "{}:{}: {}", self.origin, at, self.message),
            None => write!(f, "{}: {}", self.origin, self.message),
        }
    }
}

/// Why a policy could not be loaded or resolved; displays one diagnostic per line.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", lines(.diagnostics))]
pub struct PolicyError {
    diagnostics: Vec<Diagnostic>,
    io_kind: Option<io::ErrorKind>,
}

fn lines(diagnostics: &[Diagnostic]) -> String {
    let all: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
    all.join("\n")
}

impl PolicyError {
    /// Sorts by position and drops repeats: the same inherited value can be
    /// found wrong once per server entry that inherits it.
    pub(crate) fn new(mut diagnostics: Vec<Diagnostic>) -> Self {
        diagnostics.sort_by_key(|d| d.location);
        let mut unique: Vec<Diagnostic> = Vec::with_capacity(diagnostics.len());
        for d in diagnostics {
            if !unique.contains(&d) {
                unique.push(d);
            }
        }
        PolicyError { diagnostics: unique, io_kind: None }
    }

    pub(crate) fn io(origin: &str, err: &io::Error) -> Self {
        PolicyError {
            diagnostics: vec![Diagnostic {
                origin: origin.to_owned(),
                location: None,
                message: format!("failed to read policy file: {err}"),
            }],
            io_kind: Some(err.kind()),
        }
    }

    pub fn diagnostics(&self) -> &[Diagnostic] {
        &self.diagnostics
    }

    /// The kind of the read error, if the file could not be read at all; lets
    /// the runner's search path skip a missing file but not a broken one.
    pub fn io_error_kind(&self) -> Option<io::ErrorKind> {
        self.io_kind
    }
}

/// The candidate nearest to `word`, if it is close enough to be a likely typo.
pub(crate) fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let word = word.to_lowercase();
    let limit = (word.chars().count() / 3).max(1);
    candidates
        .iter()
        .map(|c| (distance(&word, c), *c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Optimal string alignment distance: Levenshtein plus adjacent
/// transpositions, because "memroy" is one slip of the fingers, not two.
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let width = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * width];
    for i in 0..=a.len() {
        d[i * width] = i;
    }
    for (j, cell) in d.iter_mut().enumerate().take(width) {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best =
                (d[(i - 1) * width + j] + 1).min(d[i * width + j - 1] + 1).min(d[(i - 1) * width + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[(i - 2) * width + j - 2] + 1);
            }
            d[i * width + j] = best;
        }
    }
    d[a.len() * width + b.len()]
}

/// `"a", "b" or "c"`: for listing what would have been valid.
pub(crate) fn one_of(options: &[&str]) -> String {
    let quoted: Vec<String> = options.iter().map(|o| format!("\"{o}\"")).collect();
    match quoted.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        Some((last, _)) => last.clone(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn diag(line: usize, message: &str) -> Diagnostic {
        Diagnostic { origin: "p.toml".into(), location: Some(Location { line, column: 1 }), message: message.into() }
    }

    #[test]
    fn transposition_counts_as_one_edit() {
        assert_eq!(distance("memroy_max", "memory_max"), 1);
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("kitten", "sitting"), 3);
    }

    #[test]
    fn suggests_the_nearest_close_candidate() {
        let keys = ["memory_max", "memory_high", "pids_max"];
        assert_eq!(closest("memroy_max", &keys), Some("memory_max"));
        assert_eq!(closest("Memory_High", &keys), Some("memory_high"));
        assert_eq!(closest("pid_max", &keys), Some("pids_max"));
        assert_eq!(closest("colour", &keys), None);
    }

    #[test]
    fn displays_origin_line_column_message() {
        assert_eq!(diag(3, "bad").to_string(), "p.toml:3:1: bad");
        let no_loc = Diagnostic { location: None, ..diag(1, "unreadable") };
        assert_eq!(no_loc.to_string(), "p.toml: unreadable");
    }

    #[test]
    fn error_sorts_dedups_and_prints_one_per_line() {
        let err = PolicyError::new(vec![diag(5, "b"), diag(2, "a"), diag(5, "b")]);
        assert_eq!(err.to_string(), "p.toml:2:1: a\np.toml:5:1: b");
        assert_eq!(err.diagnostics().len(), 2);
        assert_eq!(err.io_error_kind(), None);
    }

    #[test]
    fn lists_options_in_prose() {
        assert_eq!(one_of(&["a"]), "\"a\"");
        assert_eq!(one_of(&["a", "b", "c"]), "\"a\", \"b\" or \"c\"");
    }
}
