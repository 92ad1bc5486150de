//! A refused server must be visible in the client, not a silent hang: the
//! runner reads the client's first JSON-RPC request (nothing was spawned,
//! so stdin is the runner's to read) and answers it with an error that
//! names the cap, the current use and the limit.

use std::io::{self, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::decide::Refusal;
use crate::sys::poll::{Events, PollSet};

/// JSON-RPC's "server error" range (-32000 to -32099).
pub const REFUSED_CODE: i64 = -32000;

/// The error response to `request`, or `None` if it is not a request (a
/// notification has no id and gets no answer). A request names its method
/// with a string and has an id that is a string, a number or null
/// (JSON-RPC 2.0, section 4); anything else is no request to answer.
pub fn refusal_response(request: &Value, refusal: &Refusal, server: Option<&str>, session: &str) -> Option<Value> {
    let id = request.get("id").filter(|id| id.is_string() || id.is_number() || id.is_null())?;
    request.get("method").filter(|m| m.is_string())?;
    let name = server.unwrap_or("server");
    Some(json!({
        "jsonrpc": "2.0",
        "id": id,
        "error": {
            "code": REFUSED_CODE,
            "message": format!("mcp-runner refused to start {name}: {refusal}"),
            "data": {
                "cap": refusal.cap,
                "current": refusal.current,
                "limit": refusal.limit,
                "unit": refusal.unit,
                "server": server,
                "session": session,
            }
        }
    }))
}

/// The largest first request the runner reads before giving up: MCP
/// clients send `initialize` first, a few hundred bytes to a few KiB.
const MAX_FIRST_REQUEST: usize = 4 << 20;

/// Reads newline-delimited messages from stdin until the first request
/// (skipping notifications), answers it on stdout, and returns whether an
/// answer went out. Gives up at `timeout`, at EOF, or on a line that is not
/// JSON: an answer is a courtesy, the exit code and stderr already say it.
pub fn answer_first_request(refusal: &Refusal, server: Option<&str>, session: &str, timeout: Duration) -> bool {
    let mut out = io::stdout().lock();
    answer_from(io::stdin().as_fd(), &mut out, refusal, server, session, timeout)
}

/// [`answer_first_request`] over any input descriptor and output. The input
/// is read with read(2) on the descriptor itself: a buffered reader would
/// keep bytes the next poll cannot see, and a request that spans its buffer
/// would never be finished (a request over 4 KiB was lost that way).
pub fn answer_from(
    input: BorrowedFd<'_>,
    out: &mut impl Write,
    refusal: &Refusal,
    server: Option<&str>,
    session: &str,
    timeout: Duration,
) -> bool {
    let deadline = Instant::now() + timeout;
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let mut scanned = 0;
    loop {
        while let Some(end) = buf[scanned..].iter().position(|b| *b == b'\n').map(|i| scanned + i) {
            let line: Vec<u8> = buf.drain(..=end).collect();
            scanned = 0;
            let Ok(msg) = serde_json::from_slice::<Value>(&line) else { return false };
            if let Some(answer) = refusal_response(&msg, refusal, server, session) {
                return writeln!(out, "{answer}").and_then(|_| out.flush()).is_ok();
            }
        }
        scanned = buf.len();
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        let mut set = PollSet::new();
        let i = set.add(input, Events::IN);
        if set.wait(Some(left)).is_err() || set.revents(i).is_empty() {
            return false;
        }
        match nix::unistd::read(input, &mut chunk) {
            Ok(0) => return false,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(nix::errno::Errno::EINTR | nix::errno::Errno::EAGAIN) => {}
            Err(_) => return false,
        }
        if buf.len() > MAX_FIRST_REQUEST {
            return false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal() -> Refusal {
        Refusal {
            cap: "max_servers",
            current: 64.0,
            limit: 64.0,
            unit: "servers",
            message: "max_servers 64 reached: 64 servers are already running".into(),
        }
    }

    #[test]
    fn answers_requests_with_their_id() {
        let req = json!({"jsonrpc": "2.0", "id": 7, "method": "initialize", "params": {}});
        let r = refusal_response(&req, &refusal(), Some("github"), "s1").expect("a request");
        assert_eq!(r["id"], 7);
        assert_eq!(r["error"]["code"], REFUSED_CODE);
        assert_eq!(
            r["error"]["message"],
            "mcp-runner refused to start github: max_servers 64 reached: 64 servers are already running"
        );
        assert_eq!(r["error"]["data"]["cap"], "max_servers");
        assert_eq!(r["error"]["data"]["limit"], 64.0);
        let string_id = json!({"jsonrpc": "2.0", "id": "abc", "method": "initialize"});
        assert_eq!(refusal_response(&string_id, &refusal(), None, "s1").expect("request")["id"], "abc");
    }

    /// A first request of `size` bytes, preceded by a notification, written
    /// by another thread in pieces; the answer must carry its id.
    fn answered(size: usize) -> Value {
        let (r, w) = nix::unistd::pipe().expect("pipe");
        let req = json!({"jsonrpc": "2.0", "id": 9, "method": "initialize", "params": {"pad": "p".repeat(size)}});
        let text = format!("{}\n{req}\n", json!({"jsonrpc": "2.0", "method": "notifications/x"}));
        let writer = std::thread::spawn(move || {
            let mut w = std::fs::File::from(w);
            for piece in text.as_bytes().chunks(3000) {
                w.write_all(piece).expect("write");
            }
        });
        let mut out = Vec::new();
        assert!(answer_from(r.as_fd(), &mut out, &refusal(), None, "s", Duration::from_secs(30)), "{size} bytes");
        writer.join().expect("writer");
        serde_json::from_slice(&out).expect("one JSON line")
    }

    #[test]
    fn first_requests_of_any_size_are_answered() {
        for size in [10, 5_000, 70_000, 1_000_000] {
            assert_eq!(answered(size)["id"], 9, "{size} bytes");
        }
    }

    /// Found by `ci/fuzz` (jsonrpc_first_request, crash-1970f54e7e04): the
    /// line `{"jsonrpc":"2.0","id":0,"method":{"p":"2.0","id":0,...}}` was
    /// answered, but a `method` that is not a string makes no request
    /// (JSON-RPC 2.0, 4), and neither does an id that is not a string, a
    /// number or null.
    #[test]
    fn fuzz_jsonrpc_first_request_method_not_a_string() {
        let method_object = json!({"jsonrpc": "2.0", "id": 0, "method": {"p": "2.0", "id": 0}});
        assert!(refusal_response(&method_object, &refusal(), None, "s").is_none());
        for id in [json!([1]), json!({"a": 1}), json!(true)] {
            let odd_id = json!({"jsonrpc": "2.0", "id": id, "method": "initialize"});
            assert!(refusal_response(&odd_id, &refusal(), None, "s").is_none(), "{odd_id}");
        }
        let null_id = json!({"jsonrpc": "2.0", "id": null, "method": "initialize"});
        assert_eq!(refusal_response(&null_id, &refusal(), None, "s").expect("a request")["id"], Value::Null);
    }

    /// Found by `ci/fuzz` (jsonrpc_first_request, crash-52aa7d0f1062): the
    /// request `{"jsonrpc":"2.0","id":6e27,"method":"ping"}` was answered
    /// with the id 6.000000000000001e+27, which no client matches to its
    /// request: serde_json's default float parsing may be one unit off in
    /// the last place.
    #[test]
    fn fuzz_jsonrpc_first_request_float_id() {
        let line = br#"{"jsonrpc":"2.0","id":6e27,"method":"ping"}"#;
        let request: Value = serde_json::from_slice(line).expect("JSON");
        let answer = refusal_response(&request, &refusal(), None, "s").expect("a request");
        let id: f64 = answer["id"].to_string().parse().expect("a number");
        assert_eq!(id, 6e27, "{}", answer["id"]);
    }

    #[test]
    fn notifications_and_responses_get_no_answer() {
        let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        assert!(refusal_response(&note, &refusal(), None, "s").is_none());
        let resp = json!({"jsonrpc": "2.0", "id": 1, "result": {}});
        assert!(refusal_response(&resp, &refusal(), None, "s").is_none());
    }
}
