//! Against a real peer: a private dbus-daemon session bus. Exercises SASL
//! EXTERNAL, marshalling (the daemon validates every message it routes),
//! reply matching and signal queueing. Skips, saying why, where
//! dbus-daemon is not installed.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::conn::{BUS_INTERFACE, BUS_NAME, BUS_PATH};
use super::message::Message;
use super::systemd::{JOB_REMOVED_RULE, PropValue, start_transient_unit_message};
use super::wire::{Type, Value};
use super::{Connection, DbusError};

const T: Duration = Duration::from_secs(10);
const NAME_OWNER_CHANGED: &str =
    "type='signal',sender='org.freedesktop.DBus',interface='org.freedesktop.DBus',member='NameOwnerChanged'";

struct Daemon {
    child: Child,
    dir: PathBuf,
    socket: PathBuf,
}

impl Daemon {
    fn start() -> Option<Daemon> {
        let dir = std::env::temp_dir().join(format!("mcp-runner-dbus-daemon-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create the bus directory");
        let socket = dir.join("bus");
        let spawned = Command::new("dbus-daemon")
            .args(["--session", "--nofork", "--print-address=1"])
            .arg(format!("--address=unix:path={}", socket.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                eprintln!("skipping: dbus-daemon is not installed");
                return None;
            }
            Err(e) => panic!("failed to run dbus-daemon: {e}"),
        };
        // It prints its address once it listens.
        let mut address = String::new();
        if let Some(out) = child.stdout.take() {
            BufReader::new(out).read_line(&mut address).expect("read the bus address");
        }
        assert!(address.starts_with("unix:path="), "dbus-daemon printed {address:?}");
        Some(Daemon { child, dir, socket })
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn bus_call(member: &str, args: &[&str]) -> Message {
    Message::method_call(BUS_NAME, BUS_PATH, BUS_INTERFACE, member)
        .with_body(args.iter().map(|a| Value::Str((*a).to_owned())).collect())
}

fn one_string(reply: &Message) -> String {
    match reply.body.as_slice() {
        [Value::Str(s)] => s.clone(),
        other => panic!("expected one string, got {other:?}"),
    }
}

fn connect(d: &Daemon) -> (Connection, String) {
    let mut c = Connection::connect(&d.socket, T).expect("connect and authenticate");
    let name = c.hello(T).expect("Hello");
    assert!(name.starts_with(':'), "{name}");
    assert_eq!(c.unique_name(), Some(name.as_str()));
    (c, name)
}

fn is_owner_changed(name: &str, new_owner: &str) -> impl Fn(&Message) -> bool {
    let (name, new_owner) = (name.to_owned(), new_owner.to_owned());
    move |m| {
        m.is_signal(BUS_INTERFACE, "NameOwnerChanged")
            && m.body.first().and_then(Value::as_str) == Some(&name)
            && m.body.get(2).and_then(Value::as_str) == Some(&new_owner)
    }
}

/// Every type this client supports, nested, including empty arrays of
/// 8-aligned elements.
fn everything() -> Vec<Value> {
    let props = [
        ("Description", PropValue::Str("leaf".into())),
        ("Delegate", PropValue::Bool(true)),
        ("TasksMax", PropValue::U64(64)),
        ("PIDs", PropValue::U32s(vec![1, 2])),
        ("After", PropValue::Strs(vec![])),
    ];
    let mut body = start_transient_unit_message("x.scope", "fail", &props).body;
    let dict_t = Type::DictEntry(Box::new(Type::Str), Box::new(Type::Variant));
    body.extend([
        Value::Byte(0xfe),
        Value::I16(-3),
        Value::U16(3),
        Value::I64(-1 << 40),
        Value::F64(2.5),
        Value::ObjectPath("/a/b".into()),
        Value::Signature("a{sv}".into()),
        Value::Array(
            dict_t,
            vec![Value::DictEntry(Box::new((
                Value::Str("nested".into()),
                Value::variant(Value::variant(Value::Array(Type::U64, vec![]))),
            )))],
        ),
        Value::Array(Type::Struct(vec![Type::U64, Type::Byte]), vec![]),
    ]);
    body
}

#[test]
fn talks_to_a_real_dbus_daemon() {
    let Some(d) = Daemon::start() else { return };
    let (mut a, name_a) = connect(&d);

    let names = a.call(&bus_call("ListNames", &[]), T).expect("ListNames");
    let names: Vec<&str> = match names.body.as_slice() {
        [Value::Array(Type::Str, items)] => items.iter().filter_map(Value::as_str).collect(),
        other => panic!("ListNames returned {other:?}"),
    };
    assert!(names.contains(&BUS_NAME) && names.contains(&name_a.as_str()), "{names:?}");

    let owner = a.call(&bus_call("GetNameOwner", &[BUS_NAME]), T).expect("GetNameOwner");
    assert_eq!(one_string(&owner), BUS_NAME);
    let owner = a.call(&bus_call("GetNameOwner", &[&name_a]), T).expect("GetNameOwner");
    assert_eq!(one_string(&owner), name_a);

    match a.call(&bus_call("GetNameOwner", &["com.example.Nobody"]), T) {
        Err(DbusError::Remote { name, message }) => {
            assert_eq!(name, "org.freedesktop.DBus.Error.NameHasNoOwner");
            assert!(!message.is_empty());
        }
        other => panic!("expected NameHasNoOwner, got {other:?}"),
    }

    // The daemon read our credentials from the socket: EXTERNAL worked as
    // the effective uid.
    let uid = a.call(&bus_call("GetConnectionUnixUser", &[&name_a]), T).expect("GetConnectionUnixUser");
    assert_eq!(uid.body, [Value::U32(nix::unistd::geteuid().as_raw())]);

    // A second connection's arrival emits NameOwnerChanged. The daemon
    // queues it for `a` before the reply to a's next call, so that call
    // must keep it for wait_signal.
    a.add_match(NAME_OWNER_CHANGED, T).expect("AddMatch");
    let (mut b, name_b) = connect(&d);
    a.call(&bus_call("GetId", &[]), T).expect("GetId");
    assert!(a.pending_signals() >= 1, "the signal arrived before the reply");
    let arrived = a.wait_signal(is_owner_changed(&name_b, &name_b), T).expect("NameOwnerChanged");
    assert_eq!(arrived.body, [Value::Str(name_b.clone()), Value::Str(String::new()), Value::Str(name_b.clone())]);
    assert_eq!(arrived.sender.as_deref(), Some(BUS_NAME));

    // A signal carrying every type, routed (and validated) by the daemon.
    b.add_match("type='signal',interface='com.example.Test'", T).expect("AddMatch");
    let body = everything();
    a.send(&Message::signal("/com/example", "com.example.Test", "Everything").with_body(body.clone()), T)
        .expect("send");
    let got = b.wait_signal(|m| m.is_signal("com.example.Test", "Everything"), T).expect("routed signal");
    assert_eq!(got.body, body);
    assert_eq!(got.sender.as_deref(), Some(name_a.as_str()));

    assert!(matches!(a.wait_signal(|_| false, Duration::from_millis(200)), Err(DbusError::Timeout { .. })));

    // The daemon parses and accepts the rule systemd::subscribe adds.
    // (Subscribe itself is not called: there is no systemd on this bus,
    // and the daemon would try to activate one.)
    a.add_match(JOB_REMOVED_RULE, T).expect("AddMatch JobRemoved");

    drop(b);
    a.wait_signal(is_owner_changed(&name_b, ""), T).expect("b's departure");
}
