//! Watching a server's cgroup: the kernel's word on the server, shared by
//! the cgroupfs and systemd drivers (youki's systemd manager likewise hands
//! stats to its cgroupfs manager).
//!
//! - an OOM kill (memory.events `oom_kill`), attributed to the level whose
//!   memory.max was hit through memory.events.local;
//! - throttling at memory.high, and the throttle_timeout rule;
//! - forks refused at pids.max (a warning: the kernel already contains the
//!   server; it is not killed for it);
//! - the members, for the crash-sweep record.

use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd};
use std::time::Duration;

use mcp_runner_policy::{Limits, format_bytes};

use crate::cgroup::fs::{CgroupDir, CgroupIoError, limit_value};
use crate::cgroup::memory::{self, MemoryEvents};
use crate::cgroup::pids;
use crate::tree::ProcessId;
use crate::tree::procfs::Procfs;
use crate::tree::verdict::{Breach, Level, Verdict};

/// One server's cgroup under watch.
pub struct LeafWatch {
    leaf: CgroupDir,
    session: CgroupDir,
    /// `leaf/memory.events`, polled for POLLPRI.
    events: File,
    limits: Limits,
    session_memory_max: Option<u64>,
    throttle_timeout: Option<Duration>,
    seen: MemoryEvents,
    /// memory.events.local `oom` of the leaf, the session and the global
    /// cgroup as of the last OOM verdict (or the start): which level's count
    /// moved tells whose memory.max invoked the OOM killer. The baseline
    /// moves only on a verdict, never on an ordinary check: a check that
    /// lands between a failed charge and the kill must not use up the
    /// evidence.
    local_oom_seen: [u64; 3],
    /// The session's hierarchical oom_kill at the last check: the fallback
    /// evidence when the leaf's files are already gone.
    session_oom_kill_seen: Option<u64>,
    refused_forks: u64,
    high_since: Option<Duration>,
    members: Vec<ProcessId>,
}

impl LeafWatch {
    /// Watches `leaf`, whose parent is the session cgroup.
    pub fn new(
        leaf: CgroupDir,
        session: CgroupDir,
        limits: Limits,
        session_memory_max: Option<u64>,
        throttle_timeout: Option<Duration>,
    ) -> Result<LeafWatch, CgroupIoError> {
        let path = leaf.file(memory::EVENTS);
        let events = File::open(&path).map_err(|err| CgroupIoError::Read { path, err })?;
        let seen = memory::events(&leaf).unwrap_or_default();
        let local_oom_seen = local_ooms(&leaf, &session);
        let refused_forks = pids::refused_forks_of(&leaf);
        let session_oom_kill_seen = memory::events(&session).map(|e| e.oom_kill).ok();
        Ok(LeafWatch {
            leaf,
            session,
            events,
            limits,
            session_memory_max,
            throttle_timeout,
            seen,
            local_oom_seen,
            session_oom_kill_seen,
            refused_forks,
            high_since: None,
            members: Vec::new(),
        })
    }

    pub fn leaf(&self) -> &CgroupDir {
        &self.leaf
    }

    pub fn session(&self) -> &CgroupDir {
        &self.session
    }

    pub fn event_fd(&self) -> BorrowedFd<'_> {
        self.events.as_fd()
    }

    pub fn members(&self) -> &[ProcessId] {
        &self.members
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

    /// One check: refused forks, members, then the memory verdict.
    pub fn check(&mut self, now: Duration) -> Verdict {
        let refused = pids::refused_forks_of(&self.leaf);
        if refused > self.refused_forks {
            let n = refused - self.refused_forks;
            tracing::warn!(
                "the kernel refused {n} fork{} at pids_max {} (kernel enforcement)",
                if n == 1 { "" } else { "s" },
                limit_value(self.limits.pids_max)
            );
            self.refused_forks = refused;
        }
        let table = Procfs::snapshot();
        self.members = self.leaf.procs().unwrap_or_default().into_iter().filter_map(|p| table.identity(p)).collect();
        self.judge_memory(now)
    }

    fn judge_memory(&mut self, now: Duration) -> Verdict {
        let session_ooms = memory::events(&self.session).map(|e| e.oom_kill).ok();
        let session_before = std::mem::replace(&mut self.session_oom_kill_seen, session_ooms);
        let Some(ev) = self.read_events() else {
            // The leaf is gone (systemd removes an empty scope's cgroup at
            // once): the session's hierarchical count tells whether an OOM
            // kill happened below it since the last look.
            return match (session_ooms, session_before) {
                (Some(now_n), Some(before_n)) if now_n > before_n => Verdict::Exceeded(Breach::OomKilled {
                    level: Level::Server,
                    limit: self.limits.memory_max,
                    peak: None,
                }),
                _ => Verdict::Within,
            };
        };
        let before = std::mem::replace(&mut self.seen, ev);
        if ev.oom_kill > before.oom_kill {
            let now_ooms = local_ooms(&self.leaf, &self.session);
            let moved = |i: usize| now_ooms[i] > self.local_oom_seen[i];
            let (level, limit) = if moved(0) {
                (Level::Server, self.limits.memory_max)
            } else if moved(1) {
                (Level::Session, self.session_memory_max)
            } else if moved(2) {
                (Level::Global, None)
            } else {
                // No level's own counter moved (a kernel without .local
                // files): the leaf's is the likeliest limit.
                (Level::Server, self.limits.memory_max)
            };
            self.local_oom_seen = now_ooms;
            let peak = self.leaf.read_u64(memory::PEAK).ok().flatten();
            return Verdict::Exceeded(Breach::OomKilled { level, limit, peak });
        }
        let current = self.leaf.read_u64(memory::CURRENT).ok().flatten().unwrap_or(0);
        // Pinned at memory.high, at any level: memory.high throttles every
        // task below the cgroup that is over it, so a server can be frozen
        // by its session's or the global threshold while its own leaf shows
        // no `high` event at all. Two signs count: the leaf's own throttle
        // evidence (its `high` counter moved, or it sits at its own
        // threshold: a task sleeping off its penalty raises no new event),
        // and the leaf's memory stall (PSI), which includes the throttle
        // sleep whichever level caused it.
        let own = self.limits.memory_high.filter(|h| ev.high > before.high || near(current, *h));
        let stalled = self.leaf.read(memory::PRESSURE).ok().and_then(|t| memory::some_avg10(&t)).unwrap_or(0.0)
            >= STALL_PINNED_PERCENT;
        let throttled_at = match own {
            Some(h) => Some((Level::Server, h)),
            None if stalled => self.ancestor_at_high(),
            None => None,
        };
        judge_pinned(&mut self.high_since, throttled_at, now, current, self.throttle_timeout)
    }

    /// The ancestor (session, then global) sitting at its memory.high, if
    /// any: the level that throttles this server.
    fn ancestor_at_high(&self) -> Option<(Level, u64)> {
        let global = self.session.path().parent().map(CgroupDir::new);
        [(Level::Session, Some(self.session.clone())), (Level::Global, global)].into_iter().find_map(|(level, dir)| {
            let dir = dir?;
            let high = dir.read_u64(memory::HIGH).ok().flatten()?;
            let current = dir.read_u64(memory::CURRENT).ok().flatten()?;
            near(current, high).then_some((level, high))
        })
    }

    pub fn describe(&self) -> String {
        format!(
            "memory_high {}, memory_max {}, pids_max {} in {}",
            self.limits.memory_high.map_or("max".into(), format_bytes),
            self.limits.memory_max.map_or("max".into(), format_bytes),
            limit_value(self.limits.pids_max),
            self.leaf.path().display()
        )
    }
}

/// memory.events.local `oom` of the leaf, its session and the global
/// cgroup (the session's parent).
fn local_ooms(leaf: &CgroupDir, session: &CgroupDir) -> [u64; 3] {
    let global = session.path().parent().map(CgroupDir::new);
    [memory::local_ooms(leaf), memory::local_ooms(session), global.as_ref().map_or(0, memory::local_ooms)]
}

/// The share of time (PSI `some avg10`, percent) the leaf's tasks may
/// stall on memory before it counts as pinned. systemd-oomd's default
/// kill threshold is 60% (`full`); a throttled server sits far above this.
const STALL_PINNED_PERCENT: f64 = 20.0;

/// Usage within 1/32 (at least 1 MiB) of a threshold counts as at it.
fn near(current: u64, high: u64) -> bool {
    current.saturating_add((high / 32).max(1 << 20)) >= high
}

/// The pinned-at-memory.high rule over a sequence of checks: a pure
/// function of the episode's start, so it is tested with plain numbers.
/// `throttled_at` names the level and threshold throttling the server now.
fn judge_pinned(
    since: &mut Option<Duration>,
    throttled_at: Option<(Level, u64)>,
    now: Duration,
    current: u64,
    timeout: Option<Duration>,
) -> Verdict {
    match (throttled_at, *since) {
        (None, None) => Verdict::Within,
        (None, Some(_)) => {
            *since = None;
            Verdict::LeftHigh { used: current }
        }
        (Some((level, high)), None) => {
            *since = Some(now);
            Verdict::EnteredHigh { used: current, high, level }
        }
        (Some((level, high)), Some(start)) => match timeout {
            Some(t) if now.saturating_sub(start) >= t => {
                Verdict::Exceeded(Breach::PinnedAtHigh { lasted: now.saturating_sub(start), high, level })
            }
            _ => Verdict::StillHigh,
        },
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
        let at = Some((Level::Session, 100));
        assert_eq!(judge_pinned(&mut since, None, s(0), 50, t), Verdict::Within);
        assert_eq!(
            judge_pinned(&mut since, at, s(1), 99, t),
            Verdict::EnteredHigh { used: 99, high: 100, level: Level::Session }
        );
        assert_eq!(judge_pinned(&mut since, at, s(5), 99, t), Verdict::StillHigh);
        assert_eq!(
            judge_pinned(&mut since, at, s(11), 99, t),
            Verdict::Exceeded(Breach::PinnedAtHigh { lasted: s(10), high: 100, level: Level::Session })
        );
        let mut since = Some(s(1));
        assert_eq!(judge_pinned(&mut since, None, s(2), 10, t), Verdict::LeftHigh { used: 10 });
        assert_eq!(since, None);
        let mut since = Some(s(0));
        assert_eq!(judge_pinned(&mut since, at, s(1000), 99, None), Verdict::StillHigh);
    }

    #[test]
    fn near_threshold() {
        assert!(near(100 << 20, 100 << 20));
        assert!(near((100 << 20) - (1 << 20), 100 << 20));
        assert!(!near(90 << 20, 100 << 20));
        assert!(near(u64::MAX, 1));
    }
}
