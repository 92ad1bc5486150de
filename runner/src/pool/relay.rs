//! The runner of a shared server: a relay between the client's stdio and
//! the pool host's socket.
//!
//! It finds the pool's host (or starts one, elected under a lock so that
//! fifty relays starting together start one), says who it is, then copies
//! bytes both ways through one buffer each, parsing nothing: the host does
//! the routing. It ends with the session: stdin's end of file, the client's
//! exit (a pidfd on Linux, a kqueue on macOS), or SIGTERM, SIGINT or SIGHUP, whose default
//! action is right here (the kernel closes the socket and the host detaches
//! the client). When the host closes the
//! connection first (the shared server ended, or the host died), the client
//! is told with a JSON-RPC error before the relay exits.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use super::files::PoolFiles;
use super::key::PoolKey;
use super::wire::{self, Hello, Reply};
use crate::state::{StateDir, StateError};

/// How long a relay waits for a host it started to listen.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Connection attempts before giving up: a host that was closing as we
/// connected makes the next attempt start a new one.
const ATTEMPTS: usize = 5;

/// The relay's copy buffer, per direction.
const BUFFER: usize = 64 << 10;

/// What a write to a pipe that poll says has room never blocks on.
use crate::os::PIPE_BUF;

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error("cannot start the pool host: {0}")]
    Start(String),
    #[error("cannot reach the pool host at {path}: {err}")]
    Connect { path: String, err: io::Error },
    #[error("the pool host refused this runner: {0}")]
    Refused(String),
    #[error("relaying failed: {0}")]
    Io(#[from] io::Error),
}

impl RelayError {
    /// The host exists but will not take this run (its key differs: a hash
    /// collision): the run goes on unshared.
    pub fn is_refusal(&self) -> bool {
        matches!(self, RelayError::Refused(_))
    }
}

/// How the relay ended.
#[derive(Debug, PartialEq, Eq)]
pub enum RelayEnd {
    /// The client closed its side (or its stdout): the session is over.
    ClientClosed,
    /// The host closed the connection first.
    HostClosed,
}

/// What starting a host takes: the same command line the relay was given,
/// minus what only concerns the relay.
pub struct HostCommand<'a> {
    pub program: &'a Path,
    pub args: Vec<std::ffi::OsString>,
}

/// Connects to the pool's host, starting one if there is none, and
/// introduces this relay. The returned stream carries raw JSON-RPC.
pub fn connect(dir: &StateDir, key: &PoolKey, hello: &Hello, host: &HostCommand) -> Result<UnixStream, RelayError> {
    let files = PoolFiles::new(&key.id());
    let socket = dir.entry_path(&files.socket());
    let mut last = None;
    for _ in 0..ATTEMPTS {
        let stream = match UnixStream::connect(&socket) {
            Ok(s) => s,
            Err(_) => {
                start_host(dir, &files, host)?;
                match UnixStream::connect(&socket) {
                    Ok(s) => s,
                    Err(err) => {
                        last = Some(RelayError::Connect {
                            path: dir.path().join(files.socket()).display().to_string(),
                            err,
                        });
                        continue;
                    }
                }
            }
        };
        match introduce(stream, hello) {
            Ok(s) => return Ok(s),
            // The host was closing: try again (a new host starts).
            Err(RelayError::Io(e)) => last = Some(RelayError::Io(e)),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| RelayError::Start("no attempt made".into())))
}

/// Starts a host unless another relay did meanwhile: under the pool's
/// start lock, a second look at the socket, then the host, then its
/// "ready" line (or its error) on the pipe that is its stdout.
fn start_host(dir: &StateDir, files: &PoolFiles, host: &HostCommand) -> Result<(), RelayError> {
    let deadline = Instant::now() + START_TIMEOUT;
    // flock has no timed wait: try, and try again, until the deadline (a
    // relay starting a host holds it for milliseconds; one whose host
    // hangs must not hang every other relay of the pool).
    let mut lock = dir.open_lock(&files.start_lock())?;
    let _held = loop {
        match Flock::lock(lock, FlockArg::LockExclusiveNonblock) {
            Ok(held) => break held,
            Err((file, _)) if Instant::now() < deadline => {
                lock = file;
                std::thread::sleep(Duration::from_millis(10));
            }
            Err((_, e)) => {
                return Err(RelayError::Start(format!(
                    "cannot lock {} within {START_TIMEOUT:?}: {e}",
                    files.start_lock()
                )));
            }
        }
    };
    if UnixStream::connect(dir.entry_path(&files.socket())).is_ok() {
        return Ok(());
    }
    let mut cmd = Command::new(host.program);
    // The host logs to its own file: at info unless the user chose a level
    // (the variable is not part of the pool key).
    if std::env::var_os("MCP_RUNNER_LOG").is_none() {
        cmd.env("MCP_RUNNER_LOG", "info");
    }
    let mut child = cmd
        .args(&host.args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| RelayError::Start(format!("{}: {e}", host.program.display())))?;
    let mut said = Vec::new();
    if let Some(mut out) = child.stdout.take() {
        // The first stage exits once the detached host runs; the host
        // holds the pipe until it listens, then says so and lets go.
        let mut buf = [0u8; 256];
        while !said.contains(&b'\n') && said.len() < wire::MAX_REPLY {
            let left = deadline.saturating_duration_since(Instant::now());
            let mut fds = [PollFd::new(out.as_fd(), PollFlags::POLLIN)];
            let ready =
                poll(&mut fds, PollTimeout::try_from(left.as_millis().min(60_000) as u32).unwrap_or(PollTimeout::MAX));
            if matches!(ready, Ok(0)) {
                let _ = child.wait();
                return Err(RelayError::Start(format!(
                    "the host did not start listening within {START_TIMEOUT:?}; see {}",
                    dir.path().join(files.log()).display()
                )));
            }
            match out.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => said.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
    }
    let _ = child.wait();
    let said = String::from_utf8_lossy(&said);
    match said.lines().next().unwrap_or("").trim_end() {
        "ready" | "busy" => Ok(()),
        "" => Err(RelayError::Start(format!(
            "the host exited before listening; see {}",
            dir.path().join(files.log()).display()
        ))),
        other => Err(RelayError::Start(other.to_owned())),
    }
}

/// Sends the hello and reads the host's reply, byte by byte up to its
/// newline so that nothing of the stream after it is taken.
fn introduce(mut stream: UnixStream, hello: &Hello) -> Result<UnixStream, RelayError> {
    stream.set_read_timeout(Some(START_TIMEOUT))?;
    // A host that refuses may close before reading the whole hello: its
    // reply is read all the same.
    let wrote = stream.write_all(&hello.line());
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        match stream.read(&mut byte)? {
            0 => return Err(RelayError::Io(wrote.err().unwrap_or_else(|| io::ErrorKind::UnexpectedEof.into()))),
            _ if byte[0] == b'\n' => break,
            _ if line.len() >= wire::MAX_REPLY => {
                return Err(RelayError::Refused("the host's reply is too long".into()));
            }
            _ => line.push(byte[0]),
        }
    }
    let reply: Reply = serde_json::from_slice(&line).map_err(|e| RelayError::Refused(format!("bad reply: {e}")))?;
    if !reply.ok {
        return Err(RelayError::Refused(reply.error.unwrap_or_default()));
    }
    stream.set_read_timeout(None)?;
    Ok(stream)
}

/// Copies the client's stdin to the socket and the socket to the client's
/// stdout until the session ends.
pub fn relay(stream: UnixStream, client: Option<BorrowedFd>) -> Result<RelayEnd, RelayError> {
    stream.set_nonblocking(true)?;
    let stdin = io::stdin();
    let stdout = io::stdout();
    let out = Output::new(stdout.as_fd());
    let mut up = Pending::new();
    let mut down = Pending::new();
    let (mut stdin_open, mut host_open, mut shut) = (true, true, false);
    let mut sock = &stream;
    loop {
        // Everything the host sent reaches the client before the relay
        // says the host is gone.
        if !host_open && down.is_empty() {
            return Ok(host_closed(stdin_open));
        }
        let mut fds = Vec::with_capacity(4);
        let mut sock_events = PollFlags::empty();
        if host_open && down.is_empty() {
            sock_events |= PollFlags::POLLIN;
        }
        if !up.is_empty() {
            sock_events |= PollFlags::POLLOUT;
        }
        fds.push(PollFd::new(stream.as_fd(), sock_events));
        let watch_stdin = stdin_open && up.is_empty();
        let stdin_at = fds.len();
        if watch_stdin {
            fds.push(PollFd::new(stdin_fd(&stdin), PollFlags::POLLIN));
        }
        let stdout_at = fds.len();
        if !down.is_empty() {
            fds.push(PollFd::new(stdout.as_fd(), PollFlags::POLLOUT));
        }
        let client_at = fds.len();
        if let Some(c) = client {
            fds.push(PollFd::new(c, PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(RelayError::Io(e.into())),
        }
        let ready =
            |at: usize, watched: bool| watched && fds.get(at).and_then(PollFd::revents).is_some_and(|r| !r.is_empty());
        let sock_ready = fds[0].revents().unwrap_or(PollFlags::empty());
        let stdin_ready = ready(stdin_at, watch_stdin);
        let stdout_ready = ready(stdout_at, !down.is_empty());
        // The client's exit ends the session even while its output is
        // stuck (a descendant holding the pipe without reading).
        if ready(client_at, client.is_some()) {
            return Ok(RelayEnd::ClientClosed);
        }
        drop(fds);

        if stdin_ready {
            match up.fill_from(stdin.as_fd()) {
                Ok(0) => stdin_open = false,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // An input that fails is an input that ended.
                Err(_) => stdin_open = false,
            }
        }
        if !up.is_empty() {
            match up.drain_to(&mut sock) {
                Ok(()) => {}
                // The host is gone; what it owed the client is lost either way.
                Err(e) if is_closed(&e) => return Ok(host_closed(stdin_open)),
                Err(e) => return Err(e.into()),
            }
        }
        if !stdin_open && up.is_empty() && !shut {
            // Done sending: the host detaches us once our answers are
            // through, then closes.
            shut = true;
            let _ = stream.shutdown(std::net::Shutdown::Write);
        }
        if down.is_empty() && sock_ready.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR) {
            match down.fill_from(stream.as_fd()) {
                Ok(0) => host_open = false,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if is_closed(&e) => host_open = false,
                Err(e) => return Err(e.into()),
            }
        }
        if !down.is_empty() && (stdout_ready || out.try_at_once) && out.write(&mut down).is_err() {
            return Ok(RelayEnd::ClientClosed);
        }
    }
}

/// The client's stdout, written so that the relay never blocks on it where
/// that can be avoided: a pipe is written PIPE_BUF bytes at a time while
/// poll says it has room (a write that size never blocks), so the client's
/// exit is seen even if a descendant of the client holds the pipe without
/// reading. Other outputs (a socket, a terminal) take whole chunks; an
/// output someone made non-blocking is polled again on EAGAIN.
struct Output<'a> {
    fd: BorrowedFd<'a>,
    /// Pipes: PIPE_BUF; others: a whole buffer.
    chunk: usize,
    /// Write right after a read, without polling first (not for pipes).
    try_at_once: bool,
}

impl<'a> Output<'a> {
    fn new(fd: BorrowedFd<'a>) -> Output<'a> {
        let pipe = nix::sys::stat::fstat(fd).is_ok_and(|st| {
            nix::sys::stat::SFlag::from_bits_truncate(st.st_mode) & nix::sys::stat::SFlag::S_IFMT
                == nix::sys::stat::SFlag::S_IFIFO
        });
        if pipe {
            Output { fd, chunk: PIPE_BUF, try_at_once: false }
        } else {
            Output { fd, chunk: BUFFER, try_at_once: true }
        }
    }

    /// Writes what the output takes now: for a pipe, PIPE_BUF-sized writes
    /// while a zero-timeout poll says there is room.
    fn write(&self, down: &mut Pending) -> io::Result<()> {
        while !down.is_empty() {
            if self.chunk == PIPE_BUF {
                let mut fds = [PollFd::new(self.fd, PollFlags::POLLOUT)];
                match poll(&mut fds, PollTimeout::ZERO) {
                    Ok(0) => return Ok(()),
                    Ok(_)
                        if fds[0].revents().is_some_and(|r| r.intersects(PollFlags::POLLERR | PollFlags::POLLHUP)) =>
                    {
                        return Err(io::ErrorKind::BrokenPipe.into());
                    }
                    Ok(_) => {}
                    Err(nix::errno::Errno::EINTR) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
            let end = down.end.min(down.start + self.chunk);
            match nix::unistd::write(self.fd, &down.buf[down.start..end]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => down.start += n,
                Err(nix::errno::Errno::EINTR) => {}
                Err(nix::errno::Errno::EAGAIN) => return Ok(()),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}

/// The host closed first. If the client had already closed its side, that
/// is the normal end; otherwise it is told.
fn host_closed(stdin_open: bool) -> RelayEnd {
    if !stdin_open {
        return RelayEnd::ClientClosed;
    }
    let message = br#"{"jsonrpc":"2.0","id":null,"error":{"code":-32603,"message":"mcp-runner: the shared server is gone (its pool host closed the connection)"}}"#;
    let stdout = io::stdout();
    let _ = write_all(stdout.as_fd(), message).and_then(|()| write_all(stdout.as_fd(), b"\n"));
    RelayEnd::HostClosed
}

fn is_closed(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted)
}

fn stdin_fd(stdin: &io::Stdin) -> BorrowedFd<'_> {
    stdin.as_fd()
}

/// Writes all of `buf` to the raw descriptor (std's stdout would buffer
/// and flush by lines: a copy and a system call per message).
fn write_all(fd: BorrowedFd, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        match nix::unistd::write(fd, buf) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => buf = &buf[n..],
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Bytes read from the client, not yet taken by the socket.
struct Pending {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl Pending {
    fn new() -> Pending {
        Pending { buf: vec![0; BUFFER], start: 0, end: 0 }
    }

    fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// One read of the raw descriptor (std's stdin would buffer what poll
    /// cannot see) into the empty buffer; the count, 0 at end of file.
    fn fill_from(&mut self, fd: BorrowedFd) -> io::Result<usize> {
        loop {
            match nix::unistd::read(fd, &mut self.buf) {
                Ok(n) => {
                    (self.start, self.end) = (0, n);
                    return Ok(n);
                }
                Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Writes what the nonblocking socket takes.
    fn drain_to(&mut self, w: &mut dyn Write) -> io::Result<()> {
        while self.start < self.end {
            match w.write(&self.buf[self.start..self.end]) {
                Ok(n) => self.start += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}
