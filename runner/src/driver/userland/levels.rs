//! The userland driver's levels: there are no session or global cgroups,
//! so the only level it can measure is the machine (free memory and the
//! system-wide memory pressure), and a server's figures are its tree's.

use crate::cgroup::memory;
use crate::driver::levels::{Figures, Levels, Measured, PsiReading};
use crate::os::kill::kill_marked;
use crate::state::RunnerRecord;
use crate::tree::{self, procfs::Procfs};

/// The whole machine's memory pressure.
const MACHINE_PSI: &str = "/proc/pressure/memory";

pub struct MachineLevels;

impl MachineLevels {
    pub fn new() -> MachineLevels {
        MachineLevels
    }
}

impl Default for MachineLevels {
    fn default() -> Self {
        MachineLevels::new()
    }
}

impl Levels for MachineLevels {
    fn measure(&self, _session: &str) -> Measured {
        Measured {
            session_free: None,
            global_free: mem_available().map(|(free, total)| (free, total, "/proc/meminfo (MemAvailable)".into())),
            pressure: None,
        }
    }

    fn pressure(&self) -> Option<PsiReading> {
        let some = std::fs::read_to_string(MACHINE_PSI).ok().and_then(|t| memory::psi_some(&t))?;
        Some(PsiReading { some, place: MACHINE_PSI.into() })
    }

    fn figures(&self, rec: &RunnerRecord) -> Figures {
        tree_figures(rec)
    }

    fn sweep_dead(&self, rec: &RunnerRecord) -> usize {
        kill_marked(rec, &Procfs::snapshot())
    }
}

/// A server's figures from its tree in /proc (PSS + swapped PSS): the
/// runner is the tree's root, a subreaper, so its descendants are the tree.
pub(crate) fn tree_figures(rec: &RunnerRecord) -> Figures {
    let sample = tree::sample(&Procfs::snapshot(), rec.runner.pid);
    Figures {
        memory_current: sample.memory,
        processes: sample.processes,
        tasks: Some(sample.tasks),
        memory_high: rec.memory_high,
        memory_max: rec.memory_max,
        pids_max: rec.pids_max,
        ..Figures::default()
    }
}

/// (MemAvailable, MemTotal) in bytes.
fn mem_available() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = text.lines().find(|l| l.starts_with(name))?;
        Some(line.split_ascii_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
    };
    Some((field("MemAvailable:")?, field("MemTotal:")?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::sweep::{SweepAction, sweep};
    use crate::state::tests::{record, temp_state};
    use crate::state::{MARKER_VAR, marker};
    use crate::tree::ProcessId;
    use std::process::Command;

    fn no_levels(_: crate::driver::DriverKind) -> Box<dyn Levels> {
        Box::new(MachineLevels::new())
    }
    /// The crash sweep through this driver: leftovers found by member list
    /// and by marker are killed, a live runner's record is kept.
    #[test]
    fn dead_runner_leftovers_are_killed_live_runner_untouched() {
        let d = temp_state("sweep");
        let table = Procfs::snapshot();
        // A leftover found through the record's member list.
        let mut by_member = Command::new("sleep").arg("60").spawn().expect("spawn");
        // A leftover found only through the marker variable.
        let dead_runner = ProcessId { pid: i32::MAX - 1, start: 1 };
        let mut by_marker =
            Command::new("sleep").arg("60").env(MARKER_VAR, marker(dead_runner)).spawn().expect("spawn");
        let member = table.identity(by_member.id() as i32).expect("alive");
        let mut dead = record(dead_runner.pid);
        dead.runner = dead_runner;
        dead.members = vec![member];
        d.write(&dead).expect("write");
        // This test process stands in for a live runner.
        let me = table.identity(std::process::id() as i32).expect("self");
        let mut live = record(me.pid);
        live.runner = me;
        d.write(&live).expect("write");

        // spawn() returns once the child is inside execve (vfork), before
        // the kernel has set the new environment's bounds: for a moment
        // /proc/PID/environ reads empty. There is no event for "exec is
        // complete", so wait for the marker to show, with a deadline.
        let entry = format!("{MARKER_VAR}={}", marker(dead_runner));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !table.environ_contains(by_marker.id() as i32, &entry) {
            assert!(std::time::Instant::now() < deadline, "marker never appeared in the child's environment");
            std::thread::sleep(std::time::Duration::from_millis(1));
        }

        let actions = sweep(&d, &table, &no_levels);
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(actions.len(), 1, "{actions:?}");
        assert!(matches!(actions[0], SweepAction::Swept { killed: 2, .. }), "{actions:?}");
        assert_eq!(by_member.wait().expect("wait").signal(), Some(9));
        assert_eq!(by_marker.wait().expect("wait").signal(), Some(9));
        let left: Vec<_> = d.records().into_iter().map(|(_, r)| r.expect("record").runner).collect();
        assert_eq!(left, vec![me]);
        std::fs::remove_dir_all(d.path()).ok();
    }

    #[test]
    fn recycled_pid_is_not_killed() {
        let d = temp_state("recycled");
        let table = Procfs::snapshot();
        let mut innocent = Command::new("sleep").arg("60").spawn().expect("spawn");
        let real = table.identity(innocent.id() as i32).expect("alive");
        let mut dead = record(i32::MAX - 2);
        dead.runner = ProcessId { pid: i32::MAX - 2, start: 1 };
        // Same pid, other start time: a different process.
        dead.members = vec![ProcessId { pid: real.pid, start: real.start + 1 }];
        d.write(&dead).expect("write");
        let actions = sweep(&d, &table, &no_levels);
        assert!(matches!(actions[0], SweepAction::Swept { killed: 0, .. }), "{actions:?}");
        assert_eq!(innocent.try_wait().expect("try_wait"), None, "innocent process was killed");
        innocent.kill().ok();
        innocent.wait().ok();
        std::fs::remove_dir_all(d.path()).ok();
    }
}
