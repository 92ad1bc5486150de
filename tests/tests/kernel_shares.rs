//! Session shares on the kernel (cgroupfs driver, cgroup v2 guest): the global memory_max is
//! split between the live sessions by weight and written as each session cgroup's
//! memory.high, recomputed when a session starts and when it ends; memory.max stays the
//! policy's session cap.
#![cfg(target_os = "linux")]

use mcp_runner_tests::kernel::{Cgroup, kernel_or_skip, mib, session_id};
use mcp_runner_tests::{Fixture, Policy, hostile};

#[test]
fn kernel_session_shares_follow_sessions_coming_and_going() {
    if !kernel_or_skip() {
        return;
    }
    // global 200M; a session may have up to 150M; its memory_high is 90% of its max; the
    // floor is low enough not to matter.
    let fx = Fixture::new(
        &Policy::default()
            .set("memory_max", "\"64M\"")
            .set_in("global", "memory_max", "\"200M\"")
            .set_in("global", "max_pressure", "\"max\"")
            .set_in("global", "min_headroom", "\"0\"")
            .set_in("session", "memory_max", "\"150M\"")
            .set_in("session", "memory_high", "\"90%\"")
            .set_in("session", "floor", "\"10M\""),
    );
    let global = Cgroup::default_global();
    let (sa, sb) = (session_id("share-a"), session_id("share-b"));
    let (ca, cb) = (Cgroup::session(&global, &sa), Cgroup::session(&global, &sb));
    let ninety = |bytes: u64| bytes * 9 / 10;
    // The kernel keeps memory.high in whole pages (rounded down).
    let close = |got: Option<u64>, want: u64| got.is_some_and(|g| g <= want && want - g < 4096);

    let mut a = fx.run_in(&sa, "a", &[hostile!(), "echo"]);
    a.ready();
    // Alone: the whole global cap, clamped to the session cap of 150M.
    assert!(close(ca.limit("memory.high"), ninety(mib(150))), "{ca:?} alone: {:?}", ca.limit("memory.high"));
    assert_eq!(ca.limit("memory.max"), Some(mib(150)), "{ca:?}: memory.max is the policy's cap");

    // A second session with two servers (weight 2 against 1): 200M split 1:2.
    let mut b1 = fx.run_in(&sb, "b1", &[hostile!(), "echo"]);
    b1.ready();
    let mut b2 = fx.run_in(&sb, "b2", &[hostile!(), "echo"]);
    b2.ready();
    let share_a = mib(200) / 3;
    let share_b = mib(200) * 2 / 3;
    assert!(
        close(ca.limit("memory.high"), ninety(share_a)),
        "{ca:?}: {:?} vs {}",
        ca.limit("memory.high"),
        ninety(share_a)
    );
    assert!(
        close(cb.limit("memory.high"), ninety(share_b)),
        "{cb:?}: {:?} vs {}",
        cb.limit("memory.high"),
        ninety(share_b)
    );
    assert_eq!(ca.limit("memory.max"), Some(mib(150)), "memory.max never shrinks under a live session");

    // B leaves: A gets the whole cap back.
    for r in [&mut b1, &mut b2] {
        r.close_stdin();
        r.assert_exit(0, None);
    }
    assert!(close(ca.limit("memory.high"), ninety(mib(150))), "{ca:?} after B left: {:?}", ca.limit("memory.high"));
    a.close_stdin();
    a.assert_exit(0, None);
}
