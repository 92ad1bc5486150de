//! Unit names. In slice names a dash means nesting (`a-b.slice` lives in
//! `a.slice`), so names built from client input keep only `[A-Za-z0-9_]`.
//!
//! A session's slice is its budget, and releasing it stops every scope in
//! it: distinct session ids get distinct slices ([`names::unique_name`]).
//! A server's scope is named after its runner's identity as well, which
//! alone makes it unique; the server's name in it is only for reading.

use crate::driver::names::{self, Alphabet};
use crate::tree::ProcessId;

/// The global cap: installed by `mcp-runner systemd install`, or created
/// on first use as a transient slice.
pub const GLOBAL_SLICE: &str = "mcp-runner.slice";

fn word(raw: &str) -> String {
    let w: String = raw.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).take(48).collect();
    if w.is_empty() { "_".into() } else { w }
}

/// Session ids as one slice-name word: `[A-Za-z0-9]` ids of up to 48
/// characters as they are, any other id as its cleaned prefix, `_` and a
/// hash (an `_` never occurs in the first kind).
const SESSION_WORD: Alphabet =
    Alphabet { keep: |c| c.is_ascii_alphanumeric(), replacement: '_', separator: '_', max_plain: 48 };

/// `mcp-runner-<session>.slice`: inside the global slice.
pub fn session_slice(session: &str) -> String {
    format!("mcp-runner-{}.slice", names::unique_name(session, &SESSION_WORD))
}

/// The slice to stop when the last runner of `leaving` has gone, or `None`
/// while a live session (`live`) still maps to the same slice. Compared by
/// unit name, not by session id: the name is what systemd stops.
pub fn slice_to_release<'a>(leaving: &str, live: impl IntoIterator<Item = &'a String>) -> Option<String> {
    let slice = session_slice(leaving);
    let shared = live.into_iter().any(|s| session_slice(s) == slice);
    (!shared).then_some(slice)
}

/// The runner's own scope: when it empties (the runner died), systemd stops
/// every unit bound to it, the server's scope included.
pub fn runner_scope(runner: ProcessId) -> String {
    format!("mcp-runner-supervisor-{}-{}.scope", runner.pid, runner.start)
}

/// The server's scope. Unique by the runner's identity; the server's name
/// in it is only for reading, so cutting and folding it is harmless.
pub fn server_scope(name: Option<&str>, runner: ProcessId) -> String {
    format!("mcp-runner-{}-{}-{}.scope", word(name.unwrap_or("server")), runner.pid, runner.start)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::names::tests::assert_injective;

    #[test]
    fn names() {
        let id = ProcessId { pid: 42, start: 7 };
        assert_eq!(session_slice("work"), "mcp-runner-work.slice");
        // Pinned: the test harness (tests/src/names.rs) computes the same.
        assert_eq!(session_slice("client-12-345"), "mcp-runner-client_12_345_7334c5247687dff1.slice");
        assert_eq!(session_slice(""), "mcp-runner-_cbf29ce484222325.slice");
        assert_eq!(runner_scope(id), "mcp-runner-supervisor-42-7.scope");
        assert_eq!(server_scope(Some("git-hub/x"), id), "mcp-runner-git_hub_x-42-7.scope");
    }

    /// A slice inside the global slice: `mcp-runner-WORD.slice`, WORD of
    /// `[A-Za-z0-9_]` (a dash would nest it deeper), a valid unit name.
    fn valid_session_slice(name: &str) -> Result<(), String> {
        let word = name
            .strip_prefix("mcp-runner-")
            .and_then(|n| n.strip_suffix(".slice"))
            .ok_or("not mcp-runner-WORD.slice")?;
        if word.is_empty() || !word.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("WORD {word:?} is not of [A-Za-z0-9_]"));
        }
        if name.len() > 255 {
            return Err(format!("{} characters, a unit name has at most 255", name.len()));
        }
        Ok(())
    }

    /// Server scopes are unique by their runner; the longest is a valid
    /// unit name.
    #[test]
    fn scopes_are_unique_by_their_runner_whatever_the_server_name() {
        let long = "n".repeat(300);
        let (a, b) = (ProcessId { pid: 7, start: 1 }, ProcessId { pid: 7, start: 2 });
        assert_ne!(server_scope(Some(&long), a), server_scope(Some(&long), b));
        let longest = server_scope(Some(&long), ProcessId { pid: i32::MAX, start: u64::MAX });
        assert!(longest.len() <= 255, "{longest}");
        assert!(longest.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')), "{longest}");
    }

    // See: issue 9, finding 3.
    #[test]
    fn issue_9_distinct_sessions_get_distinct_slices() {
        assert_ne!(session_slice("team-a"), session_slice("team_a"));
        // The README's example.
        assert_eq!(session_slice("team-a"), "mcp-runner-team_a_de90a3717d1252d6.slice");
        assert_eq!(session_slice("team_a"), "mcp-runner-team_a_e0138f717e5aa198.slice");
        assert_ne!(session_slice("team-a"), session_slice("team.a"));
        assert_ne!(session_slice(&"x".repeat(60)), session_slice(&"x".repeat(61)));
        assert_injective(session_slice, valid_session_slice);
    }

    // See: issue 9, finding 3.
    #[test]
    fn issue_9_a_slice_is_released_only_when_no_live_session_maps_to_it() {
        let live = |ids: &[&str]| ids.iter().map(|s| s.to_string()).collect::<Vec<String>>();
        assert_eq!(slice_to_release("team-a", &live(&[])), Some(session_slice("team-a")));
        assert_eq!(slice_to_release("team-a", &live(&["team_a", "other"])), Some(session_slice("team-a")));
        assert_eq!(slice_to_release("team-a", &live(&["team-a"])), None);
    }
}
