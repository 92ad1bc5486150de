//! The Linux event source: one signalfd for SIGCHLD, SIGTERM, SIGINT and
//! SIGHUP, and one poll(2) over it, the session's descriptors (stdin and
//! stdout hang-up, a pidfd on the client) and the driver's event files.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::time::Duration;

use nix::sys::signal::Signal;
use nix::sys::signalfd::{SfdFlags, SignalFd};

use super::session::{self, FdState, SessionWatch, classify};
use crate::supervisor::events::{Event, EventSource};
use crate::supervisor::handled_signals;
use crate::supervisor::terminate::CloseReason;
use crate::sys::poll::{Events, PollSet};

pub struct LinuxEvents {
    signals: SignalFd,
    watch: SessionWatch,
}

impl LinuxEvents {
    /// Blocks the handled signals (the spawner resets the child's mask) and
    /// takes them through a signalfd from here on.
    pub fn new() -> io::Result<LinuxEvents> {
        handled_signals().thread_block().map_err(io::Error::from)?;
        let signals = SignalFd::with_flags(&handled_signals(), SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
            .map_err(io::Error::from)?;
        Ok(LinuxEvents { signals, watch: SessionWatch::new() })
    }
}

impl EventSource for LinuxEvents {
    fn client_gone_at_start(&self) -> bool {
        self.watch.client_gone_at_start
    }

    fn wait(&mut self, timeout: Option<Duration>, driver_fds: &[BorrowedFd<'_>]) -> io::Result<Vec<Event>> {
        let mut set = PollSet::new();
        set.add(self.signals.as_fd(), Events::IN);
        let stdin_at = self.watch.stdin.as_ref().map(|s| set.add(s.as_fd(), session::STDIN_EVENTS));
        let stdout_at = self.watch.stdout.as_ref().map(|s| set.add(s.as_fd(), session::STDOUT_EVENTS));
        let client_at = self.watch.client.as_ref().map(|fd| set.add(fd.as_fd(), Events::IN));
        let driver_at: Vec<usize> = driver_fds.iter().map(|fd| set.add(*fd, Events::PRI)).collect();
        set.wait(timeout)?;
        let revents = |i: Option<usize>| i.map_or(Events::NONE, |i| set.revents(i));
        let (stdin_ev, stdout_ev, client_ev) = (revents(stdin_at), revents(stdout_at), revents(client_at));
        let driver_woke = driver_at.iter().any(|i| !set.revents(*i).is_empty());
        drop(set);

        let mut out = Vec::new();
        if driver_woke {
            out.push(Event::DriverWake);
        }
        while let Ok(Some(info)) = self.signals.read_signal() {
            match Signal::try_from(info.ssi_signo as i32) {
                Ok(Signal::SIGCHLD) | Err(_) => out.push(Event::Child),
                Ok(sig) => out.push(Event::Signal(sig)),
            }
        }
        match classify(stdin_ev) {
            FdState::Open => {}
            FdState::Closed => {
                self.watch.stdin = None;
                out.push(Event::Closed(CloseReason::StdinClosed));
            }
            FdState::Unwatchable => self.watch.stdin = None,
        }
        match classify(stdout_ev) {
            FdState::Open => {}
            FdState::Closed => {
                self.watch.stdout = None;
                out.push(Event::Closed(CloseReason::StdoutClosed));
            }
            FdState::Unwatchable => self.watch.stdout = None,
        }
        if !client_ev.is_empty() {
            self.watch.client = None;
            out.push(Event::Closed(CloseReason::ClientGone));
        }
        Ok(out)
    }
}
