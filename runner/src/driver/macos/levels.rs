//! The macOS driver's levels. There is no common cgroup: the session and
//! global caps are applied across the user's runners by summing the
//! footprints of their trees, read from the records in the state
//! directory; the machine's headroom and pressure come from
//! `host_statistics64` and `kern.memorystatus_vm_pressure_level`.

use mcp_runner_macos::memory;
use mcp_runner_policy::Effective;

use super::lineage_of;
use super::os_view::{MacOs, signal_group};
use crate::driver::levels::{Figures, Levels, Measured};
use crate::host::HostFacts;
use crate::state::{RunnerRecord, StateDir};
use crate::tree::lineage::accounting;
use crate::tree::lineage::kill::{Bounds, KillPlan};
use crate::tree::pressure::{self, PressureLevel};

pub struct MacosLevels {
    session_cap: Option<u64>,
    global_cap: Option<u64>,
}

impl MacosLevels {
    pub fn new(_facts: &HostFacts, budget: &Effective) -> MacosLevels {
        MacosLevels { session_cap: budget.session.limits.memory_max, global_cap: budget.global.limits.memory_max }
    }
}

/// The summed footprint of a record's tree now.
fn footprint_of(rec: &RunnerRecord, os: &MacOs) -> u64 {
    let Some(mut l) = lineage_of(rec) else { return 0 };
    l.rescan(os);
    accounting::sample(os, &l).0.memory
}

impl Levels for MacosLevels {
    fn measure(&self, session: &str) -> Measured {
        let host = memory::host_memory().ok();
        let level = memory::pressure_level().ok().and_then(|l| {
            PressureLevel::from_sysctl(match l {
                memory::PressureLevel::Normal => 1,
                memory::PressureLevel::Warn => 2,
                memory::PressureLevel::Critical => 4,
                memory::PressureLevel::Unknown(n) => n,
            })
        });
        let (free, total) =
            host.map_or((0, 0), |h| ((h.free + h.inactive + h.speculative).saturating_mul(h.page_size), h.physical));
        let mut m = pressure::measured(&pressure::HostMemory { level, free, total });
        // The caps over the user's runners, by their summed footprints.
        let Ok(dir) = StateDir::locate() else { return m };
        let os = MacOs::new();
        let records = dir.live_records();
        let used = |pick: &dyn Fn(&RunnerRecord) -> bool| -> u64 {
            records.iter().filter(|r| pick(r)).map(|r| footprint_of(r, &os)).sum()
        };
        if let Some(cap) = self.session_cap {
            let in_session = used(&|r| r.session == session);
            m.session_free = Some((cap.saturating_sub(in_session), cap, "the session's runners (footprint)".into()));
        }
        if let Some(cap) = self.global_cap {
            let all = used(&|_| true);
            let under_cap = cap.saturating_sub(all);
            if m.global_free.as_ref().is_none_or(|(f, _, _)| under_cap < *f) {
                m.global_free = Some((under_cap, cap, "all of this user's runners (footprint)".into()));
            }
        }
        m
    }

    fn figures(&self, rec: &RunnerRecord) -> Figures {
        let os = MacOs::new();
        let Some(mut l) = lineage_of(rec) else { return Figures::default() };
        l.rescan(&os);
        let (sample, lifetime_max) = accounting::sample(&os, &l);
        Figures {
            memory_current: sample.memory,
            memory_peak: Some(lifetime_max),
            processes: sample.processes,
            tasks: Some(sample.tasks),
            memory_high: rec.memory_high,
            memory_max: rec.memory_max,
            pids_max: rec.pids_max,
            ..Figures::default()
        }
    }

    fn sweep_dead(&self, rec: &RunnerRecord) -> usize {
        let os = MacOs::new();
        let Some(mut l) = lineage_of(rec) else { return 0 };
        l.rescan(&os);
        let report = KillPlan::kill(Bounds::default()).run(&os, &mut l, &os, signal_group, || {
            std::thread::sleep(std::time::Duration::from_millis(2));
        });
        report.signalled.len()
    }
}
