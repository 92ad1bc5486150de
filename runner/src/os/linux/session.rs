//! Noticing that the session is over without touching the server's input.
//!
//! The server owns stdin and stdout (inherited, never copied), so the runner
//! must not read them. It polls them for hang-up instead:
//! - stdin: `POLLHUP` when the client closes a pipe, `POLLRDHUP` when it
//!   shuts down its side of a socket (Node-based clients pass sockets).
//!   `POLLIN` is not requested, so pending data never wakes the runner.
//! - stdout: `POLLERR` when the client closes the read end of the pipe,
//!   `POLLHUP` for a socket or terminal.
//! - the client itself: a pidfd on the runner's parent becomes readable
//!   when it exits. This does not depend on which client thread forked the
//!   runner, unlike the parent-death signal.

use std::io::{Stdin, Stdout};

use nix::unistd::getppid;

use crate::sys::pidfd::PidFd;
use crate::sys::poll::Events;

/// The things whose end means the end of the session.
pub struct SessionWatch {
    pub stdin: Option<Stdin>,
    pub stdout: Option<Stdout>,
    pub client: Option<PidFd>,
    /// The client was already gone when the watch was set up.
    pub client_gone_at_start: bool,
}

impl SessionWatch {
    pub fn new() -> SessionWatch {
        let (client, client_gone_at_start) = watch_parent();
        SessionWatch { stdin: Some(std::io::stdin()), stdout: Some(std::io::stdout()), client, client_gone_at_start }
    }
}

impl Default for SessionWatch {
    fn default() -> Self {
        SessionWatch::new()
    }
}

/// The poll flags asked for on stdin and stdout. Hang-up and error are
/// always reported, so stdout needs no flag at all.
pub const STDIN_EVENTS: Events = Events::RDHUP;
pub const STDOUT_EVENTS: Events = Events::NONE;

/// What a poll result on stdin or stdout means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FdState {
    Open,
    Closed,
    /// Not a descriptor that can report hang-up (closed at start, or a
    /// file): stop watching it, it says nothing about the session.
    Unwatchable,
}

pub fn classify(revents: Events) -> FdState {
    if revents.intersects(Events::NVAL) {
        FdState::Unwatchable
    } else if revents.intersects(Events::HUP | Events::RDHUP | Events::ERR) {
        FdState::Closed
    } else {
        FdState::Open
    }
}

/// A pidfd on the parent, or `(None, true)` if the parent is already gone.
/// PID 1 is not watched: it never exits, and being its child usually means
/// the real parent died before the runner looked.
pub(super) fn watch_parent() -> (Option<PidFd>, bool) {
    let ppid = getppid();
    if ppid.as_raw() <= 1 {
        return (None, false);
    }
    let Ok(fd) = PidFd::open(ppid) else { return (None, true) };
    // The parent may have died between getppid and pidfd_open, and the pid
    // been reused: if our parent changed, the pidfd names a stranger.
    if getppid() != ppid {
        return (None, true);
    }
    (Some(fd), false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::poll::PollSet;
    use std::os::fd::{AsFd, BorrowedFd};
    use std::time::Duration;

    fn poll_once(fd: BorrowedFd<'_>, events: Events) -> Events {
        let mut set = PollSet::new();
        let i = set.add(fd, events);
        set.wait(Some(Duration::ZERO)).expect("poll");
        set.revents(i)
    }

    #[test]
    fn revents() {
        assert_eq!(classify(Events::NONE), FdState::Open);
        assert_eq!(classify(Events::HUP), FdState::Closed);
        assert_eq!(classify(Events::RDHUP | Events::IN), FdState::Closed);
        assert_eq!(classify(Events::ERR), FdState::Closed);
        assert_eq!(classify(Events::NVAL), FdState::Unwatchable);
    }

    #[test]
    fn pipe_hangup_is_seen_without_reading() {
        let (r, w) = nix::unistd::pipe().expect("pipe");
        nix::unistd::write(&w, b"pending request").expect("write");
        assert_eq!(classify(poll_once(r.as_fd(), STDIN_EVENTS)), FdState::Open, "pending data must not wake");
        drop(w);
        assert_eq!(classify(poll_once(r.as_fd(), STDIN_EVENTS)), FdState::Closed);
    }

    #[test]
    fn socket_shutdown_is_seen_without_reading() {
        use std::os::unix::net::UnixStream;
        let (ours, theirs) = UnixStream::pair().expect("socketpair");
        assert_eq!(classify(poll_once(ours.as_fd(), STDIN_EVENTS)), FdState::Open);
        theirs.shutdown(std::net::Shutdown::Write).expect("shutdown");
        assert_eq!(classify(poll_once(ours.as_fd(), STDIN_EVENTS)), FdState::Closed);
    }

    #[test]
    fn closed_reader_shows_on_the_write_end() {
        let (r, w) = nix::unistd::pipe().expect("pipe");
        assert_eq!(classify(poll_once(w.as_fd(), STDOUT_EVENTS)), FdState::Open);
        drop(r);
        assert_eq!(classify(poll_once(w.as_fd(), STDOUT_EVENTS)), FdState::Closed);
    }
}
