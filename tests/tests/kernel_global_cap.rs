//! The global cap holds every session together (cgroupfs driver, cgroup v2 guest):
//! [global] memory_max = "128M", [session] memory_max = "96M", [defaults] memory_max = "64M",
//! memory_high = "max" everywhere. Three leakers in three sessions, each stopping at 48 MiB
//! (about 49 MiB charged): each within its own and its session's limit, together over the
//! global 128M. (Two servers of at most 64M each cannot reliably exceed 128M together, hence
//! three.) The kernel OOM-kills at the global cgroup's memory.max (its memory.events.local
//! `max` and `oom` rose, and no session or leaf hit its own limit), the runner names the global
//! cap as the level for every server killed, the others keep running, and the global
//! memory.peak over the test never exceeded 128M. The kernel may kill more than one (see
//! kernel_session_budget.rs), so the test asks for at least one victim.
//!
//! Session shares would split the global 128M three ways as each session's memory.high (42.7M
//! each: a throttle, before any memory.max is reached). [session] floor = "96M" (the floors alone
//! exceed the global cap, so every session gets its floor) keeps every session's memory.high at
//! its memory.max: this test is about the kernel's backstop, the global memory.max.
//!
//! The global cgroup is shared by every test of one guest boot (run them with
//! --test-threads=1): its counters are read as deltas, its peak through a reset file (6.12+).
#![cfg(target_os = "linux")]

use mcp_runner_tests::kernel::{
    self, Cgroup, PeakFromNow, assert_oom_victims, kernel_or_skip, killed_or_alive, mib, server_leaf, session_id,
};
use mcp_runner_tests::{Fixture, RunnerProc, hostile};

#[test]
fn kernel_global_cap_holds_three_sessions_together() {
    if !kernel_or_skip() {
        return;
    }
    let fx = Fixture::new(
        &kernel::policy()
            .set("memory_high", "\"max\"")
            .set("memory_max", "\"64M\"")
            .set_in("global", "memory_max", "\"128M\"")
            .set_in("global", "memory_high", "\"max\"")
            .set_in("session", "memory_max", "\"96M\"")
            .set_in("session", "memory_high", "\"max\"")
            .set_in("session", "floor", "\"96M\""),
    );
    let global = Cgroup::default_global();
    let sessions: Vec<String> = (1..=3).map(|n| session_id(&format!("global{n}"))).collect();

    let mut runners: Vec<(RunnerProc, Cgroup)> = sessions
        .iter()
        .map(|session| {
            let mut runner = fx.run_in(session, "leak", &[hostile!(), "leak-on-input", "48"]);
            let server = runner.ready()["pid"].as_i64().expect("pid") as i32;
            let leaf = server_leaf(&fx, &runner, server, &global, session, "leak");
            (runner, leaf)
        })
        .collect();
    assert_eq!(global.limit("memory.max"), Some(mib(128)), "{global:?}: memory.max");
    global.assert_no_throttle_below_max();
    for session in &sessions {
        let session_cg = Cgroup::session(&global, session);
        assert_eq!(session_cg.limit("memory.max"), Some(mib(96)), "{session_cg:?}: memory.max");
        session_cg.assert_no_throttle_below_max();
    }
    let before = global.counters("memory.events");
    let local_before = global.counters("memory.events.local");
    let peak = PeakFromNow::start(&global, "memory.peak");

    for (runner, _) in &mut runners {
        runner.send_line("go");
    }
    let (mut victims, mut survivors) = killed_or_alive(runners);
    assert!(!victims.is_empty(), "every leaker finished and lives: the global cap did not hold them");
    assert_oom_victims(&mut victims, "(the global cap over all sessions)");

    // The kernel's account: the global limit was hit and OOM-killed; nothing below hit its own.
    let events = global.counters("memory.events").since(&before);
    let local = global.counters("memory.events.local").since(&local_before);
    assert!(local.get("max") > 0 && local.get("oom") > 0, "global memory.events.local (delta) {local}");
    assert_eq!(events.get("max"), local.get("max"), "a session or leaf hit its own memory.max: {events} vs {local}");
    assert_eq!(events.get("oom"), local.get("oom"), "a session or leaf OOMed on its own: {events} vs {local}");
    for (_, leaf) in &survivors {
        let l = leaf.counters("memory.events.local");
        assert_eq!((l.get("max"), l.get("oom")), (0, 0), "{leaf:?} .local {l}");
    }
    let peak = peak.get();
    assert!(peak <= mib(128), "the global memory.peak {peak} > 128M");
    eprintln!("{} victim(s); global memory.events (delta) {events}, .local {local}, memory.peak {peak}", victims.len());

    for (survivor, leaf) in &mut survivors {
        survivor.close_stdin();
        let code = survivor.exit_code();
        assert_eq!(code, 0, "a survivor exits by itself at EOF; stderr:\n{}", survivor.stderr());
        survivor.assert_nothing_left();
        assert!(!leaf.exists(), "the survivor's leaf {leaf:?} is left");
    }
    for session in &sessions {
        let cg = Cgroup::session(&global, session);
        assert!(!cg.exists(), "the session cgroup {cg:?} is left after its last server");
    }
}
