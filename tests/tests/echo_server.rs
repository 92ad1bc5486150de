//! A well-behaved server: requests are answered byte for byte, stdin EOF ends the session
//! with the server's own exit code 0, and nothing of the tree is left.

use mcp_runner_tests::{Fixture, Policy, hostile};
use serde_json::json;

#[test]
fn request_answered_byte_exact_then_eof_exits_0() {
    let fx = Fixture::new(&Policy::default());
    let mut runner = fx.run("echo", &[hostile!(), "echo"]);
    let server = runner.ready()["pid"].as_i64().expect("ready pid") as i32;
    // The marker scan sees the server: the end-state check below is not vacuous.
    assert!(runner.tree().contains(&server), "server {server} lacks the marker; {}", runner.diag());

    let line = runner.request(1, "tools/call", &json!({"text": "h\u{e9}llo \u{2713} \"q\" \\ \u{1f600}"}));
    assert_eq!(
        line,
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"echo\":{\"text\":\"h\u{e9}llo \u{2713} \\\"q\\\" \\\\ \u{1f600}\"}}}"
    );

    // 1 MiB in one line: the server owns the client's pipes, nothing in between may cut it.
    let blob = "x".repeat(1 << 20);
    let line = runner.request(2, "big", &json!({ "blob": blob }));
    assert_eq!(line, format!("{{\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{{\"echo\":{{\"blob\":\"{blob}\"}}}}}}"));

    runner.close_stdin();
    runner.assert_exit(0, None);
}
