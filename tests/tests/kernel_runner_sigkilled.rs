//! The runner itself is SIGKILLed under the cgroupfs driver (cgroup v2 guest): its server, the
//! direct child, dies at once (parent-death signal); what else is left in the leaf (a setsid()
//! daemon) is found by `mcp-runner gc` through the record's `cgroup` field and killed, and the
//! leaf and the session cgroup are removed.
#![cfg(target_os = "linux")]

use std::os::unix::process::ExitStatusExt;

use mcp_runner_tests::kernel::{self, Cgroup, kernel_or_skip, server_leaf, session_id};
use mcp_runner_tests::{
    Fixture, Pidfd, describe, hang_guard, hostile, proc_stat, tree_marker_processes, wait_gone, zombies_of,
};
use nix::sys::signal::Signal;
use nix::sys::wait::waitpid;
use nix::unistd::Pid;

#[test]
fn kernel_gc_removes_what_a_sigkilled_runner_left_in_its_leaf() {
    if !kernel_or_skip() {
        return;
    }
    // The killed runner's orphans are reparented to this process, which reaps them (see
    // runner_sigkilled.rs): the guest's init is the test launcher.
    // SAFETY: prctl(PR_SET_CHILD_SUBREAPER, 1) takes no pointers.
    assert_eq!(unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1) }, 0);

    let fx = Fixture::new(&kernel::policy());
    let session = session_id("sigkill");
    let global = Cgroup::default_global();
    let session_cg = Cgroup::session(&global, &session);

    let mut runner = fx.run_in(&session, "daemon", &[hostile!(), "daemon"]);
    let ready = runner.ready();
    let server = ready["pid"].as_i64().expect("pid") as i32;
    let daemon = ready["daemon"].as_i64().expect("daemon pid") as i32;
    let leaf = server_leaf(&fx, &runner, server, &global, &session, "daemon");
    let marker = runner.marker.clone();
    let server_fd = Pidfd::open(server).expect("pidfd_open(server)");

    runner.signal(Signal::SIGKILL);
    // Our pipe keeps the server's stdin open: only the runner's crash safety can end it.
    assert!(server_fd.wait(hang_guard()), "server {server} survived the runner's SIGKILL");
    assert_eq!(runner.wait_exit().signal(), Some(libc::SIGKILL));
    let left = leaf.procs();
    eprintln!("after the runner's SIGKILL, {leaf:?} holds {}", describe(&left));
    assert!(!left.contains(&server), "the server is still in its leaf");

    let gc = fx.output(&["gc"]);
    eprintln!("gc stdout:\n{}gc stderr:\n{}", gc.stdout, gc.stderr);
    assert_eq!(gc.status.code(), Some(0), "gc: {gc:?}");
    assert!(wait_gone(daemon, hang_guard()), "daemon {daemon} survived gc");
    for pid in tree_marker_processes(&marker) {
        assert!(wait_gone(pid, hang_guard()), "{} survived gc", describe(&[pid]));
    }
    assert!(!leaf.exists(), "gc left the dead runner's leaf {leaf:?}");
    assert!(!session_cg.exists(), "gc left the session cgroup {session_cg:?} of the dead runner");

    for pid in [server, daemon] {
        if proc_stat(pid).is_some_and(|s| s.ppid == std::process::id() as i32) {
            waitpid(Pid::from_raw(pid), None).expect("waitpid(orphan)");
        }
    }
    runner.assert_nothing_left();
    let zombies = zombies_of(std::process::id() as i32);
    assert!(zombies.is_empty(), "zombies adopted from the tree: {}", describe(&zombies));
}
