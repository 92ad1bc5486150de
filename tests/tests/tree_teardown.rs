//! Session close with a server that leaves children behind (`hostile tree 100` exits 0 on
//! EOF): every process of the tree must get SIGTERM at once, whether the server exited by
//! itself ("what remains of its tree gets SIGTERM at once") or grace ran out ("SIGTERM the
//! whole tree"). kill_timeout is 20 s here, so a process the SIGTERM missed shows up as a 20 s
//! teardown instead of milliseconds.
//!
//! Repeated, because a miss depends on timing: the children are reparented to the runner
//! while the server exits, and with grace = 0 the server's own exit races the SIGTERM.

use std::time::{Duration, Instant};

use mcp_runner_tests::{Fixture, Policy, describe, hostile, scaled};

const ROUNDS: usize = 20;

fn every_process_gets_sigterm_at_once(grace: &str, exit_codes: &[i32]) {
    let fx = Fixture::new(
        &Policy::default()
            .set("grace", &format!("\"{grace}\""))
            .set("kill_timeout", "\"20s\"")
            .set("pids_max", "1000")
            .set("memory_max", "\"2G\""),
    );
    let bound = scaled(Duration::from_secs(5));
    for round in 1..=ROUNDS {
        let mut runner = fx.run("tree", &[hostile!(), "tree", "100"]);
        runner.ready();
        let closed = Instant::now();
        runner.close_stdin();
        // Described now: by the time the assertion fails, kill_timeout has removed them.
        let left = if runner.exits_within(bound) { Vec::new() } else { runner.tree() };
        let left_described = describe(&left);
        let code = runner.exit_code();
        let took = closed.elapsed();
        assert!(
            took < bound,
            "round {round}: teardown took {took:?} (kill_timeout is 20 s, exit {code}); {} \
             processes of the tree were still there after {bound:?}, never sent SIGTERM: {}",
            left.len(),
            left_described
        );
        assert!(exit_codes.contains(&code), "round {round}: exit {code}, expected one of {exit_codes:?}");
        runner.assert_nothing_left();
    }
}

/// The server exits by itself on EOF, long before grace ends: exit 0.
#[test]
fn server_exits_by_itself_rest_of_tree_gets_sigterm_at_once() {
    every_process_gets_sigterm_at_once("10s", &[0]);
}

/// grace = 0: the SIGTERM of the tree races the server's own exit: 143 or 0.
#[test]
fn zero_grace_whole_tree_gets_sigterm_at_once() {
    every_process_gets_sigterm_at_once("0s", &[0, 143]);
}
