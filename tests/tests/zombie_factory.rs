//! A server whose intermediate process dies without waiting for its children: they become
//! zombies reparented to the runner (the subreaper), which must reap them promptly while the
//! session goes on.

use std::time::Duration;

use mcp_runner_tests::{Fixture, Policy, hang_guard, hostile, poll_until, proc_stat, zombies_of};
use serde_json::json;

const ZOMBIES: usize = 100;

#[test]
fn orphaned_zombies_are_reaped_while_the_session_runs() {
    // A high pids_max: this test is about reaping, not about the limit (zombies still count
    // against pids.max until they are reaped).
    let fx = Fixture::new(&Policy::default().set("pids_max", "1000"));
    let mut runner = fx.run("zombies", &[hostile!(), "zombies", &ZOMBIES.to_string()]);
    runner.ready();
    let made = runner.expect_notification("hostile/zombies-made");
    assert_eq!(made["count"], ZOMBIES);
    let pids: Vec<i32> =
        made["pids"].as_array().expect("pids").iter().map(|p| p.as_i64().expect("pid") as i32).collect();
    assert_eq!(pids.len(), ZOMBIES);

    // No event tells when a parent reaps a child, so poll /proc (with a deadline).
    let reaped = poll_until(hang_guard(), Duration::from_millis(10), || {
        zombies_of(runner.pid).is_empty() && pids.iter().all(|&pid| proc_stat(pid).is_none_or(|s| s.state != 'Z'))
    });
    assert!(
        reaped,
        "zombies left: runner's {:?}, of the reported {:?}",
        zombies_of(runner.pid),
        pids.iter().filter(|&&p| proc_stat(p).is_some_and(|s| s.state == 'Z')).collect::<Vec<_>>()
    );

    // The server is still being served.
    let line = runner.request(7, "ping", &json!({}));
    assert_eq!(line, r#"{"jsonrpc":"2.0","id":7,"result":{"echo":{}}}"#);

    runner.close_stdin();
    runner.assert_exit(0, None);
}
