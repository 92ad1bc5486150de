//! The systemd driver as root (systemd guest): with no driver named anywhere, the runner picks
//! systemd (doctor says so, and the record says what it used). The server runs in its own
//! transient scope `mcp-runner-<name>-<runner>.scope` in its session's slice inside
//! `mcp-runner.slice`, bound to the runner's own scope; systemd carries the policy's limits as
//! unit properties and the kernel has them in the scope's cgroup files. When the session ends
//! (stdin closed) nothing of the tree is left and both scopes are gone from systemd.
#![cfg(target_os = "linux")]

use mcp_runner_tests::systemd::{GLOBAL_SLICE, Manager, RunnerUnits, cgroup_of, session_id, systemd_or_skip};
use mcp_runner_tests::{Fixture, Policy, hostile};

#[test]
fn systemd_server_runs_in_its_scope_with_the_policys_limits() {
    if !systemd_or_skip() {
        return;
    }
    let m = Manager::System;
    let fx = Fixture::new(
        &Policy::default()
            .set("memory_max", "\"128M\"")
            .set("memory_high", "\"96M\"")
            .set("pids_max", "32")
            .set("cpu_max", "\"50%\"")
            .set("kill_timeout", "\"300ms\"")
            .set_in("session", "memory_max", "\"256M\"")
            .set_in("session", "pids_max", "100"),
    );

    let doctor = fx.output(&["doctor"]);
    assert_eq!(doctor.status.code(), Some(0), "doctor: {doctor:?}");
    assert!(
        doctor.stdout.lines().any(|l| l.trim() == "driver: systemd (kernel enforcement)"),
        "doctor does not choose systemd:\n{}",
        doctor.stdout
    );

    let session = session_id("scope");
    let mut runner = fx.run_in(&session, "echo-1", &[hostile!(), "tree", "3"]);
    let ready = runner.ready();
    let server = ready["pid"].as_i64().expect("pid") as i32;
    let children: Vec<i32> =
        ready["children"].as_array().expect("children").iter().map(|c| c.as_i64().expect("pid") as i32).collect();
    let units = RunnerUnits::of(&runner, &session, "echo-1");

    let record = fx.record(runner.pid);
    assert_eq!(record["driver"], "systemd", "the built-in choice is not systemd: {record}");
    assert!(record["cgroup"].is_null(), "a systemd scope is not the sweep's to remove: {record}");

    // Where the kernel has the processes: the whole tree in the server's scope, which is in the
    // session slice in mcp-runner.slice (in the implicit mcp.slice); the runner in its own scope.
    let scope_cg = units.server_cgroup(m);
    let scope_rel = format!("/mcp.slice/{GLOBAL_SLICE}/{}/{}", units.session_slice, units.server_scope);
    for pid in std::iter::once(server).chain(children.iter().copied()) {
        assert_eq!(cgroup_of(pid).as_deref(), Some(scope_rel.as_str()), "cgroup of {pid}; {}", runner.diag());
    }
    let mut procs = scope_cg.procs();
    procs.sort();
    let mut tree: Vec<i32> = std::iter::once(server).chain(children.iter().copied()).collect();
    tree.sort();
    assert_eq!(procs, tree, "{scope_cg:?}: cgroup.procs");
    let runner_cg = cgroup_of(runner.pid).expect("runner's cgroup");
    assert!(runner_cg.ends_with(&format!("/{}", units.runner_scope)), "the runner is in {runner_cg}, not its scope");

    // What systemd holds for the scope.
    let props = m.show(
        &units.server_scope,
        &[
            "ActiveState",
            "MemoryMax",
            "MemoryHigh",
            "MemorySwapMax",
            "TasksMax",
            "CPUQuotaPerSecUSec",
            "TimeoutStopUSec",
            "Slice",
            "BindsTo",
            "After",
            "ControlGroup",
        ],
    );
    assert_eq!(props.get("ActiveState"), "active", "{props:?}");
    assert_eq!(props.get("MemoryMax"), (128u64 << 20).to_string(), "{props:?}");
    assert_eq!(props.get("MemoryHigh"), (96u64 << 20).to_string(), "{props:?}");
    assert_eq!(props.get("MemorySwapMax"), "0", "default swap_max 0; {props:?}");
    assert_eq!(props.get("TasksMax"), "32", "{props:?}");
    assert_eq!(props.get("CPUQuotaPerSecUSec"), "500ms", "cpu_max 50%; {props:?}");
    assert_eq!(props.get("TimeoutStopUSec"), "300ms", "kill_timeout; {props:?}");
    assert_eq!(props.get("Slice"), units.session_slice, "{props:?}");
    assert!(props.list("BindsTo").contains(&units.runner_scope.as_str()), "BindsTo: {props:?}");
    assert!(props.list("After").contains(&units.runner_scope.as_str()), "After: {props:?}");
    assert_eq!(props.get("ControlGroup"), scope_rel, "{props:?}");
    let session_props = m.show(&units.session_slice, &["MemoryMax", "TasksMax", "Slice"]);
    assert_eq!(session_props.get("MemoryMax"), (256u64 << 20).to_string(), "{session_props:?}");
    assert_eq!(session_props.get("TasksMax"), "100", "{session_props:?}");
    assert_eq!(session_props.get("Slice"), GLOBAL_SLICE, "{session_props:?}");
    let runner_props = m.show(&units.runner_scope, &["ActiveState", "BoundBy"]);
    assert_eq!(runner_props.get("ActiveState"), "active", "{runner_props:?}");
    assert!(runner_props.list("BoundBy").contains(&units.server_scope.as_str()), "{runner_props:?}");

    // What the kernel holds: the scope's cgroup files are the policy's values.
    assert_eq!(scope_cg.limit("memory.max"), Some(128 << 20), "{scope_cg:?}: memory.max");
    assert_eq!(scope_cg.limit("memory.high"), Some(96 << 20), "{scope_cg:?}: memory.high");
    assert_eq!(scope_cg.limit("memory.swap.max"), Some(0), "{scope_cg:?}: memory.swap.max");
    assert_eq!(scope_cg.limit("pids.max"), Some(32), "{scope_cg:?}: pids.max");
    assert_eq!(scope_cg.read("cpu.max").trim(), "50000 100000", "{scope_cg:?}: cpu.max");
    assert_eq!(scope_cg.value("pids.current"), 3, "{scope_cg:?}: pids.current (the tree of 3)");
    let session_cg = units.session_cgroup(m);
    assert_eq!(session_cg.limit("memory.max"), Some(256 << 20), "{session_cg:?}: memory.max");
    assert_eq!(session_cg.limit("pids.max"), Some(100), "{session_cg:?}: pids.max");

    // The session ends: the tree goes, and so do both scopes, units and cgroups.
    runner.close_stdin();
    runner.assert_exit(0, None);
    m.wait_units_gone(&units.scopes()).unwrap_or_else(|e| panic!("after the runner exited: {e}"));
    assert!(!scope_cg.exists(), "the scope's cgroup {scope_cg:?} is left");
    // The session slice is not the runner's to stop here (other servers of the session may
    // come); say whether it is still there.
    eprintln!("after the runner: {} is {:?}", units.session_slice, m.units(&units.session_slice));
    let left = m.units("mcp-runner-*.scope");
    assert!(
        !left.iter().any(|u| u.ends_with(&format!("-{}.scope", runner.marker.replace('.', "-")))),
        "scopes of this runner left: {left:?}"
    );
}
