//! The first-request reader of a refused server, on any bytes a client
//! may send on stdin: it never panics, answers only a JSON-RPC request
//! (a `method` string and an `id` that is a string, a number or null),
//! namely the first one before anything that is not JSON, and keeps its
//! id: the same string, the same integer, or a number a correct parser
//! reads as the same double.
#![no_main]

use std::io::Write;
use std::os::fd::AsFd;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use mcp_runner::fuzzing::{Refusal, answer_from, scan_json};
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let (reader, mut writer) = std::io::pipe().expect("pipe");
    // A pipe holds 64 KiB; a longer input needs a writer of its own.
    let feeder = if data.len() < 60_000 {
        writer.write_all(data).expect("write to the pipe");
        drop(writer);
        None
    } else {
        let data = data.to_vec();
        Some(std::thread::spawn(move || {
            let _ = writer.write_all(&data);
        }))
    };
    let refusal = Refusal {
        cap: "max_servers",
        current: 64.0,
        limit: 64.0,
        unit: "servers",
        message: "max_servers 64 reached".to_owned(),
    };
    let mut out = Vec::new();
    let answered = answer_from(reader.as_fd(), &mut out, &refusal, Some("github"), "s1", Duration::from_secs(10));
    drop(reader);
    if let Some(feeder) = feeder {
        feeder.join().expect("feeder");
    }

    let expected = first_request(data);
    assert_eq!(answered, expected.is_some(), "answered: {answered}, first request: {expected:?}");
    let Some(request_id) = expected else {
        assert!(out.is_empty());
        return;
    };
    let text = std::str::from_utf8(&out).expect("the answer is UTF-8");
    let line = text.strip_suffix('\n').expect("one line");
    assert!(!line.contains('\n'), "one line");
    let answer: Value = serde_json::from_str(line).expect("the answer is JSON");
    assert_eq!(answer["jsonrpc"], "2.0");
    assert!(answer["error"]["code"].is_i64());
    let answer_id = raw_member(line, "id").expect("the answer has an id");
    assert!(same_id(&request_id, &answer_id), "request id {request_id}, answer id {answer_id}");
});

/// The raw text of the first request's id, if any line before the first
/// line that is not JSON is a request.
fn first_request(data: &[u8]) -> Option<String> {
    let mut rest = data;
    while let Some(end) = rest.iter().position(|&b| b == b'\n') {
        let line = &rest[..=end];
        rest = &rest[end + 1..];
        let message: Value = serde_json::from_slice(line).ok()?;
        let is_request = message.get("method").is_some_and(Value::is_string)
            && message.get("id").is_some_and(|id| id.is_string() || id.is_number() || id.is_null());
        if is_request {
            let text = std::str::from_utf8(line).expect("serde_json read it as UTF-8");
            return raw_member(text, "id");
        }
    }
    None
}

/// The text of the top-level member `key` (the last one, if repeated).
fn raw_member(json: &str, key: &str) -> Option<String> {
    let root = scan_json(json.trim_end()).ok()?;
    let node = root.get(key)?;
    Some(json[node.start..node.end].to_owned())
}

/// Whether two id tokens mean the same id to a client: equal strings,
/// equal integers, or numbers that read as the same double.
fn same_id(request: &str, answer: &str) -> bool {
    let (Ok(a), Ok(b)) = (serde_json::from_str::<Value>(request), serde_json::from_str::<Value>(answer)) else {
        return false;
    };
    match (&a, &b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i128(), y.as_i128()) {
            (Some(x), Some(y)) => x == y,
            _ => request.parse::<f64>().ok() == answer.parse::<f64>().ok(),
        },
        _ => a == b,
    }
}
