//! The levels above one server: its session and the global cap, as each
//! driver keeps them (cgroups it made, slices systemd made, or nothing but
//! the machine itself).
//!
//! Admission, session shares, `status` and `gc` go through [`Levels`] and
//! never read a cgroup file or call systemd themselves, so nothing above the
//! drivers knows which one runs. A record is always read through the
//! levels of the driver that wrote it ([`for_kind`]).

use std::collections::BTreeSet;
use std::path::PathBuf;

use mcp_runner_policy::Effective;

use super::DriverKind;
use crate::cgroup::memory::PsiSome;
use crate::host::HostFacts;
use crate::state::RunnerRecord;

/// Free memory and pressure where a driver can measure them, for admission.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Measured {
    /// (free bytes, the cap, where) under the session's memory_max.
    pub session_free: Option<(u64, u64, String)>,
    /// The same under the global memory_max.
    pub global_free: Option<(u64, u64, String)>,
    /// Memory pressure of the global level. Filled by admission from
    /// [`Levels::pressure`] (see [`crate::admission::pressure`]), or by a
    /// driver whose pressure is a level rather than a PSI file (macOS).
    pub pressure: Option<Pressure>,
}

/// Memory pressure as admission judges it.
#[derive(Clone, Debug, PartialEq)]
pub struct Pressure {
    /// Percent of the time stalled, or a level mapped onto that scale.
    pub percent: f64,
    /// The measure and where it was read, for the refusal message: "PSI
    /// some over the last 1.0 s of /sys/fs/cgroup/mcp-runner".
    pub source: String,
}

/// One reading of the global level's PSI file.
#[derive(Clone, Debug, PartialEq)]
pub struct PsiReading {
    pub some: PsiSome,
    /// The file, for messages.
    pub place: String,
}

/// One server's figures, from where its driver keeps them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Figures {
    /// Bytes: the kernel's charge for the leaf, or the tree's sum.
    pub memory_current: u64,
    pub memory_peak: Option<u64>,
    pub swap: Option<u64>,
    /// The limits in force, where the driver can read them back.
    pub memory_high: Option<u64>,
    pub memory_max: Option<u64>,
    pub pids_max: Option<u64>,
    /// Live processes of the tree.
    pub processes: u64,
    /// Tasks (threads), the unit of pids_max.
    pub tasks: Option<u64>,
    pub throttled: Option<u64>,
    pub oom_kills: Option<u64>,
    pub forks_refused: Option<u64>,
    /// Where the figures come from (the server's cgroup).
    pub place: Option<String>,
}

/// What every driver answers about the levels above a server.
pub trait Levels {
    /// Headroom under the session's and the global memory_max for a
    /// server about to join `session` (and the pressure, where it is a
    /// level rather than a PSI file).
    fn measure(&self, session: &str) -> Measured;

    /// The global level's PSI (`memory.pressure`, or the machine's), read
    /// once, if the driver has one. Admission reads it outside its lock and
    /// judges it ([`crate::admission::pressure`]).
    fn pressure(&self) -> Option<PsiReading> {
        None
    }

    /// The global level's place (a cgroup), if the driver has one.
    fn global_place(&self) -> Option<PathBuf> {
        None
    }

    /// The global memory_max as enforced, where it can be read back.
    fn global_memory_max(&self) -> Option<u64> {
        None
    }

    /// Writes each live session's share (its memory_high). Best effort:
    /// failures are logged. Without session cgroups there is nothing to
    /// hold a share, and admission's headroom check is what keeps
    /// sessions within the global cap.
    fn set_shares(&self, _shares: &[(String, Option<u64>)]) {}

    /// A runner of `leaving` has ended: release what holds the session's
    /// budget, unless a session of `live` (the sessions of the runners
    /// still alive) still uses it. The driver compares its places, not the
    /// ids: a place is what a release stops.
    fn release_session(&self, _leaving: &str, _live: &BTreeSet<String>) {}

    /// One server's figures.
    fn figures(&self, rec: &RunnerRecord) -> Figures;

    /// Kills and removes what a dead runner's placement still holds (its
    /// leaf); returns how many processes were killed.
    fn sweep_dead(&self, rec: &RunnerRecord) -> usize;

    /// Placements whose owner died before writing a record: (removed,
    /// processes killed). Only a driver that names places after their
    /// owner has any.
    fn sweep_orphans(&self) -> (usize, usize) {
        (0, 0)
    }
}

/// The levels of the driver `kind`.
/// A record of a driver this platform does not have (a state directory
/// shared across machines) gets levels that know nothing.
#[cfg(target_os = "linux")]
pub fn for_kind(kind: DriverKind, facts: &HostFacts, budget: &Effective) -> Box<dyn Levels> {
    match kind {
        DriverKind::Cgroupfs => Box::new(super::cgroupfs::levels::CgroupfsLevels::new(facts, budget)),
        DriverKind::Systemd => Box::new(super::systemd::levels::SystemdLevels::new(facts, budget)),
        DriverKind::Userland | DriverKind::Macos => Box::new(super::userland::levels::MachineLevels::new()),
    }
}

/// The levels of the driver `kind`: on macOS there is one, the user's
/// runners together.
#[cfg(target_os = "macos")]
pub fn for_kind(_kind: DriverKind, facts: &HostFacts, budget: &Effective) -> Box<dyn Levels> {
    Box::new(super::macos::levels::MacosLevels::new(facts, budget))
}
