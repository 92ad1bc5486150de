//! Kernel enforcement of memory_max (cgroupfs driver, cgroup v2 guest): a leaker under
//! memory_high = "max", memory_max = "64M" is OOM-killed by the kernel at its leaf's
//! memory.max, as a whole leaf (memory.oom.group). The runner says so, exits 123, removes the
//! leaf, and nothing of the tree is left.
//!
//! A well-behaved server in the same session keeps the session cgroup alive after the leaker
//! is gone, so that its counters can be read: hierarchical memory.events shows the OOM kill
//! below the session, memory.events.local shows that neither the session's nor the global
//! limit was the cause. Then it leaves too, and the session cgroup goes with it.
#![cfg(target_os = "linux")]

use mcp_runner_tests::kernel::{self, Cgroup, kernel_or_skip, mib, server_leaf, session_id};
use mcp_runner_tests::{Fixture, hostile};

#[test]
fn kernel_leak_is_oom_killed_at_the_leaf_memory_max() {
    if !kernel_or_skip() {
        return;
    }
    let fx = Fixture::new(&kernel::policy().set("memory_high", "\"max\"").set("memory_max", "\"64M\""));
    let session = session_id("oom");
    let global = Cgroup::default_global();
    let session_cg = Cgroup::session(&global, &session);

    let mut anchor = fx.run_in(&session, "anchor", &[hostile!(), "echo"]);
    let anchor_pid = anchor.ready()["pid"].as_i64().expect("pid") as i32;
    let anchor_leaf = server_leaf(&fx, &anchor, anchor_pid, &global, &session, "anchor");

    let mut leaker = fx.run_in(&session, "leak", &[hostile!(), "leak-on-input"]);
    let server = leaker.ready()["pid"].as_i64().expect("pid") as i32;
    let leaf = server_leaf(&fx, &leaker, server, &global, &session, "leak");
    assert_eq!(leaf.limit("memory.max"), Some(mib(64)), "{leaf:?}: memory.max");
    leaf.assert_no_throttle_below_max();
    assert_eq!(leaf.procs(), vec![server], "{leaf:?}: cgroup.procs");
    let global_local_before = global.counters("memory.events.local");

    leaker.send_line("go");
    let stderr = leaker.assert_exit(123, Some("exceeded memory_max"));
    assert!(
        stderr
            .lines()
            .any(|l| l.contains("(the server's own limit)") && l.contains("the kernel OOM-killed the whole server")),
        "no line naming the server's own limit and the kernel's OOM kill; stderr:\n{stderr}"
    );
    assert!(!leaf.exists(), "the leaf {leaf:?} is left after the runner exited");

    // The kernel's account, from the session that outlives the leaf.
    let events = session_cg.counters("memory.events");
    let local = session_cg.counters("memory.events.local");
    let anchor_local = anchor_leaf.counters("memory.events.local");
    assert!(events.get("oom_kill") > 0, "no OOM kill under the session: memory.events {events}");
    assert!(events.get("oom_group_kill") > 0, "the leaf was not killed as a group: memory.events {events}");
    assert_eq!((local.get("max"), local.get("oom")), (0, 0), "the session's own limit was hit: .local {local}");
    assert_eq!((anchor_local.get("max"), anchor_local.get("oom")), (0, 0), "anchor leaf .local {anchor_local}");
    // What is left of the session's hierarchical count came from the leaker's leaf, the only
    // other cgroup below the session: its own memory.max was hit and invoked the OOM killer.
    assert!(events.get("oom") > 0 && events.get("max") > 0, "memory.events {events}");
    let global_local = global.counters("memory.events.local").since(&global_local_before);
    assert_eq!((global_local.get("max"), global_local.get("oom")), (0, 0), "the global limit was hit: {global_local}");

    anchor.close_stdin();
    anchor.assert_exit(0, None);
    assert!(!anchor_leaf.exists(), "the anchor's leaf {anchor_leaf:?} is left");
    assert!(!session_cg.exists(), "the session cgroup {session_cg:?} is left after its last server");
}
