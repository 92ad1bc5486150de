//! The macOS event source: one kqueue for the handled signals (blocked, so
//! their default actions never run; kqueue records each delivery attempt),
//! stdin's end, the client's exit, and the driver's own kqueue.
//!
//! Unlike Linux's poll for POLLHUP, kqueue's EVFILT_READ also reports data:
//! the watch is edge-triggered, so each write by the client wakes the
//! runner once (it never reads stdin, the server does) and the runner
//! checks for end of file. stdout's end is not watched: a server writing to
//! a closed stdout gets EPIPE and exits, and the runner tears down what is
//! left.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::time::Duration;

use mcp_runner_macos::kqueue::{Event as KEvent, Kqueue, ProcessWatch};
use nix::sys::signal::Signal;
use nix::sys::stat::{SFlag, fstat};

use crate::supervisor::events::{Event, EventSource};
use crate::supervisor::handled_signals;
use crate::supervisor::terminate::CloseReason;

pub struct MacEvents {
    queue: Kqueue,
    stdin_watched: bool,
    client: Option<i32>,
    client_gone_at_start: bool,
}

impl MacEvents {
    pub fn new() -> io::Result<MacEvents> {
        handled_signals().thread_block().map_err(io::Error::from)?;
        let queue = Kqueue::new()?;
        for s in handled_signals().iter() {
            queue.watch_signal(s as i32)?;
        }
        let stdin = io::stdin();
        let stdin_watched = watchable(stdin.as_fd()) && queue.watch_read(stdin.as_fd()).is_ok();
        let ppid = nix::unistd::getppid().as_raw();
        let (client, client_gone_at_start) = if ppid <= 1 {
            (None, false)
        } else {
            match queue.watch_process(ppid)? {
                // The parent may have died between getppid and the watch,
                // and its pid been reused: if our parent changed, the watch
                // names a stranger.
                ProcessWatch::Watching if nix::unistd::getppid().as_raw() == ppid => (Some(ppid), false),
                _ => (None, true),
            }
        };
        Ok(MacEvents { queue, stdin_watched, client, client_gone_at_start })
    }
}

/// Only pipes, FIFOs and sockets say anything about the session by ending;
/// a file or /dev/null as stdin does not.
fn watchable(fd: BorrowedFd<'_>) -> bool {
    fstat(fd).is_ok_and(|st| {
        let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
        kind == SFlag::S_IFIFO || kind == SFlag::S_IFSOCK
    })
}

impl EventSource for MacEvents {
    fn client_gone_at_start(&self) -> bool {
        self.client_gone_at_start
    }

    fn wait(&mut self, timeout: Option<Duration>, driver_fds: &[BorrowedFd<'_>]) -> io::Result<Vec<Event>> {
        let driver_raw: Vec<i32> = driver_fds.iter().map(|fd| fd.as_raw_fd()).collect();
        for fd in driver_fds {
            self.queue.watch_read(*fd)?;
        }
        let mut out = Vec::new();
        for ev in self.queue.wait(timeout)? {
            match ev {
                KEvent::Signal { signo, .. } => match Signal::try_from(signo) {
                    Ok(Signal::SIGCHLD) | Err(_) => out.push(Event::Child),
                    Ok(sig) => out.push(Event::Signal(sig)),
                },
                KEvent::Readable { fd, eof } if fd == 0 && self.stdin_watched => {
                    if eof {
                        self.stdin_watched = false;
                        out.push(Event::Closed(CloseReason::StdinClosed));
                    }
                }
                KEvent::Readable { fd, .. } if driver_raw.contains(&fd) => out.push(Event::DriverWake),
                KEvent::Exit { pid, .. } if Some(pid) == self.client => {
                    self.client = None;
                    out.push(Event::Closed(CloseReason::ClientGone));
                }
                _ => {}
            }
        }
        // The kernel queues SIGCHLD once however many children exited; the
        // caller reaps all of them on any wake.
        Ok(out)
    }
}

impl AsFd for MacEvents {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.queue.as_fd()
    }
}
