//! Source positions.
//!
//! Some errors (percentages of physical memory) can only be found when a
//! budget is resolved on a given host, long after the TOML tree is gone, so
//! every parsed value keeps the position it was written at.

use std::fmt;

/// A 1-based line and column (counted in characters, as editors do).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Location {
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

impl Location {
    /// Locates one offset; use [`LineIndex`] for many.
    pub(crate) fn of_offset(text: &[u8], offset: usize) -> Location {
        LineIndex::new(text).locate(offset)
    }
}

/// Start offsets of every line, so that locating each of many values does
/// not rescan the file from the top.
pub(crate) struct LineIndex<'t> {
    text: &'t [u8],
    starts: Vec<usize>,
}

impl<'t> LineIndex<'t> {
    pub(crate) fn new(text: &'t [u8]) -> Self {
        let starts = std::iter::once(0)
            .chain(text.iter().enumerate().filter(|&(_, &b)| b == b'\n').map(|(i, _)| i + 1))
            .collect();
        LineIndex { text, starts }
    }

    /// Turns a byte offset into a line and column.
    ///
    /// Offsets past the end or inside a multi-byte character are tolerated
    /// (clamped / attributed to that character), because they come from the
    /// parser and from `str::from_utf8` and must never make error reporting
    /// itself fail.
    pub(crate) fn locate(&self, offset: usize) -> Location {
        let offset = offset.min(self.text.len());
        let line = self.starts.partition_point(|&start| start <= offset).max(1);
        let line_start = self.starts.get(line - 1).copied().unwrap_or(0);
        // Count characters, not bytes: a UTF-8 continuation byte is 0b10xxxxxx.
        let column =
            1 + self.text.get(line_start..offset).unwrap_or_default().iter().filter(|&&b| b & 0xC0 != 0x80).count();
        Location { line, column }
    }
}

/// A value and where it was written; `at` is `None` for built-in defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Located<T> {
    pub(crate) value: T,
    pub(crate) at: Option<Location>,
}

impl<T> Located<T> {
    pub(crate) fn new(value: T, at: Location) -> Self {
        Located { value, at: Some(at) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc(text: &str, offset: usize) -> (usize, usize) {
        let l = Location::of_offset(text.as_bytes(), offset);
        (l.line, l.column)
    }

    #[test]
    fn first_character_is_line_1_column_1() {
        assert_eq!(loc("abc", 0), (1, 1));
    }

    #[test]
    fn columns_restart_after_newline() {
        let text = "ab\ncd\nef";
        assert_eq!(loc(text, 2), (1, 3));
        assert_eq!(loc(text, 3), (2, 1));
        assert_eq!(loc(text, 7), (3, 2));
    }

    #[test]
    fn columns_count_characters_not_bytes() {
        let text = "é = 1";
        assert_eq!(loc(text, "é ".len()), (1, 3));
    }

    #[test]
    fn offsets_past_the_end_are_clamped() {
        assert_eq!(loc("ab\n", 99), (2, 1));
        assert_eq!(loc("", 5), (1, 1));
    }

    #[test]
    fn displays_as_line_colon_column() {
        assert_eq!(Location { line: 3, column: 14 }.to_string(), "3:14");
    }
}
