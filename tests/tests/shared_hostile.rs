//! A shared server (`share = "always"`) against hostile clients and failures: what one client
//! does never reaches or stalls another, a dead pool host or server leaves nothing behind,
//! and fifty relays starting at once start one server.
//!
//! The server is `hostile echo` (answers every request with its params); each relay is a real
//! `mcp-runner run`, the pool host the real detached process.

use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use mcp_runner_tests::pool::{echo_ok, initialize, pool_files, pool_with_clients, server_pid};
use mcp_runner_tests::{Fixture, Policy, RunnerProc, alive, hang_guard, hostile, poll_until};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};

fn fixture() -> Fixture {
    let text = Policy::default()
        .set_in("global", "max_pressure", "\"max\"")
        .set_in("global", "min_headroom", "\"0\"")
        .to_toml()
        + "\n[server.echo]\nshare = \"always\"\nidle_timeout = \"1s\"\n";
    Fixture::with_policy_text(&text)
}

fn relay(fx: &Fixture, session: &str) -> RunnerProc {
    fx.run_in(session, "echo", &[hostile!(), "echo"])
}

/// Two initialized clients of one shared server, and the pool's status once it lists both.
fn two_clients(fx: &Fixture, a: &str, b: &str) -> (RunnerProc, RunnerProc, Value) {
    let (mut a, mut b) = (relay(fx, a), relay(fx, b));
    initialize(&mut a);
    initialize(&mut b);
    let status = pool_with_clients(fx, 2);
    (a, b, status)
}

#[test]
fn garbage_and_oversized_messages_get_errors_and_the_other_client_never_notices() {
    let fx = fixture();
    let (mut a, mut b, status) = two_clients(&fx, "a", "b");
    let server = server_pid(&fx, &status);

    a.send_line("this is not JSON");
    let err: Value = serde_json::from_str(&a.read_line().expect("an answer to garbage")).expect("JSON");
    assert_eq!(err["error"]["code"], -32700, "{err}");
    assert_eq!(err["id"], Value::Null, "{err}");
    echo_ok(&mut b, 1, "b after a's garbage");

    // 5 MB, over the 4 MiB message cap: refused to a, never forwarded.
    a.send_line(&format!(
        r#"{{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{{"x":"{}"}}}}"#,
        "y".repeat(5 << 20)
    ));
    let err: Value = serde_json::from_str(&a.read_line().expect("an answer to 5 MB")).expect("JSON");
    assert_eq!(err["error"]["code"], -32600, "{err}");
    echo_ok(&mut b, 2, "b after a's 5 MB");

    // The same id twice in flight is refused to the sender only: the id stays a's own.
    echo_ok(&mut a, 3, "a still works");
    echo_ok(&mut b, 3, "b uses the same id");
    assert!(alive(server), "the shared server died");
    for r in [&mut a, &mut b] {
        r.close_stdin();
        r.assert_exit(0, None);
    }
}

#[test]
fn a_client_that_never_reads_is_dropped_and_the_other_goes_on() {
    let fx = fixture();
    let mut b = relay(&fx, "b");
    initialize(&mut b);
    // A relay whose stdout nobody reads: its pipe fills, it stops reading the socket, and
    // what the server sends every client piles up in the host until the host drops it.
    let mut cmd = fx.command(&["run", "--session", "a", "--name", "echo", "--", hostile!(), "echo"]);
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::null());
    let mut a = cmd.spawn().expect("spawn the unread relay");
    let mut a_in = a.stdin.take().expect("stdin");
    {
        use std::io::Write;
        writeln!(a_in, r#"{{"jsonrpc":"2.0","id":0,"method":"initialize","params":{{"protocolVersion":"2025-11-25","capabilities":{{}}}}}}"#)
            .expect("write to a");
    }
    pool_with_clients(&fx, 2);
    // 400,000 list_changed notifications, 60 bytes each: 24 MB for each client, over the
    // host's 16 MiB backlog for the one that does not read. b reads them all and goes on.
    let line = b.request(1, "hostile/flood", &json!({"count": 400_000}));
    assert!(line.contains("\"id\":1"), "{line}");
    let log = fx.state_dir.clone();
    let dropped = poll_until(hang_guard(), Duration::from_millis(50), || {
        fs::read_dir(&log).into_iter().flatten().flatten().any(|e| {
            e.file_name().to_string_lossy().ends_with(".log")
                && fs::read_to_string(e.path()).is_ok_and(|t| t.contains("dropped as too slow"))
        })
    });
    let logs: String = fs::read_dir(&log)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
        .filter_map(|e| fs::read_to_string(e.path()).ok())
        .collect();
    assert!(dropped, "the host never dropped the client that does not read; host log:\n{logs}");
    pool_with_clients(&fx, 1);
    echo_ok(&mut b, 2, "b after a was dropped");
    let _ = kill(Pid::from_raw(a.id() as i32), Signal::SIGKILL);
    let _ = a.wait();
    b.close_stdin();
    b.assert_exit(0, None);
}

#[test]
fn a_client_killed_mid_call_is_detached_and_the_others_go_on() {
    let fx = fixture();
    let (mut a, mut b, _) = two_clients(&fx, "a", "b");
    // A request on its way, then SIGKILL: the host must forget a and keep serving b.
    a.send_line(
        r#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"echo","arguments":{"message":"x"}}}"#,
    );
    a.signal(Signal::SIGKILL);
    a.wait_exit();
    pool_with_clients(&fx, 1);
    echo_ok(&mut b, 5, "b uses the id a had in flight");
    b.close_stdin();
    b.assert_exit(0, None);
}

#[test]
fn a_sigkilled_pool_host_tells_its_clients_takes_its_server_down_and_gc_removes_the_rest() {
    let fx = fixture();
    let (mut a, mut b, status) = two_clients(&fx, "a", "b");
    let server = server_pid(&fx, &status);
    let host = status["host"]["pid"].as_i64().expect("host pid") as i32;
    kill(Pid::from_raw(host), Signal::SIGKILL).expect("kill the pool host");
    for r in [&mut a, &mut b] {
        let line = r.read_line().expect("a message before the relay exits");
        let v: Value = serde_json::from_str(&line).expect("JSON");
        assert_eq!(v["error"]["code"], -32603, "{line}");
        r.assert_exit(125, Some("pool host closed the connection"));
    }
    // The instance's runner saw its stdin close: the server goes down the teardown path.
    assert!(
        poll_until(hang_guard(), Duration::from_millis(20), || !alive(server)),
        "the shared server outlived its host"
    );
    // gc leaves a pool whose lock is still held; the kernel lets go of a killed process's
    // lock as it exits, which under load can trail its zombie state: gc again until it is.
    let cleaned = poll_until(hang_guard(), Duration::from_millis(50), || {
        let out = fx.output(&["gc"]);
        assert!(out.status.success(), "{}", out.stderr);
        pool_files(&fx).is_empty()
    });
    assert!(cleaned, "gc left {:?}", pool_files(&fx));
}

#[test]
fn a_crashed_shared_server_fails_its_clients_and_the_next_run_starts_a_fresh_one() {
    let fx = fixture();
    let mut a = relay(&fx, "a");
    initialize(&mut a);
    let status = pool_with_clients(&fx, 1);
    let server = server_pid(&fx, &status);
    kill(Pid::from_raw(server), Signal::SIGKILL).expect("kill the server");
    a.assert_exit(125, Some("the server ended"));
    // The next run finds the host (or a new one) and gets a new server.
    let mut b = relay(&fx, "b");
    initialize(&mut b);
    echo_ok(&mut b, 1, "a fresh instance");
    let status = pool_with_clients(&fx, 1);
    assert_ne!(server_pid(&fx, &status), server, "the dead server was reused");
    b.close_stdin();
    b.assert_exit(0, None);
}

#[test]
fn fifty_relays_at_once_start_exactly_one_server() {
    let fx = fixture();
    // Spawned from this thread: every relay's client is this process.
    let mut relays: Vec<RunnerProc> = (0..50).map(|i| relay(&fx, &format!("s{i}"))).collect();
    for (i, r) in relays.iter_mut().enumerate() {
        initialize(r);
        echo_ok(r, 1, &format!("client {i}"));
    }
    let status = pool_with_clients(&fx, 50);
    assert_eq!(status["instances"].as_array().map(Vec::len), Some(1), "{status}");
    let hosts = Command::new("pgrep").args(["-f", "mcp-runner pool-host --detached"]).output().expect("pgrep");
    let ours = String::from_utf8_lossy(&hosts.stdout)
        .lines()
        .filter_map(|p| p.trim().parse::<i32>().ok())
        .filter(|&p| {
            fs::read(format!("/proc/{p}/environ")).is_ok_and(|e| {
                e.split(|&b| b == 0)
                    .any(|kv| kv == format!("MCP_RUNNER_STATE_DIR={}", fx.state_dir.display()).as_bytes())
            })
        })
        .count();
    assert_eq!(ours, 1, "pool hosts for this pool");
    for r in &mut relays {
        r.close_stdin();
    }
    for r in &mut relays {
        r.assert_exit(0, None);
    }
    // After idle_timeout the server and the host are gone, and so is the socket.
    let server = server_pid(&fx, &status);
    assert!(poll_until(hang_guard(), Duration::from_millis(50), || !alive(server)), "the server outlived idle_timeout");
    assert!(
        poll_until(hang_guard(), Duration::from_millis(50), || !pool_files(&fx).iter().any(|n| n.ends_with(".sock"))),
        "the host outlived its last server"
    );
}

#[test]
fn a_different_secret_never_shares() {
    let fx = fixture();
    let mut cmd = fx.command(&["run", "--session", "a", "--name", "echo", "--", hostile!(), "echo"]);
    cmd.env("API_TOKEN", "alpha");
    let mut a = RunnerProc::spawn(cmd);
    let mut cmd = fx.command(&["run", "--session", "b", "--name", "echo", "--", hostile!(), "echo"]);
    cmd.env("API_TOKEN", "beta");
    let mut b = RunnerProc::spawn(cmd);
    initialize(&mut a);
    initialize(&mut b);
    let socks = pool_files(&fx).into_iter().filter(|n| n.ends_with(".sock")).count();
    assert_eq!(socks, 2, "two tokens, two pools: {:?}", pool_files(&fx));
    for r in [&mut a, &mut b] {
        r.close_stdin();
        r.assert_exit(0, None);
    }
}

#[test]
fn stop_of_a_session_detaches_its_client_and_stop_of_the_name_ends_the_server() {
    let fx = fixture();
    let (mut a, mut b, status) = two_clients(&fx, "doomed", "kept");
    let server = server_pid(&fx, &status);

    let text = fx.output(&["status"]);
    assert!(text.stdout.contains("session shared"), "{}", text.stdout);
    for needle in ["shared (pool ", "2 clients: ", "session doomed (runner ", "session kept (runner "] {
        assert!(text.stdout.contains(needle), "no {needle:?} in:\n{}", text.stdout);
    }

    let out = fx.output(&["stop", "doomed"]);
    assert!(out.status.success(), "{}", out.stderr);
    assert!(out.stdout.contains("detached 1 client"), "{}", out.stdout);
    // A relay has nothing to tear down: SIGTERM ends it by its default action.
    assert_eq!(a.wait_exit().signal(), Some(15), "the relay of the stopped session");
    pool_with_clients(&fx, 1);
    echo_ok(&mut b, 1, "the other session goes on");
    assert!(alive(server), "stopping a session took the shared server down");

    let out = fx.output(&["stop", "echo"]);
    assert!(out.status.success(), "{}", out.stderr);
    assert!(!alive(server), "stop NAME left the shared server running");
    assert_eq!(b.wait_exit().signal(), Some(15), "the relay of the stopped server");
}

#[test]
fn a_burst_of_pipelined_requests_is_slowed_down_not_refused() {
    let fx = fixture();
    let (mut a, mut b, _) = two_clients(&fx, "burst", "calm");
    // 3000 requests written at once: far past the 256 a client may have in flight. The host
    // stops reading the client instead of refusing requests; every one is answered, in order
    // of its own id, and the other client is served meanwhile.
    let burst: String = (1..=3000)
        .map(|id| format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"echo","arguments":{{"message":"{id}"}}}}}}"#) + "\n")
        .collect();
    a.send_line(burst.trim_end());
    echo_ok(&mut b, 1, "calm client during the burst");
    let mut answered = std::collections::BTreeSet::new();
    while answered.len() < 3000 {
        let line = a.read_line().expect("an answer");
        let v: Value = serde_json::from_str(&line).expect("JSON");
        assert!(v.get("error").is_none(), "a request of the burst was refused: {line}");
        let id = v["id"].as_u64().expect("an id");
        assert_eq!(v["result"]["echo"]["arguments"]["message"], id.to_string(), "{line}");
        assert!(answered.insert(id), "answered twice: {id}");
    }
    for r in [&mut a, &mut b] {
        r.close_stdin();
        r.assert_exit(0, None);
    }
}

#[test]
fn a_client_that_writes_its_requests_and_closes_at_once_gets_every_answer() {
    let fx = fixture();
    let mut a = relay(&fx, "hasty");
    a.send_line(
        r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{}}}"#,
    );
    a.send_line(
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"message":"last"}}}"#,
    );
    a.close_stdin();
    let mut ids = Vec::new();
    while let Some(line) = a.read_line() {
        ids.push(serde_json::from_str::<Value>(&line).expect("JSON")["id"].clone());
    }
    assert_eq!(ids, vec![json!(1), json!(2)], "answers owed at end of input were lost");
    a.assert_exit(0, None);
}
