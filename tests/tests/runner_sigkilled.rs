//! The runner itself is SIGKILLed (it cannot clean up): its direct child, the server, dies at
//! once; the daemon the server left may survive, and `mcp-runner gc` sweeps it.

use std::os::unix::process::ExitStatusExt;
use std::time::Instant;

use mcp_runner_tests::{
    Fixture, Pidfd, Policy, alive, describe, hang_guard, hostile, proc_stat, wait_gone, zombies_of,
};
use nix::sys::signal::Signal;
use nix::sys::wait::waitpid;
use nix::unistd::Pid;

#[test]
fn server_dies_with_the_runner_and_gc_sweeps_the_rest() {
    // Hygiene, not part of what is tested: the killed runner's orphans are reparented to this
    // process instead of init, so that this test reaps them itself (an init that reaps late
    // or never, as in some containers, would keep them as zombies). A user session has the
    // same shape: systemd --user is a subreaper.
    // (macOS has no subreaper: launchd adopts and reaps them there.)
    // SAFETY: prctl(PR_SET_CHILD_SUBREAPER, 1) takes no pointers.
    #[cfg(target_os = "linux")]
    assert_eq!(unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1) }, 0);

    let fx = Fixture::new(&Policy::default());
    let mut runner = fx.run("daemon", &[hostile!(), "daemon"]);
    let ready = runner.ready();
    let server = ready["pid"].as_i64().expect("pid") as i32;
    let daemon = ready["daemon"].as_i64().expect("daemon pid") as i32;
    let marker = runner.marker.clone();
    // Opened before the kill, so the pid cannot be reused under us.
    let server_fd = Pidfd::open(server).expect("pidfd_open(server)");

    let killed = Instant::now();
    runner.signal(Signal::SIGKILL);
    // The server's stdin (our pipe) stays open, so only the runner's crash safety (PDEATHSIG
    // on its direct child on Linux, the crash guard's sweep on macOS) can end it.
    assert!(server_fd.wait(hang_guard()), "server {server} survived the runner's SIGKILL for {:?}", hang_guard());
    let took = killed.elapsed();
    assert_eq!(runner.wait_exit().signal(), Some(libc::SIGKILL));
    eprintln!(
        "server died {took:?} after the runner's SIGKILL; daemon {}",
        if alive(daemon) { "survived" } else { "died too" }
    );

    let gc = fx.output(&["gc"]);
    eprintln!("gc stdout:\n{}gc stderr:\n{}", gc.stdout, gc.stderr);
    assert_eq!(gc.status.code(), Some(0), "gc: {gc:?}");
    // gc may return right after SIGKILL, before the kernel has finished the process.
    assert!(wait_gone(daemon, hang_guard()), "daemon {daemon} survived gc");
    for pid in mcp_runner_tests::tree_marker_processes(&marker) {
        assert!(wait_gone(pid, hang_guard()), "{} survived gc", describe(&[pid]));
    }

    // Reap the orphans we adopted (see above), then nothing may be left at all.
    for pid in [server, daemon] {
        if proc_stat(pid).is_some_and(|s| s.ppid == std::process::id() as i32) {
            waitpid(Pid::from_raw(pid), None).expect("waitpid(orphan)");
        }
    }
    runner.assert_nothing_left();
    let zombies = zombies_of(std::process::id() as i32);
    assert!(zombies.is_empty(), "zombies adopted from the tree: {}", describe(&zombies));
}
