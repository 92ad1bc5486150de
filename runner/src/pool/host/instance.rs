//! One server process of the pool, as the host sees it: an ordinary
//! `mcp-runner run --session shared` child, whose stdin and stdout are the
//! host's pipes. That runner does everything a runner does (admission,
//! placement under the global cap, limits, OOM verdicts, the record, the
//! teardown, the crash sweep), so a shared server is supervised by exactly
//! the code that supervises any other. Closing its stdin is the session's
//! end for it; if the host dies, the runner sees the same.

use std::ffi::OsString;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Instant;

use nix::fcntl::{FcntlArg, OFlag, fcntl};

use super::frames::{LineReader, OutQueue};
use crate::tree::ProcessId;

/// The longest line a server may send: a `tools/list` of hundreds of tools
/// is a few megabytes, an image result more.
const MAX_SERVER_LINE: usize = 64 << 20;

/// What the host needs to start an instance.
pub struct Launch {
    pub program: std::path::PathBuf,
    /// `run` and its options (the command follows `--`).
    pub run_args: Vec<OsString>,
    pub command: Vec<OsString>,
}

pub struct Instance {
    pub child: Child,
    /// `None` once closed (the instance is being stopped).
    pub stdin: Option<ChildStdin>,
    pub stdout: Option<ChildStdout>,
    pub reader: LineReader,
    pub out: OutQueue,
    pub runner: Option<ProcessId>,
    /// When its last client left, for the idle timeout.
    pub idle_since: Option<Instant>,
}

impl Instance {
    pub fn spawn(launch: &Launch, pool_instance: &str) -> io::Result<Instance> {
        let mut child = Command::new(&launch.program)
            .args(&launch.run_args)
            .arg("--pool-instance")
            .arg(pool_instance)
            .arg("--")
            .args(&launch.command)
            // The server belongs to session "shared", whatever session the
            // relay that started the host was in.
            .env_remove("MCP_RUNNER_SESSION")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take();
        for fd in [stdin.as_ref().map(AsFd::as_fd), stdout.as_ref().map(AsFd::as_fd)].into_iter().flatten() {
            nonblocking(fd)?;
        }
        let runner = crate::os::Procs::snapshot().identity(child.id() as i32);
        Ok(Instance {
            child,
            stdin,
            stdout,
            reader: LineReader::new(MAX_SERVER_LINE),
            out: OutQueue::default(),
            runner,
            idle_since: None,
        })
    }

    /// Closes the server's stdin: its runner tears it down as at any
    /// session's end, and the host sees its stdout close.
    pub fn stop(&mut self) {
        self.stdin = None;
        self.out = OutQueue::default();
    }
}

pub fn nonblocking(fd: BorrowedFd) -> io::Result<()> {
    let flags = OFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFL)?);
    fcntl(fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
    Ok(())
}
