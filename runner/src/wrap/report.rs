//! What happened to each server, as the lines `wrap` prints.

use std::fmt;

use super::entry::Skip;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryReport {
    /// `mcpServers.github`, `projects["/src/app"].mcpServers.db`.
    pub path: String,
    pub outcome: Outcome,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Wrapped,
    AlreadyWrapped,
    Unwrapped,
    /// `--undo` found an entry that does not run through the runner.
    NotWrapped,
    Skipped(Skip),
}

#[cfg(test)]
impl Outcome {
    /// Whether the entry's text changes.
    pub fn changes(&self) -> bool {
        matches!(self, Outcome::Wrapped | Outcome::Unwrapped)
    }
}

impl fmt::Display for EntryReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = &self.path;
        match &self.outcome {
            Outcome::Wrapped => write!(f, "wrapped          {path}"),
            Outcome::AlreadyWrapped => write!(f, "already wrapped  {path}"),
            Outcome::Unwrapped => write!(f, "unwrapped        {path}"),
            Outcome::NotWrapped => write!(f, "not wrapped      {path}"),
            Outcome::Skipped(why) => write!(f, "left alone       {path}: {why}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_aligned_and_say_why() {
        let r = |outcome| EntryReport { path: "mcpServers.x".to_owned(), outcome }.to_string();
        assert_eq!(r(Outcome::Wrapped), "wrapped          mcpServers.x");
        assert_eq!(r(Outcome::AlreadyWrapped), "already wrapped  mcpServers.x");
        assert_eq!(
            r(Outcome::Skipped(Skip::Remote("url".to_owned()))),
            "left alone       mcpServers.x: remote server (url)"
        );
        assert!(Outcome::Unwrapped.changes() && !Outcome::NotWrapped.changes());
    }
}
