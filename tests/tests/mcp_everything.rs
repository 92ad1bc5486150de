//! A real MCP client (the official TypeScript SDK) against the real reference server
//! (`@modelcontextprotocol/server-everything`) through the runner: initialize, tools/list,
//! tools/call echo, close; then nothing of the runner's tree may remain.
//!
//! Needs `tests/setup` (npm ci in tests/node). Without it the test fails when `CI` is set and
//! is skipped, with the reason printed, otherwise.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use mcp_runner_tests::{
    Fixture, Lines, Pidfd, Policy, Stderr, describe, hang_guard, marker_of, runner_bin, scaled, start_time,
    tree_marker_processes,
};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

fn node_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("node")
}

/// tests/node with its packages installed, or `None` (skip) when `tests/setup` was not run;
/// with `CI` set a missing install is a failure, not a skip.
fn installed_node_dir() -> Option<PathBuf> {
    let node = node_dir();
    let installed =
        ["sdk", "server-everything"].iter().all(|p| node.join("node_modules/@modelcontextprotocol").join(p).is_dir());
    if installed {
        return Some(node);
    }
    let reason = format!("{} is not installed: run tests/setup first", node.join("node_modules").display());
    if std::env::var_os("CI").is_some() {
        panic!("{reason}");
    }
    eprintln!("skipped: {reason}");
    None
}

#[test]
fn sdk_client_and_everything_server_through_the_runner() {
    let Some(node) = installed_node_dir() else { return };

    // Node and its threads are bigger than the hostile servers: room enough not to hit limits.
    let fx = Fixture::new(&Policy::default().set("memory_max", "\"1G\"").set("pids_max", "256"));
    let mut cmd = Command::new("node");
    cmd.arg(node.join("everything-client.mjs"))
        .current_dir(&node)
        .env("MCP_RUNNER_BIN", runner_bin())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    fx.apply_env(&mut cmd);
    let mut client = cmd.spawn().expect("spawn node (Node 20 is required)");
    let mut guard = KillOnDrop { pids: vec![client.id() as i32], marker: None };
    let lines = Lines::read(client.stdout.take().unwrap());
    let mut stderr = Stderr::collect(client.stderr.take().unwrap());
    let next_event = |name: &str| -> Value {
        loop {
            let line = match lines.next(hang_guard()) {
                Ok(Some(line)) => line,
                Ok(None) => panic!("client stdout closed before {name}; stderr:\n{}", stderr.text()),
                Err(_) => panic!("no {name} within {:?}; stderr:\n{}", hang_guard(), stderr.text()),
            };
            match serde_json::from_str::<Value>(&line) {
                Ok(v) if v["event"] == name => return v,
                _ => eprintln!("client: {line}"),
            }
        }
    };

    // The session is open and the client waits for us: inspect the live tree.
    let connected = next_event("connected");
    let runner_pid = connected["runner_pid"].as_i64().expect("runner_pid") as i32;
    let runner_fd = Pidfd::open(runner_pid).expect("pidfd_open(runner)");
    #[cfg(target_os = "linux")]
    {
        let exe = std::fs::read_link(format!("/proc/{runner_pid}/exe")).expect("runner exe");
        assert_eq!(exe, std::fs::canonicalize(runner_bin()).unwrap(), "pid {runner_pid} is not the runner");
    }
    let marker = marker_of(runner_pid).expect("runner start time");
    guard.pids.push(runner_pid);
    guard.marker = Some(marker.clone());
    let tree: Vec<(i32, Option<u64>)> =
        tree_marker_processes(&marker).into_iter().map(|pid| (pid, start_time(pid))).collect();
    assert!(!tree.is_empty(), "the server does not carry the marker {marker}");
    eprintln!("live tree of runner {runner_pid}: {}", describe(&tree.iter().map(|p| p.0).collect::<Vec<_>>()));
    client.stdin.take().unwrap().write_all(b"go\n").expect("write go");

    let summary = next_event("summary");
    eprintln!("summary: {summary}");
    assert_eq!(summary["ok"], true, "client failed: {summary}; stderr:\n{}", stderr.text());
    assert_eq!(summary["has_echo"], true);
    assert_eq!(summary["echo_text"], summary["expected_echo_text"]);
    assert_eq!(summary["runner_pid"], runner_pid);

    let client_pid = client.id() as i32;
    assert!(Pidfd::open(client_pid).unwrap().wait(hang_guard()), "client did not exit");
    let status = client.wait().unwrap();
    guard.pids.retain(|&p| p != client_pid); // reaped: the pid may be reused now
    assert!(status.success(), "client: {status:?}");

    // The SDK's close() waits for the runner, up to 2 s before it sends SIGTERM.
    assert!(runner_fd.wait(hang_guard()), "runner {runner_pid} did not exit");
    guard.pids.clear(); // the runner is gone too (not our child: its pid may be reused)
    let left = tree_marker_processes(&marker);
    assert!(left.is_empty(), "left after the session: {}", describe(&left));
    let left: Vec<i32> =
        tree.iter().filter(|(pid, start)| start.is_some() && start_time(*pid) == *start).map(|(pid, _)| *pid).collect();
    assert!(left.is_empty(), "tree pids still exist (zombies?): {}", describe(&left));
    stderr.wait_eof(scaled(std::time::Duration::from_secs(5)));
    eprintln!("client and runner stderr:\n{}", stderr.text());
}

/// After a failed assertion: SIGKILL the client, the runner and the marked tree, so that a
/// failing test does not leave a Node server behind. Pids leave the list once they are known
/// to be gone (they could be reused); the marker is unique and stays.
struct KillOnDrop {
    pids: Vec<i32>,
    marker: Option<String>,
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let tree = self.marker.as_deref().map(tree_marker_processes).unwrap_or_default();
        for pid in self.pids.iter().chain(&tree) {
            let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
        }
    }
}

/// A refused start reaches the official SDK as a JSON-RPC error answering
/// `initialize`: the client shows the cap instead of hanging.
#[test]
fn sdk_client_sees_a_refusal_as_a_json_rpc_error() {
    let Some(node) = installed_node_dir() else { return };
    let fx =
        Fixture::new(&Policy::default().set("max_instances", "1").set_in("global", "min_headroom", "\"0\"").set_in(
            "global",
            "max_pressure",
            "\"max\"",
        ));
    // One "everything" is running already; max_instances is 1.
    let mut holder = fx.run("everything", &[env!("CARGO_BIN_EXE_hostile"), "echo"]);
    holder.ready();

    let mut cmd = Command::new("node");
    cmd.arg(node.join("everything-client.mjs"))
        .current_dir(&node)
        .env("MCP_RUNNER_BIN", runner_bin())
        .env("EXPECT_REFUSAL", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    fx.apply_env(&mut cmd);
    let out = cmd.output().expect("run node (Node 20 is required)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let refused: Value = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["event"] == "refused")
        .unwrap_or_else(|| panic!("no refusal seen by the SDK; stdout:\n{stdout}\nstderr:\n{stderr}"));
    assert!(out.status.success(), "client failed; stdout:\n{stdout}\nstderr:\n{stderr}");
    assert_eq!(refused["code"], -32000, "{refused}");
    assert_eq!(refused["data"]["cap"], "max_instances", "{refused}");
    let message = refused["message"].as_str().unwrap_or_default();
    assert!(message.contains("max_instances 1 of 'everything' reached"), "{message}");
    assert!(stderr.contains("mcp-runner: error: refused: max_instances 1"), "runner's stderr line; stderr:\n{stderr}");
    holder.close_stdin();
    holder.assert_exit(0, None);
}
