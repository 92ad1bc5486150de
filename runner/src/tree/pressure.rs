//! macOS memory pressure as admission input.
//!
//! macOS has no PSI. It has a dispatch pressure level,
//! `sysctlbyname("kern.memorystatus_vm_pressure_level")`: 1 normal, 2 warn,
//! 4 critical, readable unprivileged (research §5). Admission
//! ([`crate::admission::decide::admit`]) compares a pressure percentage
//! with the policy's `max_pressure` and free bytes with `min_headroom`, so
//! the level is mapped onto that scale and the rest of admission is shared
//! with Linux:
//!
//! | level    | as percent | refused when                         |
//! |----------|------------|--------------------------------------|
//! | normal   | 0          | never                                |
//! | warn     | 25         | `max_pressure` below 25%             |
//! | critical | 100        | any `max_pressure` (not `"max"`)     |
//!
//! With the built-in `max_pressure` of 40% a server starts at warn (the
//! kernel says WARN once less than half the available memory is
//! uncompressed, where a Mac often sits for hours) and waits at critical.
//! A stricter policy (below 25%) waits at warn too. Free memory is what the
//! kernel could hand out without compressing: `(free + inactive +
//! speculative) * page size` from `host_statistics64(HOST_VM_INFO64)`,
//! under `hw.memsize`, since macOS has no global cgroup.

use std::fmt;

use crate::admission::decide::Measured;
use crate::driver::levels::Pressure;

/// The kernel's dispatch pressure level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum PressureLevel {
    Normal,
    Warn,
    Critical,
}

impl PressureLevel {
    /// From the sysctl's value; `None` for a value this code does not know,
    /// which the caller treats as unmeasured rather than guessing.
    pub fn from_sysctl(value: u32) -> Option<PressureLevel> {
        match value {
            1 => Some(PressureLevel::Normal),
            2 => Some(PressureLevel::Warn),
            4 => Some(PressureLevel::Critical),
            _ => None,
        }
    }

    /// The level on admission's percentage scale (see the module doc).
    pub fn as_percent(self) -> f64 {
        match self {
            PressureLevel::Normal => 0.0,
            PressureLevel::Warn => 25.0,
            PressureLevel::Critical => 100.0,
        }
    }

    /// Whether `max_pressure` (percent; `None` is "max") admits a server
    /// at this level: the same comparison admission makes.
    pub fn admits(self, max_pressure: Option<f64>) -> bool {
        max_pressure.is_none_or(|limit| self.as_percent() <= limit)
    }
}

impl fmt::Display for PressureLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PressureLevel::Normal => "normal",
            PressureLevel::Warn => "warn",
            PressureLevel::Critical => "critical",
        })
    }
}

/// What the macOS host reports, read once per admission.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostMemory {
    pub level: Option<PressureLevel>,
    /// Bytes the kernel could hand out without compressing.
    pub free: u64,
    /// `hw.memsize`.
    pub total: u64,
}

/// Admission's inputs from the macOS host: pressure as a percentage and
/// free memory as the global level's headroom. No session figure: macOS
/// has no session cgroup.
pub fn measured(host: &HostMemory) -> Measured {
    Measured {
        session_free: None,
        global_free: Some((host.free, host.total, "host_statistics64".to_string())),
        pressure: host.level.map(|l| Pressure {
            percent: l.as_percent(),
            source: format!("kern.memorystatus_vm_pressure_level, level {l}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::census::Census;
    use crate::admission::decide::{Caps, Request, admit};

    const GIB: u64 = 1 << 30;

    #[test]
    fn sysctl_values() {
        let got: Vec<_> = [0, 1, 2, 3, 4, 8].into_iter().map(PressureLevel::from_sysctl).collect();
        use PressureLevel::*;
        assert_eq!(got, vec![None, Some(Normal), Some(Warn), None, Some(Critical), None]);
    }

    /// Pressure going normal → warn → critical, under three policies, through
    /// the real admission decision.
    #[test]
    fn pressure_normal_warn_critical_through_admission() {
        let levels = [1, 2, 4].map(|v| PressureLevel::from_sysctl(v).expect("known level"));
        let policies: [(Option<f64>, [bool; 3]); 3] = [
            (Some(40.0), [true, true, false]), // the built-in max_pressure
            (Some(20.0), [true, false, false]),
            (None, [true, true, true]),
        ];
        let req = Request { session: "s", name: None };
        for (max_pressure, want) in policies {
            let caps = Caps { max_pressure, min_headroom: 64 << 20, ..Caps::default() };
            for (level, want) in levels.into_iter().zip(want) {
                let m = measured(&HostMemory { level: Some(level), free: 4 * GIB, total: 16 * GIB });
                let verdict = admit(&Census::default(), &caps, &m, &req);
                assert_eq!(verdict.is_ok(), want, "{level} under max_pressure {max_pressure:?}: {verdict:?}");
                assert_eq!(level.admits(max_pressure), want, "admits() agrees with admit()");
                if let Err(refusal) = verdict {
                    assert_eq!(refusal.cap, "max_pressure");
                    assert!(refusal.message.contains("kern.memorystatus_vm_pressure_level"), "{}", refusal.message);
                }
            }
        }
    }

    #[test]
    fn low_free_memory_refuses_even_at_normal() {
        let caps = Caps { max_pressure: Some(40.0), min_headroom: 64 << 20, ..Caps::default() };
        let m = measured(&HostMemory { level: Some(PressureLevel::Normal), free: 10 << 20, total: 16 * GIB });
        let e = admit(&Census::default(), &caps, &m, &Request { session: "s", name: None }).expect_err("refused");
        assert_eq!(e.cap, "min_headroom");
        assert!(e.message.contains("host_statistics64"), "{}", e.message);
    }

    #[test]
    fn unknown_level_is_unmeasured_not_refused() {
        let caps = Caps { max_pressure: Some(0.0), ..Caps::default() };
        let m = measured(&HostMemory { level: PressureLevel::from_sysctl(3), free: 4 * GIB, total: 16 * GIB });
        assert_eq!(m.pressure, None);
        assert_eq!(admit(&Census::default(), &caps, &m, &Request { session: "s", name: None }), Ok(()));
    }
}
