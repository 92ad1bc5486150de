//! A scripted peer-to-peer D-Bus server for tests, standing in for
//! systemd's private socket: it accepts one connection and runs a script
//! on its own thread. Assertions in the script fail the test at `join`.

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::thread::JoinHandle;
use std::time::Duration;

use super::message::{FIXED_HEADER_LEN, Message, MessageKind, frame_len};

/// Long enough for a slow CI host; short enough that a client bug fails
/// the test instead of hanging it.
const PEER_TIMEOUT: Duration = Duration::from_secs(10);

pub struct FakePeer {
    pub path: PathBuf,
    thread: Option<JoinHandle<()>>,
}

impl FakePeer {
    pub fn spawn(tag: &str, script: impl FnOnce(Peer) + Send + 'static) -> FakePeer {
        let path = std::env::temp_dir().join(format!("mcp-runner-dbus-{}-{tag}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).expect("bind the fake peer's socket");
        let thread = std::thread::spawn(move || {
            let (stream, _) = listener.accept().expect("accept");
            stream.set_read_timeout(Some(PEER_TIMEOUT)).expect("read timeout");
            script(Peer { stream, serial: 0 });
        });
        FakePeer { path, thread: Some(thread) }
    }

    /// Waits for the script, re-raising its panic.
    pub fn join(mut self) {
        if let Some(Err(panic)) = self.thread.take().map(JoinHandle::join) {
            std::panic::resume_unwind(panic);
        }
    }
}

impl Drop for FakePeer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

pub struct Peer {
    pub stream: UnixStream,
    serial: u32,
}

impl Peer {
    /// One `\r\n`-terminated line, without the terminator.
    pub fn line(&mut self) -> String {
        let mut line = Vec::new();
        let mut b = [0u8];
        while !line.ends_with(b"\r\n") {
            self.stream.read_exact(&mut b).expect("read a line");
            line.push(b[0]);
        }
        line.truncate(line.len() - 2);
        String::from_utf8(line).expect("ASCII line")
    }

    pub fn write(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write");
    }

    /// Accepts any AUTH line; returns it.
    pub fn handshake(&mut self) -> String {
        let auth = self.line();
        self.write(b"OK 0123456789abcdef0123456789abcdef\r\n");
        assert_eq!(self.line(), "BEGIN");
        auth
    }

    /// Insists on sd-bus's pipelining: `BEGIN` must be on the wire before
    /// the peer answers `OK` (see `Connection::authenticate`).
    pub fn handshake_begin_before_ok(&mut self) -> String {
        let auth = self.line();
        assert_eq!(self.line(), "BEGIN", "BEGIN must come with AUTH, before OK");
        self.write(b"OK 0123456789abcdef0123456789abcdef\r\n");
        auth
    }

    pub fn read(&mut self) -> Message {
        let mut buf = vec![0u8; FIXED_HEADER_LEN];
        self.stream.read_exact(&mut buf).expect("read a header");
        let len = frame_len(&buf).expect("a sound frame");
        buf.resize(len, 0);
        self.stream.read_exact(&mut buf[FIXED_HEADER_LEN..]).expect("read a message");
        Message::decode(&buf).expect("a well-formed message")
    }

    pub fn send(&mut self, m: &Message) -> u32 {
        self.serial += 1;
        let bytes = m.encode(self.serial).expect("the script's message encodes");
        self.write(&bytes);
        self.serial
    }

    /// Sends `ms` in one write, so the client reads them in as few reads
    /// as the socket allows (message boundaries inside a read).
    pub fn send_all(&mut self, ms: &[Message]) {
        let mut bytes = Vec::new();
        for m in ms {
            self.serial += 1;
            bytes.extend(m.encode(self.serial).expect("the script's message encodes"));
        }
        self.write(&bytes);
    }

    /// Keeps the connection open, silent, until the client closes it.
    pub fn wait_hangup(&mut self) {
        let mut b = [0u8; 1];
        let _ = self.stream.read(&mut b);
    }

    pub fn expect_call(&mut self, member: &str) -> Message {
        let m = self.read();
        assert_eq!((m.kind, m.member.as_deref()), (MessageKind::MethodCall, Some(member)));
        m
    }
}
