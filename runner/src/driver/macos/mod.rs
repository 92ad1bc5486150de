//! The macOS driver: no cgroups, so the runner holds the tree itself, with
//! the strongest means macOS gives an unprivileged user:
//!
//! - a fatal jetsam limit at `memory_max` on the server's main process,
//!   set at spawn (`posix_spawnattr_setjetsam_ext`, a private API looked up
//!   at run time): the kernel's own backstop, for that one image only (exec
//!   and fork children drop it);
//! - the tree followed by lineage (`p_puniqueid`), so `setsid` double-fork
//!   daemons adopted by launchd stay members; kqueue NOTE_FORK, NOTE_EXEC
//!   and NOTE_EXIT on every member trigger rescans, and a rescan runs every
//!   `sample_interval` regardless;
//! - memory as the members' summed physical footprint, judged by the same
//!   verdicts as Linux's userland driver (memory_max and pids_max kill,
//!   memory_high warns, pinned above it past throttle_timeout kills);
//! - teardown by the stop-then-kill plan over the lineage and the server's
//!   process group, every signal checked against the member's unique id;
//! - a crash guard (`os::Guard`) that sweeps the lineage if the runner dies.
//!
//! What it cannot do, and says so: a tree can overshoot memory_max between
//! two polls (only the main image has a kernel limit), memory_high is not a
//! throttle, and pids_max counts processes, not threads.

pub mod levels;
pub mod os_view;

use std::collections::BTreeSet;
use std::os::fd::{AsFd, BorrowedFd};
use std::time::Duration;

use mcp_runner_macos::kqueue::{Event as KEvent, Kqueue};
use mcp_runner_macos::proc;
use mcp_runner_macos::spawn::JetsamStatus;
use mcp_runner_policy::Effective;

use self::os_view::{MacOs, signal_group};
use crate::driver::{Driver, DriverError, DriverKind};
use crate::host::HostFacts;
use crate::os::Guard;
use crate::os::spawn::{Child, SpawnSpec};
use crate::sys::Signal;
use crate::tree::lineage::accounting::Accounting;
use crate::tree::lineage::jetsam::JetsamCover;
use crate::tree::lineage::kill::{Bounds, KillPlan};
use crate::tree::lineage::{self, Identity, Lineage};
use crate::tree::verdict::{Breach, TreeLimits, Verdict};
use crate::tree::{ProcessId, TreeSample};

#[derive(Debug, thiserror::Error)]
pub enum MacosError {
    #[error("cannot start the crash guard: {0}")]
    Guard(std::io::Error),
    #[error("cannot create a kqueue: {0}")]
    Kqueue(std::io::Error),
    #[error("the server (pid {0}) vanished before it could be watched")]
    Vanished(i32),
}

pub struct Macos {
    os: MacOs,
    lineage: Option<Lineage>,
    accounting: Accounting,
    jetsam: JetsamCover,
    jetsam_mb: Option<u32>,
    /// Set when the kernel's memorystatus killed the main process.
    jetsam_killed: bool,
    interval: Duration,
    /// The driver's own kqueue: fork, exec and exit of the members.
    queue: Kqueue,
    watched: BTreeSet<Identity>,
    last: TreeSample,
    members: Vec<ProcessId>,
    _guard: Guard,
}

impl Macos {
    pub fn setup(
        _facts: &HostFacts,
        budget: &Effective,
        limits: TreeLimits,
        _runner: ProcessId,
    ) -> Result<Macos, MacosError> {
        let guard = Guard::start().map_err(MacosError::Guard)?;
        let queue = Kqueue::new().map_err(MacosError::Kqueue)?;
        Ok(Macos {
            os: MacOs::new(),
            lineage: None,
            accounting: Accounting::new(limits),
            jetsam: JetsamCover::none(),
            // The kernel's limit is in MiB: round up, never below the policy.
            jetsam_mb: limits.memory_max.map(|b| u32::try_from(b.div_ceil(1 << 20)).unwrap_or(u32::MAX)),
            jetsam_killed: false,
            interval: budget.server.sample_interval,
            queue,
            watched: BTreeSet::new(),
            last: TreeSample::default(),
            members: Vec::new(),
            _guard: guard,
        })
    }

    /// Takes the driver's kqueue events: forks and exits make the next
    /// rescan find what changed, an exec drops the jetsam cover.
    fn drain_events(&mut self) {
        let Ok(events) = self.queue.wait(Some(Duration::ZERO)) else { return };
        for ev in events {
            match ev {
                KEvent::Fork { pid } => {
                    if let Some(l) = self.lineage.as_mut() {
                        l.on_fork(pid);
                    }
                }
                KEvent::Exec { pid } => self.jetsam.on_exec(pid),
                KEvent::Exit { pid, memory_kill, .. } => {
                    if let Some(l) = self.lineage.as_mut() {
                        if memory_kill && l.root().pid == pid {
                            self.jetsam_killed = true;
                        }
                        l.on_exit(pid);
                    }
                }
                _ => {}
            }
        }
    }

    /// Rescans and watches every new member.
    fn rescan(&mut self) {
        let Some(l) = self.lineage.as_mut() else { return };
        let report = l.rescan(&self.os);
        for (id, to) in &report.escaped {
            tracing::info!("{id} left the server's process tree (reparented to {to}); still followed by lineage");
        }
        for (id, _) in &report.adopted {
            if self.watched.insert(*id) {
                let _ = self.queue.watch_process(id.pid);
            }
        }
        for id in report.departed.iter().chain(&report.reused) {
            self.watched.remove(id);
        }
        self.members = l.live().into_iter().map(|id| ProcessId { pid: id.pid, start: id.unique_id }).collect();
    }
}

impl Driver for Macos {
    fn kind(&self) -> DriverKind {
        DriverKind::Macos
    }

    fn prepare(&mut self, spec: &mut SpawnSpec) -> Result<(), DriverError> {
        spec.jetsam_limit_mb = self.jetsam_mb;
        Ok(())
    }

    fn place(&mut self, child: &Child) -> Result<(), DriverError> {
        let pid = child.pid.as_raw();
        let info = proc::info(pid).ok().flatten().ok_or(MacosError::Vanished(pid))?;
        let root = Identity { pid, unique_id: info.unique_id };
        // The server leads its own process group (POSIX_SPAWN_SETPGROUP).
        self.lineage = Some(Lineage::new(root, Some(pid)));
        if matches!(child.jetsam, JetsamStatus::Set { .. }) {
            self.jetsam = JetsamCover::spawned(root);
        }
        self.watched.insert(root);
        let _ = self.queue.watch_process(pid);
        self.rescan();
        Ok(())
    }

    fn sample_interval(&self) -> Option<Duration> {
        Some(self.interval)
    }

    fn check(&mut self, now: Duration) -> Verdict {
        self.drain_events();
        if self.jetsam_killed
            && let Some(limit_mb) = self.jetsam_mb
        {
            self.jetsam_killed = false;
            return Verdict::Exceeded(Breach::Jetsam { limit_mb, peak: Some(self.accounting.peak()) });
        }
        self.rescan();
        let Some(l) = self.lineage.as_ref() else { return Verdict::Within };
        let poll = self.accounting.poll(&self.os, l, now);
        self.last = poll.sample;
        poll.verdict
    }

    fn signal_all(&mut self, signal: Signal) -> usize {
        self.drain_events();
        let Some(l) = self.lineage.as_mut() else { return 0 };
        let plan = match signal {
            Signal::SIGKILL => KillPlan::kill(Bounds::default()),
            Signal::SIGTERM => KillPlan::terminate(Bounds::default()),
            other => {
                // Not a teardown signal: pass it on to the live members.
                let n = l.live().len();
                for id in l.live() {
                    let _ = nix::sys::signal::kill(crate::sys::Pid::from_raw(id.pid), other);
                }
                return n;
            }
        };
        let queue = &self.queue;
        let report = plan.run(&self.os, l, &self.os, signal_group, || {
            // Pace the passes by the members' exits, never longer than a
            // few milliseconds: the next pass rescans anyway.
            let _ = queue.wait(Some(Duration::from_millis(5)));
        });
        if !report.complete {
            tracing::warn!("{} process(es) survived {signal}: {:?}", report.survivors.len(), report.survivors);
        }
        report.signalled.len()
    }

    fn escaped_alive(&mut self) -> usize {
        self.rescan();
        self.members.len()
    }

    fn members(&self) -> &[ProcessId] {
        &self.members
    }

    fn event_fds(&self) -> Vec<BorrowedFd<'_>> {
        vec![self.queue.as_fd()]
    }

    fn describe_limits(&self) -> String {
        let covered = self.lineage.as_ref().is_some_and(|l| self.jetsam.covers(l.root()));
        let jetsam = match self.jetsam_mb {
            Some(mb) if covered => format!("jetsam limit {mb} MiB on the main process"),
            _ => "no jetsam limit".to_string(),
        };
        format!("{} (footprint checked every {:?}; {jetsam})", self.accounting.limits(), self.interval)
    }
}

/// The lineage a record names, for status and the crash sweep: the server
/// (its pid is its process group) and the members last sampled.
pub(crate) fn lineage_of(rec: &crate::state::RunnerRecord) -> Option<Lineage> {
    let server = rec.server?;
    let record = lineage::LineageRecord {
        root: Identity { pid: server.pid, unique_id: server.start },
        group: Some(server.pid),
        members: rec.members.iter().map(|m| Identity { pid: m.pid, unique_id: m.start }).collect(),
    };
    Some(Lineage::from_record(&record))
}
