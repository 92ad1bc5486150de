//! Probes of a real systemd manager over its private socket, for the
//! systemd guest only (ignored elsewhere; `ci/vm-systemd-tests --dbus-probe`
//! runs them there, with their output). They print what arrived on the
//! socket while each reply was awaited.
//!
//! What they found (systemd 252, the guest): a daemon-reload's reply comes
//! as message #351, after Reloading(true), UnitRemoved and UnitNew for
//! each of 174 units and Reloading(false), within 1-3 s; the "lost" replies
//! were calls that systemd never read. Its sd-bus server leaves a message
//! that arrived in the same read as the client's `BEGIN` in its buffer
//! until more bytes come: the first call of a client that sends `BEGIN`
//! after `OK` and its call right behind it is not answered, and not even
//! carried out, until the client writes again or hangs up. The first probe
//! below shows it deterministically; the client now sends `BEGIN` with
//! `AUTH` (see `Connection::authenticate`), and the second shows every
//! call answered.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Instant;

use super::super::message::{FIXED_HEADER_LEN, frame_len};
use super::super::systemd::{MANAGER, PATH, SERVICE};
use super::*;

const SOCKET: &str = "/run/systemd/private";
/// The systemd driver's call timeout (driver/systemd/scope.rs).
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the raw probe waits for a reply it may never get.
const WAIT: Duration = Duration::from_secs(20);

fn manager_call(member: &str) -> Message {
    Message::method_call(SERVICE, PATH, MANAGER, member)
}

/// Reads one message from a raw stream; `None` on timeout or EOF.
fn read_raw(s: &mut UnixStream) -> Option<Message> {
    let mut buf = vec![0u8; FIXED_HEADER_LEN];
    s.read_exact(&mut buf).ok()?;
    let len = frame_len(&buf).ok()?;
    buf.resize(len, 0);
    s.read_exact(&mut buf[FIXED_HEADER_LEN..]).ok()?;
    Message::decode(&buf).ok()
}

/// Reads until the reply to `serial`, counting what came before it.
fn reply_raw(s: &mut UnixStream, serial: u32) -> Option<(Message, usize)> {
    let mut before = 0;
    loop {
        let m = read_raw(s)?;
        if m.reply_serial == Some(serial) {
            return Some((m, before));
        }
        before += 1;
    }
}

#[test]
#[ignore = "needs systemd as PID 1 (the systemd guest: ci/vm-systemd-tests --dbus-probe)"]
fn probe_a_first_call_in_the_same_read_as_begin_waits_for_more_bytes() {
    let uid = nix::unistd::geteuid().as_raw().to_string();
    let hex: String = uid.bytes().map(|b| format!("{b:02x}")).collect();
    let mut unanswered = 0;
    let rounds = 3;
    for round in 0..rounds {
        let mut s = UnixStream::connect(SOCKET).expect("connect");
        s.set_read_timeout(Some(WAIT)).expect("timeout");
        s.write_all(format!("\0AUTH EXTERNAL {hex}\r\n").as_bytes()).expect("auth");
        let mut ok = Vec::new();
        let mut b = [0u8];
        while !ok.ends_with(b"\r\n") {
            s.read_exact(&mut b).expect("OK line");
            ok.push(b[0]);
        }
        assert!(ok.starts_with(b"OK "), "{}", String::from_utf8_lossy(&ok));
        // The old client's sequence, made deterministic: BEGIN and the
        // first call in one write, so they arrive in one read.
        let mut bytes = b"BEGIN\r\n".to_vec();
        bytes.extend(manager_call("Subscribe").encode(1).expect("encode"));
        s.write_all(&bytes).expect("begin + call");
        let first = reply_raw(&mut s, 1);
        // More bytes: a second call.
        s.write_all(&manager_call("Subscribe").encode(2).expect("encode")).expect("second call");
        let (late_first, second) = match first {
            Some(_) => (None, reply_raw(&mut s, 2)),
            None => (reply_raw(&mut s, 1), reply_raw(&mut s, 2)),
        };
        if first.is_none() {
            unanswered += 1;
        }
        eprintln!(
            "round {round}: BEGIN+Subscribe in one write: {}; after a second call: first {}, second {}",
            if first.is_some() { "answered" } else { "NO REPLY within the wait" },
            if first.is_some() {
                "already answered"
            } else if late_first.is_some() {
                "answered now"
            } else {
                "STILL NO REPLY"
            },
            if second.is_some() { "answered" } else { "NO REPLY" },
        );
        assert!(second.is_some(), "the second call was not answered");
        assert!(first.is_some() || late_first.is_some(), "the first call was never answered");
    }
    eprintln!(
        "{unanswered} of {rounds} first calls sent in the same read as BEGIN went unanswered until more bytes came"
    );
}

#[test]
#[ignore = "needs systemd as PID 1 (the systemd guest: ci/vm-systemd-tests --dbus-probe)"]
fn probe_reload_and_first_calls_are_all_answered() {
    let mut failures = Vec::new();
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let n = 20;
    for i in 0..n {
        let mut c = Connection::connect(SOCKET, CALL_TIMEOUT).expect("connect");
        let start = Instant::now();
        match c.call(&manager_call("Reload"), CALL_TIMEOUT) {
            Ok(_) => *counts.entry("Reload answered".into()).or_default() += 1,
            Err(e) => failures.push(format!("Reload #{i}: {e}")),
        }
        if i == 0 {
            eprintln!(
                "Reload #0: answered in {:.3}s after {} queued signals",
                start.elapsed().as_secs_f64(),
                c.pending_signals() as u64 + c.dropped_messages()
            );
        }
    }
    for i in 0..5 {
        let out = std::process::Command::new("systemctl").arg("daemon-reload").status().expect("systemctl");
        assert!(out.success());
        let mut c = Connection::connect(SOCKET, CALL_TIMEOUT).expect("connect");
        match c.call(&manager_call("Subscribe"), CALL_TIMEOUT) {
            Ok(_) => *counts.entry("Subscribe after daemon-reload answered".into()).or_default() += 1,
            Err(e) => failures.push(format!("Subscribe after daemon-reload #{i}: {e}")),
        }
    }
    eprintln!("{counts:?}");
    assert!(failures.is_empty(), "unanswered:\n{}", failures.join("\n"));
}
