//! A session's budget caps its servers together (cgroupfs driver, cgroup v2 guest):
//! [session] memory_max = "96M", [defaults] memory_max = "64M", memory_high = "max". Two
//! leakers in one --session, each stopping at 56 MiB (about 57 MiB charged): each is within its
//! own 64M, together they are over the session's 96M. The kernel OOM-kills at the session's
//! memory.max (the session's memory.events.local `max` and `oom` rose, and no leaf ever hit its
//! own limit: the session's hierarchical `max` and `oom` equal its local ones), the runner of
//! every server killed names the session as the level, and the session's memory.peak never
//! exceeded 96M. Usually one leaker dies and the other finishes; under the emulator the kernel
//! was seen to kill both (a second OOM kill a few ms after the first, before the first victim's
//! memory was released), so the test accepts one or two victims.
//!
//! A small well-behaved server in the session keeps the session cgroup, and so its counters,
//! alive until the end. memory_high is "max" at every level: without swap a cgroup above
//! memory.high is throttled rather than pushed on to memory.max (see kernel_throttle.rs).
#![cfg(target_os = "linux")]

use mcp_runner_tests::kernel::{
    self, Cgroup, assert_oom_victims, kernel_or_skip, killed_or_alive, mib, server_leaf, session_id,
};
use mcp_runner_tests::{Fixture, hostile};

#[test]
fn kernel_session_budget_caps_two_servers_together() {
    if !kernel_or_skip() {
        return;
    }
    let fx = Fixture::new(
        &kernel::policy()
            .set("memory_high", "\"max\"")
            .set("memory_max", "\"64M\"")
            .set_in("session", "memory_max", "\"96M\"")
            .set_in("session", "memory_high", "\"max\""),
    );
    let session = session_id("budget");
    let global = Cgroup::default_global();
    let session_cg = Cgroup::session(&global, &session);

    let mut anchor = fx.run_in(&session, "anchor", &[hostile!(), "echo"]);
    anchor.ready();
    let mut leakers: Vec<_> = ["leak-a", "leak-b"]
        .into_iter()
        .map(|name| {
            let mut runner = fx.run_in(&session, name, &[hostile!(), "leak-on-input", "56"]);
            let server = runner.ready()["pid"].as_i64().expect("pid") as i32;
            let leaf = server_leaf(&fx, &runner, server, &global, &session, name);
            assert_eq!(leaf.limit("memory.max"), Some(mib(64)), "{leaf:?}: memory.max");
            (runner, leaf)
        })
        .collect();
    assert_eq!(session_cg.limit("memory.max"), Some(mib(96)), "{session_cg:?}: memory.max");
    session_cg.assert_no_throttle_below_max();

    for (runner, _) in &mut leakers {
        runner.send_line("go");
    }
    let (mut victims, mut survivors) = killed_or_alive(leakers);
    assert!(!victims.is_empty(), "both leakers finished and live: the session's budget did not hold them");
    assert_oom_victims(&mut victims, "(the session's limit, shared with its other servers)");

    // The kernel's account: the session's own limit was hit and OOM-killed; no leaf hit its own.
    let events = session_cg.counters("memory.events");
    let local = session_cg.counters("memory.events.local");
    assert!(events.get("oom_kill") > 0, "session memory.events {events}");
    assert!(local.get("max") > 0 && local.get("oom") > 0, "session memory.events.local {local}");
    assert_eq!(
        events.get("max"),
        local.get("max"),
        "a leaf hit its own memory.max: session {events} vs .local {local}"
    );
    assert_eq!(events.get("oom"), local.get("oom"), "a leaf OOMed on its own: session {events} vs .local {local}");
    for (_, leaf) in &survivors {
        let l = leaf.counters("memory.events.local");
        assert_eq!((l.get("max"), l.get("oom")), (0, 0), "survivor {leaf:?} .local {l}");
    }
    let peak = session_cg.value("memory.peak");
    assert!(peak <= mib(96), "the session's memory.peak {peak} > 96M");
    eprintln!("{} victim(s); session memory.events {events}, .local {local}, memory.peak {peak}", victims.len());

    for (survivor, leaf) in &mut survivors {
        survivor.close_stdin();
        let code = survivor.exit_code();
        assert_eq!(code, 0, "the survivor exits by itself at EOF; stderr:\n{}", survivor.stderr());
        survivor.assert_nothing_left();
        assert!(!leaf.exists(), "the survivor's leaf {leaf:?} is left");
    }
    anchor.close_stdin();
    anchor.assert_exit(0, None);
    assert!(!session_cg.exists(), "the session cgroup {session_cg:?} is left after its last server");
}
