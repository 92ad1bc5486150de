//! poll(2) with the raw event bits.
//!
//! `nix`'s `PollFd::revents()` returns `None` when the kernel reports a bit
//! nix does not name, and nix does not name `POLLRDHUP`: the one bit that
//! says a Node-based client shut down its side of the stdin socket. So the
//! runner keeps its own small wrapper.
#![allow(unsafe_code)]

use std::io;
use std::marker::PhantomData;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::Duration;

/// A set of poll(2) event bits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Events(i16);

impl Events {
    pub const NONE: Events = Events(0);
    pub const IN: Events = Events(libc::POLLIN);
    /// Priority data: cgroupfs and PSI files signal changes this way.
    pub const PRI: Events = Events(libc::POLLPRI);
    /// The peer shut down its writing side of a socket (Linux only; other
    /// systems report a socket's end as readable end-of-file).
    #[cfg(target_os = "linux")]
    pub const RDHUP: Events = Events(libc::POLLRDHUP);
    pub const HUP: Events = Events(libc::POLLHUP);
    pub const ERR: Events = Events(libc::POLLERR);
    pub const NVAL: Events = Events(libc::POLLNVAL);

    pub const fn union(self, other: Events) -> Events {
        Events(self.0 | other.0)
    }
    pub fn intersects(self, other: Events) -> bool {
        self.0 & other.0 != 0
    }
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl std::ops::BitOr for Events {
    type Output = Events;
    fn bitor(self, o: Events) -> Events {
        self.union(o)
    }
}

/// Descriptors to wait on, borrowed for `'fd`.
#[derive(Default)]
pub struct PollSet<'fd> {
    fds: Vec<libc::pollfd>,
    _borrow: PhantomData<BorrowedFd<'fd>>,
}

impl<'fd> PollSet<'fd> {
    pub fn new() -> PollSet<'fd> {
        PollSet { fds: Vec::new(), _borrow: PhantomData }
    }

    /// Adds `fd`; returns its index for [`PollSet::revents`].
    pub fn add(&mut self, fd: BorrowedFd<'fd>, events: Events) -> usize {
        self.fds.push(libc::pollfd { fd: fd.as_raw_fd(), events: events.0, revents: 0 });
        self.fds.len() - 1
    }

    /// Waits until an event or the timeout (`None`: forever). EINTR counts
    /// as a wake with no events.
    ///
    /// # References
    /// poll(2)
    pub fn wait(&mut self, timeout: Option<Duration>) -> io::Result<usize> {
        // Round up: waking a little early would spin with 0 ms polls.
        let ms = timeout.map_or(-1, |t| t.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32);
        // SAFETY: the pointer and length describe our own Vec of pollfd,
        // whose descriptors are kept open by the borrows in `'fd`.
        let rc = unsafe { libc::poll(self.fds.as_mut_ptr(), self.fds.len() as libc::nfds_t, ms) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted { Ok(0) } else { Err(e) };
        }
        Ok(rc as usize)
    }

    pub fn revents(&self, index: usize) -> Events {
        self.fds.get(index).map_or(Events::NONE, |p| Events(p.revents))
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;

    #[test]
    fn rdhup_is_reported_for_a_half_closed_socket() {
        let (ours, theirs) = UnixStream::pair().expect("socketpair");
        let mut set = PollSet::new();
        let i = set.add(ours.as_fd(), Events::RDHUP);
        assert_eq!(set.wait(Some(Duration::ZERO)).expect("poll"), 0);
        theirs.shutdown(std::net::Shutdown::Write).expect("shutdown");
        let mut set = PollSet::new();
        let i2 = set.add(ours.as_fd(), Events::RDHUP);
        assert_eq!(i, i2);
        assert_eq!(set.wait(Some(Duration::ZERO)).expect("poll"), 1);
        assert!(set.revents(i2).intersects(Events::RDHUP));
    }
}
