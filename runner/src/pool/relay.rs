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

use std::io::{self, BufRead, BufReader, Read, Write};
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
    let lock = dir.open_lock(&files.start_lock())?;
    let _held = Flock::lock(lock, FlockArg::LockExclusive)
        .map_err(|(_, e)| RelayError::Start(format!("cannot lock {}: {e}", files.start_lock())))?;
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
    let deadline = Instant::now() + START_TIMEOUT;
    let mut said = String::new();
    if let Some(out) = child.stdout.take() {
        // The first stage exits once the detached host runs; the host
        // holds the pipe until it listens, then says so and lets go.
        let mut reader = BufReader::new(out.take(wire::MAX_REPLY as u64));
        let _ = reader.read_line(&mut said);
    }
    let _ = child.wait();
    if Instant::now() > deadline {
        return Err(RelayError::Start("the host took too long to start".into()));
    }
    match said.trim_end() {
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
    stream.write_all(&hello.line())?;
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        match stream.read(&mut byte)? {
            0 => return Err(RelayError::Io(io::ErrorKind::UnexpectedEof.into())),
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
    let mut up = Pending::new();
    let mut down = vec![0u8; BUFFER];
    let mut stdin_open = true;
    let mut sock = &stream;
    loop {
        let mut fds = Vec::with_capacity(3);
        let mut sock_events = PollFlags::POLLIN;
        if !up.is_empty() {
            sock_events |= PollFlags::POLLOUT;
        }
        fds.push(PollFd::new(stream.as_fd(), sock_events));
        let watch_stdin = stdin_open && up.is_empty();
        if watch_stdin {
            fds.push(PollFd::new(stdin_fd(&stdin), PollFlags::POLLIN));
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
        let sock_ready = fds[0].revents().unwrap_or(PollFlags::empty());
        let stdin_ready = watch_stdin && fds.get(1).and_then(PollFd::revents).is_some_and(|r| !r.is_empty());
        let client_gone =
            client.is_some() && fds.get(client_at).and_then(PollFd::revents).is_some_and(|r| !r.is_empty());
        drop(fds);
        if client_gone {
            return Ok(RelayEnd::ClientClosed);
        }

        if stdin_ready {
            let n = up.fill_from(stdin.as_fd())?;
            if n == 0 {
                stdin_open = false;
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
        if !stdin_open && up.is_empty() {
            // Done sending: the host detaches us, then closes.
            let _ = stream.shutdown(std::net::Shutdown::Write);
        }
        if sock_ready.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR) {
            match sock.read(&mut down) {
                Ok(0) => return Ok(host_closed(stdin_open)),
                Ok(n) => {
                    // Blocking: a client that does not read stops this
                    // relay reading, and the host drops it as slow.
                    if write_all(stdout.as_fd(), &down[..n]).is_err() {
                        return Ok(RelayEnd::ClientClosed);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if is_closed(&e) => return Ok(host_closed(stdin_open)),
                Err(e) => return Err(e.into()),
            }
        }
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
