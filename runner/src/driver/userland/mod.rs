//! The userland driver: no kernel cgroup is available, so the supervisor
//! measures the server's tree from `/proc` every `sample_interval` and acts
//! on the verdicts: over `memory_high` it warns, over `memory_max` or
//! `pids_max` (or pinned above `memory_high` past `throttle_timeout`) the
//! tree is killed.
//!
//! What it cannot do, and says so: a tree can overshoot a limit for up to one
//! sample interval (a fork bomb or a fast leak outruns a poll), memory.high
//! is not a throttle here, and nothing is enforced while the runner is not
//! running. The kernel drivers have none of these gaps.

pub mod levels;

use std::time::Duration;

use crate::driver::{Driver, DriverError, DriverKind};
use crate::os::kill::signal_descendants;
use crate::sys::Signal;
use crate::sys::spawn::{Child, SpawnSpec};
use crate::tree::procfs::Procfs;
use crate::tree::verdict::{Judge, TreeLimits, Verdict};
use crate::tree::{self, ProcessId, TreeSample};

#[derive(Debug, thiserror::Error)]
pub enum UserlandError {}

pub struct Userland {
    /// The tree's root: the runner itself, a child subreaper, so every
    /// descendant is the server's.
    root: i32,
    interval: Duration,
    judge: Judge,
    last: TreeSample,
}

impl Userland {
    pub fn new(limits: TreeLimits, interval: Duration) -> Userland {
        Userland { root: std::process::id() as i32, interval, judge: Judge::new(limits), last: TreeSample::default() }
    }
}

impl Driver for Userland {
    fn kind(&self) -> DriverKind {
        DriverKind::Userland
    }

    fn prepare(&mut self, _spec: &mut SpawnSpec) -> Result<(), DriverError> {
        // Per-process RLIMITs cannot express a budget for a whole tree (N
        // processes each under the limit are N times over it), so the
        // userland driver sets none beyond the no-core-dump rule every
        // driver shares.
        Ok(())
    }

    fn place(&mut self, _child: &Child) -> Result<(), DriverError> {
        Ok(())
    }

    fn sample_interval(&self) -> Option<Duration> {
        Some(self.interval)
    }

    fn check(&mut self, now: Duration) -> Verdict {
        self.last = tree::sample(&Procfs::snapshot(), self.root);
        self.judge.judge(&self.last, now)
    }

    fn signal_all(&mut self, signal: Signal) -> usize {
        signal_descendants(self.root, signal)
    }

    fn members(&self) -> &[ProcessId] {
        &self.last.members
    }

    fn describe_limits(&self) -> String {
        format!("{} (checked every {:?})", self.judge.limits(), self.interval)
    }
}
