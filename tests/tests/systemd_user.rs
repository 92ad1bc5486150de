//! Rootless (systemd guest): the runner as the unprivileged user `tester` (uid 1000), whose user
//! manager (`user@1000.service`, delegated cpu memory pids) the test starts.
//!
//! - The systemd driver under the user manager: started straight from root's service (as a
//!   client outside the user manager would be), the runner reaches tester's manager through
//!   $XDG_RUNTIME_DIR/systemd/private, moves itself into its own scope there, and the server's
//!   scope lives in `user@1000.service/mcp.slice/mcp-runner.slice/<session slice>/`, with the
//!   policy's memory.max. A leaker is OOM-killed there (exit 123), and nothing is left.
//! - The cgroupfs driver in a delegated scope (`systemd-run --user --scope -p Delegate=yes`):
//!   the runner moves itself into `<scope>/supervisor` (no-internal-process rule) and builds
//!   `<scope>/mcp-runner/s-<session>/<leaf>` under it; a leaker is OOM-killed as a whole leaf.
//!
//! The kernel's account is read from `user@1000.service`, which outlives every cgroup of a
//! test (the runner's scopes are collected by systemd when they empty).
#![cfg(target_os = "linux")]

use std::fs;

use mcp_runner_tests::kernel::{Cgroup, MOUNT, mib};
use mcp_runner_tests::systemd::{
    Manager, RunnerUnits, TESTER_MANAGER_CGROUP, as_tester, cgroup_of, run_as_tester, session_id, start_tester_manager,
    systemd_or_skip, tester_fixture,
};
use mcp_runner_tests::{Policy, RunnerProc, hostile, runner_bin};

fn uid_of(pid: i32) -> Option<u32> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| l.strip_prefix("Uid:"))?.split_whitespace().next()?.parse().ok()
}

fn manager_cgroup() -> Cgroup {
    Cgroup::new(format!("{MOUNT}{TESTER_MANAGER_CGROUP}"))
}

fn leak_policy() -> Policy {
    Policy::default().set("memory_high", "\"max\"").set("memory_max", "\"64M\"")
}

#[test]
fn systemd_user_manager_scope_holds_a_rootless_server() {
    if !systemd_or_skip() {
        return;
    }
    start_tester_manager();
    let m = Manager::Tester;
    let fx = tester_fixture(&leak_policy());

    let mut doctor = fx.command(&["doctor"]);
    as_tester(&mut doctor);
    let doctor = doctor.output().expect("doctor as tester");
    let doctor_out = String::from_utf8_lossy(&doctor.stdout);
    assert!(
        doctor_out.lines().any(|l| l.trim() == "driver: systemd (kernel enforcement)"),
        "doctor as tester does not choose systemd:\n{doctor_out}"
    );

    let session = session_id("user");
    let mut leaker = run_as_tester(&fx, &session, "leak", &[hostile!(), "leak-on-input"]);
    let server = leaker.ready()["pid"].as_i64().expect("pid") as i32;
    assert_eq!(uid_of(server), Some(1000), "the server does not run as tester");
    let units = RunnerUnits::of(&leaker, &session, "leak");
    let record = fx.record(leaker.pid);
    assert_eq!(record["driver"], "systemd", "{record}");

    let scope = units.server_cgroup(m);
    let scope_rel =
        format!("{TESTER_MANAGER_CGROUP}/mcp.slice/mcp-runner.slice/{}/{}", units.session_slice, units.server_scope);
    assert_eq!(cgroup_of(server).as_deref(), Some(scope_rel.as_str()), "{}", leaker.diag());
    assert_eq!(scope.procs(), vec![server], "{scope:?}: cgroup.procs");
    let runner_cg = cgroup_of(leaker.pid).expect("runner's cgroup");
    assert!(
        runner_cg.starts_with(&format!("{TESTER_MANAGER_CGROUP}/"))
            && runner_cg.ends_with(&format!("/{}", units.runner_scope)),
        "the runner is in {runner_cg}, not in its scope under tester's manager"
    );
    let props = m.show(&units.server_scope, &["MemoryMax", "MemoryHigh", "Slice", "BindsTo", "ControlGroup"]);
    assert_eq!(props.get("MemoryMax"), mib(64).to_string(), "{props:?}");
    assert_eq!(props.get("MemoryHigh"), "infinity", "{props:?}");
    assert_eq!(props.get("Slice"), units.session_slice, "{props:?}");
    assert!(props.list("BindsTo").contains(&units.runner_scope.as_str()), "{props:?}");
    assert_eq!(props.get("ControlGroup"), scope_rel, "{props:?}");
    assert_eq!(scope.limit("memory.max"), Some(mib(64)), "{scope:?}: memory.max");
    assert_eq!(scope.limit("memory.high"), None, "{scope:?}: memory.high");
    let before = manager_cgroup().counters("memory.events");

    leaker.send_line("go");
    let stderr = leaker.assert_exit(123, Some("exceeded memory_max"));
    assert!(
        stderr.lines().any(|l| l.starts_with("mcp-runner: ") && l.contains("(the server's own limit)")),
        "no line naming the server's own limit; stderr:\n{stderr}"
    );
    m.wait_units_gone(&units.scopes()).unwrap_or_else(|e| panic!("after the OOM kill: {e}"));
    assert!(!scope.exists(), "the scope's cgroup {scope:?} is left");
    let events = manager_cgroup().counters("memory.events").since(&before);
    assert!(events.get("oom_kill") > 0, "no OOM kill under user@1000.service: memory.events (delta) {events}");
}

#[test]
fn cgroupfs_in_a_delegated_user_scope_builds_its_tree_beside_supervisor() {
    if !systemd_or_skip() {
        return;
    }
    start_tester_manager();
    let fx = tester_fixture(&leak_policy());
    let session = session_id("rootless-cgfs");

    let mut cmd = std::process::Command::new("systemd-run");
    cmd.args(["--user", "--scope", "--quiet", "-p", "Delegate=yes", "--"])
        .arg(runner_bin())
        .args(["run", "--driver", "cgroupfs", "--session", session.as_str(), "--name", "leak", "--"])
        .args([hostile!(), "leak-on-input"]);
    fx.apply_env(&mut cmd);
    as_tester(&mut cmd);
    // systemd-run execs the runner once the scope exists: same pid, same start time, so the
    // marker and the record are the runner's.
    let mut leaker = RunnerProc::spawn(cmd);
    let server = leaker.ready()["pid"].as_i64().expect("pid") as i32;
    let comm = fs::read_to_string(format!("/proc/{}/comm", leaker.pid)).unwrap_or_default();
    assert_eq!(comm.trim(), "mcp-runner", "systemd-run did not exec the runner");

    let runner_cg = cgroup_of(leaker.pid).expect("runner's cgroup");
    let scope_rel = runner_cg
        .strip_suffix("/supervisor")
        .unwrap_or_else(|| panic!("the runner is in {runner_cg}, not in <its scope>/supervisor; {}", leaker.diag()));
    let scope_name = scope_rel.rsplit('/').next().expect("scope name").to_owned();
    assert!(
        scope_rel.starts_with(&format!("{TESTER_MANAGER_CGROUP}/")) && scope_name.ends_with(".scope"),
        "the runner's scope {scope_rel} is not a scope of tester's manager"
    );
    let scope = Cgroup::new(format!("{MOUNT}{scope_rel}"));
    let global = scope.child("mcp-runner");
    let session_cg = Cgroup::session(&global, &session);
    let leaf = session_cg.child(&format!("leak.{}", leaker.marker));
    assert_eq!(
        cgroup_of(server).map(|c| format!("{MOUNT}{c}")),
        Some(leaf.path().display().to_string()),
        "the server is not in its leaf; {}",
        leaker.diag()
    );
    let record = fx.record(leaker.pid);
    assert_eq!(record["driver"], "cgroupfs", "{record}");
    assert_eq!(record["cgroup"].as_str(), Some(leaf.path().to_str().expect("utf-8")), "{record}");
    assert!(scope.procs().is_empty(), "{scope:?} still holds processes: {:?}", scope.procs());
    let enabled = scope.read("cgroup.subtree_control");
    for c in ["memory", "pids"] {
        assert!(enabled.split_whitespace().any(|e| e == c), "{scope:?}: cgroup.subtree_control {enabled:?}");
    }
    assert_eq!(leaf.limit("memory.max"), Some(mib(64)), "{leaf:?}: memory.max");
    assert_eq!(leaf.read("memory.oom.group").trim(), "1", "{leaf:?}: memory.oom.group");
    let before = manager_cgroup().counters("memory.events");

    leaker.send_line("go");
    let stderr = leaker.assert_exit(123, Some("exceeded memory_max"));
    assert!(
        stderr.lines().any(|l| l.starts_with("mcp-runner: ")
            && l.contains("(the server's own limit)")
            && l.contains("the kernel OOM-killed the whole server")),
        "no line naming the server's own limit and the kernel's OOM kill; stderr:\n{stderr}"
    );
    assert!(!leaf.exists(), "the leaf {leaf:?} is left after the runner exited");
    assert!(!session_cg.exists(), "the session cgroup {session_cg:?} is left after its last server");
    let events = manager_cgroup().counters("memory.events").since(&before);
    assert!(events.get("oom_kill") > 0, "no OOM kill under user@1000.service: {events}");
    assert!(events.get("oom_group_kill") > 0, "the leaf was not killed as a group: {events}");
    Manager::Tester
        .wait_units_gone(&[scope_name.as_str()])
        .unwrap_or_else(|e| panic!("systemd-run's scope after the runner exited: {e}"));
}
