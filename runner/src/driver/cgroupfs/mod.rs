//! The cgroupfs driver: plain cgroup v2 files under a delegated root. The
//! kernel holds the server to its budget: memory.high throttles,
//! memory.max OOM-kills the whole leaf (memory.oom.group), pids.max refuses
//! forks. The supervisor only listens (memory.events wakes it by POLLPRI)
//! and tears the leaf down with cgroup.kill.

pub mod cpu;
pub mod fs;
pub mod hierarchy;
pub mod memory;
pub mod pids;
pub mod root;

use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use mcp_runner_policy::{Effective, Limits, format_bytes};

use self::fs::{CgroupDir, CgroupIoError};
use self::memory::MemoryEvents;
use self::root::RootError;
use crate::driver::{Driver, DriverError, DriverKind};
use crate::host::HostFacts;
use crate::sys::Signal;
use crate::sys::spawn::{Child, SpawnSpec};
use crate::tree::ProcessId;
use crate::tree::kill::signal_descendants;
use crate::tree::procfs::Procfs;
use crate::tree::verdict::{Breach, Level, Verdict};

#[derive(Debug, thiserror::Error)]
pub enum CgroupfsError {
    #[error(transparent)]
    Root(#[from] RootError),
    #[error(transparent)]
    Io(#[from] CgroupIoError),
    #[error("failed to open {0} for the server to be born in: {1}")]
    OpenProcs(std::path::PathBuf, std::io::Error),
}

/// One server's place in the hierarchy and what the supervisor watches.
pub struct Cgroupfs {
    session: CgroupDir,
    leaf: CgroupDir,

    /// `leaf/memory.events`, polled for POLLPRI.
    events: File,
    limits: Limits,
    throttle_timeout: Option<Duration>,
    interval: Duration,
    runner: i32,
    seen: MemoryEvents,
    /// memory.events.local `max` of the leaf and the session at the last
    /// check, to tell which level an OOM kill came from.
    local_max_seen: (u64, u64),
    session_memory_max: Option<u64>,
    refused_forks: u64,
    high_since: Option<Duration>,
    members: Vec<ProcessId>,
}

impl Cgroupfs {
    /// Builds GLOBAL -> SESSION -> a fresh LEAF for this server and writes
    /// every level's limits.
    pub fn setup(
        facts: &HostFacts,
        budget: &Effective,
        session: &str,
        name: Option<&str>,
        runner: ProcessId,
    ) -> Result<Cgroupfs, CgroupfsError> {
        let (parent, global) = root::locate(facts, budget.global.cgroup_root.as_deref())?;
        let parent_is_root = facts.cgroup2_mount.as_deref() == Some(parent.path());
        root::enable_controllers(&parent, parent_is_root)?;
        global.create()?;
        apply(&global, &budget.global.limits, false)?;
        // Runners of other sessions may remove an empty session cgroup
        // between our mkdir and our leaf's mkdir: retry the pair.
        let session_dir = global.child(&hierarchy::session_name(session));
        let leaf = session_dir.child(&hierarchy::leaf_name(name, runner));
        let mut attempt = 0;
        loop {
            attempt += 1;
            root::enable_controllers(&global, false)?;
            session_dir.create()?;
            apply(&session_dir, &budget.session.limits, false)?;
            let made = root::enable_controllers(&session_dir, false).map_err(CgroupfsError::from).and_then(|_| {
                leaf.create_new()?;
                Ok(())
            });
            match made {
                Ok(()) => break,
                Err(e) if attempt < 3 => tracing::debug!("retrying the session cgroup: {e}"),
                Err(e) => return Err(e),
            }
        }
        apply(&leaf, &budget.server.limits, true)?;
        let events_path = leaf.file(memory::EVENTS);
        let events = File::open(&events_path).map_err(|err| CgroupIoError::Read { path: events_path, err })?;
        Ok(Cgroupfs {
            session: session_dir,
            leaf,
            events,
            limits: budget.server.limits.clone(),
            throttle_timeout: budget.server.throttle_timeout,
            interval: budget.server.sample_interval,
            runner: runner.pid,
            seen: MemoryEvents::default(),
            local_max_seen: (0, 0),
            session_memory_max: budget.session.limits.memory_max,
            refused_forks: 0,
            high_since: None,
            members: Vec::new(),
        })
    }

    pub fn leaf(&self) -> &CgroupDir {
        &self.leaf
    }

    /// Reads memory.events through the descriptor the supervisor polls:
    /// kernfs clears a POLLPRI wake only when the same open file is read
    /// again, so reading it any other way would make poll spin.
    fn read_events(&self) -> Option<MemoryEvents> {
        use std::os::unix::fs::FileExt;
        let mut buf = [0u8; 512];
        let n = self.events.read_at(&mut buf, 0).ok()?;
        Some(memory::parse_events(std::str::from_utf8(&buf[..n]).ok()?))
    }

    /// The kernel's word on memory: an OOM kill inside the leaf, and
    /// whether it is being throttled at memory.high.
    fn judge_memory(&mut self, now: Duration) -> Verdict {
        let Some(ev) = self.read_events() else { return Verdict::Within };
        let before = std::mem::replace(&mut self.seen, ev);
        let local = (memory::local_max_hits(&self.leaf), memory::local_max_hits(&self.session));
        let local_before = std::mem::replace(&mut self.local_max_seen, local);
        if ev.oom_kill > before.oom_kill {
            let (level, limit) = if local.0 > local_before.0 {
                (Level::Server, self.limits.memory_max)
            } else if local.1 > local_before.1 {
                (Level::Session, self.session_memory_max)
            } else {
                (Level::Global, None)
            };
            let peak = self.leaf.read_u64(memory::PEAK).ok().flatten();
            return Verdict::Exceeded(Breach::OomKilled { level, limit, peak });
        }
        let Some(high) = self.limits.memory_high else { return Verdict::Within };
        let current = self.leaf.read_u64(memory::CURRENT).ok().flatten().unwrap_or(0);
        // Pinned at memory.high: the kernel reported throttling since the
        // last check, or usage sits right at the threshold. A task sleeping
        // off its throttle penalty allocates nothing and so raises no new
        // `high` event, which is why the counter alone flickers.
        let near_high = current.saturating_add((high / 32).max(1 << 20)) >= high;
        let pinned = ev.high > before.high || near_high;
        judge_pinned(&mut self.high_since, pinned, now, current, high, self.throttle_timeout)
    }

    /// Removes the leaf and, if no other server uses it, the session.
    /// The tree is gone when this runs (the supervisor saw no child left),
    /// but the kernel may take a moment to release the last tasks.
    pub fn remove(&self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut delay = Duration::from_millis(1);
        loop {
            match self.leaf.remove() {
                Ok(()) => break,
                Err(e) if Instant::now() < deadline && e.errno() == Some(nix::errno::Errno::EBUSY as i32) => {
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(Duration::from_millis(100));
                }
                Err(e) => {
                    tracing::warn!("{e}; `mcp-runner gc` will retry");
                    return;
                }
            }
        }
        // EBUSY: another server of the session still runs there.
        let _ = self.session.remove();
    }
}

/// The pinned-at-memory.high rule over a sequence of checks: a pure
/// function of the episode's start, so it is tested with plain numbers.
fn judge_pinned(
    since: &mut Option<Duration>,
    pinned: bool,
    now: Duration,
    current: u64,
    high: u64,
    timeout: Option<Duration>,
) -> Verdict {
    match (pinned, *since) {
        (false, None) => Verdict::Within,
        (false, Some(_)) => {
            *since = None;
            Verdict::LeftHigh { used: current }
        }
        (true, None) => {
            *since = Some(now);
            Verdict::EnteredHigh { used: current, high }
        }
        (true, Some(start)) => match timeout {
            Some(t) if now.saturating_sub(start) >= t => {
                Verdict::Exceeded(Breach::PinnedAtHigh { lasted: now.saturating_sub(start), high })
            }
            _ => Verdict::StillHigh,
        },
    }
}

/// Applies one level's limits, controllers in a fixed order.
fn apply(dir: &CgroupDir, limits: &Limits, leaf: bool) -> Result<(), CgroupIoError> {
    memory::apply(dir, limits, leaf)?;
    pids::apply(dir, limits.pids_max)?;
    cpu::apply(dir, limits.cpu_max)
}

impl Driver for Cgroupfs {
    fn kind(&self) -> DriverKind {
        DriverKind::Cgroupfs
    }

    fn prepare(&mut self, spec: &mut SpawnSpec) -> Result<(), DriverError> {
        // The directory for CLONE_INTO_CGROUP, cgroup.procs for the fork
        // fallback; both close once the spawn is done.
        let open = |path: std::path::PathBuf, write: bool| {
            std::fs::OpenOptions::new()
                .read(!write)
                .write(write)
                .open(&path)
                .map(OwnedFd::from)
                .map_err(|e| CgroupfsError::OpenProcs(path, e))
        };
        spec.cgroup_dir = Some(open(self.leaf.path().to_path_buf(), false)?);
        spec.cgroup_procs = Some(open(self.leaf.file("cgroup.procs"), true)?);
        Ok(())
    }

    fn place(&mut self, _child: &Child) -> Result<(), DriverError> {
        Ok(())
    }

    fn sample_interval(&self) -> Option<Duration> {
        Some(self.interval)
    }

    fn event_fds(&self) -> Vec<BorrowedFd<'_>> {
        vec![self.events.as_fd()]
    }

    fn check(&mut self, now: Duration) -> Verdict {
        let refused = pids::refused_forks(&self.leaf);
        if refused > self.refused_forks {
            tracing::warn!(
                "the kernel refused {} fork{} at pids_max {} (kernel enforcement)",
                refused - self.refused_forks,
                if refused - self.refused_forks == 1 { "" } else { "s" },
                fs::limit_value(self.limits.pids_max)
            );
            self.refused_forks = refused;
        }
        let table = Procfs::snapshot();
        self.members = self.leaf.procs().unwrap_or_default().into_iter().filter_map(|p| table.identity(p)).collect();
        self.judge_memory(now)
    }

    fn signal_all(&mut self, signal: Signal) -> usize {
        // The leaf holds the tree; the lineage walk also reaches anything
        // that moved itself out of it.
        if signal == Signal::SIGKILL
            && let Err(e) = self.leaf.write("cgroup.kill", "1")
        {
            tracing::warn!("{e}");
        }
        signal_descendants(self.runner, signal)
    }

    fn members(&self) -> &[ProcessId] {
        &self.members
    }

    fn describe_limits(&self) -> String {
        format!(
            "memory_high {}, memory_max {}, pids_max {} in {}",
            self.limits.memory_high.map_or("max".into(), format_bytes),
            self.limits.memory_max.map_or("max".into(), format_bytes),
            fs::limit_value(self.limits.pids_max),
            self.leaf.path().display()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinned_episode() {
        let s = Duration::from_secs;
        let mut since = None;
        let t = Some(s(10));
        let h = 100;
        assert_eq!(judge_pinned(&mut since, false, s(0), 50, h, t), Verdict::Within);
        assert_eq!(judge_pinned(&mut since, true, s(1), 99, h, t), Verdict::EnteredHigh { used: 99, high: h });
        assert_eq!(judge_pinned(&mut since, true, s(5), 99, h, t), Verdict::StillHigh);
        assert_eq!(
            judge_pinned(&mut since, true, s(11), 99, h, t),
            Verdict::Exceeded(Breach::PinnedAtHigh { lasted: s(10), high: h })
        );
        let mut since = Some(s(1));
        assert_eq!(judge_pinned(&mut since, false, s(2), 10, h, t), Verdict::LeftHigh { used: 10 });
        assert_eq!(since, None);
        let mut since = Some(s(0));
        assert_eq!(judge_pinned(&mut since, true, s(1000), 99, h, None), Verdict::StillHigh);
    }
}
