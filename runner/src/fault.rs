//! Fault points: named places in the runner's start-up where a test can
//! have the runner SIGKILL itself, to prove that a crash at that step
//! leaves nothing behind that the next start or `mcp-runner gc` does not
//! clean up (tests/tests/fault_startup.rs, kernel_fault_startup.rs).
//!
//! A point fires only when `MCP_RUNNER_FAULT` names it and the binary was
//! built with debug assertions (the test builds); a release build compiles
//! every point to nothing and never reads the variable.

/// The variable naming the point to die at (read by debug builds only).
#[cfg_attr(not(debug_assertions), allow(dead_code))]
pub const VAR: &str = "MCP_RUNNER_FAULT";

/// Every point, in the order `run` passes them. A name not listed here is a
/// bug in the caller (checked in debug builds).
#[cfg_attr(not(debug_assertions), allow(dead_code))]
pub const POINTS: &[&str] = &[
    // Admitted: the record is written and the admission lock still held.
    "admission-locked",
    // Admitted and the lock released; no driver built yet.
    "before-placement",
    // The cgroupfs driver made the session cgroup and the server's leaf,
    // before any limit is written: the leaf is named after the runner but
    // no record names it.
    "placement-leaf",
    // The driver is built (leaf or scopes), before the session shares.
    "after-placement",
    // Rebalancing the session shares at start, holding the admission lock.
    "rebalance-locked",
    // The server runs (exec'd, in its place); the record does not name it.
    "after-spawn",
    // The record names the server and its cgroup; supervision not begun.
    "after-record",
];

/// Dies by SIGKILL here if `MCP_RUNNER_FAULT` is `name`.
#[cfg(debug_assertions)]
pub fn point(name: &str) {
    debug_assert!(POINTS.contains(&name), "unknown fault point {name}");
    if std::env::var_os(VAR).is_some_and(|v| v == name) {
        // The line the test checks: the runner died here and nowhere else.
        tracing::warn!("fault point {name}: raising SIGKILL ({VAR})");
        let _ = nix::sys::signal::raise(crate::sys::Signal::SIGKILL);
    }
}

/// Release builds have no fault points.
#[cfg(not(debug_assertions))]
#[inline(always)]
pub fn point(_name: &str) {}

#[cfg(all(test, debug_assertions))]
mod tests {
    use super::*;

    #[test]
    fn points_are_unique() {
        let mut names = POINTS.to_vec();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), POINTS.len());
    }

    #[test]
    fn an_unset_or_other_point_does_nothing() {
        // The test process has no MCP_RUNNER_FAULT (or one naming a point
        // other than this); either way it must survive.
        if std::env::var_os(VAR).is_none_or(|v| v != "after-record") {
            point("after-record");
        }
    }
}
