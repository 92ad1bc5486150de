//! Sharing one server between clients (issue 8), proved with real official SDK clients: the
//! TypeScript SDK (tests/node/shared-client.mjs) and the Python SDK
//! (tests/python/shared_client.py), several at once, each through its own `mcp-runner run`,
//! against the real reference server `@modelcontextprotocol/server-everything`.
//!
//! With `share = "always"` (and `"auto"`) the clients of one capability class must reach ONE
//! server process (counted from /proc: `node .../server-everything/dist/index.js` processes
//! started with this fixture's state dir), and each must still get only what is its own: its
//! echoes, the sampling requests of its own tool calls (answered by its own callback), the
//! progress of its own calls (the others get none), the updates of its own subscriptions. A
//! sampling request made while several clients have calls in flight cannot be attributed (a
//! stdio server does not say which request it serves): the pool host may refuse it, but never
//! shows it to another client. One client leaving, or being SIGKILLed mid-call, does not disturb
//! the others; after the last one the server lives on for idle_timeout, then nothing of the
//! runner's is left. Clients with other capabilities, another environment or another cwd get an
//! instance of their own; a SIGKILLed pool host takes its relays and server along and the next
//! client starts a new pool. With `share = "never"` every client gets its own server.
//!
//! The clients are driven by a line protocol (see shared-client.mjs) and answer with one JSON
//! event a line, so the test waits for events, never for time. Linux only: it reads command
//! lines from /proc. Needs `tests/setup` (npm ci in tests/node, the venv in tests/python).
//! Without it the test fails when `CI` is set and is skipped, with the reason printed, otherwise.
#![cfg(target_os = "linux")]

use std::io::Write;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use mcp_runner_tests::{
    Fixture, Lines, Pidfd, Policy, Stderr, alive, cmdline, describe, hang_guard, poll_until, processes_with_env,
    runner_bin, scaled, start_time, tree_marker_processes,
};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

/// One test at a time: each starts four to eight Node and Python processes on a 2-core machine,
/// and a test's timings (idle_timeout) should not depend on what the others are doing.
static SERIAL: Mutex<()> = Mutex::new(());

/// The resource the subscription tests subscribe to (the server accepts any URI).
const URI: &str = "demo://resource/dynamic/text/1";

// ---------------------------------------------------------------------------------------------
// The installed peers

struct Peers {
    node_dir: PathBuf,
    python: PathBuf,
    python_dir: PathBuf,
    /// The node binary every client gives the runner, so that all commands are equal.
    node_bin: PathBuf,
    /// server-everything's stdio entry point.
    entry: PathBuf,
}

/// The installed clients and server, or `None` (skip) when `tests/setup` was not run; with
/// `CI` set a missing install is a failure, not a skip.
fn installed() -> Option<Peers> {
    let tests = Path::new(env!("CARGO_MANIFEST_DIR"));
    let node_dir = tests.join("node");
    let python_dir = tests.join("python");
    let python = python_dir.join(".venv/bin/python");
    let entry = node_dir.join("node_modules/@modelcontextprotocol/server-everything/dist/index.js");
    let missing = if !node_dir.join("node_modules/@modelcontextprotocol/sdk").is_dir() || !entry.is_file() {
        Some(format!("{} is not installed", node_dir.join("node_modules").display()))
    } else if !python_dir.join(".venv/.mcp-runner-setup").is_file() || !python.is_file() {
        Some(format!("{} is not installed", python_dir.join(".venv").display()))
    } else {
        None
    };
    let node_bin = std::env::var_os("PATH")
        .and_then(|path| std::env::split_paths(&path).map(|d| d.join("node")).find(|p| p.is_file()))
        .and_then(|p| std::fs::canonicalize(p).ok());
    let reason = match (missing, node_bin) {
        (None, Some(node_bin)) => return Some(Peers { node_dir, python, python_dir, node_bin, entry }),
        (Some(missing), _) => format!("{missing}: run tests/setup first"),
        (None, None) => "node is not on PATH".to_owned(),
    };
    if std::env::var_os("CI").is_some() {
        panic!("{reason}");
    }
    eprintln!("skipped: {reason}");
    None
}

// ---------------------------------------------------------------------------------------------
// One test's world: the fixture, the peers, and what runs with this fixture's state dir

struct World {
    fx: Fixture,
    peers: Peers,
    /// `MCP_RUNNER_STATE_DIR=<this fixture's>`: every process started for this test (clients,
    /// runners, a pool host, servers) inherits it; the test process itself does not have it.
    needle: String,
    start: Instant,
}

impl World {
    fn new(peers: Peers, share: &str) -> World {
        let mut policy = Policy::default()
            // Node and its threads are bigger than the hostile servers: room enough not to hit limits.
            .set("memory_max", "\"1G\"")
            .set("pids_max", "256")
            .set_in("server.everything", "share", &format!("\"{share}\""));
        if share != "never" {
            policy = policy.set_in("server.everything", "idle_timeout", &format!("\"{}ms\"", idle().as_millis()));
        }
        let fx = Fixture::new(&policy);
        let needle = format!("MCP_RUNNER_STATE_DIR={}", fx.state_dir.display());
        World { fx, peers, needle, start: Instant::now() }
    }

    /// Starts a client and waits for it to connect (initialize, tools/list, get-env).
    fn client(&self, sdk: Sdk, name: &str, sampling: bool) -> Client {
        let mut client = self.spawn(sdk, name, sampling);
        self.connected(&mut client);
        client
    }

    /// Starts a client; [`World::connected`] waits for it to connect.
    fn spawn(&self, sdk: Sdk, name: &str, sampling: bool) -> Client {
        self.spawn_with(sdk, name, sampling, |_| {})
    }

    /// [`World::spawn`], with `tweak` applied last to the client's command (another
    /// environment or working directory, which the client's runner inherits).
    fn spawn_with(&self, sdk: Sdk, name: &str, sampling: bool, tweak: impl FnOnce(&mut Command)) -> Client {
        let mut cmd = match sdk {
            Sdk::TypeScript => {
                let mut cmd = Command::new(&self.peers.node_bin);
                cmd.arg(self.peers.node_dir.join("shared-client.mjs"));
                cmd
            }
            Sdk::Python => {
                let mut cmd = Command::new(&self.peers.python);
                cmd.arg(self.peers.python_dir.join("shared_client.py"));
                cmd
            }
        };
        cmd.arg(name);
        if !sampling {
            cmd.arg("--no-sampling");
        }
        // The same environment and working directory for every client: the runner shares a
        // server only between runs with the same command, environment and cwd.
        cmd.current_dir(self.fx.dir())
            .env("MCP_RUNNER_BIN", runner_bin())
            .env("EVERYTHING_NODE", &self.peers.node_bin)
            .env("EVERYTHING_ENTRY", &self.peers.entry)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        self.fx.apply_env(&mut cmd);
        tweak(&mut cmd);
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot spawn {cmd:?}: {e}"));
        Client {
            name: name.to_owned(),
            lines: Lines::read(child.stdout.take().unwrap()),
            stderr: Stderr::collect(child.stderr.take().unwrap()),
            stdin: child.stdin.take(),
            child,
            exited: false,
            runner_pid: 0,
            marker: String::new(),
            has_sampling_tool: false,
        }
    }

    /// Waits for the client's `connected` event and records what it reports.
    fn connected(&self, client: &mut Client) {
        let connected = client.event("connected");
        let name = &client.name;
        client.runner_pid =
            connected["runner_pid"].as_i64().unwrap_or_else(|| panic!("{name}: no runner_pid: {connected}")) as i32;
        client.marker = connected["server_marker"]
            .as_str()
            .unwrap_or_else(|| panic!("the server {name} reached has no MCP_RUNNER_ID: {connected}"))
            .to_owned();
        client.has_sampling_tool = connected["has_sampling_tool"] == true;
        eprintln!("[{:>6.2?}] {name} connected: {connected}", self.start.elapsed());
    }

    /// The live server-everything processes started for this test.
    fn servers(&self) -> Vec<i32> {
        let entry = self.peers.entry.to_string_lossy();
        processes_with_env(&self.needle)
            .into_iter()
            .filter(|&pid| cmdline(pid).get(1).map(String::as_str) == Some(&entry))
            .collect()
    }

    /// The server-everything processes in the tree marked `marker`.
    fn servers_of(&self, marker: &str) -> Vec<i32> {
        let entry = self.peers.entry.to_string_lossy();
        tree_marker_processes(marker)
            .into_iter()
            .filter(|&pid| cmdline(pid).get(1).map(String::as_str) == Some(&entry))
            .collect()
    }

    /// Every live process started for this test, with its command line, for failure messages.
    fn ps(&self) -> String {
        let pids = processes_with_env(&self.needle);
        if pids.is_empty() {
            return "no process of this test".into();
        }
        pids.iter().map(|&pid| format!("\n  {} : {}", describe(&[pid]), cmdline(pid).join(" "))).collect()
    }

    /// Waits until no process started for this test is left: clients, runners, the pool host,
    /// servers. Panics (with what is left) after the hang guard.
    fn assert_nothing_left(&self, markers: &[&str]) {
        let gone = poll_until(hang_guard(), Duration::from_millis(20), || {
            processes_with_env(&self.needle).is_empty() && markers.iter().all(|m| tree_marker_processes(m).is_empty())
        });
        let marked: Vec<i32> = markers.iter().flat_map(|m| tree_marker_processes(m)).collect();
        assert!(gone, "left after every client closed: {}; marked: {}", self.ps(), describe(&marked));
        // Nor a socket in the state dir (a pool host's, say) that nothing listens on any more.
        let sockets: Vec<String> = std::fs::read_dir(&self.fx.state_dir)
            .expect("read the state dir")
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_socket()))
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert!(sockets.is_empty(), "sockets left in the state dir: {sockets:?}");
        // The process a marker names (the runner or pool host that owned the server) is gone too.
        for marker in markers {
            let (pid, start) = marker.split_once('.').unwrap_or_else(|| panic!("marker {marker} is not PID.START"));
            let pid: i32 = pid.parse().unwrap_or_else(|_| panic!("marker {marker}"));
            let left = start_time(pid).is_some_and(|s| s.to_string() == start) && alive(pid);
            assert!(!left, "the owner of marker {marker} is still alive: {}", describe(&[pid]));
        }
    }
}

impl Drop for World {
    /// After a failed assertion: SIGKILL whatever this test started, so that a failing test
    /// does not leave Node servers or a pool host behind. (Clients are killed by their own drop.)
    fn drop(&mut self) {
        for _ in 0..10 {
            let left = processes_with_env(&self.needle);
            if left.is_empty() {
                break;
            }
            for pid in left {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The idle_timeout of the shared tests: 2 s, scaled.
fn idle() -> Duration {
    scaled(Duration::from_secs(2))
}

// ---------------------------------------------------------------------------------------------
// A client process

#[derive(Clone, Copy)]
enum Sdk {
    TypeScript,
    Python,
}

struct Client {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Lines,
    stderr: Stderr,
    exited: bool,
    runner_pid: i32,
    /// `MCP_RUNNER_ID` of the server this client reached (from its get-env tool).
    marker: String,
    has_sampling_tool: bool,
}

impl Client {
    fn send(&mut self, command: &str) {
        let stdin = self.stdin.as_mut().unwrap_or_else(|| panic!("{}: stdin already closed", self.name));
        if let Err(e) = stdin.write_all(format!("{command}\n").as_bytes()).and_then(|()| stdin.flush()) {
            panic!("{}: cannot send {command:?}: {e}; stderr:\n{}", self.name, self.stderr.text());
        }
    }

    /// The next event named `name`; panics if the client failed, closed, or said nothing within
    /// the hang guard, or if the event is not ok.
    fn event(&mut self, name: &str) -> Value {
        loop {
            let line = match self.lines.next(hang_guard()) {
                Ok(Some(line)) => line,
                Ok(None) => panic!("{}: stdout closed before {name}; stderr:\n{}", self.name, self.stderr.text()),
                Err(_) => panic!("{}: no {name} within {:?}; stderr:\n{}", self.name, hang_guard(), self.stderr.text()),
            };
            match serde_json::from_str::<Value>(&line) {
                Ok(v) if v["event"] == name || v["event"] == "failed" => {
                    assert!(v["ok"] == true, "{}: {name} failed: {v}\nstderr:\n{}", self.name, self.stderr.text());
                    return v;
                }
                _ => eprintln!("{}: {line}", self.name),
            }
        }
    }

    /// The next JSON line, whatever its event.
    fn next_json(&mut self) -> Value {
        loop {
            match self.lines.next(hang_guard()) {
                Ok(Some(line)) => match serde_json::from_str::<Value>(&line) {
                    Ok(v) => return v,
                    Err(_) => eprintln!("{}: {line}", self.name),
                },
                Ok(None) => panic!("{}: stdout closed; stderr:\n{}", self.name, self.stderr.text()),
                Err(_) => panic!("{}: nothing within {:?}; stderr:\n{}", self.name, hang_guard(), self.stderr.text()),
            }
        }
    }

    /// Sends `command` and returns its event.
    fn call(&mut self, command: &str) -> Value {
        self.send(command);
        self.event(command.split_whitespace().next().expect("a command"))
    }

    /// The number of messages of `method` the client received so far (after a ping round trip,
    /// so that whatever was on its way before is counted).
    fn received(&mut self, method: &str) -> u64 {
        let stats = self.call("stats");
        stats["raw"][method].as_u64().unwrap_or(0)
    }

    /// How often the client's sampling callback ran so far.
    fn sampling_calls(&mut self) -> u64 {
        let stats = self.call("stats");
        stats["sampling_calls"]
            .as_u64()
            .unwrap_or_else(|| panic!("{}: stats without sampling_calls: {stats}", self.name))
    }

    /// Closes the session and waits for the client to exit 0 (its SDK waits for the runner).
    fn close(&mut self) {
        self.send("close");
        self.stdin = None;
        self.event("closed");
        let pid = self.child.id() as i32;
        assert!(Pidfd::open(pid).unwrap().wait(hang_guard()), "{}: did not exit after closed", self.name);
        let status = self.child.wait().expect("wait(client)");
        self.exited = true;
        assert!(status.success(), "{}: {status}; stderr:\n{}", self.name, self.stderr.text());
        assert!(!alive(self.runner_pid), "{}: its runner {} is still alive", self.name, self.runner_pid);
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        if !self.exited {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Sends each client its command at once, then collects every event: the commands run
/// concurrently, one per client.
fn together(calls: &mut [(&mut Client, &str)]) -> Vec<Value> {
    for (client, command) in calls.iter_mut() {
        client.send(command);
    }
    calls
        .iter_mut()
        .map(|(client, command)| client.event(command.split_whitespace().next().expect("a command")))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The scenarios

/// Echo, sampling and progress on all `clients` at once; each must get its own answers
/// (`shared`: they share one server, which may refuse sampling requests it cannot attribute).
/// Progress runs on the first and last client (different step counts: their calls and progress
/// tokens overlap), the others must receive no progress notification at all.
fn own_answers(world: &World, clients: &mut [&mut Client], shared: bool) {
    let t = Instant::now();
    let mut calls: Vec<(&mut Client, &str)> = clients.iter_mut().map(|c| (&mut **c, "echo 10")).collect();
    for (v, (client, _)) in together(&mut calls).iter().zip(&calls) {
        assert_eq!(v["calls"], 10, "{}: {v}", client.name);
        assert_eq!(v["wrong"], serde_json::json!([]), "{}: echoes that were not its own: {v}", client.name);
    }
    eprintln!("[{:>6.2?}] 10 echoes each, concurrently: {:?}", world.start.elapsed(), t.elapsed());

    // Sampling, one client at a time: the server's sampling/createMessage comes while only the
    // caller has a request in flight, so it is the caller's, and only its callback may answer.
    let t = Instant::now();
    for i in 0..clients.len() {
        let before: Vec<u64> = clients.iter_mut().map(|c| c.sampling_calls()).collect();
        let v = clients[i].call("sampling");
        let name = clients[i].name.clone();
        assert!(v["own"] == true, "{name}: the sampling result is not its callback's: {v}");
        for (c, before) in clients.iter_mut().zip(before) {
            let ran = c.sampling_calls() - before;
            let want = u64::from(c.name == name);
            assert_eq!(ran, want, "{}: its sampling callback ran {ran} times for {name}'s tool call", c.name);
        }
    }
    eprintln!("[{:>6.2?}] sampling, one client at a time: {:?}", world.start.elapsed(), t.elapsed());

    // Sampling from all at once. A stdio server's request does not say which of its requests it
    // serves: with several clients' calls in flight, a pool host may refuse it (JSON-RPC error
    // to the server) but must never show it to another client. Without sharing, all succeed.
    let t = Instant::now();
    let names: Vec<String> = clients.iter().map(|c| c.name.clone()).collect();
    let before: Vec<u64> = clients.iter_mut().map(|c| c.sampling_calls()).collect();
    let mut calls: Vec<(&mut Client, &str)> = clients.iter_mut().map(|c| (&mut **c, "sampling")).collect();
    let results = together(&mut calls);
    let mut refused = 0;
    for ((v, (client, _)), before) in results.iter().zip(calls.iter_mut()).zip(before) {
        let text = v["result_text"].as_str().unwrap_or_default();
        for other in names.iter().filter(|n| **n != client.name) {
            assert!(
                !text.contains(&format!("sampled by {other}")),
                "{}: got {other}'s sampling answer: {v}",
                client.name
            );
        }
        let ran = client.sampling_calls() - before;
        if v["own"] == true {
            assert_eq!(ran, 1, "{}: its callback ran {ran} times for its one call: {v}", client.name);
        } else {
            assert!(shared, "{}: concurrent sampling failed without sharing: {v}", client.name);
            assert!(
                text.contains("cannot tell which shared client"),
                "{}: neither answered nor refused: {v}",
                client.name
            );
            assert_eq!(ran, 0, "{}: its callback ran, yet its call was refused: {v}", client.name);
            refused += 1;
        }
    }
    eprintln!(
        "[{:>6.2?}] sampling from {} clients at once, {refused} refused by the pool host: {:?}",
        world.start.elapsed(),
        names.len(),
        t.elapsed()
    );

    let t = Instant::now();
    let n = clients.len();
    let before: Vec<u64> = clients.iter_mut().map(|c| c.received("notifications/progress")).collect();
    let (first, rest) = clients.split_first_mut().expect("clients");
    let (last, _) = rest.split_last_mut().expect("at least two clients");
    let results = together(&mut [(&mut **first, "progress 5"), (&mut **last, "progress 3")]);
    assert_eq!(results[0]["progress"], 5, "{}: {}", first.name, results[0]);
    assert_eq!(results[1]["progress"], 3, "{}: {}", last.name, results[1]);
    for (i, (client, before)) in clients.iter_mut().zip(before).enumerate() {
        let own = match i {
            0 => 5,
            i if i == n - 1 => 3,
            _ => 0,
        };
        let got = client.received("notifications/progress") - before;
        assert_eq!(got, own, "{}: progress notifications received (its own calls had {own})", client.name);
    }
    eprintln!("[{:>6.2?}] progress 5 and 3 steps, concurrently: {:?}", world.start.elapsed(), t.elapsed());
}

/// The first and the last client subscribe to [`URI`]; the ones between subscribe and
/// unsubscribe (the others' subscriptions must survive that); the first turns the server's
/// updates on: it receives one, and so does the last when they share the server (it then
/// subscribed to the same server), the others none.
fn own_updates(world: &World, clients: &mut [&mut Client], shared: bool) {
    let t = Instant::now();
    let before: Vec<u64> = clients.iter_mut().map(|c| c.received("notifications/resources/updated")).collect();
    let (subscriber, rest) = clients.split_first_mut().expect("clients");
    let (also, droppers) = rest.split_last_mut().expect("three clients");
    subscriber.call(&format!("subscribe {URI}"));
    also.call(&format!("subscribe {URI}"));
    for dropper in droppers.iter_mut() {
        dropper.call(&format!("subscribe {URI}"));
        dropper.call(&format!("unsubscribe {URI}"));
    }
    subscriber.call("updates");
    subscriber.call(&format!("wait-updated {URI} 1"));
    if shared {
        also.call(&format!("wait-updated {URI} 1"));
    }
    for (dropper, before) in droppers.iter_mut().zip(&before[1..]) {
        let got = dropper.received("notifications/resources/updated") - before;
        assert_eq!(got, 0, "{}: resources/updated after it unsubscribed", dropper.name);
    }
    let got = also.received("notifications/resources/updated") - before[before.len() - 1];
    if shared {
        assert!(got >= 1, "{}: {got} resources/updated of its subscription", also.name);
    } else {
        assert_eq!(got, 0, "{}: resources/updated from a server whose updates nobody turned on", also.name);
    }
    let got = subscriber.received("notifications/resources/updated") - before[0];
    assert!(got >= 1, "{}: {got} resources/updated", subscriber.name);
    subscriber.call("updates"); // off again
    subscriber.call(&format!("unsubscribe {URI}"));
    also.call(&format!("unsubscribe {URI}"));
    eprintln!("[{:>6.2?}] subscription updates: {:?}", world.start.elapsed(), t.elapsed());
}

/// Closes the last clients of a shared instance whose one server is `server`: it must outlive
/// them by idle_timeout, then go.
fn last_close_then_idle(world: &World, clients: &mut [&mut Client], server: i32) {
    let server_fd = Pidfd::open(server).expect("pidfd_open(server)");
    let (last, first) = clients.split_last_mut().expect("clients");
    for client in first {
        client.close();
    }
    let sent = Instant::now();
    last.close();
    let closed = sent.elapsed();
    eprintln!("[{:>6.2?}] last client closed in {closed:?}", world.start.elapsed());
    if closed < idle() {
        assert!(alive(server), "server {server} torn down {closed:?} after the last client left; {}", world.ps());
    } else {
        eprintln!("the last close took {closed:?}, longer than idle_timeout {:?}: not checked that it stays", idle());
    }
    assert!(
        server_fd.wait(idle() + hang_guard()),
        "server {server} still alive {:?} after the last client left (idle_timeout {:?}); {}",
        sent.elapsed(),
        idle(),
        world.ps()
    );
    let gone = sent.elapsed();
    eprintln!("[{:>6.2?}] server gone {gone:?} after the last close was sent", world.start.elapsed());
    assert!(
        gone >= idle(),
        "server {server} gone {gone:?} after the last client left, before idle_timeout {:?}",
        idle()
    );
}

#[test]
fn three_sdk_clients_share_one_server() {
    three_share_one_server("always");
}

/// "auto" shares as "always" does for a server that declares nothing against it (this one),
/// and keeps sharing with the clients it has after refusing a sampling request.
#[test]
fn three_sdk_clients_share_one_server_auto() {
    three_share_one_server("auto");
}

fn three_share_one_server(share: &str) {
    let Some(peers) = installed() else { return };
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let world = World::new(peers, share);
    let mut ts1 = world.client(Sdk::TypeScript, "ts1", true);
    let mut ts2 = world.client(Sdk::TypeScript, "ts2", true);
    let mut py1 = world.client(Sdk::Python, "py1", true);

    // One server, reached by all three.
    let servers = world.servers();
    assert_eq!(servers.len(), 1, "server-everything processes with three clients open: {}", world.ps());
    let server = servers[0];
    for c in [&ts1, &ts2, &py1] {
        assert_eq!(c.marker, ts1.marker, "{} reached another server than ts1; {}", c.name, world.ps());
        assert!(c.has_sampling_tool, "{}: the server did not see the sampling capability", c.name);
        assert!(alive(c.runner_pid), "{}: its runner {} is gone", c.name, c.runner_pid);
    }
    assert_eq!(world.servers_of(&ts1.marker), vec![server], "the server in marker {}; {}", ts1.marker, world.ps());

    own_answers(&world, &mut [&mut ts1, &mut ts2, &mut py1], true);
    own_updates(&world, &mut [&mut ts1, &mut ts2, &mut py1], true);
    for c in [&mut ts1, &mut ts2, &mut py1] {
        let stats = c.call("stats");
        eprintln!("{} received, by method: {}", c.name, stats["raw"]);
    }

    // One client leaves; the others go on with the same server.
    ts2.close();
    eprintln!("[{:>6.2?}] ts2 closed", world.start.elapsed());
    assert!(alive(server), "server {server} gone after one of three clients left; {}", world.ps());
    own_answers(&world, &mut [&mut ts1, &mut py1], true);
    assert_eq!(world.servers(), vec![server], "server-everything processes after ts2 left; {}", world.ps());

    last_close_then_idle(&world, &mut [&mut ts1, &mut py1], server);
    world.assert_nothing_left(&[&ts1.marker]);
    eprintln!("[{:>6.2?}] nothing left", world.start.elapsed());
}

#[test]
fn other_capabilities_get_their_own_instance() {
    let Some(peers) = installed() else { return };
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let world = World::new(peers, "always");
    let mut with = world.client(Sdk::TypeScript, "ts-sampling", true);
    let mut ts = world.client(Sdk::TypeScript, "ts-plain", false);
    let mut py = world.client(Sdk::Python, "py-plain", false);

    // Two classes: {sampling} and {}; TypeScript and Python without sampling share one.
    assert_ne!(
        with.marker,
        ts.marker,
        "a client without sampling reached the sampling client's server; {}",
        world.ps()
    );
    assert_eq!(py.marker, ts.marker, "two clients without sampling reached different servers; {}", world.ps());
    let servers = world.servers();
    assert_eq!(servers.len(), 2, "server-everything processes for two capability classes: {}", world.ps());
    assert!(with.has_sampling_tool, "the sampling client's server did not see its sampling capability");
    assert!(!ts.has_sampling_tool, "ts-plain's server offers sampling: it saw another client's capabilities");
    assert!(!py.has_sampling_tool, "py-plain's server offers sampling: it saw another client's capabilities");
    let sampling_server = world.servers_of(&with.marker);
    let plain_server = world.servers_of(&ts.marker);
    assert_eq!(sampling_server.len(), 1, "servers in marker {}; {}", with.marker, world.ps());
    assert_eq!(plain_server.len(), 1, "servers in marker {}; {}", ts.marker, world.ps());

    let results = together(&mut [(&mut with, "echo 10"), (&mut ts, "echo 10"), (&mut py, "echo 10")]);
    for v in &results {
        assert_eq!(v["wrong"], serde_json::json!([]), "echoes that were not its own: {v}");
    }
    with.call("sampling");

    // Each class idles out on its own.
    last_close_then_idle(&world, &mut [&mut with], sampling_server[0]);
    assert!(alive(plain_server[0]), "the plain instance went with the sampling one; {}", world.ps());
    last_close_then_idle(&world, &mut [&mut ts, &mut py], plain_server[0]);
    world.assert_nothing_left(&[&with.marker, &ts.marker]);
}

#[test]
fn never_runs_one_server_per_client() {
    let Some(peers) = installed() else { return };
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let world = World::new(peers, "never");
    let mut ts1 = world.client(Sdk::TypeScript, "ts1", true);
    let mut ts2 = world.client(Sdk::TypeScript, "ts2", true);
    let mut py1 = world.client(Sdk::Python, "py1", true);

    let servers = world.servers();
    assert_eq!(servers.len(), 3, "server-everything processes with three clients open: {}", world.ps());
    for c in [&ts1, &ts2, &py1] {
        // Each server is in its own runner's tree.
        let runner = format!("{}.", c.runner_pid);
        assert!(
            c.marker.starts_with(&runner),
            "{} reached server {} outside its runner {}",
            c.name,
            c.marker,
            c.runner_pid
        );
        assert_eq!(world.servers_of(&c.marker).len(), 1, "{}: servers in marker {}; {}", c.name, c.marker, world.ps());
        assert!(c.has_sampling_tool, "{}: the server did not see the sampling capability", c.name);
    }

    own_answers(&world, &mut [&mut ts1, &mut ts2, &mut py1], false);
    own_updates(&world, &mut [&mut ts1, &mut ts2, &mut py1], false);

    // No idle_timeout: each server goes with its client.
    ts2.close();
    let gone = poll_until(hang_guard(), Duration::from_millis(20), || world.servers_of(&ts2.marker).is_empty());
    assert!(gone, "ts2's server outlived its runner; {}", world.ps());
    own_answers(&world, &mut [&mut ts1, &mut py1], false);
    ts1.close();
    py1.close();
    world.assert_nothing_left(&[&ts1.marker, &ts2.marker, &py1.marker]);
    eprintln!("[{:>6.2?}] nothing left", world.start.elapsed());
}

#[test]
fn clients_started_at_once_share_one_server() {
    let Some(peers) = installed() else { return };
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let world = World::new(peers, "always");
    // No pool host yet, three runs racing to be the one that starts it.
    let mut clients = [
        world.spawn(Sdk::TypeScript, "ts1", true),
        world.spawn(Sdk::Python, "py1", true),
        world.spawn(Sdk::TypeScript, "ts2", true),
    ];
    for client in clients.iter_mut() {
        world.connected(client);
    }
    let servers = world.servers();
    assert_eq!(servers.len(), 1, "server-everything processes with three clients started at once: {}", world.ps());
    for c in &clients {
        assert_eq!(c.marker, clients[0].marker, "{} reached another server than ts1; {}", c.name, world.ps());
    }
    let [ts1, py1, ts2] = &mut clients;
    own_answers(&world, &mut [ts1, ts2, py1], true);
    let marker = clients[0].marker.clone();
    last_close_then_idle(&world, &mut clients.iter_mut().collect::<Vec<_>>(), servers[0]);
    world.assert_nothing_left(&[&marker]);
}

#[test]
fn a_client_within_idle_timeout_reuses_the_server() {
    let Some(peers) = installed() else { return };
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let world = World::new(peers, "always");
    let mut first = world.client(Sdk::TypeScript, "ts1", true);
    let servers = world.servers();
    assert_eq!(servers.len(), 1, "server-everything processes with one client: {}", world.ps());
    let server_start = start_time(servers[0]);
    let sent = Instant::now();
    first.close();
    let mut second = world.client(Sdk::Python, "py1", true);
    let took = sent.elapsed();
    // The idle clock starts after the close was sent: a client connected sooner than
    // idle_timeout after that found the server alive and must have been given it.
    if took < idle() {
        assert_eq!(
            second.marker,
            first.marker,
            "py1 connected {took:?} after ts1 left and got a new server; {}",
            world.ps()
        );
        assert_eq!(world.servers(), servers, "server-everything processes after py1 came back; {}", world.ps());
        assert_eq!(start_time(servers[0]), server_start, "the server was restarted");
    } else {
        eprintln!("py1 connected {took:?} after ts1 left, later than idle_timeout {:?}: reuse not checked", idle());
    }
    let echo = second.call("echo 10");
    assert_eq!(echo["wrong"], serde_json::json!([]), "{echo}");
    let server = world.servers();
    assert_eq!(server.len(), 1, "server-everything processes: {}", world.ps());
    last_close_then_idle(&world, &mut [&mut second], server[0]);
    world.assert_nothing_left(&[&first.marker, &second.marker]);

    // After the pool retired its server (and its host left): a new client starts it all again.
    let mut third = world.client(Sdk::TypeScript, "ts3", true);
    assert_ne!(third.marker, second.marker, "ts3 reached the retired server's marker; {}", world.ps());
    let echo = third.call("echo 10");
    assert_eq!(echo["wrong"], serde_json::json!([]), "{echo}");
    third.call("sampling");
    let server = world.servers();
    assert_eq!(server.len(), 1, "server-everything processes after a new start: {}", world.ps());
    last_close_then_idle(&world, &mut [&mut third], server[0]);
    world.assert_nothing_left(&[&third.marker]);
}

/// The pool key holds the runner's environment and working directory: a client whose runner
/// has another variable, or another cwd, gets a server of its own.
#[test]
fn another_environment_or_directory_gets_another_server() {
    let Some(peers) = installed() else { return };
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let world = World::new(peers, "always");
    let elsewhere = world.fx.dir().join("elsewhere");
    std::fs::create_dir(&elsewhere).expect("mkdir");
    let mut clients = [
        world.spawn(Sdk::TypeScript, "ts1", true),
        world.spawn_with(Sdk::TypeScript, "ts-env", true, |cmd| {
            cmd.env("SHARED_EVERYTHING_EXTRA", "1");
        }),
        world.spawn_with(Sdk::Python, "py-cwd", true, |cmd| {
            cmd.current_dir(&elsewhere);
        }),
    ];
    for client in clients.iter_mut() {
        world.connected(client);
    }
    let [a, b, c] = &clients;
    assert_ne!(a.marker, b.marker, "another environment, the same server; {}", world.ps());
    assert_ne!(a.marker, c.marker, "another working directory, the same server; {}", world.ps());
    assert_ne!(b.marker, c.marker, "{}", world.ps());
    let servers = world.servers();
    assert_eq!(servers.len(), 3, "server-everything processes for three pool keys: {}", world.ps());
    let fds: Vec<(i32, Pidfd)> = servers.iter().map(|&pid| (pid, Pidfd::open(pid).expect("pidfd"))).collect();
    let markers: Vec<String> = clients.iter().map(|c| c.marker.clone()).collect();
    let [a, b, c] = &mut clients;
    own_answers(&world, &mut [a, b, c], false);
    let sent = Instant::now();
    for client in clients.iter_mut() {
        client.close();
    }
    for (pid, fd) in fds {
        assert!(fd.wait(idle() + hang_guard()), "server {pid} outlived idle_timeout; {}", world.ps());
        assert!(
            sent.elapsed() >= idle(),
            "server {pid} gone {:?} after the closes, before idle_timeout",
            sent.elapsed()
        );
    }
    world.assert_nothing_left(&markers.iter().map(String::as_str).collect::<Vec<_>>());
}

#[test]
fn a_client_killed_mid_call_leaves_the_others_working() {
    let Some(peers) = installed() else { return };
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let world = World::new(peers, "always");
    let mut ts1 = world.client(Sdk::TypeScript, "ts1", true);
    let mut ts2 = world.client(Sdk::TypeScript, "ts2", true);
    let mut py1 = world.client(Sdk::Python, "py1", true);
    let servers = world.servers();
    assert_eq!(servers.len(), 1, "server-everything processes with three clients open: {}", world.ps());

    // ts2 starts a 2-second call; once ts1 got answers sent after it, ts2's runner is SIGKILLed.
    ts2.send("progress 10");
    ts1.call("echo 10");
    kill(Pid::from_raw(ts2.runner_pid), Signal::SIGKILL).expect("kill ts2's runner");
    let v = ts2.next_json();
    assert!(v["event"] == "progress" && v["ok"] == false, "ts2's call did not fail with its runner gone: {v}");
    eprintln!("[{:>6.2?}] ts2's runner killed mid-call", world.start.elapsed());

    // The server goes on; the rest of ts2's call (progress, result) reaches nobody else.
    own_answers(&world, &mut [&mut ts1, &mut py1], true);
    assert_eq!(world.servers(), servers, "server-everything processes after ts2's runner was killed; {}", world.ps());
    let late: Vec<u64> = [&mut ts1, &mut py1].iter_mut().map(|c| c.received("notifications/progress")).collect();
    assert_eq!(late, vec![5, 3], "progress received by ts1, py1 (their own calls: 5, 3)");
    drop(ts2);
    last_close_then_idle(&world, &mut [&mut ts1, &mut py1], servers[0]);
    world.assert_nothing_left(&[&ts1.marker]);
}

/// SIGKILL to the pool host: its clients' runners see their connection end and exit, and the
/// server it owned goes too. Its socket is left behind (nothing could remove it): the next
/// client must get a new pool anyway, and that one leaves nothing.
#[test]
fn the_pool_host_killed_takes_its_server_along() {
    let Some(peers) = installed() else { return };
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let world = World::new(peers, "always");
    let mut ts1 = world.client(Sdk::TypeScript, "ts1", true);
    let mut py1 = world.client(Sdk::Python, "py1", true);
    let hosts: Vec<i32> = processes_with_env(&world.needle)
        .into_iter()
        .filter(|&pid| cmdline(pid).iter().any(|a| a == "pool-host"))
        .collect();
    assert_eq!(hosts.len(), 1, "pool hosts (processes with a pool-host argument): {}", world.ps());
    let servers = world.servers();
    assert_eq!(servers.len(), 1, "server-everything processes: {}", world.ps());
    eprintln!("[{:>6.2?}] killing pool host {}; {}", world.start.elapsed(), hosts[0], world.ps());
    kill(Pid::from_raw(hosts[0]), Signal::SIGKILL).expect("kill the pool host");

    for (client, runner) in [(&ts1, ts1.runner_pid), (&py1, py1.runner_pid)] {
        assert!(
            Pidfd::open(runner).unwrap().wait(hang_guard()),
            "{}: its runner {runner} outlived the pool host; {}",
            client.name,
            world.ps()
        );
    }
    let server = Pidfd::open(servers[0]).unwrap();
    assert!(server.wait(hang_guard()), "server {} outlived its pool host; {}", servers[0], world.ps());
    eprintln!("[{:>6.2?}] runners and server gone", world.start.elapsed());
    for client in [&mut ts1, &mut py1] {
        client.send("stats");
        let v = client.next_json();
        assert!(v["ok"] == false, "{}: a request succeeded with its runner gone: {v}", client.name);
        client.send("close");
    }
    drop((ts1, py1));
    let gone = poll_until(hang_guard(), Duration::from_millis(20), || processes_with_env(&world.needle).is_empty());
    assert!(gone, "left after the pool host was killed: {}", world.ps());

    let mut ts2 = world.client(Sdk::TypeScript, "ts2", true);
    let echo = ts2.call("echo 10");
    assert_eq!(echo["wrong"], serde_json::json!([]), "{echo}");
    let servers = world.servers();
    assert_eq!(servers.len(), 1, "server-everything processes after the restart: {}", world.ps());
    last_close_then_idle(&world, &mut [&mut ts2], servers[0]);
    world.assert_nothing_left(&[&ts2.marker]);
}
