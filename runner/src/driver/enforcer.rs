//! Building the driver for one server, with the fallback chain: with
//! `auto`, a kernel driver that fails to set up hands over to the next one
//! (systemd, cgroupfs, userland) with a warning; a forced driver fails
//! instead, and `require = "kernel"` never ends up in userland.

use std::path::PathBuf;

use mcp_runner_policy::{Effective, Enforcement};

#[cfg(target_os = "linux")]
use super::cgroupfs::Cgroupfs;
use super::levels::{self, Levels};
#[cfg(target_os = "macos")]
use super::macos::Macos;
use super::select::{self, Selection};
#[cfg(target_os = "linux")]
use super::systemd::Systemd;
#[cfg(target_os = "linux")]
use super::userland::Userland;
use super::{Driver, DriverError, DriverKind};
use crate::host::HostFacts;
use crate::tree::ProcessId;
use crate::tree::verdict::TreeLimits;

/// No driver could be set up.
#[derive(Debug, thiserror::Error)]
#[error("{}{last}", if *.kernel_required { "refused: kernel enforcement is required, but " } else { "" })]
pub struct BuildError {
    /// The policy requires kernel enforcement: the run is refused rather
    /// than failed.
    pub kernel_required: bool,
    pub last: DriverError,
}

/// Who the server is, for the names of its places.
pub struct Placement<'a> {
    pub session: &'a str,
    pub name: Option<&'a str>,
    pub runner: ProcessId,
}

/// The driver this run uses, with what must be undone afterwards.
pub enum Enforcer {
    #[cfg(target_os = "linux")]
    Userland(Userland),
    #[cfg(target_os = "linux")]
    Cgroupfs(Cgroupfs),
    /// Boxed: it holds a D-Bus connection until the server is placed.
    #[cfg(target_os = "linux")]
    Systemd(Box<Systemd>),
    #[cfg(target_os = "macos")]
    Macos(Box<Macos>),
}

impl Enforcer {
    /// Builds the selected driver, falling back along the chain unless
    /// `strict` (a driver was forced).
    pub fn build(
        selection: &Selection,
        facts: &HostFacts,
        budget: &Effective,
        at: &Placement<'_>,
        strict: bool,
    ) -> Result<Enforcer, BuildError> {
        let kernel_required = budget.server.require == Enforcement::Kernel;
        let mut last = None;
        for kind in chain(selection.kind, strict, kernel_required, select::cgroupfs_unusable(facts).is_none()) {
            if let Some(e) = &last {
                tracing::warn!("{e}; trying the {kind} driver");
            }
            match setup(kind, facts, budget, at) {
                Ok(e) => return Ok(e),
                Err(e) => last = Some(e),
            }
        }
        Err(BuildError { kernel_required, last: last.unwrap_or(DriverError::NoneLeft) })
    }

    pub fn driver(&mut self) -> &mut dyn Driver {
        match self {
            #[cfg(target_os = "linux")]
            Enforcer::Userland(d) => d,
            #[cfg(target_os = "linux")]
            Enforcer::Cgroupfs(d) => d,
            #[cfg(target_os = "linux")]
            Enforcer::Systemd(d) => d.as_mut(),
            #[cfg(target_os = "macos")]
            Enforcer::Macos(d) => d.as_mut(),
        }
    }

    pub fn kind(&self) -> DriverKind {
        match self {
            #[cfg(target_os = "linux")]
            Enforcer::Userland(_) => DriverKind::Userland,
            #[cfg(target_os = "linux")]
            Enforcer::Cgroupfs(_) => DriverKind::Cgroupfs,
            #[cfg(target_os = "linux")]
            Enforcer::Systemd(_) => DriverKind::Systemd,
            #[cfg(target_os = "macos")]
            Enforcer::Macos(_) => DriverKind::Macos,
        }
    }

    /// The levels above this server, as this driver keeps them.
    pub fn levels(&self, facts: &HostFacts, budget: &Effective) -> Box<dyn Levels> {
        levels::for_kind(self.kind(), facts, budget)
    }

    /// The server's cgroup, whoever made it: status reads its figures.
    pub fn stats_cgroup(&self) -> Option<PathBuf> {
        match self {
            #[cfg(target_os = "linux")]
            Enforcer::Cgroupfs(d) => Some(d.leaf().path().to_path_buf()),
            #[cfg(target_os = "linux")]
            Enforcer::Systemd(d) => d.cgroup(),
            #[allow(unreachable_patterns)]
            _ => None,
        }
    }

    /// The cgroup the crash sweep may kill and remove: only one the runner
    /// made itself. systemd's scopes are systemd's to clean up (BindsTo).
    pub fn cgroup_path(&self) -> Option<PathBuf> {
        match self {
            #[cfg(target_os = "linux")]
            Enforcer::Cgroupfs(d) => Some(d.leaf().path().to_path_buf()),
            #[allow(unreachable_patterns)]
            _ => None,
        }
    }

    /// The limits the record shows: the userland driver holds the tree to
    /// the tightest level, the kernel drivers each level to its own.
    pub fn recorded_limits(&self, budget: &Effective) -> (Option<u64>, Option<u64>, Option<u64>) {
        let l = if self.kind().is_kernel() { budget.server.limits.clone() } else { budget.tightest() };
        (l.memory_high, l.memory_max, l.pids_max)
    }

    /// Removes what the driver built; runs once the tree is gone.
    pub fn cleanup(&self) {
        #[cfg(target_os = "linux")]
        if let Enforcer::Cgroupfs(d) = self {
            d.remove();
        }
    }
}

/// Sets up one driver of this platform.
#[cfg(target_os = "linux")]
fn setup(kind: DriverKind, facts: &HostFacts, budget: &Effective, at: &Placement<'_>) -> Result<Enforcer, DriverError> {
    match kind {
        DriverKind::Systemd => {
            Ok(Enforcer::Systemd(Box::new(Systemd::setup(facts, budget, at.session, at.name, at.runner)?)))
        }
        DriverKind::Cgroupfs => Ok(Enforcer::Cgroupfs(Cgroupfs::setup(facts, budget, at.session, at.name, at.runner)?)),
        DriverKind::Userland => {
            Ok(Enforcer::Userland(Userland::new(tree_limits(budget), budget.server.sample_interval)))
        }
        DriverKind::Macos => Err(DriverError::Unsupported { driver: kind }),
    }
}

/// Sets up one driver of this platform.
#[cfg(target_os = "macos")]
fn setup(kind: DriverKind, facts: &HostFacts, budget: &Effective, at: &Placement<'_>) -> Result<Enforcer, DriverError> {
    match kind {
        DriverKind::Macos => {
            Ok(Enforcer::Macos(Box::new(Macos::setup(facts, budget, tree_limits(budget), at.runner)?)))
        }
        _ => Err(DriverError::Unsupported { driver: kind }),
    }
}

/// The drivers to try, in order.
fn chain(selected: DriverKind, strict: bool, kernel_required: bool, cgroupfs_usable: bool) -> Vec<DriverKind> {
    let mut chain = vec![selected];
    // Only a kernel driver falls back, and only to Linux's userland driver:
    // macOS has one driver.
    if !strict && selected.is_kernel() {
        if selected == DriverKind::Systemd && cgroupfs_usable {
            chain.push(DriverKind::Cgroupfs);
        }
        if !kernel_required && selected != DriverKind::Userland {
            chain.push(DriverKind::Userland);
        }
    }
    chain
}

/// The userland driver watches one tree, so the tightest limit of the three
/// levels is the one it can hold that tree to.
fn tree_limits(budget: &Effective) -> TreeLimits {
    let l = budget.tightest();
    TreeLimits {
        memory_high: l.memory_high,
        memory_max: l.memory_max,
        pids_max: l.pids_max,
        throttle_timeout: budget.server.throttle_timeout,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use DriverKind::*;

    #[test]
    fn fallback_chain() {
        // (selected, strict, kernel required, cgroupfs usable) -> chain
        let table = [
            ((Systemd, false, false, true), vec![Systemd, Cgroupfs, Userland]),
            ((Systemd, false, false, false), vec![Systemd, Userland]),
            ((Systemd, false, true, true), vec![Systemd, Cgroupfs]),
            ((Systemd, true, false, true), vec![Systemd]),
            ((Cgroupfs, false, false, true), vec![Cgroupfs, Userland]),
            ((Cgroupfs, false, true, true), vec![Cgroupfs]),
            ((Userland, false, false, false), vec![Userland]),
            ((Macos, false, false, false), vec![Macos]),
        ];
        for ((k, strict, req, usable), want) in table {
            assert_eq!(chain(k, strict, req, usable), want, "{k:?} strict={strict} required={req}");
        }
    }
}
