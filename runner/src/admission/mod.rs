//! Admission control: before a server is spawned, the runner checks the
//! caps (servers, sessions, servers per session, instances of one name),
//! the memory headroom under the session's and the global memory_max, and
//! the memory pressure of the global level now ([`pressure`]). A refused
//! server waits up to `admission_wait` for room, then is refused with an
//! answer the client can show, never a silent hang.
//!
//! Decide-and-register happens under one lock, so concurrent starts are
//! serialized: the census a runner counts includes every runner admitted
//! before it. Pressure is judged before the lock is taken (it may take a
//! window to read) and does not depend on the census.

pub mod census;
pub mod decide;
pub mod jsonrpc;
pub mod lock;
pub mod pressure;
pub mod shares;

use std::time::{Duration, Instant};

use mcp_runner_policy::Effective;

use self::census::Census;
use self::decide::{Caps, Refusal, Request};
use crate::driver::levels::Levels;
use crate::os::RecordWatch;
use crate::state::{RunnerRecord, StateDir};

/// What is lost when a server runs without its record.
pub const UNCHECKED: &str = "crash cleanup by `mcp-runner gc` is off for it and other runners do not count it";

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
///
/// When admission cannot be decided (the lock cannot be taken) or the
/// admitted runner cannot be registered (its record cannot be written, so
/// later runners would not count it), a policy with caps refuses the server;
/// only a policy that checks nothing runs it, with a warning.
pub fn admit(dir: &StateDir, levels: &dyn Levels, budget: &Effective, record: &RunnerRecord) -> Result<(), Refusal> {
    let caps = Caps::from_budget(budget);
    let req = Request { session: &record.session, name: record.name.as_deref() };
    let deadline = Instant::now() + budget.global.admission_wait;
    // A runner leaving removes its record: the watch wakes a waiting runner
    // at once; pressure and free memory have no such event, so a waiting
    // runner also looks again every half second.
    let mut watch = RecordWatch::new(dir.path());
    loop {
        let judged = pressure::judge(levels, caps.max_pressure);
        let verdict = match lock::lock(dir) {
            Ok(_held) => {
                let others = dir.live_records();
                let census = Census::of(others.iter().filter(|r| r.runner != record.runner));
                let mut measured = levels.measure(&record.session);
                if judged.is_some() {
                    measured.pressure = judged;
                }
                let verdict = decide::admit(&census, &caps, &measured, &req);
                // Registered while the lock is held: the next runner counts it.
                match verdict.map(|()| dir.write(record)) {
                    Ok(Ok(())) => {
                        // The lock held, the record written.
                        crate::fault::point("admission-locked");
                        Ok(())
                    }
                    Ok(Err(e)) if caps.any() => return Err(Refusal::unavailable(e)),
                    Ok(Err(e)) => {
                        tracing::warn!("{e}; the policy sets no caps, so the server runs, but {UNCHECKED}");
                        Ok(())
                    }
                    Err(refusal) => Err(refusal),
                }
            }
            Err(e) if caps.any() => return Err(Refusal::unavailable(e)),
            Err(e) => {
                tracing::warn!("{e}; the policy sets no caps, so the server runs, but {UNCHECKED}");
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

#[cfg(test)]
mod tests {
    use std::fs;

    use mcp_runner_policy::{HostMemory, ServerRequest};

    use super::*;
    use crate::cgroup::memory::PsiSome;
    use crate::driver::levels::{Figures, Measured, PsiReading};
    use crate::state::tests::{record, temp_state};

    /// Levels that measure nothing: only the counts decide.
    struct Unmeasured;

    impl Levels for Unmeasured {
        fn measure(&self, _session: &str) -> Measured {
            Measured::default()
        }
        fn figures(&self, _rec: &RunnerRecord) -> Figures {
            Figures::default()
        }
        fn sweep_dead(&self, _rec: &RunnerRecord) -> usize {
            0
        }
    }

    /// A global level whose average says 60% while, from its creation on,
    /// its tasks stall `share` of the time.
    struct Stalling {
        since: Instant,
        share: f64,
    }

    impl Levels for Stalling {
        fn measure(&self, _session: &str) -> Measured {
            Measured::default()
        }

        fn pressure(&self) -> Option<PsiReading> {
            let total_us = 5_000_000 + (self.since.elapsed().as_micros() as f64 * self.share) as u64;
            Some(PsiReading { some: PsiSome { avg10: 60.0, total_us }, place: "/g".into() })
        }

        fn figures(&self, _rec: &RunnerRecord) -> Figures {
            Figures::default()
        }

        fn sweep_dead(&self, _rec: &RunnerRecord) -> usize {
            0
        }
    }

    fn budget(text: &str) -> Effective {
        let policy = mcp_runner_policy::from_str(text, "p.toml").expect("policy");
        let req = ServerRequest { name: Some("github"), argv: &[] };
        policy.resolve(&req, &HostMemory { physical_bytes: 16 << 30 }).expect("resolve")
    }

    #[test]
    fn issue_9_a_lock_that_cannot_be_taken_admits_nothing_under_caps() {
        // See: issue 9, finding 2
        let d = temp_state("admit-nolock");
        // Opening it for writing fails (EISDIR): the lock cannot be taken.
        fs::create_dir(d.path().join("admission.lock")).expect("mkdir");
        let caps = budget("[global]\nmax_servers = 4\nmin_headroom = \"0\"\nmax_pressure = \"max\"\n");
        let refusal = admit(&d, &Unmeasured, &caps, &record(1)).expect_err("refused");
        assert_eq!(refusal.cap, "state_dir");
        assert!(refusal.message.contains("admission.lock"), "{refusal}");
        assert!(d.records().is_empty(), "registered without the lock");

        let none = budget(
            "[global]\nmax_servers = \"max\"\nmax_sessions = \"max\"\nmin_headroom = \"0\"\nmax_pressure = \"max\"\n\
             [session]\nmax_servers = \"max\"\n",
        );
        admit(&d, &Unmeasured, &none, &record(1)).expect("a policy without caps runs the server");
        fs::remove_dir_all(d.path()).ok();
    }

    fn pressure_budget() -> Effective {
        mcp_runner_policy::from_str("[global]\nmax_pressure = \"40%\"\nadmission_wait = \"0s\"\n", "test")
            .and_then(|p| p.resolve(&ServerRequest { name: None, argv: &[] }, &HostMemory { physical_bytes: 16 << 30 }))
            .expect("budget")
    }

    /// Through the whole admission: an average over max_pressure from a
    /// stall that is over admits; a stall going on refuses, and says so.
    // See: issue 9, finding 9.
    #[test]
    fn issue_9_admission_judges_the_present_not_the_average() {
        let dir = temp_state("pressure-now");
        let over = Stalling { since: Instant::now(), share: 0.0 };
        assert_eq!(admit(&dir, &over, &pressure_budget(), &record(41)), Ok(()));
        let going_on = Stalling { since: Instant::now(), share: 1.0 };
        let e = admit(&dir, &going_on, &pressure_budget(), &record(42)).expect_err("refused");
        assert_eq!(e.cap, "max_pressure");
        assert!(e.current > 90.0, "{e:?}");
        assert!(e.message.contains("(PSI some over the last ") && e.message.contains(" s of /g)"), "{}", e.message);
        std::fs::remove_dir_all(dir.path()).ok();
    }
}
