//! Enforcement drivers: one interface, chosen once at start.
//!
//! - `cgroupfs` and `systemd` (Linux): the kernel holds the tree to its
//!   budget.
//! - `userland` (Linux without a usable cgroup v2 memory controller) and
//!   `macos`: the supervisor measures the tree and acts on the verdicts;
//!   honestly weaker than the kernel, and labelled so everywhere.
//!
//! The supervisor only talks to [`Driver`], and everything above the
//! drivers to [`levels::Levels`]; a tree is always taken down through the
//! driver that built it. Which drivers a platform has is decided here and
//! in `enforcer` and `levels`, nowhere else.

#[cfg(target_os = "linux")]
pub mod cgroupfs;
pub mod enforcer;
pub mod levels;
#[cfg(target_os = "macos")]
pub mod macos;
pub mod names;
pub mod select;
pub mod systemd;
#[cfg(target_os = "linux")]
pub mod userland;

use std::fmt;
use std::os::fd::BorrowedFd;
use std::time::Duration;

use crate::os::spawn::{Child, SpawnSpec};
use crate::sys::Signal;
use crate::tree::ProcessId;
use crate::tree::verdict::Verdict;

/// The drivers the runner knows of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DriverKind {
    Systemd,
    Cgroupfs,
    Userland,
    /// macOS's supervised driver: libproc, kqueue, a jetsam limit at spawn.
    Macos,
}

impl DriverKind {
    /// Whether the kernel enforces the limits (as opposed to a polling loop).
    pub fn is_kernel(self) -> bool {
        matches!(self, DriverKind::Systemd | DriverKind::Cgroupfs)
    }

    /// The words used wherever enforcement is reported.
    pub fn enforcement(self) -> &'static str {
        if self.is_kernel() { "kernel enforcement" } else { "userland enforcement" }
    }

    pub fn name(self) -> &'static str {
        match self {
            DriverKind::Systemd => "systemd",
            DriverKind::Cgroupfs => "cgroupfs",
            DriverKind::Userland => "userland",
            DriverKind::Macos => "macos",
        }
    }
}

impl fmt::Display for DriverKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The drivers built into this binary, in order of preference.
#[cfg(target_os = "linux")]
pub const IMPLEMENTED: &[DriverKind] = &[DriverKind::Systemd, DriverKind::Cgroupfs, DriverKind::Userland];
#[cfg(target_os = "macos")]
pub const IMPLEMENTED: &[DriverKind] = &[DriverKind::Macos];

/// A driver failed to set up or act.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[cfg(target_os = "linux")]
    #[error("userland driver: {0}")]
    Userland(#[from] userland::UserlandError),
    #[cfg(target_os = "linux")]
    #[error("cgroupfs driver: {0}")]
    Cgroupfs(#[from] cgroupfs::CgroupfsError),
    #[cfg(target_os = "linux")]
    #[error("systemd driver: {0}")]
    Systemd(#[from] systemd::SystemdError),
    #[cfg(target_os = "macos")]
    #[error("macos driver: {0}")]
    Macos(#[from] macos::MacosError),
    #[error("the {driver} driver does not run on this platform")]
    Unsupported { driver: DriverKind },
    #[error("no driver could be set up")]
    NoneLeft,
}

/// What the supervisor needs from an enforcement driver.
pub trait Driver {
    fn kind(&self) -> DriverKind;

    /// Says where and how the server is born (its cgroup, a gate).
    fn prepare(&mut self, spec: &mut SpawnSpec) -> Result<(), DriverError>;

    /// The server exists but, if the spec asked for a gate, has not exec'd
    /// yet: put it where it belongs. The caller releases it afterwards.
    fn place(&mut self, child: &Child) -> Result<(), DriverError>;

    /// How often [`Driver::check`] must run; `None` when the kernel reports
    /// events by itself.
    fn sample_interval(&self) -> Option<Duration>;

    /// Measures the tree and judges it against the limits. `now` is the
    /// time since the supervisor started.
    fn check(&mut self, now: Duration) -> Verdict;

    /// Sends `signal` to every live process of the tree; returns how many
    /// were signalled.
    fn signal_all(&mut self, signal: Signal) -> usize;

    /// Members of the tree that are not the runner's descendants and are
    /// still alive. With a child subreaper (Linux) there are none: every
    /// process of the tree stays the runner's descendant. Without one
    /// (macOS), init adopts orphans, and supervision must not end while
    /// they live.
    fn escaped_alive(&mut self) -> usize {
        0
    }

    /// The tree's members as last seen, for the crash-sweep record.
    fn members(&self) -> &[ProcessId];

    /// Descriptors that signal a change by POLLPRI (cgroupfs event files);
    /// a wake runs [`Driver::check`] at once.
    fn event_fds(&self) -> Vec<BorrowedFd<'_>> {
        Vec::new()
    }

    /// The limits in force, for the start-up log line.
    fn describe_limits(&self) -> String;
}
