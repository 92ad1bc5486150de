//! Garbage, oversize and bursts affect only the client that sent them.

use super::*;

#[test]
fn malformed_lines_get_errors_to_their_sender_only() {
    let mut m = mux();
    two_clients(&mut m);
    let cases: [(&[u8], &str); 9] = [
        (b"{not json", r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"parse error: not JSON"}}"#),
        (b"\xff\xfe", r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"parse error: not JSON"}}"#),
        (b"[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"x\"}]", r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"JSON-RPC batches are not supported by MCP 2025-06-18 and later"}}"#),
        (b"42", r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"a JSON-RPC message is an object"}}"#),
        (b"{\"jsonrpc\":\"2.0\",\"id\":null,\"method\":\"x\"}", r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"a request id is a string or a number"}}"#),
        (b"{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":7}", r#"{"jsonrpc":"2.0","id":3,"error":{"code":-32600,"message":"the method is not a string"}}"#),
        (b"{\"jsonrpc\":\"2.0\",\"id\":3}", r#"{"jsonrpc":"2.0","id":3,"error":{"code":-32600,"message":"neither a request, a notification nor a response"}}"#),
        (b"{\"jsonrpc\":\"2.0\",\"id\":1,\"id\":2,\"method\":\"x\"}", r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"a key is repeated in the message"}}"#),
        (b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"x\",\"params\":{\"_meta\":{\"progressToken\":1,\"progressToken\":2}}}", r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"a key is repeated in the message"}}"#),
    ];
    for (line, answer) in cases {
        let mut out = Vec::new();
        m.from_client(1, line, &mut out);
        assert_eq!(out, [client(1, answer)], "{}", String::from_utf8_lossy(line));
    }
    assert_eq!(m.instances()[0].in_flight, 0, "nothing reached the server");
}

#[test]
fn an_oversized_line_fails_that_line_not_the_session() {
    let mut m = mux();
    two_clients(&mut m);
    let mut out = Vec::new();
    m.oversized(1, &mut out);
    assert_eq!(
        out,
        [client(1, r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"message over 4194304 bytes"}}"#)]
    );
    assert_eq!(
        from_client(&mut m, 1, &request("1", "tools/list", "{}")),
        [server(1, &request("2", "tools/list", "{}"))]
    );
}

#[test]
fn a_bursting_client_is_paused_alone_until_answers_drain() {
    let mut m = mux_with(Sharing::Auto, 2);
    two_clients(&mut m);
    from_client(&mut m, 1, &request("1", "tools/list", "{}"));
    assert!(m.may_read(1));
    from_client(&mut m, 1, &request("2", "tools/list", "{}"));
    assert!(!m.may_read(1));
    assert!(m.may_read(2));
    let over = err("3", -32000, "more than 2 requests in flight on this connection");
    assert_eq!(from_client(&mut m, 1, &request("3", "tools/list", "{}")), [client(1, &over)]);
    from_server(&mut m, 1, &ok("2", "{}"));
    assert!(m.may_read(1));
}

#[test]
fn server_junk_reaches_no_client() {
    let mut m = mux();
    two_clients(&mut m);
    assert_eq!(
        from_server(&mut m, 1, "Listening on stdio..."),
        [log("instance 1: dropped a line that is no JSON-RPC message")]
    );
    assert_eq!(
        from_server(&mut m, 1, r#"{"jsonrpc":"2.0"}"#),
        [log("instance 1: dropped a message: neither a request, a notification nor a response")]
    );
    assert_eq!(from_server(&mut m, 9, "{}"), [log("instance 9: dropped a line from an instance the mux forgot")]);
}

#[test]
fn big_numbers_in_arguments_pass_untouched() {
    let mut m = mux();
    two_clients(&mut m);
    let args = r#"{"name":"t","arguments":{"n":123456789012345678901234567890,"f":1e400,"s":"\ud83d\ude00"}}"#;
    assert_eq!(
        from_client(&mut m, 1, &request("1", "tools/call", args)),
        [server(1, &request("2", "tools/call", args))]
    );
}
