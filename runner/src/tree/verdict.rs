//! Limit verdicts over tree samples: pure functions of (limits, sample, time).
//!
//! The userland driver measures; this module decides. Keeping the decision
//! apart lets it be tested with plain numbers and shared with macOS.

use std::fmt;
use std::time::Duration;

use mcp_runner_policy::format_bytes;

use super::TreeSample;

/// The limits a userland supervisor can enforce on a whole tree.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TreeLimits {
    pub memory_high: Option<u64>,
    pub memory_max: Option<u64>,
    pub pids_max: Option<u64>,
    /// How long the tree may stay above `memory_high` before it is killed.
    pub throttle_timeout: Option<Duration>,
}

impl fmt::Display for TreeLimits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = |v: Option<u64>| v.map_or_else(|| "max".to_string(), format_bytes);
        write!(
            f,
            "memory_high {}, memory_max {}, pids_max {}",
            bytes(self.memory_high),
            bytes(self.memory_max),
            self.pids_max.map_or_else(|| "max".to_string(), |p| p.to_string())
        )
    }
}

/// Why a tree was killed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Breach {
    Memory {
        used: u64,
        limit: u64,
    },
    Pids {
        used: u64,
        limit: u64,
    },
    /// Throttled at the memory_high of `level` for throttle_timeout.
    PinnedAtHigh {
        lasted: Duration,
        high: u64,
        level: Level,
    },
    /// The kernel OOM-killed the leaf (the whole leaf, with
    /// memory.oom.group) at the memory_max of `level`.
    OomKilled {
        level: Level,
        limit: Option<u64>,
        peak: Option<u64>,
    },
    /// macOS: the kernel's memorystatus killed the server's main process at
    /// the jetsam limit it was spawned with (`memory_max`, in MiB).
    Jetsam {
        limit_mb: u32,
        peak: Option<u64>,
    },
}

impl fmt::Display for Breach {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Breach::Memory { used, limit } => {
                write!(f, "memory {} exceeded memory_max {}", format_bytes(used), format_bytes(limit))
            }
            Breach::Pids { used, limit } => write!(f, "{used} tasks exceeded pids_max {limit}"),
            Breach::OomKilled { level, limit, peak } => {
                f.write_str("memory exceeded memory_max")?;
                if let Some(l) = limit {
                    write!(f, " {}", format_bytes(l))?;
                }
                write!(f, " ({level}): the kernel OOM-killed the whole server")?;
                if let Some(p) = peak {
                    write!(f, " (peak {})", format_bytes(p))?;
                }
                Ok(())
            }
            Breach::Jetsam { limit_mb, peak } => {
                write!(f, "the main process's footprint crossed its jetsam limit {limit_mb} MiB (memory_max)")?;
                if let Some(p) = peak {
                    write!(f, ", lifetime peak {}", format_bytes(p))?;
                }
                f.write_str(": the kernel killed it")
            }
            Breach::PinnedAtHigh { lasted, high, level } => write!(
                f,
                "memory stayed above memory_high {} ({level}) for {:.1}s (throttle_timeout)",
                format_bytes(high),
                lasted.as_secs_f64()
            ),
        }
    }
}

/// A level of the budget hierarchy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Server,
    Session,
    Global,
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::Server => "the server's own limit",
            Level::Session => "the session's limit, shared with its other servers",
            Level::Global => "the global cap over all sessions",
        })
    }
}

/// What the supervisor should do after a sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Within,
    /// Crossed `memory_high` upwards: warn once per episode.
    /// Reached the `memory_high` of `level`: warn once per episode.
    EnteredHigh {
        used: u64,
        high: u64,
        level: Level,
    },
    StillHigh,
    /// Back under `memory_high`.
    LeftHigh {
        used: u64,
    },
    Exceeded(Breach),
}

/// Remembers when the current episode above `memory_high` began.
#[derive(Debug, Default)]
pub struct Judge {
    limits: TreeLimits,
    high_since: Option<Duration>,
}

impl Judge {
    pub fn new(limits: TreeLimits) -> Judge {
        Judge { limits, high_since: None }
    }

    pub fn limits(&self) -> &TreeLimits {
        &self.limits
    }

    /// Judges one sample taken at `now` (any monotonic clock origin).
    /// Hard limits are checked before the soft one, pids before memory
    /// since a fork bomb is the faster catastrophe.
    pub fn judge(&mut self, s: &TreeSample, now: Duration) -> Verdict {
        if let Some(limit) = self.limits.pids_max
            && s.tasks > limit
        {
            return Verdict::Exceeded(Breach::Pids { used: s.tasks, limit });
        }
        if let Some(limit) = self.limits.memory_max
            && s.memory > limit
        {
            return Verdict::Exceeded(Breach::Memory { used: s.memory, limit });
        }
        let Some(high) = self.limits.memory_high else { return Verdict::Within };
        if s.memory <= high {
            return match self.high_since.take() {
                Some(_) => Verdict::LeftHigh { used: s.memory },
                None => Verdict::Within,
            };
        }
        match self.high_since {
            None => {
                self.high_since = Some(now);
                Verdict::EnteredHigh { used: s.memory, high, level: Level::Server }
            }
            Some(since) => {
                let lasted = now.saturating_sub(since);
                match self.limits.throttle_timeout {
                    Some(timeout) if lasted >= timeout => {
                        Verdict::Exceeded(Breach::PinnedAtHigh { lasted, high, level: Level::Server })
                    }
                    _ => Verdict::StillHigh,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(memory: u64, tasks: u64) -> TreeSample {
        TreeSample { processes: tasks, tasks, memory, members: Vec::new() }
    }
    const MIB: u64 = 1 << 20;
    fn limits() -> TreeLimits {
        TreeLimits {
            memory_high: Some(80 * MIB),
            memory_max: Some(100 * MIB),
            pids_max: Some(32),
            throttle_timeout: Some(Duration::from_secs(10)),
        }
    }

    #[test]
    fn table() {
        let secs = Duration::from_secs;
        let mut j = Judge::new(limits());
        let steps = [
            (s(10 * MIB, 1), 0, Verdict::Within),
            (s(90 * MIB, 1), 1, Verdict::EnteredHigh { used: 90 * MIB, high: 80 * MIB, level: Level::Server }),
            (s(95 * MIB, 1), 5, Verdict::StillHigh),
            (s(50 * MIB, 1), 6, Verdict::LeftHigh { used: 50 * MIB }),
            (s(50 * MIB, 1), 7, Verdict::Within),
            (s(85 * MIB, 1), 8, Verdict::EnteredHigh { used: 85 * MIB, high: 80 * MIB, level: Level::Server }),
            (
                s(85 * MIB, 1),
                18,
                Verdict::Exceeded(Breach::PinnedAtHigh { lasted: secs(10), high: 80 * MIB, level: Level::Server }),
            ),
        ];
        for (i, (sample, at, want)) in steps.into_iter().enumerate() {
            assert_eq!(j.judge(&sample, secs(at)), want, "step {i}");
        }
    }

    #[test]
    fn hard_limits_win_and_pids_first() {
        let mut j = Judge::new(limits());
        assert_eq!(j.judge(&s(200 * MIB, 33), Duration::ZERO), Verdict::Exceeded(Breach::Pids { used: 33, limit: 32 }));
        assert_eq!(
            j.judge(&s(100 * MIB + 1, 32), Duration::ZERO),
            Verdict::Exceeded(Breach::Memory { used: 100 * MIB + 1, limit: 100 * MIB })
        );
        assert_eq!(
            j.judge(&s(100 * MIB, 32), Duration::ZERO),
            Verdict::EnteredHigh { used: 100 * MIB, high: 80 * MIB, level: Level::Server }
        );
    }

    #[test]
    fn no_limits_never_act() {
        let mut j = Judge::new(TreeLimits::default());
        assert_eq!(j.judge(&s(u64::MAX, u64::MAX), Duration::MAX), Verdict::Within);
    }

    #[test]
    fn no_throttle_timeout_means_warn_forever() {
        let mut j = Judge::new(TreeLimits { throttle_timeout: None, ..limits() });
        j.judge(&s(90 * MIB, 1), Duration::ZERO);
        assert_eq!(j.judge(&s(90 * MIB, 1), Duration::from_secs(86400)), Verdict::StillHigh);
    }

    #[test]
    fn oom_messages_name_the_level() {
        let m = Breach::OomKilled { level: Level::Session, limit: Some(96 * MIB), peak: Some(96 * MIB) }.to_string();
        assert_eq!(
            m,
            "memory exceeded memory_max 96.0 MiB (the session's limit, shared with its other servers): \
             the kernel OOM-killed the whole server (peak 96.0 MiB)"
        );
    }

    #[test]
    fn breach_messages_name_the_limit() {
        let m = Breach::Memory { used: 300 * MIB, limit: 256 * MIB }.to_string();
        assert!(m.contains("exceeded memory_max"), "{m}");
        let p = Breach::Pids { used: 40, limit: 32 }.to_string();
        assert_eq!(p, "40 tasks exceeded pids_max 32");
    }
}
