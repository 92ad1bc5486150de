//! The systemd driver's levels: `mcp-runner.slice` (inside `mcp.slice`) and
//! one `mcp-runner-SESSION.slice` per session. Figures are read from the
//! cgroups systemd made for them; shares and releases are unit calls.

use std::path::PathBuf;
use std::time::Duration;

use mcp_runner_policy::Effective;

use super::{dbus, properties, units};
use crate::cgroup::fs::CgroupDir;
use crate::cgroup::memory;
use crate::driver::cgroupfs::levels::{cgroup_or_tree_figures, measure_cgroups, psi_of};
use crate::driver::levels::{Figures, Levels, Measured, PsiReading};
use crate::host::HostFacts;
use crate::os::kill::kill_marked;
use crate::state::RunnerRecord;

/// Manager calls for shares run after the server started or ended: they
/// never hold a client's start.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

pub struct SystemdLevels {
    /// The global slice's cgroup, if it can be located.
    global: Option<CgroupDir>,
    euid: u32,
    session_cap: Option<u64>,
    global_cap: Option<u64>,
}

impl SystemdLevels {
    pub fn new(facts: &HostFacts, budget: &Effective) -> SystemdLevels {
        SystemdLevels {
            global: global_slice_cgroup(facts).map(CgroupDir::new),
            euid: facts.euid,
            session_cap: budget.session.limits.memory_max,
            global_cap: budget.global.limits.memory_max,
        }
    }

    fn call(&self, what: &str, f: impl FnOnce(&mut dbus::Connection) -> Result<(), dbus::DbusError>) {
        match super::connect(self.euid) {
            Ok(mut conn) => {
                if let Err(e) = f(&mut conn) {
                    tracing::debug!("{what}: {e}");
                }
            }
            Err(e) => tracing::debug!("{what}: {e}"),
        }
    }
}

/// `mcp-runner.slice` nests under `mcp.slice` (a dash means nesting); a
/// user manager's slices live under its own cgroup.
fn global_slice_cgroup(facts: &HostFacts) -> Option<PathBuf> {
    let mount = facts.cgroup2_mount.clone()?;
    let base = if facts.euid == 0 {
        mount
    } else {
        let own = facts.own_cgroup.as_deref()?;
        let user = own.find("/user@").and_then(|i| own[i..].find(".service").map(|j| &own[..i + j + 8]))?;
        crate::host::cgroup::join(&mount, user)
    };
    Some(base.join("mcp.slice").join(units::GLOBAL_SLICE))
}

impl Levels for SystemdLevels {
    fn measure(&self, session: &str) -> Measured {
        match &self.global {
            Some(g) => measure_cgroups(g, &g.child(&units::session_slice(session)), self.session_cap, self.global_cap),
            None => Measured::default(),
        }
    }

    fn pressure(&self) -> Option<PsiReading> {
        self.global.as_ref().and_then(psi_of)
    }

    fn global_place(&self) -> Option<PathBuf> {
        self.global.as_ref().map(|g| g.path().to_path_buf())
    }

    fn global_memory_max(&self) -> Option<u64> {
        self.global.as_ref().and_then(|g| g.read_u64(memory::MAX).ok().flatten())
    }

    fn set_shares(&self, shares: &[(String, Option<u64>)]) {
        if shares.is_empty() {
            return;
        }
        self.call("session shares", |conn| {
            for (session, high) in shares {
                let props = [("MemoryHigh", dbus::PropValue::U64(high.unwrap_or(properties::INFINITY)))];
                let slice = units::session_slice(session);
                if let Err(e) = dbus::systemd::set_unit_properties(conn, &slice, true, &props, CALL_TIMEOUT) {
                    tracing::debug!("session share of {session}: {e}");
                }
            }
            Ok(())
        });
    }

    fn release_session(&self, leaving: &str, live: &std::collections::BTreeSet<String>) {
        // A slice outlives its scopes, and every client process is a
        // session of its own: stop the slice once its last server is gone.
        // Stopping a slice stops every scope in it, so it is stopped only
        // when no live runner's session maps to the same unit.
        let Some(slice) = units::slice_to_release(leaving, live) else { return };
        self.call("stopping an empty session slice", |conn| {
            dbus::systemd::stop_unit(conn, &slice, "replace", CALL_TIMEOUT).map(|_| ())
        });
    }

    fn figures(&self, rec: &RunnerRecord) -> Figures {
        cgroup_or_tree_figures(rec)
    }

    fn sweep_dead(&self, rec: &RunnerRecord) -> usize {
        // systemd stops a dead runner's scopes itself (BindsTo= its scope);
        // what carries the marker outside them is still the runner's.
        kill_marked(rec, &crate::tree::procfs::Procfs::snapshot())
    }
}
