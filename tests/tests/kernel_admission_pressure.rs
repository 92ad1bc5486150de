//! Admission judges the memory pressure of the present (cgroupfs driver, cgroup v2 guest).
//!
//! PSI's `some avg10` decays over 10 s and more: read alone, it still says "pressed" after the
//! server that stalled is dead. In the guest a server started a moment after a leaking server
//! was OOM-killed was refused ("memory pressure 41.0% (PSI some avg10 of the global cgroup) is
//! above max_pressure 40%"). The runner now measures the stall of the last second from the
//! PSI `total` when the average is above `max_pressure`:
//!
//! - a leak that is held at its memory.high (stalling), then, its memory.high lifted, killed
//!   at its memory.max, leaves the average high; the next server is admitted at once;
//! - a leak that goes on, throttled at the global memory.high, keeps its stall in the present;
//!   the next server is refused with the pressure reason.
//!
//! Each test has a global cgroup of its own (`[global] cgroup_root`), so its memory.pressure
//! holds this test's stalls only, and `admission_wait = "0s"`: the test is about the measure,
//! not the wait. Nothing is timed: the waits are the kernel's counters (memory.events) and the
//! average itself, each bounded by the hang guard.
#![cfg(target_os = "linux")]

use std::path::Path;
use std::time::Duration;

use mcp_runner_tests::kernel::{Cgroup, MOUNT, kernel_or_skip, mib, server_leaf, session_id};
use mcp_runner_tests::{Fixture, Policy, hang_guard, hostile, poll_until};

/// The test's own global cgroup, removed with whatever is left in it when dropped.
struct OwnGlobal(Cgroup);

impl OwnGlobal {
    fn new(tag: &str) -> OwnGlobal {
        OwnGlobal(Cgroup::new(Path::new(MOUNT).join(format!("kt-{tag}-{}", std::process::id()))))
    }

    /// The policy every test here starts from: its global cgroup, the pressure check on.
    fn policy(&self, max_pressure: &str) -> Policy {
        Policy::default()
            .set("throttle_timeout", "\"never\"")
            .set_in("global", "cgroup_root", &format!("\"{}\"", self.0.path().display()))
            .set_in("global", "max_pressure", &format!("\"{max_pressure}\""))
            .set_in("global", "admission_wait", "\"0s\"")
    }
}

impl Drop for OwnGlobal {
    fn drop(&mut self) {
        self.0.remove_tree();
    }
}

/// The `max_pressure` of these tests, in percent.
const MAX_PRESSURE: f64 = 25.0;

// See: issue 9, finding 9.
#[test]
fn issue_9_a_server_after_a_killed_leak_is_admitted_at_once() {
    if !kernel_or_skip() {
        return;
    }
    let own = OwnGlobal::new("psi-killed");
    let global = own.0.clone();
    let fx = Fixture::new(&own.policy("25%").set("memory_high", "\"32M\"").set("memory_max", "\"64M\""));
    let session = session_id("psi-killed");

    let mut leaker = fx.run_in(&session, "leak", &[hostile!(), "leak-on-input"]);
    let server = leaker.ready()["pid"].as_i64().expect("pid") as i32;
    let leaf = server_leaf(&fx, &leaker, server, &global, &session, "leak");
    assert_eq!((leaf.limit("memory.high"), leaf.limit("memory.max")), (Some(mib(32)), Some(mib(64))), "{leaf:?}");

    // The leak stalls, held at its memory.high (without swap the kernel holds it there), until
    // the average has taken it in, twice over max_pressure.
    leaker.send_line("go");
    leaf.wait_counters("memory.events", |e| e.get("high") > 0)
        .unwrap_or_else(|e| panic!("never throttled at memory.high: {e}; {}", leaker.diag()));
    let mut avg10 = 0.0;
    let stalled = poll_until(hang_guard(), Duration::from_millis(200), || {
        avg10 = global.memory_pressure_avg10();
        avg10 > 2.0 * MAX_PRESSURE
    });
    assert!(stalled, "some avg10 never rose above {}% (last {avg10}); {}", 2.0 * MAX_PRESSURE, leaker.diag());
    // Then its memory.high is lifted: it runs into its memory.max and the kernel kills it.
    std::fs::write(leaf.path().join("memory.high"), "max").unwrap_or_else(|e| panic!("lift {leaf:?} memory.high: {e}"));
    leaker.assert_exit(123, Some("exceeded memory_max"));
    let events = global.counters("memory.events");
    assert!(events.get("oom_kill") > 0, "the leak was not OOM-killed: {global:?} memory.events {events}");
    // The situation of the finding: the server that stalled is dead, the average says pressed.
    let avg10 = global.memory_pressure_avg10();
    assert!(avg10 > MAX_PRESSURE, "some avg10 {avg10} is not above max_pressure: the scenario did not happen");

    let mut next = fx.run_in(&session_id("psi-next"), "next", &[hostile!(), "echo"]);
    next.ready();
    eprintln!("admitted with some avg10 {avg10} before, {} after", global.memory_pressure_avg10());
    next.close_stdin();
    next.assert_exit(0, None);
}

// See: issue 9, finding 9.
#[test]
fn issue_9_an_ongoing_leak_at_the_global_level_refuses_new_servers() {
    if !kernel_or_skip() {
        return;
    }
    let own = OwnGlobal::new("psi-ongoing");
    let global = own.0.clone();
    // The global memory.high throttles the leak from 48M on; nothing stops it: it stays there,
    // stalling, for as long as it runs.
    let fx = Fixture::new(
        &own.policy("25%")
            .set("memory_high", "\"max\"")
            .set("memory_max", "\"128M\"")
            .set_in("global", "memory_max", "\"256M\"")
            .set_in("global", "memory_high", "\"48M\"")
            .set_in("session", "memory_max", "\"128M\"")
            .set_in("session", "memory_high", "\"max\""),
    );
    let session = session_id("psi-ongoing");

    let mut leaker = fx.run_in(&session, "leak", &[hostile!(), "leak-on-input", "120"]);
    let server = leaker.ready()["pid"].as_i64().expect("pid") as i32;
    server_leaf(&fx, &leaker, server, &global, &session, "leak");
    assert_eq!(global.limit("memory.high"), Some(mib(48)), "{global:?}: memory.high");

    leaker.send_line("go");
    global
        .wait_counters("memory.events", |e| e.get("high") > 0)
        .unwrap_or_else(|e| panic!("never throttled at the global memory.high: {e}; {}", leaker.diag()));
    // The fast path admits while the average is at or under max_pressure; wait until it is over.
    let mut avg10 = 0.0;
    let pressed = poll_until(hang_guard(), Duration::from_millis(200), || {
        avg10 = global.memory_pressure_avg10();
        avg10 > MAX_PRESSURE
    });
    assert!(pressed, "some avg10 never rose above {MAX_PRESSURE}% (last {avg10}); {}", leaker.diag());

    let mut next = fx.run_in(&session_id("psi-refused"), "next", &[hostile!(), "echo"]);
    next.close_stdin();
    let stderr = next.assert_exit(122, Some("refused"));
    assert!(
        stderr.lines().any(|l| l.contains("memory pressure")
            && l.contains("(PSI some over the last ")
            && l.contains(&format!(" s of {}) is above max_pressure 25%", global.path().display()))),
        "not refused for the memory pressure of the present; stderr:\n{stderr}"
    );
    let events = global.counters("memory.events");
    assert_eq!(events.get("oom_kill"), 0, "the leak was killed, not throttled: {global:?} memory.events {events}");

    leaker.close_stdin();
    leaker.wait_exit();
}
