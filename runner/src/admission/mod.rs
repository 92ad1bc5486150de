//! Admission control: before a server is spawned, the runner checks the
//! caps (servers, sessions, servers per session, instances of one name),
//! the memory headroom under the session's and the global memory_max, and
//! the memory pressure of the global level. A refused server waits up to
//! `admission_wait` for room, then is refused with an answer the client
//! can show, never a silent hang.
//!
//! Decide-and-register happens under one lock, so concurrent starts are
//! serialized: the census a runner counts includes every runner admitted
//! before it.

pub mod census;
pub mod decide;
pub mod jsonrpc;
pub mod lock;
pub mod shares;

use std::time::{Duration, Instant};

use mcp_runner_policy::Effective;

use self::census::Census;
use self::decide::{Caps, Refusal, Request};
use crate::driver::levels::Levels;
use crate::os::RecordWatch;
use crate::state::{RunnerRecord, StateDir};

impl Caps {
    pub fn from_budget(b: &Effective) -> Caps {
        Caps {
            max_servers: b.global.max_servers,
            max_sessions: b.global.max_sessions,
            session_max_servers: b.session.max_servers,
            max_instances: b.server.max_instances,
            min_headroom: b.global.min_headroom,
            max_pressure: b.global.max_pressure,
        }
    }
}

/// Admits `record`'s server and registers it (writes the record), or
/// refuses after waiting up to `admission_wait` for room.
pub fn admit(dir: &StateDir, levels: &dyn Levels, budget: &Effective, record: &RunnerRecord) -> Result<(), Refusal> {
    let caps = Caps::from_budget(budget);
    let req = Request { session: &record.session, name: record.name.as_deref() };
    let deadline = Instant::now() + budget.global.admission_wait;
    // A runner leaving removes its record: the watch wakes a waiting runner
    // at once; pressure and free memory have no such event, so a waiting
    // runner also looks again every half second.
    let mut watch = RecordWatch::new(dir.path());
    loop {
        let verdict = match lock::lock(dir) {
            Ok(_held) => {
                let others = dir.live_records();
                let census = Census::of(others.iter().filter(|r| r.runner != record.runner));
                let measured = levels.measure(&record.session);
                let verdict = decide::admit(&census, &caps, &measured, &req);
                if verdict.is_ok()
                    && let Err(e) = dir.write(record)
                {
                    tracing::warn!("{e}");
                }
                crate::fault::point("admission-locked");
                verdict
            }
            Err(e) => {
                tracing::warn!("admission lock unavailable ({e}); admitting without checking the caps");
                return Ok(());
            }
        };
        let refusal = match verdict {
            Ok(()) => return Ok(()),
            Err(r) => r,
        };
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(refusal);
        }
        tracing::warn!("waiting up to {:.1}s for room: {refusal}", left.as_secs_f64());
        let wait = left.min(Duration::from_millis(500));
        match watch.as_mut() {
            Some(w) => w.wait(wait),
            None => std::thread::sleep(wait),
        }
    }
}
