//! Distinct sessions get distinct slices (systemd guest, root). `team-a-PID` and `team_a_PID`
//! are two sessions: one server in each, started from the same state directory (so each
//! runner counts the other). Unit names keep only `[A-Za-z0-9_]`, so a name made by mapping
//! the rest to `_` is the same for both: they shared one slice, and when the first runner left,
//! its session was gone from the census and it stopped "its" slice, taking the other
//! session's scope with it. The runner now names a session slice so that distinct ids never
//! share one (a cleaned prefix and a hash of the raw id), and releases a slice only when no
//! live runner's session maps to it.
//!
//! The first runner ends; its slice is stopped (systemd unloads it), and the other session's
//! scope keeps running: systemd says it is active, and the server still answers.
#![cfg(target_os = "linux")]

use mcp_runner_tests::systemd::{Manager, RunnerUnits, cgroup_of, systemd_or_skip};
use mcp_runner_tests::{Fixture, Policy, alive, hostile};
use serde_json::json;

// See: issue 9, finding 3.
#[test]
fn issue_9_colliding_session_ids_get_their_own_slices() {
    if !systemd_or_skip() {
        return;
    }
    let m = Manager::System;
    let fx = Fixture::new(&Policy::default());
    let pid = std::process::id();
    let (session_a, session_b) = (format!("team-a-{pid}"), format!("team_a_{pid}"));

    let mut a = fx.run_in(&session_a, "echo-a", &[hostile!(), "echo"]);
    let server_a = a.ready()["pid"].as_i64().expect("pid") as i32;
    let mut b = fx.run_in(&session_b, "echo-b", &[hostile!(), "echo"]);
    let server_b = b.ready()["pid"].as_i64().expect("pid") as i32;
    let units_a = RunnerUnits::of(&a, &session_a, "echo-a");
    let units_b = RunnerUnits::of(&b, &session_b, "echo-b");

    // Where systemd put them: each scope in the slice the harness computes for its session.
    for (units, server, runner) in [(&units_a, server_a, &a), (&units_b, server_b, &b)] {
        let props = m.show(&units.server_scope, &["ActiveState", "Slice"]);
        assert_eq!(props.get("ActiveState"), "active", "{props:?}; {}", runner.diag());
        assert_eq!(props.get("Slice"), units.session_slice, "{props:?}");
        let cgroup = cgroup_of(server).unwrap_or_default();
        assert!(
            cgroup.ends_with(&format!("/{}/{}", units.session_slice, units.server_scope)),
            "server {server} is in {cgroup}, not in {} of its session; {}",
            units.server_scope,
            runner.diag()
        );
    }

    // The first session ends: its runner releases its slice on the way out.
    a.close_stdin();
    a.assert_exit(0, None);
    m.wait_units_gone(&units_a.scopes()).unwrap_or_else(|e| panic!("after the first runner exited: {e}"));
    m.wait_units_gone(&[units_a.session_slice.as_str()])
        .unwrap_or_else(|e| panic!("the first session's slice was not released: {e}"));

    // The other session is untouched.
    let props = m.show(&units_b.server_scope, &["ActiveState", "SubState"]);
    assert_eq!(props.get("ActiveState"), "active", "the other session's scope was stopped: {props:?}; {}", b.diag());
    assert!(alive(server_b), "the other session's server {server_b} is gone; {}", b.diag());
    let answer = b.try_request(2, "ping", &json!({"still": "here"}));
    assert!(answer.is_some(), "the other session's server does not answer; {}", b.diag());
    assert_ne!(units_a.session_slice, units_b.session_slice, "two sessions, one slice");

    b.close_stdin();
    b.assert_exit(0, None);
    m.wait_units_gone(&units_b.scopes()).unwrap_or_else(|e| panic!("after the second runner exited: {e}"));
    m.wait_units_gone(&[units_b.session_slice.as_str()])
        .unwrap_or_else(|e| panic!("the second session's slice was not released: {e}"));
}
