//! A fork bomb under pids_max = 32 (cgroupfs driver, cgroup v2 guest) is CONTAINED by the
//! kernel, not killed: pids.max refuses its forks (pids.events `max` rises), pids.current never
//! goes above 32, the runner warns that the kernel refused forks, and the server keeps running.
//! When the session ends (stdin closed) the whole tree goes, with its leaf and session cgroups.
#![cfg(target_os = "linux")]

use mcp_runner_tests::kernel::{self, Cgroup, kernel_or_skip, server_leaf, session_id};
use mcp_runner_tests::{Fixture, alive, hostile};

const PIDS_MAX: u64 = 32;

#[test]
fn kernel_fork_bomb_is_contained_at_pids_max() {
    if !kernel_or_skip() {
        return;
    }
    let fx = Fixture::new(&kernel::policy().set("pids_max", &PIDS_MAX.to_string()));
    let session = session_id("pids");
    let global = Cgroup::default_global();
    let session_cg = Cgroup::session(&global, &session);

    let mut runner = fx.run_in(&session, "forkbomb", &[hostile!(), "forkbomb"]);
    let server = runner.ready()["pid"].as_i64().expect("pid") as i32;
    let leaf = server_leaf(&fx, &runner, server, &global, &session, "forkbomb");
    assert_eq!(leaf.limit("pids.max"), Some(PIDS_MAX), "{leaf:?}: pids.max");

    // Every time pids.events changes, and at least every 50 ms, until a fork was refused.
    let mut highest = 0;
    let events = leaf
        .wait_counters("pids.events", |e| {
            highest = highest.max(leaf.value("pids.current"));
            e.get("max") > 0
        })
        .unwrap_or_else(|e| panic!("no fork refused at pids.max: {e}; {}", runner.diag()));
    assert!(highest <= PIDS_MAX, "pids.current {highest} > pids.max {PIDS_MAX}");
    let stderr = runner.wait_stderr("the kernel refused");
    assert!(
        stderr.lines().any(|l| l.starts_with("mcp-runner: ")
            && l.contains("the kernel refused")
            && l.contains(&format!("at pids_max {PIDS_MAX}"))),
        "no warning about refused forks; stderr:\n{stderr}"
    );
    // Contained, not killed: the server and its children still run, within the limit.
    let current = leaf.value("pids.current");
    assert!(current <= PIDS_MAX, "pids.current {current} > pids.max {PIDS_MAX}");
    if leaf.path().join("pids.peak").exists() {
        let peak = leaf.value("pids.peak");
        assert!(peak <= PIDS_MAX, "pids.peak {peak} > pids.max {PIDS_MAX}");
    }
    assert!(alive(server), "the server was killed; a fork bomb is contained, not killed; {}", runner.diag());
    assert!(leaf.populated(), "{leaf:?} is empty");
    let tree = runner.tree();
    assert!(tree.len() as u64 <= PIDS_MAX, "{} marked processes > pids_max", tree.len());
    eprintln!("pids.events {events}, pids.current {current}, {} processes in the tree", tree.len());

    runner.close_stdin();
    let code = runner.exit_code();
    let stderr = runner.stderr();
    // The server dies of the teardown's SIGTERM (143), or, if it got through its fork loop and
    // saw EOF first, exits 0: never 123, it was not killed for a limit.
    assert!(code == 143 || code == 0, "runner exit code {code}, expected 143 (or 0); stderr:\n{stderr}");
    runner.assert_nothing_left();
    assert!(!leaf.exists(), "the leaf {leaf:?} is left after the runner exited");
    assert!(!session_cg.exists(), "the session cgroup {session_cg:?} is left after its last server");
}
