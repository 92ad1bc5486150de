//! Client requests and the notifications that belong to them.

use super::*;

#[test]
fn ids_come_back_byte_exact() {
    let ids = [
        "0",
        "-7",
        r#""abc""#,
        r#""\u00e9\n""#,
        "123456789012345678901234567890",
        "1.5e3",
        "18446744073709551615",
        r#""""#,
    ];
    let mut m = mux();
    two_clients(&mut m);
    for (n, id) in ids.iter().enumerate() {
        let up = (n + 2).to_string();
        assert_eq!(
            from_client(&mut m, 1, &request(id, "tools/list", "{}")),
            [server(1, &request(&up, "tools/list", "{}"))]
        );
        assert_eq!(
            from_server(&mut m, 1, &ok(&up, r#"{"n":123456789012345678901234567890}"#)),
            [client(1, &ok(id, r#"{"n":123456789012345678901234567890}"#))]
        );
    }
}

#[test]
fn a_reused_id_in_flight_is_refused_and_nothing_reaches_the_server() {
    let mut m = mux();
    two_clients(&mut m);
    from_client(&mut m, 1, &request("5", "tools/list", "{}"));
    let refused = err("5", -32600, "request id 5 is already in flight on this connection");
    assert_eq!(from_client(&mut m, 1, &request("5", "tools/list", "{}")), [client(1, &refused)]);
    // The same id from another client is its own.
    assert_eq!(
        from_client(&mut m, 2, &request("5", "tools/list", "{}")),
        [server(1, &request("3", "tools/list", "{}"))]
    );
}

#[test]
fn answers_to_unknown_ids_are_dropped() {
    let mut m = mux();
    two_clients(&mut m);
    assert_eq!(from_server(&mut m, 1, &ok("99", "{}")), [log("instance 1: dropped an answer to unknown id 99")]);
    assert_eq!(
        from_server(&mut m, 1, &ok(r#""2""#, "{}")),
        [log(r#"instance 1: dropped an answer to unknown id "2""#)]
    );
}

#[test]
fn progress_goes_to_the_owner_only_and_ends_with_the_answer() {
    let mut m = mux();
    two_clients(&mut m);
    let call =
        |token: &str| request("1", "tools/call", &format!(r#"{{"name":"t","_meta":{{"progressToken":{token}}}}}"#));
    assert_eq!(from_client(&mut m, 1, &call(r#""tok""#)), [server(1, &call("2").replace(r#""id":1"#, r#""id":2"#))]);
    let progress =
        |token: &str| notification("notifications/progress", &format!(r#"{{"progressToken":{token},"progress":0.5}}"#));
    assert_eq!(from_server(&mut m, 1, &progress("2")), [client(1, &progress(r#""tok""#))]);
    assert_eq!(
        from_server(&mut m, 1, &progress("77")),
        [log("instance 1: dropped notifications/progress: unknown progress token")]
    );
    from_server(&mut m, 1, &ok("2", "{}"));
    assert_eq!(
        from_server(&mut m, 1, &progress("2")),
        [log("instance 1: dropped notifications/progress: unknown progress token")]
    );
}

#[test]
fn a_cancel_maps_to_the_upstream_id_and_forgets_the_request() {
    let mut m = mux();
    two_clients(&mut m);
    from_client(&mut m, 1, &request(r#""x""#, "tools/call", r#"{"_meta":{"progressToken":9}}"#));
    let cancel =
        |id: &str| notification("notifications/cancelled", &format!(r#"{{"requestId":{id},"reason":"user"}}"#));
    assert_eq!(from_client(&mut m, 1, &cancel(r#""x""#)), [server(1, &cancel("2"))]);
    assert_eq!(from_client(&mut m, 1, &cancel(r#""x""#)), [log(r#"client 1: ignored a cancel of "x", not in flight"#)]);
    assert_eq!(
        from_server(&mut m, 1, &notification("notifications/progress", r#"{"progressToken":2,"progress":1}"#)).len(),
        1,
        "dropped"
    );
    assert_eq!(from_server(&mut m, 1, &ok("2", "{}")), [log("instance 1: dropped an answer to unknown id 2")]);
    // The initialize is never cancelled upstream.
    assert_eq!(from_client(&mut m, 2, &cancel("0")), [log("client 2: ignored a cancel of 0, not in flight")]);
}

#[test]
fn subscriptions_are_counted_per_uri() {
    let mut m = mux();
    two_clients(&mut m);
    let sub = |id: &str, method: &str| request(id, method, r#"{"uri":"file:///a"}"#);
    assert_eq!(from_client(&mut m, 1, &sub("1", "resources/subscribe")), [server(1, &sub("2", "resources/subscribe"))]);
    assert_eq!(from_server(&mut m, 1, &ok("2", "{}")), [client(1, &ok("1", "{}"))]);
    assert_eq!(from_client(&mut m, 2, &sub("1", "resources/subscribe")), [client(2, &ok("1", "{}"))]);
    let updated = notification("notifications/resources/updated", r#"{"uri":"file:///a"}"#);
    assert_eq!(from_server(&mut m, 1, &updated), [client(1, &updated), client(2, &updated)]);
    assert_eq!(from_client(&mut m, 1, &sub("2", "resources/unsubscribe")), [client(1, &ok("2", "{}"))]);
    assert_eq!(from_server(&mut m, 1, &updated), [client(2, &updated)]);
    assert_eq!(
        from_client(&mut m, 1, &sub("3", "resources/unsubscribe")),
        [client(1, &ok("3", "{}"))],
        "not subscribed"
    );
    assert_eq!(
        from_client(&mut m, 2, &sub("2", "resources/unsubscribe")),
        [server(1, &sub("3", "resources/unsubscribe"))]
    );
    assert_eq!(
        from_server(&mut m, 1, &updated),
        [log("instance 1: dropped notifications/resources/updated: no client subscribed to that URI")]
    );
}

#[test]
fn a_refused_subscription_is_not_counted() {
    let mut m = mux();
    two_clients(&mut m);
    let sub = |id: &str| request(id, "resources/subscribe", r#"{"uri":"u"}"#);
    from_client(&mut m, 1, &sub("1"));
    from_server(&mut m, 1, &err("2", -32602, "no"));
    assert_eq!(from_client(&mut m, 2, &sub("1")), [server(1, &sub("3"))]);
}

#[test]
fn log_level_upstream_is_the_most_verbose_and_messages_are_filtered_per_client() {
    let mut m = mux();
    two_clients(&mut m);
    let set = |id: &str, level: &str| request(id, "logging/setLevel", &format!(r#"{{"level":"{level}"}}"#));
    assert_eq!(from_client(&mut m, 1, &set("1", "error")), [client(1, &ok("1", "{}")), server(1, &set("2", "debug"))]);
    assert_eq!(from_server(&mut m, 1, &ok("2", "{}")), [], "the mux's own answer is swallowed");
    assert_eq!(
        from_client(&mut m, 2, &set("1", "warning")),
        [client(2, &ok("1", "{}")), server(1, &set("3", "warning"))]
    );
    assert_eq!(
        from_client(&mut m, 2, &set("2", "warning")),
        [client(2, &ok("2", "{}"))],
        "unchanged: nothing upstream"
    );
    let message = |level: &str| notification("notifications/message", &format!(r#"{{"level":"{level}","data":"x"}}"#));
    assert_eq!(from_server(&mut m, 1, &message("warning")), [client(2, &message("warning"))]);
    assert_eq!(
        from_server(&mut m, 1, &message("critical")),
        [client(1, &message("critical")), client(2, &message("critical"))]
    );
    assert_eq!(from_server(&mut m, 1, &message("info")), []);
    assert_eq!(gone(&mut m, 2), [server(1, &set("4", "error"))]);
    let bad = err("3", -32602, "params.level is not a log level");
    assert_eq!(from_client(&mut m, 1, &set("3", "loud")), [client(1, &bad)]);
}

#[test]
fn list_changed_goes_to_everyone_and_unknown_notifications_to_no_one() {
    let mut m = mux();
    two_clients(&mut m);
    for kind in ["tools", "prompts", "resources"] {
        let n = notification(&format!("notifications/{kind}/list_changed"), "{}");
        assert_eq!(from_server(&mut m, 1, &n), [client(1, &n), client(2, &n)]);
    }
    let odd = notification("notifications/something", "{}");
    assert_eq!(
        from_server(&mut m, 1, &odd),
        [log("instance 1: dropped notifications/something: nothing says which client it is for")]
    );
}

#[test]
fn input_required_opens_a_round_the_retry_closes() {
    let mut m = mux();
    from_client(&mut m, 1, &request("0", "tools/call", r#"{"name":"t"}"#));
    let input =
        r#"{"resultType":"input_required","inputRequests":{"a":{"method":"elicitation/create"}},"requestState":"s1"}"#;
    assert_eq!(from_server(&mut m, 1, &ok("1", input)), [client(1, &ok("0", input))]);
    assert_eq!(m.clients.get(&1).map(|c| c.rounds.len()), Some(1));
    let retry = request("1", "tools/call", r#"{"name":"t","inputResponses":{"a":{}},"requestState":"s1"}"#);
    assert_eq!(from_client(&mut m, 1, &retry), [server(1, &retry.replace(r#""id":1"#, r#""id":2"#))]);
    assert_eq!(m.clients.get(&1).map(|c| c.rounds.len()), Some(0));
    // A round belongs to its client: gone with it, and the instance idles.
    from_server(&mut m, 1, &ok("2", input));
    assert!(m.idle().is_empty());
    gone(&mut m, 1);
    assert_eq!(m.idle(), [1]);
}

#[test]
fn listen_notifications_go_to_the_listener_with_its_own_id() {
    let mut m = mux();
    let listen = request(r#""L""#, "subscriptions/listen", r#"{"notifications":{"toolsListChanged":true}}"#);
    from_client(&mut m, 1, &request("0", "server/discover", "{}"));
    from_client(&mut m, 2, &listen);
    let tagged = |id: &str| {
        notification(
            "notifications/tools/list_changed",
            &format!(r#"{{"_meta":{{"io.modelcontextprotocol/subscriptionId":{id}}}}}"#),
        )
    };
    assert_eq!(from_server(&mut m, 1, &tagged("2")), [client(2, &tagged(r#""L""#))]);
    assert_eq!(
        from_server(&mut m, 1, &tagged("1")),
        [log("instance 1: dropped notifications/tools/list_changed: unknown subscription")]
    );
    let closing = |id: &str, sub: &str| {
        ok(id, &format!(r#"{{"resultType":"complete","_meta":{{"io.modelcontextprotocol/subscriptionId":{sub}}}}}"#))
    };
    assert_eq!(from_server(&mut m, 1, &closing("2", "2")), [client(2, &closing(r#""L""#, r#""L""#))]);
    assert_eq!(from_server(&mut m, 1, &tagged("2")).len(), 1, "closed: dropped");
}

#[test]
fn modern_log_messages_go_only_to_the_one_client_that_asked() {
    let mut m = mux();
    let asking = |id: &str, level: &str| {
        request(id, "tools/call", &format!(r#"{{"_meta":{{"io.modelcontextprotocol/logLevel":"{level}"}}}}"#))
    };
    from_client(&mut m, 1, &asking("0", "info"));
    from_client(&mut m, 2, &request("0", "tools/list", "{}"));
    let message = |level: &str| notification("notifications/message", &format!(r#"{{"level":"{level}","data":1}}"#));
    assert_eq!(from_server(&mut m, 1, &message("info")), [client(1, &message("info"))]);
    assert_eq!(from_server(&mut m, 1, &message("debug")), []);
    from_client(&mut m, 2, &asking("1", "debug"));
    assert_eq!(
        from_server(&mut m, 1, &message("info")),
        [log("instance 1: dropped a log message no one request is named for")]
    );
}
