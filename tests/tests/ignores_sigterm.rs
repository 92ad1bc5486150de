//! A server that ignores SIGTERM and stdin EOF: on session close the runner waits `grace`,
//! sends SIGTERM (which the server reports and survives), waits `kill_timeout`, and SIGKILLs.

use std::time::{Duration, Instant};

use mcp_runner_tests::{Fixture, Policy, hostile};

#[test]
fn eof_then_grace_then_sigterm_then_sigkill_exits_137() {
    let grace = Duration::from_millis(300);
    let kill_timeout = Duration::from_millis(300);
    let fx = Fixture::new(&Policy::default());
    let mut runner = fx.run("ignore-term", &[hostile!(), "ignore-term"]);
    runner.ready();

    let closed = Instant::now();
    runner.close_stdin();
    runner.expect_notification("hostile/sigterm-ignored");
    let term_after = closed.elapsed();
    runner.assert_exit(137, None);
    let exit_after = closed.elapsed();

    // Lower bounds only (timers never fire early): the order and the waits of the contract.
    assert!(term_after >= grace, "SIGTERM came {term_after:?} after EOF, before the grace of {grace:?}");
    assert!(exit_after >= grace + kill_timeout, "SIGKILL came {exit_after:?} after EOF, before grace + kill_timeout");
}
