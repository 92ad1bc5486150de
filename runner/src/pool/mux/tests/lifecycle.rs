//! Clients leaving, servers exiting, instances idling.

use super::*;
use crate::pool::mux::InstanceView;

#[test]
fn a_departing_client_cancels_unsubscribes_and_frees_its_instance() {
    let mut m = mux();
    two_clients(&mut m);
    from_client(&mut m, 2, &request("1", "tools/call", "{}"));
    from_client(&mut m, 2, &request("2", "resources/subscribe", r#"{"uri":"u"}"#));
    from_client(&mut m, 1, &request("1", "resources/subscribe", r#"{"uri":"u"}"#));
    from_client(&mut m, 2, &request("3", "resources/subscribe", r#"{"uri":"v"}"#));
    assert_eq!(
        gone(&mut m, 2),
        [
            server(1, &notification("notifications/cancelled", r#"{"requestId":2,"reason":"client disconnected"}"#)),
            server(1, &notification("notifications/cancelled", r#"{"requestId":3,"reason":"client disconnected"}"#)),
            server(1, &notification("notifications/cancelled", r#"{"requestId":4,"reason":"client disconnected"}"#)),
            server(1, &request("5", "resources/unsubscribe", r#"{"uri":"v"}"#)),
        ]
    );
    assert_eq!(from_server(&mut m, 1, &ok("2", "{}")), [log("instance 1: dropped an answer to unknown id 2")]);
    assert_eq!(from_server(&mut m, 1, &ok("5", "{}")), [], "the mux's unsubscribe answer is swallowed");
    assert!(m.idle().is_empty());
    assert_eq!(gone(&mut m, 1), [server(1, &request("6", "resources/unsubscribe", r#"{"uri":"u"}"#))]);
    assert_eq!(m.idle(), [1]);
    assert!(!m.is_empty());
    let mut out = Vec::new();
    m.retire(1, &mut out);
    assert_eq!(out, [Action::Stop(1)]);
    assert!(m.is_empty());
    m.retire(1, &mut out);
    assert_eq!(out.len(), 1, "retiring twice does nothing");
}

#[test]
fn a_client_leaving_during_initialize_leaves_the_instance_initializing() {
    let mut m = mux();
    from_client(&mut m, 1, &initialize("0"));
    from_client(&mut m, 2, &initialize("0"));
    assert_eq!(gone(&mut m, 1), []);
    assert_eq!(from_server(&mut m, 1, &ok("1", INIT_OK)), [client(2, &ok("0", INIT_OK))]);
}

#[test]
fn a_server_exit_fails_every_request_then_disconnects() {
    let mut m = mux();
    from_client(&mut m, 1, &initialize("0"));
    from_client(&mut m, 2, &initialize(r#""w""#));
    from_client(&mut m, 2, &request("9", "tools/list", "{}"));
    from_client(&mut m, 3, &initialize("0"));
    let mut out = Vec::new();
    m.server_gone(1, &mut out);
    let exited = |c, id: &str| client(c, &err(id, -32603, "the shared server exited"));
    assert_eq!(
        out,
        [
            exited(1, "0"),
            Action::Disconnect(1),
            exited(2, r#""w""#),
            exited(2, "9"),
            Action::Disconnect(2),
            exited(3, "0"),
            Action::Disconnect(3),
            log("instance 1: the server exited"),
        ]
    );
    assert!(m.is_empty());

    let mut m = mux();
    two_clients(&mut m);
    from_client(&mut m, 2, &request(r#""a""#, "tools/call", "{}"));
    from_client(&mut m, 2, &request(r#""b""#, "tools/call", "{}"));
    let mut out = Vec::new();
    m.server_gone(1, &mut out);
    assert_eq!(out[..3], [Action::Disconnect(1), exited(2, r#""a""#), exited(2, r#""b""#)]);
}

#[test]
fn instances_report_their_state() {
    let mut m = mux();
    two_clients(&mut m);
    from_client(&mut m, 1, &request("1", "tools/list", "{}"));
    assert_eq!(
        m.instances(),
        [InstanceView {
            id: 1,
            class: "initialize \"2025-11-25\" capabilities {}".to_owned(),
            clients: vec![1, 2],
            shareable: true,
            in_flight: 1,
        }]
    );
    from_client(&mut m, 3, &request("1", "tools/list", "{}"));
    assert_eq!(m.instances()[1].class, "2026-07-28 (no initialize)");
}
