//! Where a server's cgroup lives: `GLOBAL/SESSION/LEAF`.
//!
//! - GLOBAL (default `<cgroup2 mount>/mcp-runner` as root, or
//!   `<own delegated cgroup>/mcp-runner`): the cap over every server.
//! - SESSION (`s-<session id>`): one client's slice of it. Distinct ids get
//!   distinct cgroups ([`names::unique_name`]): an id of `[A-Za-z0-9_@-]`
//!   of up to 64 characters as it is, any other as its cleaned prefix, `.`
//!   and a hash. Two sessions in one cgroup would share one budget.
//! - LEAF (`<name>.<runner pid>.<runner start time>`): one server and every
//!   process it forks. A runner's identity makes the leaf name unique for
//!   the runner's lifetime, so a leaf is never reused (see
//!   [`crate::cgroup::fs::CgroupDir::create_new`]) and a dead runner's leaf is
//!   recognisable by name alone. The server's name in it is only for
//!   reading, so cutting and folding it is harmless.

use crate::driver::names::{self, Alphabet};
use crate::tree::ProcessId;

fn kept(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '@')
}

/// Keeps a name safe as one path component: cgroup names come from client
/// configs and environment variables.
pub fn component(raw: &str) -> String {
    let mut out: String = raw.chars().map(|c| if kept(c) { c } else { '_' }).take(64).collect();
    if out.is_empty() {
        out.push('_');
    }
    out
}

/// Session ids as one cgroup name: `.` never occurs in a kept id, and the
/// leaf names below carry their own dots.
const SESSION_COMPONENT: Alphabet = Alphabet { keep: kept, replacement: '_', separator: '.', max_plain: 64 };

pub fn session_name(session: &str) -> String {
    format!("s-{}", names::unique_name(session, &SESSION_COMPONENT))
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
    use crate::driver::names::tests::assert_injective;

    #[test]
    fn names_are_single_safe_components() {
        assert_eq!(component("github"), "github");
        assert_eq!(component("../../etc"), "______etc");
        assert_eq!(component(""), "_");
        assert_eq!(component(&"x".repeat(300)).len(), 64);
        assert_eq!(session_name("client-12-345"), "s-client-12-345");
        // Pinned: the test harness (tests/src/names.rs) computes the same.
        assert_eq!(session_name("team.a"), "s-team_a.de938b717d145fe5");
        assert_eq!(session_name(""), "s-.cbf29ce484222325");
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

    /// Server names are cut and folded in leaf names; the runner's identity
    /// keeps leaves apart, and the longest leaf name is still a valid name.
    #[test]
    fn leaves_are_unique_by_their_runner_whatever_the_server_name() {
        let long = "n".repeat(300);
        let (a, b) = (ProcessId { pid: 7, start: 1 }, ProcessId { pid: 7, start: 2 });
        assert_ne!(leaf_name(Some(&long), a), leaf_name(Some(&long), b));
        assert_ne!(leaf_name(Some("x.y"), a), leaf_name(Some("x_y"), b));
        let longest = leaf_name(Some(&long), ProcessId { pid: i32::MAX, start: u64::MAX });
        assert_eq!(valid_component(&longest), Ok(()));
        assert_eq!(leaf_owner(&longest), Some(ProcessId { pid: i32::MAX, start: u64::MAX }));
    }

    /// One path component the kernel takes as a cgroup name.
    fn valid_component(name: &str) -> Result<(), String> {
        if name.is_empty() || name == "." || name == ".." {
            return Err("empty, . or ..".into());
        }
        if name.len() > 255 {
            return Err(format!("{} bytes, a name has at most 255", name.len()));
        }
        match name.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '@' | '.'))) {
            Some(c) => Err(format!("{c:?} in a cgroup name")),
            None => Ok(()),
        }
    }

    // See: issue 9, finding 3.
    #[test]
    fn issue_9_distinct_sessions_get_distinct_cgroups() {
        assert_ne!(session_name("team_a"), session_name("team.a"));
        assert_ne!(session_name(&"x".repeat(64)), session_name(&"x".repeat(65)));
        assert_injective(session_name, valid_component);
    }
}
