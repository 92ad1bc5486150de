//! `mcp-runner systemd install|uninstall --system` (systemd guest, root): the installed
//! `mcp-runner.slice` carries the policy's global cap, systemd loads it from that file, and the
//! kernel holds a server to it; uninstall removes only a file it wrote.
//!
//! Policy: [global] memory_max = "128M", [session] and [defaults] memory_max = "max",
//! memory_high = "max" at every level, throttle_timeout = "never": the slice's cap is the only
//! memory limit, and a leaker is OOM-killed at it, at the global level. (With the default
//! memory_high of 90% the leaker would first crawl through the kernel's throttle at 115 MiB,
//! which took 20-180 s in the guest; kernel_throttle.rs covers throttling.)
//!
//! A transient `mcp-runner.slice` made by an earlier runner of this boot would take precedence
//! over the installed file, so the test first stops it (nothing runs under it between tests).
//! The installed file is removed at the end even if the test fails (InstalledSliceGuard).
#![cfg(target_os = "linux")]

use std::fs;
use std::os::unix::fs::MetadataExt;

use mcp_runner_tests::kernel::mib;
use mcp_runner_tests::systemd::{
    GLOBAL_SLICE, InstalledSliceGuard, Manager, RunnerUnits, SYSTEM_SLICE_FILE, cgroup_of,
    forget_transient_global_slice, session_id, systemd_or_skip,
};
use mcp_runner_tests::{Fixture, hostile};

const POLICY: &str = r#"[global]
memory_max = "128M"
memory_high = "max"

[session]
memory_max = "max"
memory_high = "max"

[defaults]
memory_max = "max"
memory_high = "max"
throttle_timeout = "never"
grace = "300ms"
kill_timeout = "300ms"
"#;

#[test]
fn systemd_installed_slice_caps_every_server_and_uninstall_removes_only_its_own_file() {
    if !systemd_or_skip() {
        return;
    }
    let m = Manager::System;
    forget_transient_global_slice();
    let guard = InstalledSliceGuard::new();
    let fx = Fixture::with_policy_text(POLICY);
    let policy_path = fx.policy_file.display().to_string();

    // Install: the file, exactly.
    let install = fx.output(&["systemd", "install", "--system"]);
    assert_eq!(install.status.code(), Some(0), "install: {install:?}");
    assert!(install.stdout.contains(&format!("installed {SYSTEM_SLICE_FILE}\n")), "install: {install:?}");
    assert!(install.stdout.contains("systemd reloaded\n"), "install did not reload systemd: {install:?}");
    let expected = format!(
        "# Written by `mcp-runner systemd install`; `mcp-runner systemd uninstall` removes it.\n\
         # Global cap from {policy_path}; percentages were resolved for this machine at install time.\n\
         [Unit]\n\
         Description=MCP servers run by mcp-runner (global cap)\n\
         \n\
         [Slice]\n\
         MemoryAccounting=yes\n\
         TasksAccounting=yes\n\
         MemoryMax={}\n\
         MemoryHigh=infinity\n\
         MemorySwapMax=infinity\n\
         TasksMax=8192\n",
        mib(128)
    );
    let text = fs::read_to_string(guard.path()).expect("the installed file");
    assert_eq!(text, expected, "the installed {SYSTEM_SLICE_FILE}");
    let meta = fs::metadata(guard.path()).expect("metadata");

    // Install again: unchanged, and the file is untouched.
    let again = fx.output(&["systemd", "install", "--system"]);
    assert_eq!(again.status.code(), Some(0), "second install: {again:?}");
    assert!(
        again.stdout.contains(&format!("{SYSTEM_SLICE_FILE} is already installed and up to date")),
        "second install: {again:?}"
    );
    let meta_again = fs::metadata(guard.path()).expect("metadata");
    assert_eq!(fs::read_to_string(guard.path()).expect("file"), expected, "the second install changed the file");
    assert_eq!(
        (meta_again.ino(), meta_again.mtime(), meta_again.mtime_nsec()),
        (meta.ino(), meta.mtime(), meta.mtime_nsec()),
        "the second install rewrote the file"
    );

    // systemd loads the slice from that file.
    let props = m.show(GLOBAL_SLICE, &["LoadState", "FragmentPath", "MemoryMax", "MemoryHigh", "TasksMax"]);
    assert_eq!(props.get("LoadState"), "loaded", "{props:?}");
    assert_eq!(props.get("FragmentPath"), SYSTEM_SLICE_FILE, "{props:?}");
    assert_eq!(props.get("MemoryMax"), "134217728", "{props:?}");
    assert_eq!(props.get("MemoryHigh"), "infinity", "{props:?}");
    assert_eq!(props.get("TasksMax"), "8192", "{props:?}");

    // A leaker with no limit of its own is OOM-killed by the slice's cap.
    let session = session_id("install");
    // The last server of a session takes its slice down with it: an anchor keeps the session
    // slice, and so its counters, until the end.
    let mut anchor = fx.run_in(&session, "anchor", &[hostile!(), "echo"]);
    anchor.ready();
    let mut leaker = fx.run_in(&session, "leak", &[hostile!(), "leak-on-input"]);
    let server = leaker.ready()["pid"].as_i64().expect("pid") as i32;
    let units = RunnerUnits::of(&leaker, &session, "leak");
    let global = m.global_slice_cgroup();
    let scope = units.server_cgroup(m);
    let session_cg = units.session_cgroup(m);
    assert_eq!(cgroup_of(server).map(|c| format!("/sys/fs/cgroup{c}")), Some(scope.path().display().to_string()));
    let props = m.show(GLOBAL_SLICE, &["ActiveState", "FragmentPath"]);
    assert_eq!((props.get("ActiveState"), props.get("FragmentPath")), ("active", SYSTEM_SLICE_FILE), "{props:?}");
    assert_eq!(global.limit("memory.max"), Some(mib(128)), "{global:?}: memory.max from the installed file");
    assert_eq!(global.limit("memory.high"), None, "{global:?}: memory.high");
    assert_eq!(scope.limit("memory.max"), None, "{scope:?}: memory.max");
    assert_eq!(session_cg.limit("memory.max"), None, "{session_cg:?}: memory.max");
    let global_events = global.counters("memory.events");
    let global_local = global.counters("memory.events.local");
    let session_local = session_cg.counters("memory.events.local");

    leaker.send_line("go");
    let stderr = leaker.assert_exit(123, Some("exceeded memory_max"));
    assert!(
        stderr.lines().any(|l| l.starts_with("mcp-runner: ") && l.contains("(the global cap over all sessions)")),
        "the runner did not name the global cap as the level; stderr:\n{stderr}"
    );
    m.wait_units_gone(&units.scopes()).unwrap_or_else(|e| panic!("after the OOM kill: {e}"));
    let events = global.counters("memory.events").since(&global_events);
    let local = global.counters("memory.events.local").since(&global_local);
    let below = session_cg.counters("memory.events.local").since(&session_local);
    eprintln!("{GLOBAL_SLICE}: memory.events (delta) {events}, .local (delta) {local}; session .local {below}");
    assert!(events.get("oom_kill") > 0, "no OOM kill under {GLOBAL_SLICE}: {events}");
    assert!(local.get("max") > 0 && local.get("oom") > 0, "the slice's own memory.max was not hit: .local {local}");
    assert_eq!((below.get("max"), below.get("oom")), (0, 0), "the session slice hit a limit of its own: {below}");
    anchor.close_stdin();
    anchor.assert_exit(0, None);
    assert!(global.value("memory.peak") <= mib(128), "{global:?}: memory.peak over the cap");

    // Uninstall: the file goes and systemd forgets it.
    let uninstall = fx.output(&["systemd", "uninstall", "--system"]);
    assert_eq!(uninstall.status.code(), Some(0), "uninstall: {uninstall:?}");
    assert!(uninstall.stdout.contains(&format!("removed {SYSTEM_SLICE_FILE}\n")), "uninstall: {uninstall:?}");
    assert!(uninstall.stdout.contains("systemd reloaded\n"), "uninstall did not reload systemd: {uninstall:?}");
    assert!(!guard.path().exists(), "uninstall left {SYSTEM_SLICE_FILE}");
    let props = m.show(GLOBAL_SLICE, &["FragmentPath"]);
    assert_eq!(props.get("FragmentPath"), "", "systemd still loads {GLOBAL_SLICE} from a file: {props:?}");
    let again = fx.output(&["systemd", "uninstall", "--system"]);
    assert_eq!(again.status.code(), Some(0), "uninstall when not installed: {again:?}");
    assert!(again.stdout.contains(&format!("{SYSTEM_SLICE_FILE} is not installed")), "{again:?}");

    // A file the command did not write is left alone.
    let foreign = "[Slice]\nMemoryMax=1G\n";
    fs::write(guard.path(), foreign).expect("write a foreign slice file");
    let refused = fx.output(&["systemd", "uninstall", "--system"]);
    assert_eq!(refused.status.code(), Some(125), "uninstall of a foreign file: {refused:?}");
    assert!(
        refused.stderr.contains(&format!("{SYSTEM_SLICE_FILE} was not written by mcp-runner; left alone")),
        "uninstall of a foreign file: {refused:?}"
    );
    assert_eq!(fs::read_to_string(guard.path()).expect("the foreign file"), foreign, "uninstall touched it");
    drop(guard);
    assert!(!std::path::Path::new(SYSTEM_SLICE_FILE).exists(), "the guard left {SYSTEM_SLICE_FILE}");
}
