//! Signalling by identity. macOS has no pidfd: the unique id is checked
//! right before kill(2), which leaves a window of two system calls.

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::procs::Procs;
use crate::tree::ProcessId;

/// Signals the process `id` names, and no other.
pub fn signal_exact(table: &Procs, id: ProcessId, signal: Signal) -> bool {
    table.alive(id) && kill(Pid::from_raw(id.pid), signal).is_ok()
}
