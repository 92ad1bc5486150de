use super::super::conn::SIGNAL_QUEUE_LIMIT;
use super::super::fake_peer::{FakePeer, Peer};
use super::super::message::MessageKind;
use super::*;

const T: Duration = Duration::from_secs(5);

fn job(n: u32) -> String {
    format!("/org/freedesktop/systemd1/job/{n}")
}

fn job_removed_signal(n: u32, unit: &str, result: &str) -> Message {
    Message::signal(PATH, MANAGER, "JobRemoved").with_body(vec![
        Value::U32(n),
        Value::ObjectPath(job(n)),
        Value::Str(unit.into()),
        Value::Str(result.into()),
    ])
}

fn props() -> Vec<(&'static str, PropValue)> {
    vec![
        ("Description", PropValue::Str("mcp-runner leaf".into())),
        ("Delegate", PropValue::Bool(true)),
        ("MemoryMax", PropValue::U64(1 << 30)),
        ("PIDs", PropValue::U32s(vec![42, 43])),
        ("BindsTo", PropValue::Strs(vec!["a.slice".into()])),
        ("After", PropValue::Strs(vec![])),
    ]
}

/// Answers a manager call addressed the way systemd expects.
fn expect_manager_call(p: &mut Peer, member: &str, signature: &str) -> Message {
    let m = p.expect_call(member);
    assert_eq!(m.destination.as_deref(), Some(SERVICE));
    assert_eq!(m.path.as_deref(), Some(PATH));
    assert_eq!(m.signature(), signature, "{member}");
    m
}

#[test]
fn start_transient_unit_has_systemds_signature() {
    let m = start_transient_unit_message("x.scope", "fail", &props());
    assert_eq!(m.signature(), "ssa(sv)a(sa(sv))");
    assert_eq!(m.interface.as_deref(), Some(MANAGER));
    let Value::Array(_, ps) = &m.body[2] else { panic!("properties are an array") };
    let sigs: Vec<String> = ps
        .iter()
        .map(|p| match p {
            Value::Struct(kv) => match &kv[1] {
                Value::Variant(v) => v.type_of().to_string(),
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(sigs, ["s", "b", "t", "au", "as", "as"]);
    // It survives the wire.
    let back = Message::decode(&m.encode(1).expect("encodes")).expect("decodes");
    assert_eq!(back.body, m.body);
}

#[test]
fn job_removed_is_parsed_only_from_the_manager() {
    let m = job_removed_signal(7, "x.scope", "done");
    let expected = JobRemoved { id: 7, job: job(7), unit: "x.scope".into(), result: "done".into() };
    assert_eq!(job_removed(&m), Some(expected));
    assert_eq!(job_removed(&Message { path: Some("/elsewhere".into()), ..m.clone() }), None);
    assert_eq!(job_removed(&Message { member: Some("JobNew".into()), ..m.clone() }), None);
    assert_eq!(job_removed(&m.clone().with_body(vec![Value::U32(7)])), None);
    assert_eq!(job_removed(&Message { kind: MessageKind::MethodCall, ..m }), None);
}

/// The runner's sequence against a peer that behaves like systemd on its
/// private socket, including JobRemoved overtaking the reply.
#[test]
fn manager_calls_against_a_fake_systemd() {
    let peer = FakePeer::spawn("systemd", |mut p| {
        p.handshake();
        // No Hello, no AddMatch: there is no bus daemon.
        let m = expect_manager_call(&mut p, "Subscribe", "");
        p.send(&Message::method_return(&m));

        let m = expect_manager_call(&mut p, "StartTransientUnit", "ssa(sv)a(sa(sv))");
        assert_eq!(m.body, start_transient_unit_message("x.scope", "fail", &props()).body);
        p.send(&job_removed_signal(6, "other.scope", "done"));
        p.send(&job_removed_signal(7, "x.scope", "done"));
        p.send(&Message::method_return(&m).with_body(vec![Value::ObjectPath(job(7))]));

        let m = expect_manager_call(&mut p, "StopUnit", "ss");
        p.send(&Message::method_return(&m).with_body(vec![Value::ObjectPath(job(8))]));
        p.send(&job_removed_signal(8, "x.scope", "failed"));

        let m = expect_manager_call(&mut p, "Reload", "");
        p.send(&Message::method_return(&m));

        let m = expect_manager_call(&mut p, "StopUnit", "ss");
        p.send(&Message::error(&m, NO_SUCH_UNIT, "Unit gone.scope not loaded."));
        p.wait_hangup();
    });

    let mut c = Connection::connect(&peer.path, T).expect("connects");
    subscribe(&mut c, T).expect("subscribe");
    let j = start_transient_unit(&mut c, "x.scope", "fail", &props(), T).expect("start");
    assert_eq!(j, job(7));
    assert_eq!(c.pending_signals(), 2, "both JobRemoved arrived before the reply");
    assert_eq!(wait_job(&mut c, &j, T).expect("job 7 is queued"), "done");
    assert_eq!(c.pending_signals(), 1, "job 6's signal stays queued");

    let j = stop_unit(&mut c, "x.scope", "replace", T).expect("stop");
    assert_eq!(wait_job(&mut c, &j, T).expect("job 8"), "failed");
    reload(&mut c, T).expect("reload");
    let err = stop_unit(&mut c, "gone.scope", "replace", T).expect_err("an error");
    assert!(matches!(&err, DbusError::Remote { name, .. } if name == NO_SUCH_UNIT), "{err}");
    assert!(matches!(wait_job(&mut c, &job(99), Duration::from_millis(100)), Err(DbusError::Timeout { .. })));
    drop(c);
    peer.join();
}

#[test]
fn subscribe_tolerates_already_subscribed() {
    let peer = FakePeer::spawn("subscribed", |mut p| {
        p.handshake();
        let m = expect_manager_call(&mut p, "Subscribe", "");
        p.send(&Message::error(&m, "org.freedesktop.systemd1.AlreadySubscribed", "Client is already subscribed."));
    });
    let mut c = Connection::connect(&peer.path, T).expect("connects");
    subscribe(&mut c, T).expect("already subscribed is fine");
    peer.join();
}

/// A signal of the manager, as systemd sends them on its private socket.
fn manager_signal(member: &str, body: Vec<Value>) -> Message {
    Message::signal(PATH, MANAGER, member).with_body(body)
}

fn unit_new(n: usize) -> Message {
    manager_signal(
        "UnitNew",
        vec![Value::Str(format!("u{n}.service")), Value::ObjectPath(format!("/org/freedesktop/systemd1/unit/u{n}"))],
    )
}

/// What systemd 252 sends a private connection for one daemon-reload
/// (seen in the guest): Reloading(true), UnitRemoved and UnitNew for every
/// unit, Reloading(false), then the reply. Here with more signals than the
/// client queues, all in one write: message boundaries fall inside reads.
#[test]
fn a_reload_reply_after_a_signal_storm_is_found() {
    let storm = SIGNAL_QUEUE_LIMIT + 100;
    let peer = FakePeer::spawn("storm", move |mut p| {
        p.handshake();
        let m = expect_manager_call(&mut p, "Reload", "");
        let mut burst = vec![manager_signal("Reloading", vec![Value::Bool(true)])];
        burst.extend((0..storm).map(unit_new));
        burst.push(manager_signal("Reloading", vec![Value::Bool(false)]));
        burst.push(Message::method_return(&m));
        p.send_all(&burst);
        p.wait_hangup();
    });
    let mut c = Connection::connect(&peer.path, T).expect("connects");
    reload(&mut c, T).expect("the late reply is found");
    // The queue keeps the newest signals; the rest are counted as dropped.
    assert_eq!((c.pending_signals(), c.dropped_messages()), (SIGNAL_QUEUE_LIMIT, 102));
    let last = c.wait_signal(|m| m.is_signal(MANAGER, "Reloading"), T).expect("queued");
    assert_eq!(last.body, [Value::Bool(false)]);
    drop(c);
    peer.join();
}

/// The reply never comes: the error names the call, the driver's 10 s and
/// that the manager said nothing at all meanwhile (what the lost Reload
/// replies of the guest looked like).
#[test]
fn a_lost_reload_reply_times_out_naming_the_call() {
    // The systemd driver's call timeout (driver/systemd/scope.rs).
    const CALL_TIMEOUT: Duration = Duration::from_secs(10);
    // The peer holds the connection, silent, until the client gave up (its
    // own read timeout would race the client's).
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let peer = FakePeer::spawn("lost", move |mut p| {
        p.handshake();
        expect_manager_call(&mut p, "Reload", "");
        let _ = rx.recv();
    });
    let mut c = Connection::connect(&peer.path, T).expect("connects");
    let err = reload(&mut c, CALL_TIMEOUT).expect_err("no reply");
    drop(tx);
    assert!(matches!(err, DbusError::Timeout { read: Some(0), .. }), "{err}");
    assert_eq!(
        err.to_string(),
        format!(
            "timed out after 10s waiting for the reply to org.freedesktop.systemd1.Manager.Reload on {} \
             (nothing arrived meanwhile)",
            peer.path.display()
        )
    );
    drop(c);
    peer.join();
}

/// The manager closes the connection in the middle of a call (as it does
/// for daemon-reexec): an error naming the socket, never a hang, and the
/// connection refuses further calls.
#[test]
fn a_connection_closed_mid_call_is_disconnected() {
    let peer = FakePeer::spawn("closed", |mut p| {
        p.handshake();
        expect_manager_call(&mut p, "Reload", "");
        let mut burst = vec![manager_signal("Reloading", vec![Value::Bool(true)])];
        burst.extend((0..10).map(unit_new));
        p.send_all(&burst);
    });
    let mut c = Connection::connect(&peer.path, T).expect("connects");
    let err = reload(&mut c, T).expect_err("closed");
    assert_eq!(err.to_string(), format!("{} closed the connection", peer.path.display()));
    assert_eq!(c.pending_signals(), 11, "what came before the close is kept");
    assert!(matches!(reload(&mut c, T), Err(DbusError::Broken { .. })));
    peer.join();
}
