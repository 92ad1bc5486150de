//! A fork bomb under pids_max = 32: the runner kills the whole tree, exits 123 and says why.

use mcp_runner_tests::{Fixture, Policy, hostile};

#[test]
fn fork_bomb_is_killed_for_pids_max() {
    let fx = Fixture::new(&Policy::default().set("pids_max", "32"));
    let mut runner = fx.run("forkbomb", &[hostile!(), "forkbomb"]);
    runner.ready();
    runner.assert_exit(123, Some("exceeded pids_max"));
}
