//! Teardown under the cgroupfs driver (cgroup v2 guest): whatever escaped the process group and
//! the session (a setsid() daemon from a double fork) is still in the server's leaf, and goes
//! with it when the session ends; a tree that ignores SIGTERM is SIGKILLed (cgroup.kill) after
//! kill_timeout. Afterwards the leaf and, with its last server, the session cgroup are removed.
#![cfg(target_os = "linux")]

use std::collections::BTreeSet;

use mcp_runner_tests::kernel::{self, Cgroup, kernel_or_skip, server_leaf, session_id};
use mcp_runner_tests::{Fixture, hostile, proc_stat};

#[test]
fn kernel_setsid_daemon_goes_with_its_leaf() {
    if !kernel_or_skip() {
        return;
    }
    let fx = Fixture::new(&kernel::policy());
    let session = session_id("daemon");
    let global = Cgroup::default_global();
    let session_cg = Cgroup::session(&global, &session);

    let mut runner = fx.run_in(&session, "daemon", &[hostile!(), "daemon"]);
    let ready = runner.ready();
    let server = ready["pid"].as_i64().expect("pid") as i32;
    let daemon = ready["daemon"].as_i64().expect("daemon pid") as i32;
    let leaf = server_leaf(&fx, &runner, server, &global, &session, "daemon");

    let (server_stat, daemon_stat) = (proc_stat(server).expect("server"), proc_stat(daemon).expect("daemon"));
    assert_ne!(daemon_stat.session, server_stat.session, "the daemon did not escape the session");
    assert_eq!(daemon_stat.ppid, runner.pid, "the orphaned daemon was not reparented to the runner");
    // It left the session and the process group, not the cgroup: the leaf holds exactly the
    // server and the daemon (the intermediate was reaped before `ready`).
    assert_eq!(leaf.procs().into_iter().collect::<BTreeSet<_>>(), BTreeSet::from([server, daemon]), "{leaf:?}");
    assert!(leaf.populated());

    runner.close_stdin();
    runner.assert_exit(0, None);
    assert!(proc_stat(daemon).is_none(), "daemon {daemon} still exists");
    assert!(!leaf.exists(), "the leaf {leaf:?} is left after the runner exited");
    assert!(!session_cg.exists(), "the session cgroup {session_cg:?} is left after its last server");
}

#[test]
fn kernel_tree_ignoring_sigterm_is_killed_and_its_cgroups_removed() {
    if !kernel_or_skip() {
        return;
    }
    let fx = Fixture::new(&kernel::policy());
    let session = session_id("ignterm");
    let global = Cgroup::default_global();
    let session_cg = Cgroup::session(&global, &session);

    // Two servers in one session: the session cgroup stays until the second one leaves.
    let mut stubborn = fx.run_in(&session, "stubborn", &[hostile!(), "ignore-term"]);
    let stubborn_pid = stubborn.ready()["pid"].as_i64().expect("pid") as i32;
    let stubborn_leaf = server_leaf(&fx, &stubborn, stubborn_pid, &global, &session, "stubborn");
    let mut tree = fx.run_in(&session, "tree", &[hostile!(), "tree", "10"]);
    let ready = tree.ready();
    let tree_pid = ready["pid"].as_i64().expect("pid") as i32;
    let tree_leaf = server_leaf(&fx, &tree, tree_pid, &global, &session, "tree");
    assert_eq!(tree_leaf.procs().len(), 10, "{tree_leaf:?}: cgroup.procs");

    // SIGTERM is caught and ignored: only SIGKILL (kill_timeout after it) ends it.
    stubborn.close_stdin();
    stubborn.expect_notification("hostile/sigterm-ignored");
    stubborn.assert_exit(137, None);
    assert!(!stubborn_leaf.exists(), "the leaf {stubborn_leaf:?} is left after the runner exited");
    assert!(session_cg.exists(), "the session cgroup went away while a server still runs in it");

    tree.close_stdin();
    tree.assert_exit(0, None);
    assert!(!tree_leaf.exists(), "the leaf {tree_leaf:?} is left after the runner exited");
    assert!(!session_cg.exists(), "the session cgroup {session_cg:?} is left after its last server");
}
