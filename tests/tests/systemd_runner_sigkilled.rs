//! The runner itself is SIGKILLed under the systemd driver (systemd guest, root). Its server,
//! the direct child, dies at once (parent-death signal). What else is in the server's scope is
//! systemd's to end, with no `mcp-runner gc`: the runner's own scope empties, systemd stops it,
//! and stopping it stops the server's scope (BindsTo=): SIGTERM to everything in it, SIGKILL
//! after TimeoutStopUSec (kill_timeout). Both scopes are then gone, and the dead runner's record
//! is still there (nothing swept it) until `gc` removes it.
//!
//! This test process is a child subreaper, so the killed runner's orphans are reparented to it
//! and their deaths (and the signals that caused them) can be read with waitpid.
#![cfg(target_os = "linux")]

use std::os::unix::process::ExitStatusExt;

use mcp_runner_tests::systemd::{Manager, RunnerUnits, cgroup_of, session_id, systemd_or_skip};
use mcp_runner_tests::{
    Fixture, Pidfd, Policy, RunnerProc, describe, hang_guard, hostile, proc_stat, tree_marker_processes, zombies_of,
};
use nix::sys::signal::Signal;
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::Pid;
use serde_json::Value;

fn become_subreaper() {
    // SAFETY: prctl(PR_SET_CHILD_SUBREAPER, 1) takes no pointers.
    assert_eq!(unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1) }, 0);
}

/// How `pid`, an orphan reparented to this process, died.
fn reap(pid: i32) -> WaitStatus {
    let ppid = proc_stat(pid).map(|s| s.ppid);
    assert_eq!(ppid, Some(std::process::id() as i32), "{pid} was not reparented to the test ({})", describe(&[pid]));
    waitpid(Pid::from_raw(pid), None).unwrap_or_else(|e| panic!("waitpid({pid}): {e}"))
}

/// SIGKILLs the runner and checks the parts that do not depend on the server: it died of it, its
/// direct child (the server) died of the parent-death signal.
fn kill_runner(runner: &mut RunnerProc, server: i32) {
    let server_fd = Pidfd::open(server).expect("pidfd_open(server)");
    runner.signal(Signal::SIGKILL);
    assert_eq!(runner.wait_exit().signal(), Some(libc::SIGKILL));
    // Our pipe keeps the server's stdin open: only the parent-death signal can end it.
    assert!(server_fd.wait(hang_guard()), "server {server} survived the runner's SIGKILL");
    assert_eq!(reap(server), WaitStatus::Signaled(Pid::from_raw(server), Signal::SIGKILL, false), "the server");
}

/// After systemd did its part: both scopes gone, the record of the dead runner still there, and
/// `gc` then only removes the record.
fn after_systemd(fx: &Fixture, runner: &mut RunnerProc, units: &RunnerUnits) {
    let m = Manager::System;
    m.wait_units_gone(&units.scopes()).unwrap_or_else(|e| panic!("after the runner's SIGKILL: {e}"));
    assert!(!units.server_cgroup(m).exists(), "the server's scope cgroup is left");
    let record = fx.state_dir.join(format!("runner-{}.json", runner.pid));
    assert!(record.exists(), "the dead runner's record {} is gone: something swept it", record.display());

    let gc = fx.output(&["gc"]);
    assert_eq!(gc.status.code(), Some(0), "gc: {gc:?}");
    assert!(!record.exists(), "gc left the dead runner's record");
    runner.assert_nothing_left();
    let zombies = zombies_of(std::process::id() as i32);
    assert!(zombies.is_empty(), "zombies adopted from the tree: {}", describe(&zombies));
}

#[test]
fn systemd_stops_the_scope_of_a_sigkilled_runner_daemon_included() {
    if !systemd_or_skip() {
        return;
    }
    become_subreaper();
    let fx = Fixture::new(&Policy::default());
    let session = session_id("sigkill");
    let mut runner = fx.run_in(&session, "daemon", &[hostile!(), "daemon"]);
    let ready = runner.ready();
    let server = ready["pid"].as_i64().expect("pid") as i32;
    let daemon = ready["daemon"].as_i64().expect("daemon pid") as i32;
    let units = RunnerUnits::of(&runner, &session, "daemon");
    let scope = units.server_cgroup(Manager::System);
    let record = fx.record(runner.pid);
    assert_eq!(record["driver"], "systemd", "{record}");
    let (server_stat, daemon_stat) = (proc_stat(server).expect("server"), proc_stat(daemon).expect("daemon"));
    assert_ne!(daemon_stat.session, server_stat.session, "the daemon did not escape the session");
    let mut procs = scope.procs();
    procs.sort();
    assert_eq!(
        procs,
        {
            let mut v = vec![server, daemon];
            v.sort();
            v
        },
        "{scope:?}: cgroup.procs"
    );
    assert_eq!(cgroup_of(daemon), cgroup_of(server), "the daemon is not in the server's scope");

    let daemon_fd = Pidfd::open(daemon).expect("pidfd_open(daemon)");
    kill_runner(&mut runner, server);
    // Nothing but systemd can end the daemon now (no gc has run, no runner is left).
    assert!(daemon_fd.wait(hang_guard()), "daemon {daemon} survived: systemd did not stop the bound scope");
    assert_eq!(
        reap(daemon),
        WaitStatus::Signaled(Pid::from_raw(daemon), Signal::SIGTERM, false),
        "the daemon should die of systemd's SIGTERM"
    );
    after_systemd(&fx, &mut runner, &units);
}

#[test]
fn systemd_sigkills_what_ignores_its_sigterm_after_kill_timeout() {
    if !systemd_or_skip() {
        return;
    }
    become_subreaper();
    let fx = Fixture::new(&Policy::default().set("kill_timeout", "\"300ms\""));
    let session = session_id("sigkill-term");
    // A helper that survives SIGTERM (and reports it on the shared stdout) beside the server.
    let script = format!("{h} ignore-term </dev/null & exec {h} echo", h = hostile!());
    let mut runner = fx.run_in(&session, "stubborn", &["/bin/sh", "-c", script.as_str()]);
    let mut ready: Vec<Value> = (0..2).map(|_| runner.ready()).collect();
    ready.sort_by_key(|r| r["mode"].as_str().map(str::to_owned));
    let (server, helper) = match (ready[0]["mode"].as_str(), ready[1]["mode"].as_str()) {
        (Some("echo"), Some("ignore-term")) => (ready[0]["pid"].as_i64(), ready[1]["pid"].as_i64()),
        other => panic!("unexpected ready lines {other:?}: {ready:?}"),
    };
    let (server, helper) = (server.expect("pid") as i32, helper.expect("pid") as i32);
    let units = RunnerUnits::of(&runner, &session, "stubborn");
    let props = Manager::System.show(&units.server_scope, &["TimeoutStopUSec", "KillMode", "KillSignal"]);
    assert_eq!(
        (props.get("TimeoutStopUSec"), props.get("KillMode"), props.get("KillSignal")),
        ("300ms", "control-group", "15"),
        "{props:?}"
    );
    assert_eq!(cgroup_of(helper), cgroup_of(server), "the helper is not in the server's scope");
    assert_eq!(tree_marker_processes(&runner.marker).len(), 2, "{}", runner.diag());

    let helper_fd = Pidfd::open(helper).expect("pidfd_open(helper)");
    kill_runner(&mut runner, server);
    // systemd's SIGTERM arrives (the helper says so), is ignored, and SIGKILL follows.
    runner.expect_notification("hostile/sigterm-ignored");
    assert!(helper_fd.wait(hang_guard()), "helper {helper} survived: systemd did not escalate to SIGKILL");
    assert_eq!(
        reap(helper),
        WaitStatus::Signaled(Pid::from_raw(helper), Signal::SIGKILL, false),
        "the helper should die of systemd's SIGKILL"
    );
    after_systemd(&fx, &mut runner, &units);
}
