//! A server that double-forks a setsid() daemon: the daemon escapes the process group and
//! the session, and is orphaned. The runner, a child subreaper, adopts it and must take it
//! down with the rest of the tree when the session closes.

use mcp_runner_tests::{Fixture, Policy, hostile, proc_stat};

#[test]
fn daemon_is_adopted_and_torn_down() {
    let fx = Fixture::new(&Policy::default());
    let mut runner = fx.run("daemon", &[hostile!(), "daemon"]);
    let ready = runner.ready();
    let server = ready["pid"].as_i64().expect("pid") as i32;
    let daemon = ready["daemon"].as_i64().expect("daemon pid") as i32;

    let server_stat = proc_stat(server).expect("server exists");
    let daemon_stat = proc_stat(daemon).expect("daemon exists");
    assert_ne!(daemon_stat.session, server_stat.session, "daemon did not escape the session");
    assert_ne!(daemon_stat.pgrp, server_stat.pgrp, "daemon did not escape the process group");
    // The intermediate process was reaped before `ready`, so the daemon is already an orphan.
    // Orphans go to the nearest subreaper: this fails if the runner is not one (the daemon
    // would belong to init, or to whatever subreaper runs the tests). macOS has none: launchd
    // adopts the daemon, and the runner must find it by lineage.
    #[cfg(target_os = "linux")]
    assert_eq!(
        daemon_stat.ppid, runner.pid,
        "the orphaned daemon was not reparented to the runner: is it PR_SET_CHILD_SUBREAPER?"
    );
    #[cfg(target_os = "macos")]
    assert_eq!(daemon_stat.ppid, 1, "the orphaned daemon was not adopted by launchd");
    assert!(runner.tree().contains(&daemon), "daemon lacks the marker");

    runner.close_stdin();
    // The server exits 0 by itself; the runner kills what remains (the daemon) and exits with
    // the server's code only when the daemon is gone.
    runner.assert_exit(0, None);
    assert!(proc_stat(daemon).is_none(), "daemon {daemon} still exists");
}
