//! Requests from the server to a client.

use super::*;

const REFUSED: &str = "mcp-runner cannot tell which shared client this request is for";

fn sampling(id: &str) -> String {
    request(id, "sampling/createMessage", r#"{"messages":[],"maxTokens":1}"#)
}

#[test]
fn ping_is_answered_by_the_mux() {
    let mut m = mux();
    two_clients(&mut m);
    assert_eq!(from_server(&mut m, 1, &request(r#""p""#, "ping", "{}")), [server(1, &ok(r#""p""#, "{}"))]);
}

#[test]
fn a_request_while_one_client_is_busy_goes_to_it_and_its_answer_comes_back() {
    let mut m = mux();
    two_clients(&mut m);
    from_client(&mut m, 2, &request("1", "tools/call", "{}"));
    assert_eq!(from_server(&mut m, 1, &sampling("0")), [client(2, &sampling("0"))]);
    assert_eq!(
        from_client(&mut m, 1, &ok("0", "{}")),
        [log("client 1: dropped an answer to 0, no such server request")]
    );
    assert_eq!(
        from_client(&mut m, 2, &ok("0", r#"{"role":"assistant"}"#)),
        [server(1, &ok("0", r#"{"role":"assistant"}"#))]
    );
    assert_eq!(from_client(&mut m, 2, &ok("0", "{}")).len(), 1, "answered once");
}

#[test]
fn ambiguous_requests_are_refused_and_auto_stops_sharing() {
    let mut m = mux();
    two_clients(&mut m);
    from_client(&mut m, 1, &request("1", "tools/call", "{}"));
    from_client(&mut m, 2, &request("1", "tools/call", "{}"));
    assert_eq!(
        from_server(&mut m, 1, &sampling("0")),
        [
            server(1, &err("0", -32603, REFUSED)),
            log(&format!("instance 1: refused sampling/createMessage: {REFUSED}")),
            log(
                "instance 1 is no longer shared with new clients: its server sent a request no one client could be named for"
            ),
        ]
    );
    assert!(!m.instances()[0].shareable);
    assert_eq!(from_client(&mut m, 3, &initialize("0"))[0], Action::Spawn(2));
}

#[test]
fn always_still_refuses_ambiguous_requests() {
    let mut m = mux_with(Sharing::Always, 256);
    two_clients(&mut m);
    let out = from_server(&mut m, 1, &request("0", "elicitation/create", "{}"));
    assert_eq!(out[0], server(1, &err("0", -32603, REFUSED)));
    assert_eq!(out.len(), 2);
    assert!(m.instances()[0].shareable);
}

#[test]
fn a_lone_client_gets_requests_with_nothing_in_flight_but_roots_stop_sharing() {
    let mut m = mux();
    from_client(&mut m, 1, &initialize("0"));
    from_server(&mut m, 1, &ok("1", INIT_OK));
    let roots = request("5", "roots/list", "{}");
    assert_eq!(
        from_server(&mut m, 1, &roots),
        [
            log(
                "instance 1 is no longer shared with new clients: its server asks for roots/list, and roots are per client"
            ),
            client(1, &roots)
        ]
    );
}

#[test]
fn related_task_names_the_client() {
    let mut m = mux();
    two_clients(&mut m);
    from_client(&mut m, 1, &request("1", "tools/call", r#"{"task":{}}"#));
    from_server(&mut m, 1, &ok("2", r#"{"task":{"taskId":"T1","status":"working"}}"#));
    from_client(&mut m, 2, &request("1", "tools/call", "{}"));
    from_client(&mut m, 1, &request("2", "tools/call", "{}"));
    let asks =
        request("9", "elicitation/create", r#"{"_meta":{"io.modelcontextprotocol/related-task":{"taskId":"T1"}}}"#);
    assert_eq!(from_server(&mut m, 1, &asks), [client(1, &asks)]);
    let status = notification("notifications/tasks/status", r#"{"taskId":"T1","status":"completed"}"#);
    assert_eq!(from_server(&mut m, 1, &status), [client(1, &status)]);
    let get = request("3", "tasks/get", r#"{"taskId":"T1"}"#);
    assert_eq!(from_client(&mut m, 2, &get), [client(2, &err("3", -32602, "no such task on this connection"))]);
    assert_eq!(from_client(&mut m, 1, &get), [server(1, &request("5", "tasks/get", r#"{"taskId":"T1"}"#))]);
}

#[test]
fn a_clashing_server_id_is_replaced_and_mapped_back() {
    let mut m = mux();
    two_clients(&mut m);
    from_client(&mut m, 1, &request("1", "tools/call", "{}"));
    assert_eq!(from_server(&mut m, 1, &sampling("0")), [client(1, &sampling("0"))]);
    // A buggy server reusing a pending id is not believed.
    assert_eq!(from_server(&mut m, 1, &sampling("0")), [log("instance 1: dropped a request reusing pending id 0")]);
    m.instances.get_mut(&1).map(|i| i.out.forget("0"));
    assert_eq!(from_server(&mut m, 1, &sampling("0")), [client(1, &sampling(r#""mcp-runner-1""#))]);
    assert_eq!(from_client(&mut m, 1, &ok(r#""mcp-runner-1""#, "{}")), [server(1, &ok("0", "{}"))]);
}

#[test]
fn a_server_cancel_reaches_the_client_with_its_id() {
    let mut m = mux();
    two_clients(&mut m);
    from_client(&mut m, 2, &request("1", "tools/call", "{}"));
    from_server(&mut m, 1, &sampling("4"));
    let cancel = |id: &str| notification("notifications/cancelled", &format!(r#"{{"requestId":{id}}}"#));
    assert_eq!(from_server(&mut m, 1, &cancel("4")), [client(2, &cancel("4"))]);
    assert_eq!(from_client(&mut m, 2, &ok("4", "{}")).len(), 1, "late answer dropped");
}

#[test]
fn a_departing_client_answers_its_server_requests_with_errors() {
    let mut m = mux();
    two_clients(&mut m);
    from_client(&mut m, 2, &request("1", "tools/call", "{}"));
    from_server(&mut m, 1, &sampling(r#""s""#));
    assert_eq!(
        gone(&mut m, 2),
        [
            server(1, &notification("notifications/cancelled", r#"{"requestId":2,"reason":"client disconnected"}"#)),
            server(1, &err(r#""s""#, -32603, "the mcp-runner client this request was routed to disconnected")),
        ]
    );
}
