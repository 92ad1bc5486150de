//! The research notes' correctness probes (section 5), and a randomized
//! check that no client ever sees another client's traffic.

use proptest::prelude::*;

use super::*;

/// Probe 1: two clients, both `id: 0` initialize, then `id: 1` tools/call
/// with `progressToken: 1`: no cross-delivery.
#[test]
fn probe_1_colliding_ids_and_tokens() {
    let mut m = mux();
    two_clients(&mut m);
    let call =
        |id: &str, token: &str| request(id, "tools/call", &format!(r#"{{"_meta":{{"progressToken":{token}}}}}"#));
    assert_eq!(from_client(&mut m, 1, &call("1", "1")), [server(1, &call("2", "2"))]);
    assert_eq!(from_client(&mut m, 2, &call("1", "1")), [server(1, &call("3", "3"))]);
    let progress =
        |token: &str| notification("notifications/progress", &format!(r#"{{"progressToken":{token},"progress":1}}"#));
    assert_eq!(from_server(&mut m, 1, &progress("3")), [client(2, &progress("1"))]);
    assert_eq!(from_server(&mut m, 1, &progress("2")), [client(1, &progress("1"))]);
    assert_eq!(from_server(&mut m, 1, &ok("3", r#"{"who":"B"}"#)), [client(2, &ok("1", r#"{"who":"B"}"#))]);
    assert_eq!(from_server(&mut m, 1, &ok("2", r#"{"who":"A"}"#)), [client(1, &ok("1", r#"{"who":"A"}"#))]);
}

/// Probe 2: A cancels; only A's upstream request is cancelled.
#[test]
fn probe_2_cancel_is_per_client() {
    let mut m = mux();
    two_clients(&mut m);
    from_client(&mut m, 1, &request("1", "tools/call", "{}"));
    from_client(&mut m, 2, &request("1", "tools/call", "{}"));
    let cancel = |id: &str| notification("notifications/cancelled", &format!(r#"{{"requestId":{id}}}"#));
    assert_eq!(from_client(&mut m, 1, &cancel("1")), [server(1, &cancel("2"))]);
    assert_eq!(from_server(&mut m, 1, &ok("3", "{}")), [client(2, &ok("1", "{}"))]);
}

/// Probe 3: A subscribes, B unsubscribes: A still gets updates.
#[test]
fn probe_3_foreign_unsubscribe() {
    let mut m = mux();
    two_clients(&mut m);
    let sub = |id: &str, method: &str| request(id, method, r#"{"uri":"file:///x"}"#);
    from_client(&mut m, 1, &sub("1", "resources/subscribe"));
    assert_eq!(from_client(&mut m, 2, &sub("1", "resources/unsubscribe")), [client(2, &ok("1", "{}"))]);
    let updated = notification("notifications/resources/updated", r#"{"uri":"file:///x"}"#);
    assert_eq!(from_server(&mut m, 1, &updated), [client(1, &updated)]);
}

/// Probe 4: sampling while two sessions are in flight: refused upstream,
/// never delivered, and auto stops sharing.
#[test]
fn probe_4_sampling_is_never_misrouted() {
    let mut m = mux();
    two_clients(&mut m);
    from_client(&mut m, 1, &request("1", "tools/call", "{}"));
    from_client(&mut m, 2, &request("1", "tools/call", "{}"));
    let out = from_server(&mut m, 1, &request("0", "sampling/createMessage", "{}"));
    assert!(out.iter().all(|a| !matches!(a, Action::ToClient(..))));
    assert_eq!(out[0], server(1, &err("0", -32603, "mcp-runner cannot tell which shared client this request is for")));
    assert!(!m.instances()[0].shareable);
}

/// Probe 7: a 5 MB message fails one request, not the session (the host
/// discards the line and calls `oversized`; see `hostile.rs`). A large
/// message under the cap passes whole.
#[test]
fn probe_7_large_messages() {
    let mut m = mux();
    two_clients(&mut m);
    let big = format!(r#"{{"name":"t","arguments":{{"blob":"{}"}}}}"#, "a".repeat(3 << 20));
    assert_eq!(
        from_client(&mut m, 1, &request("1", "tools/call", &big)),
        [server(1, &request("2", "tools/call", &big))]
    );
    let mut out = Vec::new();
    m.oversized(2, &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(
        from_client(&mut m, 2, &request("1", "tools/list", "{}")),
        [server(1, &request("3", "tools/list", "{}"))]
    );
}

proptest! {
    /// Clients drawn from 1..4 send requests with colliding ids; the server
    /// answers upstream ids in a random order. Each client gets exactly its
    /// own answers, each with its own id, and nothing else.
    #[test]
    fn answers_reach_their_own_client(sends in prop::collection::vec((1u64..4, 0u8..3), 1..24), order in any::<u64>()) {
        let mut m = mux();
        let mut expect: Vec<(u64, String)> = Vec::new();
        let mut sent = Vec::new();
        for (c, id) in sends {
            let id = format!("\"{id}-{}\"", expect.iter().filter(|(x, _)| *x == c).count());
            let out = from_client(&mut m, c, &request(&id, "tools/list", "{}"));
            for a in out {
                if let Action::ToServer(1, line) = a {
                    let v: serde_json::Value = serde_json::from_slice(&line).expect("json");
                    sent.push(v["id"].as_u64().expect("integer upstream id"));
                    expect.push((c, id.clone()));
                }
            }
        }
        let mut idx: Vec<usize> = (0..sent.len()).collect();
        let n = idx.len();
        for k in 0..n {
            idx.swap(k, (order.wrapping_mul(k as u64 + 7) % n as u64) as usize);
        }
        for k in idx {
            let payload = format!(r#"{{"for":{}}}"#, k);
            let out = from_server(&mut m, 1, &ok(&sent[k].to_string(), &payload));
            let (c, id) = &expect[k];
            prop_assert_eq!(out, vec![client(*c, &ok(id, &payload))]);
        }
    }
}
