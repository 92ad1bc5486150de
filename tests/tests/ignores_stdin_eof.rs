//! A server that keeps running after stdin EOF but dies of SIGTERM: the runner waits `grace`,
//! then SIGTERMs it, and exits 143 (128 + SIGTERM).

use std::time::{Duration, Instant};

use mcp_runner_tests::{Fixture, Policy, hostile};

#[test]
fn eof_then_grace_then_sigterm_exits_143() {
    let grace = Duration::from_millis(300);
    let fx = Fixture::new(&Policy::default());
    let mut runner = fx.run("ignore-eof", &[hostile!(), "ignore-eof"]);
    runner.ready();

    let closed = Instant::now();
    runner.close_stdin();
    runner.assert_exit(143, None);
    let took = closed.elapsed();
    assert!(took >= grace, "server killed {took:?} after EOF, before the grace of {grace:?}");
}
