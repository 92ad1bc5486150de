//! A blocking, single-threaded D-Bus connection over a Unix stream socket.
//!
//! Every read and write is bounded by the caller's timeout (SO_RCVTIMEO and
//! SO_SNDTIMEO set to what is left of it), so nothing blocks forever on a
//! hung peer. Incoming bytes are buffered, so a timeout in the middle of a
//! message loses nothing: the next read carries on where this one stopped.
//! Signals that arrive while a call waits for its reply are queued for
//! [`Connection::wait_signal`]: systemd may send JobRemoved before the
//! reply to the StartTransientUnit that created the job.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::message::{FIXED_HEADER_LEN, Message, MessageKind, NO_REPLY_EXPECTED, frame_len};
use super::wire::{Value, WireError};

#[cfg(test)]
pub const BUS_NAME: &str = "org.freedesktop.DBus";
#[cfg(test)]
pub const BUS_PATH: &str = "/org/freedesktop/DBus";
#[cfg(test)]
pub const BUS_INTERFACE: &str = "org.freedesktop.DBus";
pub const UNKNOWN_METHOD: &str = "org.freedesktop.DBus.Error.UnknownMethod";

/// Signals kept for [`Connection::wait_signal`]; past this the oldest go.
/// systemd's private socket sends every signal to every connection, and a
/// long-lived connection that never waits must not grow without bound.
pub const SIGNAL_QUEUE_LIMIT: usize = 4096;
/// Larger incoming messages are skipped unread. The replies and signals
/// this client wants are a few hundred bytes; decoding a hostile 128 MiB
/// byte array would cost gigabytes.
pub const MAX_RECEIVED_MESSAGE: usize = 1 << 20;
const MAX_AUTH_LINE: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum DbusError {
    #[error("failed to connect to {path}: {source}")]
    Connect { path: PathBuf, source: io::Error },
    #[error("failed to {op} {path}: {source}")]
    Io { op: &'static str, path: PathBuf, source: io::Error },
    #[error("{path} refused authentication: {reply}")]
    Auth { path: PathBuf, reply: String },
    #[error("timed out after {timeout:?} waiting for {what} on {path}{}", read_meanwhile(*read))]
    Timeout {
        what: String,
        path: PathBuf,
        timeout: Duration,
        /// For a call: the messages read meanwhile that were not its reply
        /// (signals, stray replies); none at all means the peer said
        /// nothing.
        read: Option<usize>,
    },
    #[error("{path} closed the connection")]
    Disconnected { path: PathBuf },
    #[error("the connection to {path} is unusable after an earlier error")]
    Broken { path: PathBuf },
    #[error("malformed message from {path}: {source}")]
    Malformed { path: PathBuf, source: WireError },
    /// A message we were about to send does not encode.
    #[error(transparent)]
    Encode(#[from] WireError),
    /// The peer answered with an error, e.g. org.freedesktop.systemd1.NoSuchUnit.
    #[error("{name}: {message}")]
    Remote { name: String, message: String },
    #[error("unexpected reply to {member}: signature `{signature}`")]
    UnexpectedReply { member: String, signature: String },
    #[error("call() needs a method call that expects a reply")]
    NotACall,
}

/// An instant to give up at, and the timeout it came from (for errors).
#[derive(Clone, Copy)]
struct Deadline {
    /// `None` when `timeout` is too large to add to now: wait without limit.
    at: Option<Instant>,
    timeout: Duration,
}

impl Deadline {
    fn after(timeout: Duration) -> Deadline {
        Deadline { at: Instant::now().checked_add(timeout), timeout }
    }

    /// What is left, `Ok(None)` for no limit, `Err` when it has passed.
    fn remaining(&self) -> Result<Option<Duration>, ()> {
        match self.at {
            None => Ok(None),
            Some(at) => match at.saturating_duration_since(Instant::now()) {
                Duration::ZERO => Err(()),
                left => Ok(Some(left)),
            },
        }
    }
}

#[derive(Debug)]
pub struct Connection {
    stream: UnixStream,
    path: PathBuf,
    /// Bytes read but not yet consumed: at most one partial message, or
    /// the tail of the authentication exchange.
    rbuf: Vec<u8>,
    /// Bytes still to discard of a message over [`MAX_RECEIVED_MESSAGE`].
    skip: usize,
    next_serial: u32,
    signals: VecDeque<Message>,
    dropped: u64,
    /// Set by [`Connection::hello`]: only a bus daemon has names and
    /// match rules. The runner talks to systemd's private socket, peer to
    /// peer; the bus API exists for the tests against a real dbus-daemon.
    #[cfg(test)]
    unique_name: Option<String>,
    #[cfg(test)]
    matches: Vec<String>,
    /// A write failed part way or the stream lost sync: the byte stream
    /// cannot be trusted again.
    broken: bool,
}

impl Connection {
    /// Connects to the Unix socket at `path` and authenticates with SASL
    /// EXTERNAL as the effective uid, within `timeout`.
    ///
    /// connect(2) itself is not bounded: std sets no timeout before it, and
    /// a Unix socket connect only blocks while the listener's backlog is
    /// full.
    pub fn connect(path: impl AsRef<Path>, timeout: Duration) -> Result<Connection, DbusError> {
        let path = path.as_ref().to_path_buf();
        let stream = match UnixStream::connect(&path) {
            Ok(s) => s,
            Err(source) => return Err(DbusError::Connect { path, source }),
        };
        let mut conn = Connection {
            stream,
            path,
            rbuf: Vec::new(),
            skip: 0,
            next_serial: 1,
            signals: VecDeque::new(),
            dropped: 0,
            #[cfg(test)]
            unique_name: None,
            #[cfg(test)]
            matches: Vec::new(),
            broken: false,
        };
        conn.authenticate(Deadline::after(timeout))?;
        Ok(conn)
    }

    #[cfg(test)]
    /// org.freedesktop.DBus.Hello: required first on a message bus, and
    /// wrong on a peer-to-peer socket such as /run/systemd/private.
    /// Returns the unique name the bus assigned.
    pub fn hello(&mut self, timeout: Duration) -> Result<String, DbusError> {
        let reply = self.call(&Message::method_call(BUS_NAME, BUS_PATH, BUS_INTERFACE, "Hello"), timeout)?;
        match reply.body.as_slice() {
            [Value::Str(name)] => {
                self.unique_name = Some(name.clone());
                Ok(name.clone())
            }
            _ => Err(unexpected("Hello", &reply)),
        }
    }

    #[cfg(test)]
    /// The name from [`Connection::hello`]; `None` on a peer-to-peer socket.
    pub fn unique_name(&self) -> Option<&str> {
        self.unique_name.as_deref()
    }

    /// Sends a method call and waits for its reply. An error reply becomes
    /// [`DbusError::Remote`]. Signals that arrive meanwhile are queued;
    /// stale replies (to calls that timed out) are dropped.
    pub fn call(&mut self, msg: &Message, timeout: Duration) -> Result<Message, DbusError> {
        if msg.kind != MessageKind::MethodCall || msg.flags & NO_REPLY_EXPECTED != 0 {
            return Err(DbusError::NotACall);
        }
        let deadline = Deadline::after(timeout);
        let what = format!(
            "the reply to {}.{}",
            msg.interface.as_deref().unwrap_or_default(),
            msg.member.as_deref().unwrap_or_default()
        );
        let serial = self.send_by(msg, deadline, &what)?;
        let mut read = 0;
        loop {
            let reply = self.read_message(deadline, &what).map_err(|e| match e {
                DbusError::Timeout { what, path, timeout, .. } => {
                    DbusError::Timeout { what, path, timeout, read: Some(read) }
                }
                e => e,
            })?;
            tracing::trace!(
                "{what}: read {:?} serial {} reply_serial {:?} {}.{}",
                reply.kind,
                reply.serial,
                reply.reply_serial,
                reply.interface.as_deref().unwrap_or_default(),
                reply.member.as_deref().unwrap_or_default()
            );
            let is_reply = matches!(reply.kind, MessageKind::MethodReturn | MessageKind::Error);
            if is_reply && reply.reply_serial == Some(serial) {
                return match reply.kind {
                    MessageKind::Error => Err(remote_error(reply)),
                    _ => Ok(reply),
                };
            }
            read += 1;
            self.dispatch(reply, deadline)?;
        }
    }

    #[cfg(test)]
    /// Sends any message without waiting for a reply; returns its serial.
    pub fn send(&mut self, msg: &Message, timeout: Duration) -> Result<u32, DbusError> {
        self.send_by(msg, Deadline::after(timeout), "room to send")
    }

    #[cfg(test)]
    /// org.freedesktop.DBus.AddMatch, once per rule. A no-op without a bus
    /// daemon: a peer-to-peer peer sends what it sends, unfiltered.
    pub fn add_match(&mut self, rule: &str, timeout: Duration) -> Result<(), DbusError> {
        if self.unique_name.is_none() || self.matches.iter().any(|r| r == rule) {
            return Ok(());
        }
        let msg = Message::method_call(BUS_NAME, BUS_PATH, BUS_INTERFACE, "AddMatch")
            .with_body(vec![Value::Str(rule.to_owned())]);
        self.call(&msg, timeout)?;
        self.matches.push(rule.to_owned());
        Ok(())
    }

    /// Returns the first signal, queued or new, for which `pred` is true.
    /// Other signals stay queued for later waits.
    pub fn wait_signal(
        &mut self,
        mut pred: impl FnMut(&Message) -> bool,
        timeout: Duration,
    ) -> Result<Message, DbusError> {
        self.check_usable()?;
        if let Some(m) = self.signals.iter().position(&mut pred).and_then(|i| self.signals.remove(i)) {
            return Ok(m);
        }
        let deadline = Deadline::after(timeout);
        loop {
            let m = self.read_message(deadline, "a matching signal")?;
            if m.kind == MessageKind::Signal && pred(&m) {
                return Ok(m);
            }
            self.dispatch(m, deadline)?;
        }
    }

    #[cfg(test)]
    /// Signals queued and not yet taken by [`Connection::wait_signal`].
    pub fn pending_signals(&self) -> usize {
        self.signals.len()
    }

    #[cfg(test)]
    /// Signals pushed out of a full queue, and incoming messages skipped
    /// for their size.
    pub fn dropped_messages(&self) -> u64 {
        self.dropped
    }

    fn check_usable(&self) -> Result<(), DbusError> {
        if self.broken { Err(DbusError::Broken { path: self.path.clone() }) } else { Ok(()) }
    }

    /// What to do with a message that is not the reply being waited for.
    fn dispatch(&mut self, m: Message, deadline: Deadline) -> Result<(), DbusError> {
        match m.kind {
            MessageKind::Signal => {
                self.signals.push_back(m);
                if self.signals.len() > SIGNAL_QUEUE_LIMIT {
                    self.signals.pop_front();
                    self.dropped += 1;
                }
            }
            // We export no objects. Answer rather than leave the caller
            // waiting out its own timeout.
            MessageKind::MethodCall if m.flags & NO_REPLY_EXPECTED == 0 => {
                let reply = Message::error(&m, UNKNOWN_METHOD, "this client exports no methods");
                self.send_by(&reply, deadline, "room to send")?;
            }
            // Replies to calls that timed out, or to nothing we sent.
            _ => {}
        }
        Ok(())
    }

    fn send_by(&mut self, msg: &Message, deadline: Deadline, what: &str) -> Result<u32, DbusError> {
        self.check_usable()?;
        let serial = self.next_serial;
        // Serial 0 is invalid; wrap to 1.
        self.next_serial = self.next_serial.checked_add(1).unwrap_or(1);
        let bytes = msg.encode(serial)?;
        self.write_all(&bytes, deadline, what)?;
        Ok(serial)
    }

    /// A failed or timed-out write may have sent part of the bytes: after
    /// that the stream is out of sync for the peer, so the connection is
    /// marked broken.
    fn write_all(&mut self, bytes: &[u8], deadline: Deadline, what: &str) -> Result<(), DbusError> {
        let left = deadline.remaining().map_err(|()| self.timeout(what, deadline))?;
        if let Err(source) = self.stream.set_write_timeout(left) {
            return Err(self.io("set a write timeout on", source));
        }
        match self.stream.write_all(bytes) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.broken = true;
                Err(match e.kind() {
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => self.timeout(what, deadline),
                    _ => self.io("write to", e),
                })
            }
        }
    }

    /// Reads more bytes into the buffer, at least one.
    fn fill(&mut self, deadline: Deadline, what: &str) -> Result<(), DbusError> {
        let mut chunk = [0u8; 8192];
        loop {
            let left = deadline.remaining().map_err(|()| self.timeout(what, deadline))?;
            if let Err(source) = self.stream.set_read_timeout(left) {
                return Err(self.io("set a read timeout on", source));
            }
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    self.broken = true;
                    return Err(DbusError::Disconnected { path: self.path.clone() });
                }
                Ok(n) => {
                    self.rbuf.extend_from_slice(&chunk[..n]);
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                    return Err(self.timeout(what, deadline));
                }
                Err(e) => {
                    self.broken = true;
                    return Err(self.io("read from", e));
                }
            }
        }
    }

    fn read_message(&mut self, deadline: Deadline, what: &str) -> Result<Message, DbusError> {
        self.check_usable()?;
        loop {
            if self.skip > 0 {
                let n = self.skip.min(self.rbuf.len());
                self.rbuf.drain(..n);
                self.skip -= n;
            }
            if self.skip == 0 && self.rbuf.len() >= FIXED_HEADER_LEN {
                let len = frame_len(&self.rbuf).map_err(|e| self.malformed(e))?;
                if len > MAX_RECEIVED_MESSAGE {
                    self.skip = len;
                    self.dropped += 1;
                    continue;
                }
                if self.rbuf.len() >= len {
                    let decoded = Message::decode(&self.rbuf[..len]);
                    self.rbuf.drain(..len);
                    match decoded {
                        Ok(m) => return Ok(m),
                        // The spec: messages of unknown type are ignored.
                        Err(WireError::UnknownMessageType(_)) => continue,
                        // The framing was sound, but the spec says a peer
                        // that sends garbage is to be dropped.
                        Err(e) => return Err(self.malformed(e)),
                    }
                }
            }
            self.fill(deadline, what)?;
        }
    }

    /// SASL, pipelined as sd-bus's own clients do it: a NUL byte,
    /// `AUTH EXTERNAL <hex of the uid in decimal>` and `BEGIN` in one write,
    /// then expect `OK <guid>`. No fd passing is negotiated.
    ///
    /// Why `BEGIN` does not wait for `OK`: systemd's sd-bus server (252 in
    /// the test guest) reads `BEGIN` and, when the client's first message
    /// came in the same read, leaves that message in its input buffer
    /// without looking at it until more bytes arrive on the socket. A
    /// client that sends `BEGIN` and then its first call right after `OK`
    /// hits that whenever the manager is slow to read (the guest, a busy
    /// host, a reload in progress): the call is never answered, and is
    /// carried out only when the client closes the socket. Sent with
    /// `AUTH`, `BEGIN` is consumed before `OK` is even read, and the first
    /// call always arrives on its own.
    fn authenticate(&mut self, deadline: Deadline) -> Result<(), DbusError> {
        let uid = nix::unistd::geteuid().as_raw().to_string();
        let hex: String = uid.bytes().map(|b| format!("{b:02x}")).collect();
        let what = "the authentication reply";
        self.write_all(format!("\0AUTH EXTERNAL {hex}\r\nBEGIN\r\n").as_bytes(), deadline, what)?;
        let reply = self.read_line(deadline, what)?;
        if !reply.starts_with("OK ") {
            self.broken = true;
            return Err(DbusError::Auth { path: self.path.clone(), reply });
        }
        Ok(())
    }

    /// One `\r\n`-terminated line. Anything after it stays buffered: it is
    /// the start of the message stream.
    fn read_line(&mut self, deadline: Deadline, what: &str) -> Result<String, DbusError> {
        loop {
            if let Some(i) = self.rbuf.windows(2).position(|w| w == b"\r\n") {
                let line: Vec<u8> = self.rbuf.drain(..i + 2).take(i).collect();
                return Ok(String::from_utf8_lossy(&line).into_owned());
            }
            if self.rbuf.len() > MAX_AUTH_LINE {
                self.broken = true;
                return Err(DbusError::Auth { path: self.path.clone(), reply: "an overlong line".into() });
            }
            self.fill(deadline, what)?;
        }
    }

    fn timeout(&self, what: &str, deadline: Deadline) -> DbusError {
        DbusError::Timeout { what: what.to_owned(), path: self.path.clone(), timeout: deadline.timeout, read: None }
    }

    fn io(&self, op: &'static str, source: io::Error) -> DbusError {
        DbusError::Io { op, path: self.path.clone(), source }
    }

    fn malformed(&mut self, source: WireError) -> DbusError {
        self.broken = true;
        DbusError::Malformed { path: self.path.clone(), source }
    }
}

/// The tail of a call's timeout message.
fn read_meanwhile(read: Option<usize>) -> String {
    match read {
        None => String::new(),
        Some(0) => " (nothing arrived meanwhile)".to_owned(),
        Some(1) => " (1 other message arrived meanwhile)".to_owned(),
        Some(n) => format!(" ({n} other messages arrived meanwhile)"),
    }
}

/// An error reply as [`DbusError::Remote`]; its first string argument, if
/// any, is the human-readable message.
fn remote_error(m: Message) -> DbusError {
    let message = m.body.first().and_then(Value::as_str).unwrap_or_default().to_owned();
    DbusError::Remote { name: m.error_name.unwrap_or_default(), message }
}

pub(super) fn unexpected(member: &str, reply: &Message) -> DbusError {
    DbusError::UnexpectedReply { member: member.to_owned(), signature: reply.signature() }
}

#[cfg(test)]
#[path = "conn_tests.rs"]
mod tests;

#[cfg(all(test, target_os = "linux"))]
#[path = "live_tests.rs"]
mod live_tests;
