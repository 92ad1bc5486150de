//! Hierarchical budgets: each live session's share of the global cap,
//! recomputed whenever a runner starts or ends (under the admission lock,
//! so concurrent runners never write stale shares over fresh ones).
//!
//! A share is applied as the session's memory.high, the kernel's main
//! control: a session over its share is throttled and put under reclaim,
//! and the throttle_timeout rule acts on a server pinned there. The
//! session's memory.max stays the policy's session cap: shrinking it under
//! a live session when another session arrives would OOM-kill servers that
//! did nothing wrong. Where the share is written is the driver's business
//! ([`Levels::set_shares`]).

use mcp_runner_policy::{Effective, session_high, session_shares};

use super::census::Census;
use super::lock;
use crate::driver::levels::Levels;
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

/// Recomputes and writes every live session's share. Best effort. `leaving`
/// is the session of a runner that just ended: the driver releases its
/// place unless a live session still uses it.
pub fn rebalance(dir: &StateDir, levels: &dyn Levels, budget: &Effective, leaving: Option<&str>) {
    let Ok(_held) = lock::lock(dir) else { return };
    let census = Census::of(&dir.live_records());
    if let Some(session) = leaving {
        levels.release_session(session, &census.sessions);
    }
    let plan = plan(&census, budget);
    crate::fault::point("rebalance-locked");
    levels.set_shares(&plan);
    tracing::debug!(sessions = plan.len(), "session shares rebalanced");
}
