//! Hierarchical budgets: each live session's share of the global cap,
//! recomputed whenever a runner starts or ends (under the admission lock,
//! so concurrent runners never write stale shares over fresh ones).
//!
//! A share is applied as the session's memory.high, the kernel's main
//! control: a session over its share is throttled and put under reclaim,
//! and the throttle_timeout rule acts on a server pinned there. The
//! session's memory.max stays the policy's session cap: shrinking it under
//! a live session when another session arrives would OOM-kill servers that
//! did nothing wrong.

use mcp_runner_policy::{Effective, session_high, session_shares};

use super::census::Census;
use super::lock;
use super::measure;
use crate::driver::DriverKind;
use crate::driver::cgroupfs::memory;
use crate::driver::systemd::{self, dbus, properties, units};
use crate::host::HostFacts;
use crate::state::StateDir;

/// The share of each live session: (session id, memory_high bytes).
pub fn plan(census: &Census, budget: &Effective) -> Vec<(String, Option<u64>)> {
    let Some(total) = budget.global.limits.memory_max else { return Vec::new() };
    let cap = budget.session.limits.memory_max.unwrap_or(total);
    let (ids, weights): (Vec<String>, Vec<u64>) = census.session_weights.iter().map(|(id, w)| (id.clone(), *w)).unzip();
    let shares = session_shares(total, &weights, budget.session.floor, cap);
    ids.into_iter()
        .zip(shares)
        .map(|(id, share)| (id, session_high(share, &budget.session.limits).or(Some(share))))
        .collect()
}

/// Recomputes and writes every live session's share. Best effort: a
/// session whose cgroup is gone is skipped, failures are logged. `leaving`
/// is the session of a runner that just ended: under systemd its slice is
/// stopped if no server of it remains (a slice outlives its scopes, and
/// every client process is a session of its own).
pub fn rebalance(dir: &StateDir, kind: DriverKind, facts: &HostFacts, budget: &Effective, leaving: Option<&str>) {
    if kind == DriverKind::Userland {
        return; // no session cgroups to hold a share
    }
    let Ok(_held) = lock::lock(dir) else { return };
    let census = Census::of(&super::live_records(dir));
    let plan = plan(&census, budget);
    match kind {
        DriverKind::Cgroupfs => {
            for (session, high) in &plan {
                let Some((_, session_dir)) = measure::levels(kind, facts, budget, session) else { continue };
                if session_dir.exists()
                    && let Err(e) = session_dir.write(memory::HIGH, &crate::driver::cgroupfs::fs::limit_value(*high))
                {
                    tracing::warn!("{e}");
                }
            }
        }
        DriverKind::Systemd => {
            let Ok(mut conn) = systemd::connect(facts.euid) else { return };
            if let Some(session) = leaving
                && !census.sessions.contains(session)
                && let Err(e) = dbus::systemd::stop_unit(
                    &mut conn,
                    &units::session_slice(session),
                    "replace",
                    std::time::Duration::from_secs(10),
                )
            {
                tracing::debug!("stopping the empty session slice of {session}: {e}");
            }
            for (session, high) in &plan {
                let props = [("MemoryHigh", dbus::PropValue::U64(high.unwrap_or(properties::INFINITY)))];
                if let Err(e) = dbus::systemd::set_unit_properties(
                    &mut conn,
                    &units::session_slice(session),
                    true,
                    &props,
                    std::time::Duration::from_secs(10),
                ) {
                    tracing::debug!("session share of {session}: {e}");
                }
            }
        }
        DriverKind::Userland => {}
    }
    tracing::debug!(sessions = plan.len(), "session shares rebalanced");
}
