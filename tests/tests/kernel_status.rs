//! `mcp-runner status --json` on the real thing (cgroupfs driver, cgroup v2 guest): the
//! schema, and figures that match the kernel's own files for each server's leaf.
#![cfg(target_os = "linux")]

use mcp_runner_tests::kernel::{Cgroup, kernel_or_skip, mib, session_id};
use mcp_runner_tests::{Fixture, Policy, hostile};
use serde_json::Value;

/// Memory moves a little between two reads (page tables, the runtime); a leaked block does not.
const SLACK: u64 = 1 << 20;

#[test]
fn kernel_status_json_matches_the_kernel_files() {
    if !kernel_or_skip() {
        return;
    }
    let fx = Fixture::new(
        &Policy::default()
            .set("memory_max", "\"96M\"")
            .set("memory_high", "\"max\"")
            .set_in("global", "max_pressure", "\"max\"")
            .set_in("global", "min_headroom", "\"0\""),
    );
    let session = session_id("status");
    let mut holder = fx.run_in(&session, "holder", &[hostile!(), "leak-on-input", "16"]);
    let holder_pid = holder.ready()["pid"].as_i64().expect("pid") as i32;
    holder.send_line("go");
    holder.expect_notification("hostile/leak-done");
    let mut tree = fx.run_in(&session, "tree", &[hostile!(), "tree", "4"]);
    let tree_pid = tree.ready()["pid"].as_i64().expect("pid") as i32;

    let out = fx.output(&["status", "--json"]);
    assert!(out.status.success(), "status failed: {}", out.stderr);
    let st: Value = serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", out.stdout));
    assert_eq!(st["version"], 1);
    let global = Cgroup::default_global();
    assert_eq!(st["global"]["cgroup"].as_str(), Some(global.path().to_str().expect("utf-8")), "{st}");
    assert_eq!(st["global"]["memory_max"].as_u64(), global.limit("memory.max"), "{st}");
    let ours = st["sessions"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["id"] == session.as_str()))
        .unwrap_or_else(|| panic!("session {session} missing: {st}"));
    let servers = ours["servers"].as_array().expect("servers");
    assert_eq!(servers.len(), 2, "{ours}");

    for (name, pid, processes) in [("holder", holder_pid, 1), ("tree", tree_pid, 4)] {
        let s = servers.iter().find(|s| s["name"] == name).unwrap_or_else(|| panic!("{name} missing: {ours}"));
        let leaf = Cgroup::of_process(pid).expect("leaf");
        assert_eq!(s["server_pid"], pid, "{s}");
        assert_eq!(s["driver"], "cgroupfs", "{s}");
        assert_eq!(s["enforcement"], "kernel", "{s}");
        assert_eq!(s["cgroup"].as_str(), leaf.path().to_str(), "{s}");
        assert_eq!(s["memory"]["max"].as_u64(), Some(mib(96)), "{s}");
        assert_eq!(s["memory"]["max"].as_u64(), leaf.limit("memory.max"), "{s}");
        assert_eq!(s["memory"]["high"], Value::Null, "memory_high is max: {s}");
        let reported = s["memory"]["current"].as_u64().expect("current");
        let kernel = leaf.value("memory.current");
        assert!(reported.abs_diff(kernel) <= SLACK, "{name}: status {reported} vs memory.current {kernel}");
        let peak = s["memory"]["peak"].as_u64().expect("peak");
        assert!(peak >= reported && peak <= leaf.value("memory.peak"), "{name}: peak {peak}: {s}");
        assert_eq!(s["processes"], processes, "{s}");
        assert_eq!(s["tasks"].as_u64(), Some(leaf.value("pids.current")), "{s}");
        assert_eq!(s["pids_max"].as_u64(), leaf.limit("pids.max"), "{s}");
        assert_eq!(s["events"]["oom_kills"].as_u64(), Some(leaf.counters("memory.events").get("oom_kill")), "{s}");
        assert!(s["uptime_seconds"].is_u64(), "{s}");
    }
    let holder_mem =
        servers.iter().find(|s| s["name"] == "holder").expect("holder")["memory"]["current"].as_u64().expect("current");
    assert!(holder_mem >= mib(16), "the 16 MiB the holder allocated are not in its figure: {holder_mem}");

    for r in [&mut holder, &mut tree] {
        r.close_stdin();
        r.assert_exit(0, None);
    }
}
