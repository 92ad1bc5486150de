//! `/proc`, and pidfds to wait for any process's end.

use std::fs;
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use crate::ProcStat;

/// Parses `/proc/PID/stat`; `None` if the process does not exist.
pub fn proc_stat(pid: i32) -> Option<ProcStat> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

/// `comm` (field 2) may hold spaces and parentheses, so fields are counted after the last `)`;
/// the first field there is field 3.
pub(crate) fn parse_stat(text: &str) -> Option<ProcStat> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(ProcStat {
        state: fields.first()?.chars().next()?,
        ppid: fields.get(1)?.parse().ok()?,
        pgrp: fields.get(2)?.parse().ok()?,
        session: fields.get(3)?.parse().ok()?,
        start_time: fields.get(22 - 3)?.parse().ok()?,
    })
}

pub fn all_pids() -> Vec<i32> {
    fs::read_dir("/proc").expect("read /proc").filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect()
}

/// Whether `pid`'s environment holds the entry `needle` (`KEY=VALUE`).
pub fn environ_has(pid: i32, needle: &str) -> bool {
    fs::read(format!("/proc/{pid}/environ"))
        .is_ok_and(|env| env.split(|&b| b == 0).any(|entry| entry == needle.as_bytes()))
}

/// The arguments of `pid` (`/proc/PID/cmdline`); empty if it is gone (or a zombie).
pub fn cmdline(pid: i32) -> Vec<String> {
    fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            b.split(|&c| c == 0).filter(|a| !a.is_empty()).map(|a| String::from_utf8_lossy(a).into_owned()).collect()
        })
        .unwrap_or_default()
}

pub fn comm(pid: i32) -> String {
    fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default().trim().to_string()
}

/// A pidfd: readable once the process has exited (for any process, not only children).
pub struct Pidfd {
    fd: Option<OwnedFd>,
}

impl Pidfd {
    /// Opens a pidfd for `pid`. A process that is already gone gives a `Pidfd` that reports
    /// "exited" at once.
    pub fn open(pid: i32) -> std::io::Result<Pidfd> {
        // SAFETY: pidfd_open(2) takes a pid and flags and returns a new fd or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        if fd >= 0 {
            // SAFETY: the fd was just returned by the kernel and is owned by nobody else.
            return Ok(Pidfd { fd: Some(unsafe { OwnedFd::from_raw_fd(fd as i32) }) });
        }
        match Errno::last() {
            Errno::ESRCH => Ok(Pidfd { fd: None }),
            e => Err(e.into()),
        }
    }

    /// Waits until the process has exited or `timeout` passed; returns whether it exited.
    pub fn wait(&self, timeout: Duration) -> bool {
        let Some(fd) = &self.fd else { return true };
        let end = Instant::now() + timeout;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
            let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::from(ms)) {
                Ok(n) if n > 0 => return true,
                Ok(_) | Err(Errno::EINTR) if Instant::now() < end => continue,
                Ok(_) => return false,
                Err(e) => panic!("poll(pidfd): {e}"),
            }
        }
    }
}
