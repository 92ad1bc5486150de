//! The userland driver's levels: there are no session or global cgroups,
//! so the only level it can measure is the machine (free memory and the
//! system-wide memory pressure), and a server's figures are its tree's.

use std::path::PathBuf;

use crate::cgroup::memory;
use crate::driver::levels::{Figures, Levels, Measured};
use crate::state::RunnerRecord;
use crate::tree::{self, procfs::Procfs};

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
            pressure: std::fs::read_to_string("/proc/pressure/memory")
                .ok()
                .and_then(|t| memory::some_avg10(&t))
                .map(|p| (p, "/proc/pressure/memory".to_string())),
        }
    }

    fn global_place(&self) -> Option<PathBuf> {
        None
    }

    fn global_memory_max(&self) -> Option<u64> {
        None
    }

    fn set_shares(&self, _shares: &[(String, Option<u64>)]) {
        // No session cgroup to hold a share.
    }

    fn release_session(&self, _session: &str) {}

    fn figures(&self, rec: &RunnerRecord) -> Figures {
        tree_figures(rec)
    }

    fn sweep_dead(&self, _rec: &RunnerRecord) -> usize {
        0
    }

    fn sweep_orphans(&self) -> (usize, usize) {
        (0, 0)
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
