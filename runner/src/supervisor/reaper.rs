//! Reaping, tini-style: after every event, collect every exited child with
//! `waitpid(-1, WNOHANG)` until none is left to collect.
//!
//! The runner is a child subreaper (`PR_SET_CHILD_SUBREAPER`), so orphans of
//! the server's tree are reparented to it and must be reaped here: an
//! unreaped zombie still counts against `pids_max` (the pids controller
//! uncharges a task only when it is released). The runner is the only
//! reaper in its process: it never uses `std::process::Child::wait`, whose
//! per-pid waits would race this loop.

use nix::errno::Errno;
use nix::sys::wait::{WaitStatus, waitpid};

use crate::sys::Pid;

/// Whether anything is left to supervise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Children {
    /// Some children are still running.
    Running,
    /// `ECHILD`: no child at all. Since every descendant of a subreaper
    /// stays its descendant, the whole tree is gone.
    None,
}

#[derive(Debug)]
pub struct Reaper {
    main: Pid,
    /// The server's main process's status, once reaped.
    pub main_status: Option<WaitStatus>,
    /// Orphans (not the main process) reaped so far.
    pub orphans_reaped: u64,
}

impl Reaper {
    pub fn new(main: Pid) -> Reaper {
        Reaper { main, main_status: None, orphans_reaped: 0 }
    }

    /// Reaps every child that has exited.
    pub fn reap(&mut self) -> Result<Children, Errno> {
        loop {
            match waitpid(None, Some(crate::os::REAP_FLAGS)) {
                Ok(WaitStatus::StillAlive) => return Ok(Children::Running),
                Ok(status) => self.record(status),
                Err(Errno::ECHILD) => return Ok(Children::None),
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e),
            }
        }
    }

    fn record(&mut self, status: WaitStatus) {
        match status.pid() {
            Some(pid) if pid == self.main => {
                tracing::debug!(?status, "server main process reaped");
                self.main_status = Some(status);
            }
            Some(pid) => {
                self.orphans_reaped += 1;
                tracing::debug!(pid = pid.as_raw(), ?status, "reaped orphan");
            }
            None => {}
        }
    }
}
