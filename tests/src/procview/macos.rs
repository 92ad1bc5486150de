//! libproc (through the runner's own FFI crate), `ps` for environments,
//! and kqueue NOTE_EXIT to wait for any process's end.

use std::process::Command;
use std::time::{Duration, Instant};

use mcp_runner_macos::kqueue::{Event, Kqueue, ProcessWatch};
use mcp_runner_macos::proc;
use nix::unistd::{Pid, getsid};

use crate::ProcStat;

/// The same facts as Linux's `/proc/PID/stat`; `start_time` is the unique
/// id (the runner's markers use it too). `None` if the process is gone.
pub fn proc_stat(pid: i32) -> Option<ProcStat> {
    let info = proc::info(pid).ok()??;
    Some(ProcStat {
        state: if info.zombie { 'Z' } else { 'S' },
        ppid: info.ppid,
        pgrp: info.pgid,
        session: getsid(Some(Pid::from_raw(pid))).map_or(-1, Pid::as_raw),
        start_time: info.unique_id,
    })
}

pub fn all_pids() -> Vec<i32> {
    proc::all_pids().expect("proc_listpids")
}

/// Whether `pid`'s environment holds the entry `needle` (`KEY=VALUE`):
/// `ps eww` shows the environment of the user's own processes after the
/// command line.
pub fn environ_has(pid: i32, needle: &str) -> bool {
    Command::new("ps")
        .args(["eww", "-o", "command=", "-p", &pid.to_string()])
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).split_whitespace().any(|w| w == needle))
}

pub fn comm(pid: i32) -> String {
    proc::info(pid).ok().flatten().map(|i| i.comm).unwrap_or_default()
}

/// Waits for a process's end through kqueue (EVFILT_PROC, NOTE_EXIT).
pub struct Pidfd {
    queue: Option<Kqueue>,
    pid: i32,
}

impl Pidfd {
    /// A process that is already gone gives a `Pidfd` that reports "exited" at once.
    pub fn open(pid: i32) -> std::io::Result<Pidfd> {
        let queue = Kqueue::new()?;
        match queue.watch_process(pid)? {
            ProcessWatch::Watching => Ok(Pidfd { queue: Some(queue), pid }),
            ProcessWatch::AlreadyGone => Ok(Pidfd { queue: None, pid }),
        }
    }

    /// Waits until the process has exited or `timeout` passed; returns whether it exited.
    pub fn wait(&self, timeout: Duration) -> bool {
        let Some(queue) = &self.queue else { return true };
        let end = Instant::now() + timeout;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match queue.wait(Some(left)) {
                Ok(events) if events.iter().any(|e| matches!(e, Event::Exit { pid, .. } if *pid == self.pid)) => {
                    return true;
                }
                Ok(_) if Instant::now() < end => continue,
                Ok(_) => return false,
                Err(e) => panic!("kevent: {e}"),
            }
        }
    }
}
