//! Where a server's cgroup lives: `GLOBAL/SESSION/LEAF`.
//!
//! - GLOBAL (default `<cgroup2 mount>/mcp-runner` as root, or
//!   `<own delegated cgroup>/mcp-runner`): the cap over every server.
//! - SESSION (`s-<session id>`): one client's slice of it.
//! - LEAF (`<name>.<runner pid>.<runner start time>`): one server and every
//!   process it forks. A runner's identity makes the leaf name unique for
//!   the runner's lifetime, so a leaf is never reused (see
//!   [`crate::cgroup::fs::CgroupDir::create_new`]) and a dead runner's leaf is
//!   recognisable by name alone.

use crate::tree::ProcessId;

/// Keeps a name safe as one path component: cgroup names come from client
/// configs and environment variables.
pub fn component(raw: &str) -> String {
    let mut out: String = raw
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '@') { c } else { '_' })
        .take(64)
        .collect();
    if out.is_empty() {
        out.push('_');
    }
    out
}

pub fn session_name(session: &str) -> String {
    format!("s-{}", component(session))
}

pub fn leaf_name(server: Option<&str>, runner: ProcessId) -> String {
    format!("{}.{}.{}", component(server.unwrap_or("server")), runner.pid, runner.start)
}

/// The runner a leaf belongs to, from its name.
pub fn leaf_owner(leaf: &str) -> Option<ProcessId> {
    let mut parts = leaf.rsplitn(3, '.');
    let start = parts.next()?.parse().ok()?;
    let pid = parts.next()?.parse().ok()?;
    parts.next()?;
    Some(ProcessId { pid, start })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_single_safe_components() {
        assert_eq!(component("github"), "github");
        assert_eq!(component("../../etc"), "______etc");
        assert_eq!(component(""), "_");
        assert_eq!(component(&"x".repeat(300)).len(), 64);
        assert_eq!(session_name("client-12-345"), "s-client-12-345");
    }

    #[test]
    fn leaf_names_round_trip_to_their_runner() {
        let id = ProcessId { pid: 4242, start: 987654 };
        let name = leaf_name(Some("my.server"), id);
        assert_eq!(name, "my_server.4242.987654");
        assert_eq!(leaf_owner(&name), Some(id));
        assert_eq!(leaf_owner(&leaf_name(None, id)), Some(id));
        assert_eq!(leaf_owner("supervisor"), None);
        assert_eq!(leaf_owner("a.b.c"), None);
    }
}
