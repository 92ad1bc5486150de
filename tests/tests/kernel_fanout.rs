//! A small replay of the fan-out this tool exists for (11 configured servers became ~300
//! processes and 40 GB of swap): several sessions, each starting several servers that
//! allocate memory, under a global cap below their sum (cgroupfs driver, cgroup v2 guest).
//!
//! Four sessions start three servers each, one after the other; every server allocates 24 MiB
//! once admitted. The global cap is 160M with min_headroom 40M and max_servers 8, so the sum
//! asked for (12 x ~26 MiB) cannot fit: admission refuses the spawns past the caps, each
//! refused runner answers its client's `initialize` with a JSON-RPC error naming the cap, and
//! the official MCP SDK client started at the end sees that error too. What is admitted fits:
//! the global cgroup's memory.peak stays at or under its memory.max and the kernel never has
//! to OOM-kill anything. After every session closes nothing remains. The figures (peak against
//! the cap, processes, refusals by cap, time to drain) are printed.
#![cfg(target_os = "linux")]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use mcp_runner_tests::kernel::{Cgroup, PeakFromNow, kernel_or_skip, mib, session_id};
use mcp_runner_tests::{Fixture, Policy, RunnerProc, hostile, runner_bin};
use serde_json::{Value, json};

const SERVER_MIB: &str = "24";

fn policy() -> Policy {
    Policy::default()
        .set("memory_max", "\"48M\"")
        .set("memory_high", "\"max\"")
        .set("pids_max", "64")
        .set_in("global", "memory_max", "\"160M\"")
        .set_in("global", "memory_high", "\"max\"")
        .set_in("global", "max_servers", "8")
        .set_in("global", "min_headroom", "\"40M\"")
        .set_in("global", "max_pressure", "\"max\"")
        .set_in("session", "memory_max", "\"96M\"")
        .set_in("session", "memory_high", "\"max\"")
        .set_in("session", "max_servers", "8")
}

/// Admitted: the server's `ready`; refused: the error answering `initialize`.
fn start(fx: &Fixture, session: &str, name: &str) -> Result<RunnerProc, Box<(RunnerProc, Value)>> {
    let mut r = fx.run_in(session, name, &[hostile!(), "leak-on-input", SERVER_MIB]);
    // For an admitted server this line is also its signal to allocate.
    r.send_line(&json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}).to_string());
    let line = r.read_line().unwrap_or_else(|| panic!("no answer; {}", r.diag()));
    let msg: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    if msg["method"] == "hostile/ready" {
        r.expect_notification("hostile/leak-done");
        Ok(r)
    } else {
        Err(Box::new((r, msg["error"].clone())))
    }
}

#[test]
fn kernel_fanout_replay_stays_under_the_global_cap() {
    if !kernel_or_skip() {
        return;
    }
    let fx = Fixture::new(&policy());
    let global = Cgroup::default_global();
    let sessions: Vec<String> = (0..4).map(|i| session_id(&format!("fan{i}"))).collect();
    let started = Instant::now();
    let mut admitted: Vec<RunnerProc> = Vec::new();
    let mut refusals: BTreeMap<String, usize> = BTreeMap::new();
    let mut peak: Option<PeakFromNow> = None;
    let mut oom_before = None;
    let mut most_processes = 0;
    for round in 0..3 {
        for session in &sessions {
            match start(&fx, session, &format!("srv{round}")) {
                Ok(r) => {
                    if peak.is_none() {
                        // The global cgroup exists once the first server runs.
                        peak = Some(PeakFromNow::start(&global, "memory.peak"));
                        oom_before = Some(global.counters("memory.events"));
                    }
                    admitted.push(r);
                    most_processes = most_processes.max(global.value("pids.current"));
                }
                Err(refused) => {
                    let (mut r, err) = *refused;
                    assert_eq!(err["code"], -32000, "{err}");
                    let cap = err["data"]["cap"].as_str().unwrap_or("?").to_string();
                    assert!(["max_servers", "min_headroom"].contains(&cap.as_str()), "refused by {cap}: {err}");
                    r.assert_exit(122, Some("refused:"));
                    *refusals.entry(cap).or_default() += 1;
                }
            }
        }
    }
    let peak = peak.expect("no server was admitted at all");
    let oom_before = oom_before.expect("counters");
    assert!(!refusals.is_empty(), "12 servers of 24 MiB were all admitted under a 160M cap");
    assert!(admitted.len() <= 8, "{} admitted, max_servers is 8", admitted.len());

    // The official MCP SDK client, in a fifth session, is refused too and sees why.
    let sdk = sdk_refusal(&fx);

    let cap = global.limit("memory.max").expect("the global cgroup has a memory.max");
    assert_eq!(cap, mib(160), "{global:?}: memory.max");
    let peak_bytes = peak.get();
    assert!(peak_bytes <= cap, "global memory.peak {peak_bytes} above memory.max {cap}");
    let ooms = global.counters("memory.events").since(&oom_before);
    assert_eq!(ooms.get("oom_kill"), 0, "admission let the servers run into the cap: {ooms:?}");

    let drain = Instant::now();
    for r in &mut admitted {
        r.close_stdin();
    }
    for r in &mut admitted {
        r.assert_exit(0, None);
    }
    let drained = drain.elapsed();
    for session in &sessions {
        assert!(!Cgroup::session(&global, session).exists(), "session cgroup {session} left behind");
    }

    let refused: usize = refusals.values().sum();
    eprintln!(
        "FANOUT figures: {} spawns asked in {} sessions (+1 SDK client), {} admitted, {} refused {:?}, SDK client \
         refused by {}; global memory.peak {:.1} MiB of memory.max {:.1} MiB ({:.0}%), 0 OOM kills, most processes \
         under the cap {}, set-up {:.1}s, drain (stdin closed -> every runner exited) {:.2}s (guest, emulated)",
        admitted.len() + refused,
        sessions.len(),
        admitted.len(),
        refused,
        refusals,
        sdk,
        peak_bytes as f64 / 1048576.0,
        cap as f64 / 1048576.0,
        peak_bytes as f64 * 100.0 / cap as f64,
        most_processes,
        drain.duration_since(started).as_secs_f64(),
        drained.as_secs_f64(),
    );
}

/// Runs the official TypeScript SDK client expecting a refusal; returns the cap it was told.
fn sdk_refusal(fx: &Fixture) -> String {
    let node = Path::new(env!("CARGO_MANIFEST_DIR")).join("node");
    assert!(
        node.join("node_modules/@modelcontextprotocol/sdk").is_dir(),
        "tests/node is not installed: run tests/setup first"
    );
    let mut cmd = Command::new("node");
    cmd.arg(node.join("everything-client.mjs"))
        .current_dir(&node)
        .env("MCP_RUNNER_BIN", runner_bin())
        .env("EXPECT_REFUSAL", "1")
        .env("MCP_RUNNER_SESSION", session_id("fan-sdk"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    fx.apply_env(&mut cmd);
    // apply_env removes MCP_RUNNER_SESSION; put the fifth session back.
    cmd.env("MCP_RUNNER_SESSION", session_id("fan-sdk"));
    let out = cmd.output().expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let refused = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["event"] == "refused")
        .unwrap_or_else(|| {
            panic!(
                "the SDK client was not refused; stdout:\n{stdout}\nstderr:\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    assert_eq!(refused["code"], -32000, "{refused}");
    refused["data"]["cap"].as_str().unwrap_or("?").to_string()
}
