//! The process table on macOS, through libproc. A process's identity is
//! its pid and its unique id (`p_uniqueid`, never reused): the `start`
//! field of [`ProcessId`] carries the unique id here.

use crate::tree::ProcessId;
use mcp_runner_macos::proc;

/// Reads live; "snapshot" only for the same shape as Linux's `/proc` view.
#[derive(Debug, Default)]
pub struct Procs;

impl Procs {
    pub fn snapshot() -> Procs {
        Procs
    }

    /// `pid`'s identity, `None` if it is gone.
    pub fn identity(&self, pid: i32) -> Option<ProcessId> {
        let info = proc::info(pid).ok()??;
        Some(ProcessId { pid, start: info.unique_id })
    }

    /// Whether `id` still runs: same unique id, and not a zombie.
    pub fn alive(&self, id: ProcessId) -> bool {
        proc::info(id.pid).ok().flatten().is_some_and(|i| i.unique_id == id.start && !i.zombie)
    }

    pub fn all_pids(&self) -> Vec<i32> {
        proc::all_pids().unwrap_or_default()
    }
}
