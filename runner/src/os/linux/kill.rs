//! Signalling processes by identity, never by bare pid.

use crate::state::{MARKER_VAR, RunnerRecord, marker};
use crate::sys::pidfd::PidFd;
use crate::sys::{Pid, Signal};
use crate::tree::procfs::Procfs;
use crate::tree::{ProcessId, descendants};

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

/// Kills what a dead runner's tree left: the members its record lists and
/// every process carrying its marker variable (born after the last sample).
/// Pid and start time must both match: a recycled pid is never hit.
pub fn kill_marked(rec: &RunnerRecord, table: &Procfs) -> usize {
    let entry = format!("{MARKER_VAR}={}", marker(rec.runner));
    let mut targets: Vec<_> = rec.members.iter().copied().chain(rec.server).collect();
    for pid in table.all_pids() {
        if table.environ_contains(pid, &entry)
            && let Some(id) = table.identity(pid)
        {
            targets.push(id);
        }
    }
    targets.sort_by_key(|id| (id.pid, id.start));
    targets.dedup();
    targets.into_iter().filter(|id| signal_exact(table, *id, Signal::SIGKILL)).count()
}
