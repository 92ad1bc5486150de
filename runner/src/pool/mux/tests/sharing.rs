//! Which instance a client gets, and the once-per-instance handshake.

use super::*;

#[test]
fn later_client_of_the_class_gets_the_cached_result_with_its_own_id() {
    let mut m = mux();
    two_clients(&mut m);
    assert_eq!(from_client(&mut m, 3, &initialize(r#""init-\u0041""#)), [client(3, &ok(r#""init-\u0041""#, INIT_OK))]);
    assert_eq!(from_client(&mut m, 3, INITIALIZED), [], "initialized reaches the server once");
    assert_eq!(m.instances()[0].clients, [1, 2, 3]);
}

#[test]
fn different_classes_never_share() {
    let mut m = mux();
    assert_eq!(from_client(&mut m, 1, &initialize("0")), [Action::Spawn(1), server(1, &initialize("1"))]);
    let other_caps = initialize_with("0", "2025-11-25", r#"{"sampling":{}}"#);
    assert_eq!(
        from_client(&mut m, 2, &other_caps),
        [Action::Spawn(2), server(2, &initialize_with("1", "2025-11-25", r#"{"sampling":{}}"#))]
    );
    let other_version = initialize_with("0", "2025-06-18", "{}");
    assert_eq!(from_client(&mut m, 3, &other_version)[0], Action::Spawn(3));
    let modern = request("0", "tools/list", "{}");
    assert_eq!(from_client(&mut m, 4, &modern), [Action::Spawn(4), server(4, &request("1", "tools/list", "{}"))]);
    // Key order in capabilities does not make a new class.
    let a = initialize_with("5", "2025-11-25", r#"{"roots":{},"sampling":{}}"#);
    let b = initialize_with("5", "2025-11-25", r#"{"sampling":{},"roots":{}}"#);
    assert_eq!(from_client(&mut m, 5, &a)[0], Action::Spawn(5));
    assert_eq!(from_client(&mut m, 6, &b), []);
}

#[test]
fn messages_wait_in_order_while_the_instance_initializes() {
    let mut m = mux();
    from_client(&mut m, 1, &initialize("0"));
    assert_eq!(from_client(&mut m, 2, &initialize("0")), []);
    assert_eq!(from_client(&mut m, 2, INITIALIZED), []);
    assert_eq!(from_client(&mut m, 2, &request("1", "tools/list", "{}")), []);
    assert!(!m.idle().contains(&1));
    assert_eq!(
        from_server(&mut m, 1, &ok("1", INIT_OK)),
        [
            client(1, &ok("0", INIT_OK)),
            client(2, &ok("0", INIT_OK)),
            server(1, INITIALIZED),
            server(1, &request("2", "tools/list", "{}")),
        ]
    );
}

#[test]
fn held_lines_are_bounded() {
    let mut m = mux_with(Sharing::Auto, 1);
    from_client(&mut m, 1, &initialize("0"));
    assert_eq!(from_client(&mut m, 1, &request("1", "tools/list", "{}")), []);
    assert!(!m.may_read(1));
    let refused = err("2", -32000, "too many messages held while the shared server initializes");
    assert_eq!(from_client(&mut m, 1, &request("2", "tools/list", "{}")), [client(1, &refused)]);
}

#[test]
fn a_failed_initialize_fails_every_waiter_and_the_instance_is_not_reused() {
    let mut m = mux();
    from_client(&mut m, 1, &initialize("0"));
    from_client(&mut m, 2, &initialize(r#""b""#));
    from_client(&mut m, 2, &request("1", "tools/list", "{}"));
    let error = r#"{"code":-32602,"message":"Unsupported protocol version"}"#;
    let line = format!(r#"{{"jsonrpc":"2.0","id":1,"error":{error}}}"#);
    assert_eq!(
        from_server(&mut m, 1, &line),
        [
            client(1, &format!(r#"{{"jsonrpc":"2.0","id":0,"error":{error}}}"#)),
            client(2, &format!(r#"{{"jsonrpc":"2.0","id":"b","error":{error}}}"#)),
            log("instance 1: initialize failed; the instance is not reused"),
            client(2, &err("1", -32603, "the shared server's initialize failed")),
        ]
    );
    assert!(!m.instances()[0].shareable);
    assert_eq!(from_client(&mut m, 3, &initialize("0")), [Action::Spawn(2), server(2, &initialize("1"))]);
}

#[test]
fn auto_isolates_servers_that_declare_per_session_state() {
    for caps in [r#"{"x-mux":{"sharing":"isolated"}}"#, r#"{"experimental":{"io.github.mcp-runner":{"share":false}}}"#]
    {
        let result = format!(r#"{{"protocolVersion":"2025-11-25","capabilities":{caps}}}"#);
        let mut m = mux();
        from_client(&mut m, 1, &initialize("0"));
        let out = from_server(&mut m, 1, &ok("1", &result));
        assert_eq!(out[0], client(1, &ok("0", &result)));
        assert!(
            matches!(&out[1], Action::Log(l) if l.starts_with("instance 1 is no longer shared with new clients: its initialize result declares"))
        );
        assert_eq!(out.len(), 2, "logged once");
        assert_eq!(from_client(&mut m, 2, &initialize("0")), [Action::Spawn(2), server(2, &initialize("1"))]);
    }
}

#[test]
fn always_shares_servers_that_declare_per_session_state() {
    let result = r#"{"capabilities":{"experimental":{"x-mux":{"sharing":"isolated"}}}}"#;
    let mut m = mux_with(Sharing::Always, 256);
    from_client(&mut m, 1, &initialize("0"));
    let out = from_server(&mut m, 1, &ok("1", result));
    assert!(matches!(&out[1], Action::Log(l) if l.ends_with("shared anyway (share = always)")));
    assert_eq!(from_client(&mut m, 2, &initialize("7")), [client(2, &ok("7", result))]);
}

#[test]
fn modern_clients_share_one_instance_and_pass_meta_through() {
    let mut m = mux();
    let meta = r#"{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}"#;
    assert_eq!(
        from_client(&mut m, 1, &request("0", "server/discover", meta)),
        [Action::Spawn(1), server(1, &request("1", "server/discover", meta))]
    );
    assert_eq!(
        from_client(&mut m, 2, &request("0", "server/discover", meta)),
        [server(1, &request("2", "server/discover", meta))]
    );
    assert_eq!(from_server(&mut m, 1, &ok("2", "{}")), [client(2, &ok("0", "{}"))]);
}

#[test]
fn a_modern_probe_falling_back_to_initialize_moves_the_client() {
    let mut m = mux();
    from_client(&mut m, 1, &request("0", "server/discover", "{}"));
    assert_eq!(
        from_server(&mut m, 1, &err("1", -32601, "Method not found")),
        [client(1, &err("0", -32601, "Method not found"))]
    );
    assert_eq!(from_client(&mut m, 1, &initialize("1")), [Action::Spawn(2), server(2, &initialize("1"))]);
    assert_eq!(m.idle(), [1]);
    // A second initialize on an initialize-era connection is refused.
    let again = err("2", -32600, "initialize was already sent on this connection");
    assert_eq!(from_client(&mut m, 1, &initialize("2")), [client(1, &again)]);
}
