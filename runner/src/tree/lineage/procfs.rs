//! [`LineageOs`] and [`Signaller`] over Linux `/proc`, so the lineage
//! algorithm runs against real processes in tests. A test mode, not a
//! driver: on Linux the runner is a subreaper and the cgroup drivers hold
//! the tree.
//!
//! Unique id: Linux has no `p_uniqueid`, so it is `(start << 22) | pid`,
//! with `start` the start time in clock ticks since boot (stat field 22)
//! and the pid below 2^22 (`PID_MAX_LIMIT` on 64-bit). A pid is not
//! recycled within one tick, so the id is unique; it grows with start time,
//! so with birth order except between processes started in the same tick
//! (10 ms at USER_HZ 100). 42 bits of ticks last 44 years of uptime.
//!
//! Parent unique id: Linux keeps no record of the forking parent once a
//! process is reparented, so this is the *current* parent's id. An orphan
//! is therefore adopted only if it was seen while its parent was a member
//! (or by the group rule): that is why the real-process test's intermediate
//! lingers. If the parent's start time is later than the child's, the ppid
//! was recycled between the two reads and the answer is `None`.
//!
//! Footprint: `Pss` + `SwapPss` as in [`crate::tree::procfs`], the closest
//! Linux figure to `phys_footprint`. Linux keeps no per-process peak of it,
//! so `lifetime_max` is the current value.

use std::fs;
use std::path::{Path, PathBuf};

use nix::errno::Errno;

use super::{Footprint, Identity, LineageOs, ProcEntry, Signal, SignalError, Signaller};
use crate::sys::pidfd::PidFd;
use crate::sys::{self, Pid};
use crate::tree::procfs::{Stat, parse_smaps_rollup, parse_stat, parse_status_memory};

const PID_BITS: u32 = 22;

/// The Linux stand-in for `p_uniqueid` (see the module doc).
pub fn unique_id(pid: i32, start: u64) -> u64 {
    (start << PID_BITS) | (pid as u64 & ((1 << PID_BITS) - 1))
}

/// The process group (field 5) of `/proc/PID/stat`, counted from the last
/// `)` as [`parse_stat`] does.
pub fn parse_pgrp(text: &str) -> Option<i32> {
    text[text.rfind(')')? + 1..].split_ascii_whitespace().nth(2)?.parse().ok()
}

/// A view of `/proc` (or of a directory laid out like it).
#[derive(Clone, Debug)]
pub struct ProcfsOs {
    root: PathBuf,
}

impl Default for ProcfsOs {
    fn default() -> ProcfsOs {
        ProcfsOs::at(Path::new("/proc"))
    }
}

impl ProcfsOs {
    pub fn at(root: &Path) -> ProcfsOs {
        ProcfsOs { root: root.to_path_buf() }
    }

    fn stat(&self, pid: i32) -> Option<(Stat, i32)> {
        let text = fs::read_to_string(self.root.join(format!("{pid}/stat"))).ok()?;
        Some((parse_stat(&text)?, parse_pgrp(&text)?))
    }

    /// The identity of a live (non-zombie) process.
    fn live_identity(&self, pid: i32) -> Option<Identity> {
        let (s, _) = self.stat(pid)?;
        (s.state != 'Z' && s.state != 'X').then(|| Identity { pid, unique_id: unique_id(pid, s.start) })
    }
}

impl LineageOs for ProcfsOs {
    fn pids(&self) -> Vec<i32> {
        let Ok(dir) = self.root.read_dir() else { return Vec::new() };
        dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect()
    }

    fn entry(&self, pid: i32) -> Option<ProcEntry> {
        let (s, pgid) = self.stat(pid)?;
        let parent_unique_id = (s.ppid > 0)
            .then(|| self.stat(s.ppid))
            .flatten()
            .filter(|(parent, _)| parent.start <= s.start)
            .map(|(parent, _)| unique_id(s.ppid, parent.start));
        Some(ProcEntry {
            id: Identity { pid, unique_id: unique_id(pid, s.start) },
            ppid: s.ppid,
            pgid,
            parent_unique_id,
            zombie: s.state == 'Z' || s.state == 'X',
            threads: s.threads,
        })
    }

    fn footprint(&self, id: Identity) -> Option<Footprint> {
        let base = self.root.join(id.pid.to_string());
        let current = fs::read_to_string(base.join("smaps_rollup"))
            .ok()
            .and_then(|t| parse_smaps_rollup(&t))
            .or_else(|| parse_status_memory(&fs::read_to_string(base.join("status")).ok()?))?;
        // Read after the memory: if the pid still names `id`, the figure
        // was its own.
        let (s, _) = self.stat(id.pid)?;
        (unique_id(id.pid, s.start) == id.unique_id).then_some(Footprint { current, lifetime_max: current })
    }
}

/// Signals through a pidfd: once open it pins the process, so the identity
/// check right after it cannot be outdated by pid reuse.
#[derive(Clone, Debug, Default)]
pub struct PidfdSignaller {
    os: ProcfsOs,
}

impl PidfdSignaller {
    pub fn new(os: ProcfsOs) -> PidfdSignaller {
        PidfdSignaller { os }
    }
}

impl Signaller for PidfdSignaller {
    fn signal(&self, id: Identity, signal: Signal) -> Result<(), SignalError> {
        let fd = PidFd::open(Pid::from_raw(id.pid)).map_err(io_error)?;
        if self.os.live_identity(id.pid) != Some(id) {
            return Err(SignalError::Gone);
        }
        fd.send_signal(to_sys(signal)).map_err(io_error)
    }
}

/// `killpg` for [`super::kill::Step::SignalGroup`].
pub fn signal_group(pgid: i32, signal: Signal) -> Result<(), SignalError> {
    nix::sys::signal::killpg(Pid::from_raw(pgid), to_sys(signal)).map_err(|e| match e {
        Errno::ESRCH => SignalError::Gone,
        e => SignalError::Denied(e.desc().to_string()),
    })
}

fn io_error(e: std::io::Error) -> SignalError {
    if e.raw_os_error() == Some(Errno::ESRCH as i32) { SignalError::Gone } else { SignalError::Denied(e.to_string()) }
}

fn to_sys(signal: Signal) -> sys::Signal {
    match signal {
        Signal::Stop => sys::Signal::SIGSTOP,
        Signal::Cont => sys::Signal::SIGCONT,
        Signal::Term => sys::Signal::SIGTERM,
        Signal::Kill => sys::Signal::SIGKILL,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str, procs: &[(i32, i32, i32, u64, char)]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("mcp-runner-lineage-{name}-{}", std::process::id()));
        for (pid, ppid, pgid, start, state) in procs {
            let d = dir.join(pid.to_string());
            fs::create_dir_all(&d).expect("mkdir");
            let stat = format!("{pid} (a) b) {state} {ppid} {pgid} {pgid} 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 {start} 0 0");
            fs::write(d.join("stat"), stat).expect("write");
        }
        dir
    }

    #[test]
    fn unique_id_orders_by_start_then_pid() {
        assert_eq!(unique_id(5, 0), 5);
        assert_eq!(unique_id(4_194_303, 1), (1 << 22) + 4_194_303);
        assert!(unique_id(1, 101) > unique_id(4_000_000, 100));
        assert_ne!(unique_id(77, 100), unique_id(77, 101), "a recycled pid gets a new id");
    }

    #[test]
    fn pgrp_is_read_past_a_hostile_command_name() {
        let line = "4242 (a) b) (c) S 7 4240 4200 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 3 0 987654 1000 200";
        assert_eq!(parse_pgrp(line), Some(4240));
        assert_eq!(parse_pgrp("1 (x) S"), None);
    }

    #[test]
    fn entries_link_to_the_current_parent_unless_its_pid_was_recycled() {
        // 11 is 10's child; 12's parent pid 13 started after 12 did, so
        // pid 13 is not the process that forked 12.
        let dir = fixture(
            "parents",
            &[(10, 1, 10, 500, 'S'), (11, 10, 10, 600, 'Z'), (12, 13, 12, 700, 'S'), (13, 1, 13, 900, 'S')],
        );
        let os = ProcfsOs::at(&dir);
        let mut pids = os.pids();
        pids.sort();
        assert_eq!(pids, vec![10, 11, 12, 13]);
        let child = os.entry(11).expect("entry");
        assert_eq!(child.id, Identity { pid: 11, unique_id: unique_id(11, 600) });
        assert_eq!((child.ppid, child.pgid, child.zombie), (10, 10, true));
        assert_eq!(child.parent_unique_id, Some(unique_id(10, 500)));
        assert_eq!(os.entry(12).expect("entry").parent_unique_id, None);
        assert_eq!(os.entry(10).expect("entry").parent_unique_id, None, "pid 1 is not in the fixture");
        assert_eq!(os.entry(99), None);
        fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn footprint_of_a_recycled_pid_is_none() {
        let me = std::process::id() as i32;
        let os = ProcfsOs::default();
        let id = os.entry(me).expect("self").id;
        assert!(os.footprint(id).expect("own footprint").current > 0);
        assert_eq!(os.footprint(Identity { pid: me, unique_id: id.unique_id + 1 }), None);
    }

    #[test]
    fn signalling_a_recycled_pid_is_gone() {
        let mut child = std::process::Command::new("sleep").arg("30").spawn().expect("spawn");
        let os = ProcfsOs::default();
        let real = os.entry(child.id() as i32).expect("entry").id;
        let signaller = PidfdSignaller::new(os);
        let other = Identity { pid: real.pid, unique_id: real.unique_id + 1 };
        assert_eq!(signaller.signal(other, Signal::Kill), Err(SignalError::Gone));
        assert_eq!(child.try_wait().expect("try_wait"), None, "the real process was not hit");
        assert_eq!(signaller.signal(real, Signal::Kill), Ok(()));
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(child.wait().expect("wait").signal(), Some(9));
        assert_eq!(signaller.signal(real, Signal::Kill), Err(SignalError::Gone), "reaped");
    }
}
