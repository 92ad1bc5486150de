//! One kqueue(2) to wait on for everything the supervisor reacts to: a
//! watched process forking, exec'ing or exiting, a descriptor becoming
//! readable or reaching end of file, a signal arriving.
//!
//! Registrations use `EV_RECEIPT`, so a failed one is reported for that
//! registration alone and never drains pending events.
#![allow(unsafe_code)]

#[cfg(target_os = "macos")]
use std::io;
#[cfg(target_os = "macos")]
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
#[cfg(target_os = "macos")]
use std::time::Duration;

#[cfg(target_os = "macos")]
use crate::sys::{self, PlainC};

/// Something `Kqueue::wait` saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// The watched process forked. The kernel does not say which pid the
    /// child got: list `proc::children_of(pid)` and watch the new ones.
    Fork { pid: i32 },
    /// The watched process called exec (or was the image of a
    /// `posix_spawn`); its jetsam limit, if any, is gone.
    Exec { pid: i32 },
    /// The watched process exited, and its watch with it. `status` is a
    /// wait(2) status (decode with `WIFEXITED` and friends). `memory_kill`
    /// says the kernel's memorystatus killed it, e.g. for crossing its jetsam
    /// limit (`NOTE_EXIT_DETAIL` reporting `NOTE_EXIT_MEMORY`).
    Exit { pid: i32, status: i32, memory_kill: bool },
    /// The descriptor has data to read, or `eof`: the writing end is closed
    /// (data may still be buffered).
    Readable { fd: i32, eof: bool },
    /// Signal `signo` was sent to this process `count` times since it was
    /// last reported.
    Signal { signo: i32, count: u32 },
}

/// What `Kqueue::watch_process` found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProcessWatch {
    /// Its fork, exec and exit will be reported.
    Watching,
    /// There is no such process (ESRCH). A process that has exited but not
    /// been reaped is gone too: reap it to learn its status.
    AlreadyGone,
}

/// An owned, close-on-exec kqueue descriptor.
#[cfg(target_os = "macos")]
#[derive(Debug)]
pub struct Kqueue {
    fd: OwnedFd,
}

/// Events read from the kernel per `wait` call; more stay queued for the next.
#[cfg(target_os = "macos")]
const EVENTS_PER_WAIT: usize = 64;

#[cfg(target_os = "macos")]
impl Kqueue {
    /// A new kqueue. A kqueue is never inherited by `fork` (kqueue(2));
    /// `FD_CLOEXEC` is set as well so no exec'd image sees the number.
    ///
    /// # References
    /// kqueue(2), fcntl(2)
    pub fn new() -> io::Result<Kqueue> {
        // SAFETY: kqueue takes no arguments and returns a new descriptor or -1.
        let raw = unsafe { libc::kqueue() };
        if raw < 0 {
            return Err(sys::with_call(io::Error::last_os_error(), "kqueue"));
        }
        // SAFETY: the kernel just returned this descriptor and nothing else
        // owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: `fd` is open; F_SETFD only changes its descriptor flags.
        if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) } < 0 {
            return Err(sys::with_call(io::Error::last_os_error(), "fcntl(kqueue, F_SETFD, FD_CLOEXEC)"));
        }
        Ok(Kqueue { fd })
    }

    /// Reports the fork, exec and exit of process `pid` (`EVFILT_PROC` with
    /// `NOTE_FORK | NOTE_EXEC | NOTE_EXIT | NOTE_EXITSTATUS | NOTE_EXIT_DETAIL`).
    ///
    /// The exit status is available to the parent and to anyone who may
    /// signal the process; for anyone else this fails with PermissionDenied
    /// (bsd/kern/kern_event.c, `filt_procattach`).
    ///
    /// # References
    /// kqueue(2) (EVFILT_PROC)
    pub fn watch_process(&self, pid: i32) -> io::Result<ProcessWatch> {
        let fflags =
            libc::NOTE_FORK | libc::NOTE_EXEC | libc::NOTE_EXIT | libc::NOTE_EXITSTATUS | libc::NOTE_EXIT_DETAIL;
        match self.register(pid as usize, libc::EVFILT_PROC, fflags) {
            Ok(()) => Ok(ProcessWatch::Watching),
            Err(err) if err.raw_os_error() == Some(libc::ESRCH) => Ok(ProcessWatch::AlreadyGone),
            Err(err) => Err(sys::with_call(err, format_args!("kevent(EVFILT_PROC, {pid})"))),
        }
    }

    /// Reports only the exit of process `pid` (`EVFILT_PROC` with
    /// `NOTE_EXIT`): the queue becomes readable (for poll(2) too) when it
    /// exits, and not when it forks or execs.
    ///
    /// # References
    /// kqueue(2) (EVFILT_PROC)
    pub fn watch_exit(&self, pid: i32) -> io::Result<ProcessWatch> {
        match self.register(pid as usize, libc::EVFILT_PROC, libc::NOTE_EXIT) {
            Ok(()) => Ok(ProcessWatch::Watching),
            Err(err) if err.raw_os_error() == Some(libc::ESRCH) => Ok(ProcessWatch::AlreadyGone),
            Err(err) => Err(sys::with_call(err, format_args!("kevent(EVFILT_PROC, NOTE_EXIT, {pid})"))),
        }
    }

    /// Reports when `fd` gets data or reaches end of file (`EVFILT_READ`
    /// with `EV_CLEAR`: edge-triggered, once per change, so a watcher that
    /// never reads the descriptor, as the runner never reads the server's
    /// stdin, is not woken again and again by the same pending data).
    /// Closing the descriptor ends the watch.
    ///
    /// # References
    /// kqueue(2) (EVFILT_READ)
    pub fn watch_read(&self, fd: BorrowedFd<'_>) -> io::Result<()> {
        let raw = fd.as_raw_fd();
        self.register_with(raw as usize, libc::EVFILT_READ, libc::EV_CLEAR, 0)
            .map_err(|err| sys::with_call(err, format_args!("kevent(EVFILT_READ, {raw})")))
    }

    /// Reports each delivery of signal `signo` to this process
    /// (`EVFILT_SIGNAL`).
    ///
    /// The kqueue only observes: the signal's disposition still applies, so
    /// the caller must first ignore it (`SIG_IGN`; the kernel notes the
    /// signal before discarding it, bsd/kern/kern_sig.c) or block it in every
    /// thread. Block SIGCHLD rather than ignore it: an ignored SIGCHLD makes
    /// the kernel reap children itself, and their exit statuses are lost.
    /// Signals sent to one thread (`pthread_kill`) are not reported.
    ///
    /// # References
    /// kqueue(2) (EVFILT_SIGNAL)
    pub fn watch_signal(&self, signo: i32) -> io::Result<()> {
        self.register(signo as usize, libc::EVFILT_SIGNAL, 0)
            .map_err(|err| sys::with_call(err, format_args!("kevent(EVFILT_SIGNAL, {signo})")))
    }

    /// Adds one event filter. The `EV_RECEIPT` answer carries the errno in
    /// `data` (0 for success); the raw errno is kept for the caller.
    fn register(&self, ident: usize, filter: i16, fflags: u32) -> io::Result<()> {
        self.register_with(ident, filter, 0, fflags)
    }

    /// [`Kqueue::register`] with extra `flags` (such as `EV_CLEAR`).
    fn register_with(&self, ident: usize, filter: i16, flags: u16, fflags: u32) -> io::Result<()> {
        let change = libc::kevent {
            ident,
            filter,
            flags: libc::EV_ADD | libc::EV_RECEIPT | flags,
            fflags,
            data: 0,
            udata: std::ptr::null_mut(),
        };
        let mut receipt = libc::kevent::zeroed();
        let no_wait = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: one change to read and room for one receipt to write, both
        // alive for the call, and a valid timeout.
        let n = unsafe { libc::kevent(self.fd.as_raw_fd(), &change, 1, &mut receipt, 1, &no_wait) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        if n != 1 || receipt.flags & libc::EV_ERROR == 0 {
            return Err(io::Error::other("kevent returned no EV_RECEIPT answer"));
        }
        match receipt.data {
            0 => Ok(()),
            errno => Err(io::Error::from_raw_os_error(errno as i32)),
        }
    }

    /// Waits up to `timeout` (forever for `None`; capped at about 68 years)
    /// and returns what happened, oldest first; empty on timeout or when a
    /// signal handler interrupted the wait (EINTR).
    ///
    /// # References
    /// kevent(2)
    pub fn wait(&self, timeout: Option<Duration>) -> io::Result<Vec<Event>> {
        let mut events = [libc::kevent::zeroed(); EVENTS_PER_WAIT];
        let timeout = timeout.map(|t| libc::timespec {
            tv_sec: t.as_secs().min(i32::MAX as u64) as libc::time_t,
            tv_nsec: t.subsec_nanos() as libc::c_long,
        });
        let timeout_ptr = timeout.as_ref().map_or(std::ptr::null(), |t| t as *const libc::timespec);
        // SAFETY: no changes; `events` has room for EVENTS_PER_WAIT entries;
        // `timeout_ptr` is null or points at `timeout`, alive for the call.
        let n = unsafe {
            libc::kevent(
                self.fd.as_raw_fd(),
                std::ptr::null(),
                0,
                events.as_mut_ptr(),
                EVENTS_PER_WAIT as libc::c_int,
                timeout_ptr,
            )
        };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                return Ok(Vec::new());
            }
            return Err(sys::with_call(err, "kevent(wait)"));
        }
        let mut out = Vec::with_capacity(n as usize);
        for event in &events[..n as usize] {
            decode(event, &mut out);
        }
        Ok(out)
    }
}

#[cfg(target_os = "macos")]
impl AsFd for Kqueue {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(target_os = "macos")]
impl AsRawFd for Kqueue {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// Turns one kernel event into the [`Event`]s it stands for. One
/// `EVFILT_PROC` event can carry fork, exec and exit at once (the filter is
/// edge-triggered with `EV_CLEAR`, so bits accumulate until read). For an
/// exit, `data` holds the wait status in its low 16 bits and the
/// `NOTE_EXIT_DETAIL` bits above (bsd/kern/kern_event.c, `filt_procevent`).
#[cfg(target_os = "macos")]
fn decode(event: &libc::kevent, out: &mut Vec<Event>) {
    // `struct kevent` is packed: copy the fields out rather than borrow them.
    let (ident, filter, flags, fflags, data) = (event.ident, event.filter, event.flags, event.fflags, event.data);
    match filter {
        libc::EVFILT_PROC => {
            let pid = ident as i32;
            if fflags & libc::NOTE_FORK != 0 {
                out.push(Event::Fork { pid });
            }
            if fflags & libc::NOTE_EXEC != 0 {
                out.push(Event::Exec { pid });
            }
            if fflags & libc::NOTE_EXIT != 0 {
                let data = data as u32;
                out.push(Event::Exit {
                    pid,
                    status: (data & libc::NOTE_PDATAMASK) as i32,
                    memory_kill: data & libc::NOTE_EXIT_DETAIL_MASK == libc::NOTE_EXIT_MEMORY,
                });
            }
        }
        libc::EVFILT_READ => out.push(Event::Readable { fd: ident as i32, eof: flags & libc::EV_EOF != 0 }),
        libc::EVFILT_SIGNAL => out.push(Event::Signal { signo: ident as i32, count: data as u32 }),
        // Nothing else is ever registered.
        _ => {}
    }
}

/// Run on a Mac only: these use a real kqueue.
#[cfg(all(test, target_os = "macos"))]
mod macos_tests {
    use super::*;
    use std::process::Command;

    const PATIENCE: Option<Duration> = Some(Duration::from_secs(10));

    /// Every event up to and including the first that `last` matches; fails
    /// after PATIENCE.
    fn events_until(kq: &Kqueue, last: impl Fn(&Event) -> bool) -> Vec<Event> {
        let deadline = std::time::Instant::now() + PATIENCE.unwrap_or_default();
        let mut seen = Vec::new();
        while std::time::Instant::now() < deadline {
            for event in kq.wait(PATIENCE).expect("wait") {
                seen.push(event);
                if last(&event) {
                    return seen;
                }
            }
        }
        panic!("no matching event in {seen:?}");
    }

    #[test]
    fn a_childs_fork_and_exit_status_are_reported() {
        let kq = Kqueue::new().expect("kqueue");
        // The child waits for its stdin to close before forking and exiting.
        let mut child = Command::new("/bin/sh")
            .args(["-c", "read x; /usr/bin/true; exit 7"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("spawn sh");
        let pid = child.id() as i32;
        assert_eq!(kq.watch_process(pid).expect("watch"), ProcessWatch::Watching);
        drop(child.stdin.take());
        let events = events_until(&kq, |e| matches!(e, Event::Exit { .. }));
        assert!(events.contains(&Event::Fork { pid }), "{events:?}");
        let Some(&Event::Exit { pid: exited, status, memory_kill }) = events.last() else { unreachable!() };
        assert_eq!(exited, pid);
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 7, "status {status:#x}");
        assert!(!memory_kill);
        child.wait().expect("reap");
    }

    #[test]
    fn an_exit_watch_ignores_forks_and_reports_the_exit() {
        let kq = Kqueue::new().expect("kqueue");
        let mut child = Command::new("/bin/sh")
            .args(["-c", "read x; /usr/bin/true; exit 3"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("spawn sh");
        let pid = child.id() as i32;
        assert_eq!(kq.watch_exit(pid).expect("watch"), ProcessWatch::Watching);
        drop(child.stdin.take());
        let events = events_until(&kq, |e| matches!(e, Event::Exit { .. }));
        assert!(!events.iter().any(|e| matches!(e, Event::Fork { .. })), "a fork woke an exit watch: {events:?}");
        child.wait().expect("reap");
    }

    #[test]
    fn watching_a_reaped_process_says_it_is_gone() {
        let kq = Kqueue::new().expect("kqueue");
        let mut child = Command::new("/usr/bin/true").spawn().expect("spawn true");
        let pid = child.id() as i32;
        child.wait().expect("reap");
        assert_eq!(kq.watch_process(pid).expect("watch"), ProcessWatch::AlreadyGone);
    }

    #[test]
    fn a_pipe_reports_data_then_end_of_file() {
        let kq = Kqueue::new().expect("kqueue");
        let (read, mut write) = std::io::pipe().expect("pipe");
        kq.watch_read(read.as_fd()).expect("watch");
        let fd = read.as_raw_fd();
        std::io::Write::write_all(&mut write, b"x").expect("write");
        assert_eq!(events_until(&kq, |_| true), [Event::Readable { fd, eof: false }]);
        drop(write);
        events_until(&kq, |e| *e == Event::Readable { fd, eof: true });
    }

    #[test]
    fn an_ignored_signal_is_still_reported() {
        let kq = Kqueue::new().expect("kqueue");
        // SAFETY: SIG_IGN for SIGURG, which the test harness does not use.
        assert_ne!(unsafe { libc::signal(libc::SIGURG, libc::SIG_IGN) }, libc::SIG_ERR);
        kq.watch_signal(libc::SIGURG).expect("watch");
        // SAFETY: sends an ignored signal to this process.
        assert_eq!(unsafe { libc::kill(libc::getpid(), libc::SIGURG) }, 0);
        let events = events_until(&kq, |e| matches!(e, Event::Signal { .. }));
        assert!(matches!(events[..], [Event::Signal { signo: libc::SIGURG, count: 1.. }]), "{events:?}");
    }

    #[test]
    fn a_wait_with_nothing_to_report_times_out_empty() {
        let kq = Kqueue::new().expect("kqueue");
        assert_eq!(kq.wait(Some(Duration::from_millis(10))).expect("wait"), Vec::new());
    }
}
