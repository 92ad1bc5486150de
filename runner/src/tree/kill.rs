//! Signalling processes by identity, never by bare pid.

use super::procfs::Procfs;
use super::{ProcessId, descendants};
use crate::sys::pidfd::PidFd;
use crate::sys::{Pid, Signal};

/// Signals the process `id` names, and no other: the pidfd pins the process,
/// then the start time proves it is still the one that was seen.
pub fn signal_exact(table: &Procfs, id: ProcessId, signal: Signal) -> bool {
    let Ok(fd) = PidFd::open(Pid::from_raw(id.pid)) else { return false };
    if table.identity(id.pid) != Some(id) {
        return false;
    }
    fd.send_signal(signal).is_ok()
}

/// Signals every live descendant of `root`; returns how many were reached.
pub fn signal_descendants(root: i32, signal: Signal) -> usize {
    let table = Procfs::snapshot();
    descendants(&table, root).into_iter().filter(|p| !p.zombie && signal_exact(&table, p.id, signal)).count()
}
