//! memory_max under the systemd driver (systemd guest, root): a leaker under memory_high =
//! "max", memory_max = "64M" hits its scope's MemoryMax, the kernel OOM-kills it, and the
//! runner takes the rest of the scope down at once (a helper process in the same scope goes
//! too), says so, naming the server's own limit, exits 123, and nothing of the tree is left.
//!
//! The scope is collected by systemd once it is empty, so the kernel's account is read from the
//! session slice, kept alive by a well-behaved server of the same session: its hierarchical
//! memory.events shows the OOM kill below it, its memory.events.local (and the anchor's) that
//! neither the session's limit nor another scope's was the cause.
//!
//! (systemd 252 gives a scope memory.oom.group 0, unlike the cgroupfs driver's leaves: the
//! kernel kills the biggest process, and the runner, told by memory.events, kills the rest.)
#![cfg(target_os = "linux")]

use mcp_runner_tests::kernel::mib;
use mcp_runner_tests::systemd::{Manager, RunnerUnits, session_id, systemd_or_skip};
use mcp_runner_tests::{Fixture, Policy, describe, hostile, proc_stat};

#[test]
fn systemd_leak_is_oom_killed_at_its_scope_memory_max() {
    if !systemd_or_skip() {
        return;
    }
    let m = Manager::System;
    let fx = Fixture::new(&Policy::default().set("memory_high", "\"max\"").set("memory_max", "\"64M\""));
    let session = session_id("oom");

    let mut anchor = fx.run_in(&session, "anchor", &[hostile!(), "echo"]);
    anchor.ready();
    let anchor_units = RunnerUnits::of(&anchor, &session, "anchor");
    let anchor_cg = anchor_units.server_cgroup(m);
    assert!(anchor_cg.exists(), "the anchor is not in {anchor_cg:?}; {}", anchor.diag());

    // The leaker with a helper in its scope: `sh` starts `sleep` and becomes the leaker.
    let script = format!("sleep 1000000 & exec {} leak-on-input", hostile!());
    let mut leaker = fx.run_in(&session, "leak", &["/bin/sh", "-c", script.as_str()]);
    let server = leaker.ready()["pid"].as_i64().expect("pid") as i32;
    let units = RunnerUnits::of(&leaker, &session, "leak");
    let scope = units.server_cgroup(m);
    let session_cg = units.session_cgroup(m);
    assert_eq!(scope.limit("memory.max"), Some(mib(64)), "{scope:?}: memory.max");
    assert_eq!(scope.limit("memory.high"), None, "{scope:?}: memory.high");
    let props = m.show(&units.server_scope, &["MemoryMax", "MemoryHigh"]);
    assert_eq!((props.get("MemoryMax"), props.get("MemoryHigh")), ("67108864", "infinity"), "{props:?}");
    let procs = scope.procs();
    assert_eq!(procs.len(), 2, "{scope:?} should hold the leaker and its helper: {}", describe(&procs));
    let helper = *procs.iter().find(|&&p| p != server).expect("helper");
    let helper_start = proc_stat(helper).expect("helper").start_time;
    let before = session_cg.counters("memory.events");
    let oom_group = scope.read("memory.oom.group");

    leaker.send_line("go");
    let stderr = leaker.assert_exit(123, Some("exceeded memory_max"));
    assert!(
        stderr.lines().any(|l| l.starts_with("mcp-runner: ") && l.contains("(the server's own limit)")),
        "no line naming the server's own limit; stderr:\n{stderr}"
    );
    assert!(
        proc_stat(helper).is_none_or(|s| s.start_time != helper_start),
        "the helper {helper} in the leaker's scope survived"
    );
    m.wait_units_gone(&units.scopes()).unwrap_or_else(|e| panic!("after the OOM kill: {e}"));
    assert!(!scope.exists(), "the scope's cgroup {scope:?} is left");

    // The kernel's account, from the session slice that outlives the scope.
    let events = session_cg.counters("memory.events").since(&before);
    let local = session_cg.counters("memory.events.local");
    let anchor_local = anchor_cg.counters("memory.events.local");
    eprintln!("session memory.events (delta) {events}; scope memory.oom.group was {}", oom_group.trim());
    assert!(events.get("oom_kill") > 0, "no OOM kill below the session: memory.events (delta) {events}");
    assert!(events.get("max") > 0 && events.get("oom") > 0, "no memory.max hit below the session: {events}");
    assert_eq!((local.get("max"), local.get("oom")), (0, 0), "the session's own limit was hit: .local {local}");
    assert_eq!((anchor_local.get("max"), anchor_local.get("oom")), (0, 0), "anchor .local {anchor_local}");

    anchor.close_stdin();
    anchor.assert_exit(0, None);
    m.wait_units_gone(&anchor_units.scopes()).unwrap_or_else(|e| panic!("after the anchor exited: {e}"));
}
