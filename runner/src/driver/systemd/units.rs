//! Unit names. In slice names a dash means nesting (`a-b.slice` lives in
//! `a.slice`), so names built from client input keep only `[A-Za-z0-9_]`.

use crate::tree::ProcessId;

/// The global cap: installed by `mcp-runner systemd install`, or created
/// on first use as a transient slice.
pub const GLOBAL_SLICE: &str = "mcp-runner.slice";

fn word(raw: &str) -> String {
    let w: String = raw.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).take(48).collect();
    if w.is_empty() { "_".into() } else { w }
}

/// `mcp-runner-<session>.slice`: inside the global slice.
pub fn session_slice(session: &str) -> String {
    format!("mcp-runner-{}.slice", word(session))
}

/// The runner's own scope: when it empties (the runner died), systemd stops
/// every unit bound to it, the server's scope included.
pub fn runner_scope(runner: ProcessId) -> String {
    format!("mcp-runner-supervisor-{}-{}.scope", runner.pid, runner.start)
}

/// The server's scope.
pub fn server_scope(name: Option<&str>, runner: ProcessId) -> String {
    format!("mcp-runner-{}-{}-{}.scope", word(name.unwrap_or("server")), runner.pid, runner.start)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let id = ProcessId { pid: 42, start: 7 };
        assert_eq!(session_slice("client-12-345"), "mcp-runner-client_12_345.slice");
        assert_eq!(session_slice(""), "mcp-runner-_.slice");
        assert_eq!(runner_scope(id), "mcp-runner-supervisor-42-7.scope");
        assert_eq!(server_scope(Some("git-hub/x"), id), "mcp-runner-git_hub_x-42-7.scope");
    }
}
