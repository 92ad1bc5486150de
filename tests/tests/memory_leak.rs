//! A steady memory leak under memory_max = "128M": the runner kills the whole tree, exits 123
//! and says why.

use mcp_runner_tests::{Fixture, Policy, hostile};

#[test]
fn leak_is_killed_for_memory_max() {
    let fx = Fixture::new(&Policy::default().set("memory_max", "\"128M\""));
    let mut runner = fx.run("leak", &[hostile!(), "leak"]);
    runner.ready();
    runner.assert_exit(123, Some("exceeded memory_max"));
}
