//! memory.high is a throttle, not a kill (cgroupfs driver, cgroup v2 guest): a leaker under
//! memory_high = "32M", memory_max = "256M" is held at memory.high by the kernel (memory.events
//! `high` rises, no OOM kill, memory.max never reached); the runner reports it, and once it has
//! stayed pinned there for throttle_timeout = "5s" the runner kills it (exit 123, "memory stayed
//! above memory_high"). The runner's rule, not the kernel, ends it: the session's counters show
//! throttling and no OOM kill at all.
#![cfg(target_os = "linux")]

use mcp_runner_tests::kernel::{self, Cgroup, kernel_or_skip, mib, server_leaf, session_id};
use mcp_runner_tests::{Fixture, hostile};

#[test]
fn kernel_throttled_at_memory_high_then_killed_by_throttle_timeout() {
    if !kernel_or_skip() {
        return;
    }
    let fx = Fixture::new(
        &kernel::policy().set("memory_high", "\"32M\"").set("memory_max", "\"256M\"").set("throttle_timeout", "\"5s\""),
    );
    let session = session_id("throttle");
    let global = Cgroup::default_global();
    let session_cg = Cgroup::session(&global, &session);

    // Keeps the session cgroup (and its counters) alive after the leaker's leaf is gone.
    let mut anchor = fx.run_in(&session, "anchor", &[hostile!(), "echo"]);
    anchor.ready();

    let mut leaker = fx.run_in(&session, "leak", &[hostile!(), "leak-on-input"]);
    let server = leaker.ready()["pid"].as_i64().expect("pid") as i32;
    let leaf = server_leaf(&fx, &leaker, server, &global, &session, "leak");
    assert_eq!(leaf.limit("memory.high"), Some(mib(32)), "{leaf:?}: memory.high");
    assert_eq!(leaf.limit("memory.max"), Some(mib(256)), "{leaf:?}: memory.max");

    leaker.send_line("go");
    // While it runs: the kernel throttles it at memory.high and kills nothing.
    let throttled = leaf
        .wait_counters("memory.events", |e| e.get("high") > 0)
        .unwrap_or_else(|e| panic!("never throttled at memory.high: {e}; {}", leaker.diag()));
    assert_eq!(throttled.get("oom_kill"), 0, "OOM kill while throttled: memory.events {throttled}");
    assert_eq!(throttled.get("max"), 0, "memory.max reached while throttled: memory.events {throttled}");

    let stderr = leaker.assert_exit(123, Some("memory stayed above memory_high"));
    assert!(
        stderr.lines().any(|l| l.starts_with("mcp-runner: ") && l.contains("reached memory_high")),
        "the runner did not report the throttling; stderr:\n{stderr}"
    );
    assert!(!leaf.exists(), "the leaf {leaf:?} is left after the runner exited");

    // Over the whole run: throttled many times, never at memory.max, never OOM-killed.
    let events = session_cg.counters("memory.events");
    assert!(events.get("high") > 0, "session memory.events {events}");
    assert_eq!(
        (events.get("max"), events.get("oom"), events.get("oom_kill")),
        (0, 0, 0),
        "the kernel, not the throttle_timeout rule, stopped it: session memory.events {events}"
    );

    anchor.close_stdin();
    anchor.assert_exit(0, None);
    assert!(!session_cg.exists(), "the session cgroup {session_cg:?} is left after its last server");
}
