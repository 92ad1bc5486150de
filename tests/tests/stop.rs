//! `mcp-runner stop` tears servers down through the session-close path.

use mcp_runner_tests::{Fixture, Policy, hostile};

#[test]
fn stop_a_session_takes_down_its_servers_and_no_other() {
    let fx = Fixture::new(&Policy::default().set_in("global", "max_pressure", "\"max\"").set_in(
        "global",
        "min_headroom",
        "\"0\"",
    ));
    let mut a = fx.run_in("doomed", "one", &[hostile!(), "daemon"]);
    let mut b = fx.run_in("doomed", "two", &[hostile!(), "echo"]);
    let mut other = fx.run_in("kept", "three", &[hostile!(), "echo"]);
    for r in [&mut a, &mut b, &mut other] {
        r.ready();
    }
    // The runners are this test's children: once stopped they stay zombies until the test
    // reaps them, and `stop` must count a zombie as gone.
    let out = fx.output(&["stop", "doomed"]);
    assert!(out.status.success(), "stop failed: {}", out.stderr);
    assert!(out.stdout.contains("stopped 2 servers"), "{}", out.stdout);
    // SIGTERM to the runner: SIGTERM to the tree at once (the session-close path for a signal).
    for r in [&mut a, &mut b] {
        r.assert_exit(143, None);
    }
    // The other session is untouched and still answers.
    assert!(other.try_request(7, "ping", &serde_json::Value::Null).is_some(), "the other session was hit");
    other.close_stdin();
    other.assert_exit(0, None);
}

#[test]
fn stop_of_nothing_is_a_usage_error() {
    let fx = Fixture::new(&Policy::default());
    let out = fx.output(&["stop", "no-such-session"]);
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("no running session or server matches \"no-such-session\""), "{}", out.stderr);
}
