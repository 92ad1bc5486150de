//! A shared server's pool as the tests see it: its status file in the state directory, the
//! shared server behind it, and the few requests every sharing test makes.

use std::fs;
use std::time::Duration;

use serde_json::{Value, json};

use crate::{Fixture, RunnerProc, hang_guard, poll_until};

/// initialize, as a 2025-11-25 client sends it.
pub fn initialize(r: &mut RunnerProc) -> Value {
    let line = r.request(
        0,
        "initialize",
        &json!({"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}),
    );
    r.send_line(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
    serde_json::from_str(&line).expect("initialize response is JSON")
}

/// A request whose answer must carry this client's own id and params.
pub fn echo_ok(r: &mut RunnerProc, id: u64, text: &str) {
    let line = r.request(id, "tools/call", &json!({"name": "echo", "arguments": {"message": text}}));
    let v: Value = serde_json::from_str(&line).expect("JSON");
    assert_eq!(v["id"], id, "{line}");
    assert_eq!(v["result"]["echo"]["arguments"]["message"], text, "another client's answer? {line}");
}

/// The pool's status file (there is one pool in these tests), once it lists `clients` clients.
pub fn pool_with_clients(fx: &Fixture, clients: usize) -> Value {
    let mut status = Value::Null;
    let found = poll_until(hang_guard(), Duration::from_millis(20), || {
        status = pool_status(fx).unwrap_or(Value::Null);
        let n: usize = status["instances"]
            .as_array()
            .map_or(0, |is| is.iter().map(|i| i["clients"].as_array().map_or(0, Vec::len)).sum());
        n == clients && status["instances"].as_array().is_some_and(|i| !i.is_empty())
    });
    assert!(found, "the pool never had {clients} clients: {status}");
    status
}

pub fn pool_status(fx: &Fixture) -> Option<Value> {
    let entry = fs::read_dir(&fx.state_dir).ok()?.flatten().find(|e| {
        let n = e.file_name().to_string_lossy().into_owned();
        n.starts_with("pool-") && n.ends_with(".json")
    })?;
    serde_json::from_slice(&fs::read(entry.path()).ok()?).ok()
}

/// The shared server's pid, from its runner's record (written first at admission, without
/// the server, then again once the server runs).
pub fn server_pid(fx: &Fixture, status: &Value) -> i32 {
    let runner = status["instances"][0]["runner"]["pid"].as_i64().expect("instance runner pid") as i32;
    let mut pid = None;
    let found = poll_until(hang_guard(), Duration::from_millis(10), || {
        pid = fx.record(runner)["server"]["pid"].as_i64();
        pid.is_some()
    });
    assert!(found, "the record of runner {runner} never named its server: {}", fx.record(runner));
    pid.expect("found") as i32
}

pub fn pool_files(fx: &Fixture) -> Vec<String> {
    fs::read_dir(&fx.state_dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("pool-"))
                .collect()
        })
        .unwrap_or_default()
}
