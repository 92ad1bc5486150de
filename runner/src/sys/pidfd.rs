//! Process file descriptors (Linux >= 5.3).
//!
//! A pidfd names one process for as long as the descriptor lives, so a signal
//! sent through it can never hit a recycled pid. The runner uses pidfds for
//! signals and for readiness only; reaping stays with the supervisor's single
//! `waitpid(-1)` loop (mixing the two loses exit statuses, see tokio#6152).
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use super::{Pid, Signal};

/// An owned pidfd.
#[derive(Debug)]
pub struct PidFd(OwnedFd);

impl PidFd {
    /// Opens a pidfd for `pid`.
    ///
    /// # References
    /// pidfd_open(2)
    pub fn open(pid: Pid) -> io::Result<PidFd> {
        // SAFETY: pidfd_open takes a pid and flags by value and returns a new
        // descriptor or -1; no memory is shared with the kernel.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the kernel just returned this descriptor to us and nothing
        // else owns it; it is close-on-exec by definition of pidfd_open.
        Ok(PidFd(unsafe { OwnedFd::from_raw_fd(fd as RawFd) }))
    }

    /// Takes ownership of a pidfd the kernel returned some other way
    /// (CLONE_PIDFD).
    pub fn from_owned(fd: OwnedFd) -> PidFd {
        PidFd(fd)
    }

    /// Sends `signal` to the process. Fails with `ESRCH` once it has been
    /// reaped, never reaching another process that reused the pid.
    ///
    /// # References
    /// pidfd_send_signal(2)
    pub fn send_signal(&self, signal: Signal) -> io::Result<()> {
        // SAFETY: a valid descriptor, a signal number, a null siginfo (the
        // kernel fills in a default one) and zero flags.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.0.as_raw_fd(),
                signal as libc::c_int,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

impl AsFd for PidFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn signal_through_pidfd_reaches_the_process() {
        let mut child = Command::new("sleep").arg("30").spawn().expect("spawn sleep");
        let pid = Pid::from_raw(child.id() as i32);
        let fd = PidFd::open(pid).expect("pidfd_open");
        fd.send_signal(Signal::SIGKILL).expect("pidfd_send_signal");
        let status = child.wait().expect("wait");
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGKILL));
        // Reaped: the pidfd must refuse rather than hit a recycled pid.
        let err = fd.send_signal(Signal::SIGKILL).expect_err("signal after reap");
        assert_eq!(err.raw_os_error(), Some(libc::ESRCH));
    }
}
