//! The lineage tracker's view of macOS: every process of this user through
//! libproc, identities by `p_uniqueid`, footprints from `proc_pid_rusage`,
//! and signals checked against the unique id right before kill(2).

use mcp_runner_macos::proc;
use nix::errno::Errno;
use nix::sys::signal::{Signal as NixSignal, kill, killpg};
use nix::unistd::{Pid, Uid};

use crate::tree::lineage::{Footprint, Identity, LineageOs, ProcEntry, Signal, SignalError, Signaller};

/// The user's processes (descendants keep the uid unless they exec a
/// setuid binary, and then they cannot be signalled anyway).
pub struct MacOs {
    uid: u32,
}

impl MacOs {
    pub fn new() -> MacOs {
        MacOs { uid: Uid::current().as_raw() }
    }
}

impl Default for MacOs {
    fn default() -> Self {
        MacOs::new()
    }
}

impl LineageOs for MacOs {
    fn pids(&self) -> Vec<i32> {
        proc::all_pids().unwrap_or_default()
    }

    fn entry(&self, pid: i32) -> Option<ProcEntry> {
        let info = proc::info(pid).ok()??;
        if info.uid != self.uid {
            return None;
        }
        Some(ProcEntry {
            id: Identity { pid, unique_id: info.unique_id },
            ppid: info.ppid,
            pgid: info.pgid,
            parent_unique_id: Some(info.parent_unique_id),
            zombie: info.zombie,
            // libproc's thread count needs another call per process; every
            // process counts as one task against pids_max.
            threads: 1,
        })
    }

    fn footprint(&self, id: Identity) -> Option<Footprint> {
        let info = proc::info(id.pid).ok()??;
        if info.unique_id != id.unique_id {
            return None;
        }
        let f = proc::footprint(id.pid).ok()??;
        Some(Footprint { current: f.current, lifetime_max: f.lifetime_max })
    }
}

fn nix_signal(s: Signal) -> NixSignal {
    match s {
        Signal::Stop => NixSignal::SIGSTOP,
        Signal::Cont => NixSignal::SIGCONT,
        Signal::Term => NixSignal::SIGTERM,
        Signal::Kill => NixSignal::SIGKILL,
    }
}

impl Signaller for MacOs {
    fn signal(&self, id: Identity, signal: Signal) -> Result<(), SignalError> {
        match proc::info(id.pid) {
            Ok(Some(info)) if info.unique_id == id.unique_id && !info.zombie => {}
            _ => return Err(SignalError::Gone),
        }
        match kill(Pid::from_raw(id.pid), nix_signal(signal)) {
            Ok(()) => Ok(()),
            Err(Errno::ESRCH) => Err(SignalError::Gone),
            Err(e) => Err(SignalError::Denied(e.to_string())),
        }
    }
}

/// The group belt of a kill plan (killpg); a group that is gone is fine.
pub fn signal_group(pgid: i32, signal: Signal) {
    if let Err(e) = killpg(Pid::from_raw(pgid), nix_signal(signal))
        && e != Errno::ESRCH
    {
        tracing::debug!("killpg({pgid}, {signal}): {e}");
    }
}
