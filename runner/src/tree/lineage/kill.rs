//! Taking the tree down without a cgroup: stop everything, then kill
//! everything, as a step machine the caller drives.
//!
//! There is no freezer and no `cgroup.kill` to make this atomic, so the
//! plan follows research §3.3 step 5 (crun freezes before it kills, for the
//! same reason):
//!
//! 1. Stop passes: rescan, SIGSTOP every live member not yet stopped. A
//!    stopped process cannot fork, so a pass can only find children forked
//!    before their parent stopped; once a pass stops nothing new, the tree
//!    is frozen.
//! 2. Group belt: one signal to the server's process group, handed to the
//!    caller as [`Step::SignalGroup`] (killpg). It reaches group members the
//!    tracker never saw. It is sent only while a member holds the group id
//!    (stopped members pin it), so a stranger that got the old leader's pid
//!    is never hit.
//! 3. Signal passes: rescan, send the plan's signal to every live member not
//!    yet sent it. SIGKILL needs no SIGCONT (it ends stopped processes too)
//!    and the passes repeat until a rescan finds no live member. SIGTERM is
//!    followed by SIGCONT to the members this plan stopped: a stopped
//!    process acts on a pending SIGTERM only once continued, and sending
//!    TERM first means it is already pending when the process resumes. A
//!    SIGTERM plan ends once every live member has been asked; the caller's
//!    next stage is a SIGKILL plan after `kill_timeout`.
//!
//! Pass counts are bounded ([`Bounds`]) and reported. A member that exits
//! between the listing and its signal is [`SignalError::Gone`]: counted,
//! never an error, and never confused with whoever takes its pid. The
//! caller paces the passes: the real driver waits for NOTE_EXIT or a few
//! milliseconds, the scenarios tick a fake clock.

use std::collections::BTreeSet;

use super::{Identity, Lineage, LineageOs, Signal, SignalError, Signaller};

/// How many passes each phase may take before the plan gives up and
/// reports what is left.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bounds {
    pub stop_passes: u32,
    pub signal_passes: u32,
}

impl Default for Bounds {
    /// A stop pass can only find what forked before its parent stopped, so
    /// a real tree freezes in a few; SIGKILL passes also wait for the
    /// killed to die, so they get more room.
    fn default() -> Bounds {
        Bounds { stop_passes: 16, signal_passes: 200 }
    }
}

/// What the caller does next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Pace, then call [`KillPlan::step`] again.
    Continue,
    /// Send `signal` to the process group `pgid`, then step again.
    SignalGroup {
        pgid: i32,
        signal: Signal,
    },
    Done(KillReport),
}

/// What the plan did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KillReport {
    /// SIGKILL or SIGTERM.
    pub signal: Signal,
    pub stop_passes: u32,
    pub signal_passes: u32,
    pub stopped: Vec<Identity>,
    pub signalled: Vec<Identity>,
    /// The process group the belt signal went to.
    pub group: Option<i32>,
    /// Exited between listing and signalling.
    pub gone: Vec<Identity>,
    /// Refused the signal.
    pub denied: Vec<(Identity, String)>,
    /// The last stop pass stopped nothing new; `false` if the bound ended
    /// the stop phase first.
    pub froze: bool,
    /// SIGKILL: the last rescan found no live member. SIGTERM: every live
    /// member was asked. `false` if a bound ended the plan first or a
    /// member refused.
    pub complete: bool,
    /// Live members at the end.
    pub survivors: Vec<Identity>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Stop,
    Group,
    GroupCont(i32),
    Signal,
    Done,
}

/// The stop-then-signal plan for one tree.
#[derive(Clone, Debug)]
pub struct KillPlan {
    bounds: Bounds,
    phase: Phase,
    stopped: BTreeSet<Identity>,
    sent: BTreeSet<Identity>,
    refused: BTreeSet<Identity>,
    report: KillReport,
}

impl KillPlan {
    /// Stop, then SIGKILL until the tree is empty.
    pub fn kill(bounds: Bounds) -> KillPlan {
        KillPlan::with(Signal::Kill, bounds)
    }

    /// Stop, then SIGTERM and SIGCONT every member once.
    pub fn terminate(bounds: Bounds) -> KillPlan {
        KillPlan::with(Signal::Term, bounds)
    }

    fn with(signal: Signal, bounds: Bounds) -> KillPlan {
        let report = KillReport {
            signal,
            stop_passes: 0,
            signal_passes: 0,
            stopped: Vec::new(),
            signalled: Vec::new(),
            group: None,
            gone: Vec::new(),
            denied: Vec::new(),
            froze: false,
            complete: false,
            survivors: Vec::new(),
        };
        KillPlan {
            bounds,
            phase: Phase::Stop,
            stopped: BTreeSet::new(),
            sent: BTreeSet::new(),
            refused: BTreeSet::new(),
            report,
        }
    }

    /// Runs one pass (or hands out one group signal).
    pub fn step(&mut self, os: &dyn LineageOs, lineage: &mut Lineage, signaller: &dyn Signaller) -> Step {
        loop {
            match self.phase {
                Phase::Stop if self.report.stop_passes >= self.bounds.stop_passes => self.phase = Phase::Group,
                Phase::Stop => {
                    lineage.rescan(os);
                    self.report.stop_passes += 1;
                    let fresh = self.unsent(lineage, &self.stopped);
                    if fresh.is_empty() {
                        self.report.froze = true;
                        self.phase = Phase::Group;
                        continue;
                    }
                    for id in fresh {
                        if self.send(signaller, id, Signal::Stop) {
                            self.stopped.insert(id);
                            self.report.stopped.push(id);
                        }
                    }
                    return Step::Continue;
                }
                Phase::Group => {
                    self.phase = Phase::Signal;
                    if let Some(pgid) = lineage.group().filter(|_| lineage.holds_group()) {
                        self.report.group = Some(pgid);
                        if self.report.signal == Signal::Term {
                            self.phase = Phase::GroupCont(pgid);
                        }
                        return Step::SignalGroup { pgid, signal: self.report.signal };
                    }
                }
                Phase::GroupCont(pgid) => {
                    self.phase = Phase::Signal;
                    return Step::SignalGroup { pgid, signal: Signal::Cont };
                }
                Phase::Signal if self.report.signal_passes >= self.bounds.signal_passes => {
                    // One more look, so the survivors are not the last
                    // pass's victims.
                    lineage.rescan(os);
                    return self.finish(lineage, false);
                }
                Phase::Signal => {
                    lineage.rescan(os);
                    self.report.signal_passes += 1;
                    let fresh = self.unsent(lineage, &self.sent);
                    let waiting = lineage.live().iter().any(|id| !self.refused.contains(id));
                    let done = match self.report.signal {
                        Signal::Kill => !waiting,
                        _ => fresh.is_empty(),
                    };
                    if done {
                        return self.finish(lineage, true);
                    }
                    for id in fresh {
                        if self.send(signaller, id, self.report.signal) {
                            self.sent.insert(id);
                            self.report.signalled.push(id);
                            if self.report.signal == Signal::Term && self.stopped.contains(&id) {
                                self.send(signaller, id, Signal::Cont);
                            }
                        }
                    }
                    return Step::Continue;
                }
                Phase::Done => return Step::Done(self.report.clone()),
            }
        }
    }

    /// Drives the plan to its end. `group` sends a group signal (killpg);
    /// `pace` runs between passes.
    pub fn run(
        mut self,
        os: &dyn LineageOs,
        lineage: &mut Lineage,
        signaller: &dyn Signaller,
        mut group: impl FnMut(i32, Signal),
        mut pace: impl FnMut(),
    ) -> KillReport {
        loop {
            match self.step(os, lineage, signaller) {
                Step::Continue => pace(),
                Step::SignalGroup { pgid, signal } => group(pgid, signal),
                Step::Done(report) => return report,
            }
        }
    }

    /// Live members not in `done` that have not refused a signal.
    fn unsent(&self, lineage: &Lineage, done: &BTreeSet<Identity>) -> Vec<Identity> {
        lineage.live().into_iter().filter(|id| !done.contains(id) && !self.refused.contains(id)).collect()
    }

    fn send(&mut self, signaller: &dyn Signaller, id: Identity, signal: Signal) -> bool {
        match signaller.signal(id, signal) {
            Ok(()) => true,
            Err(SignalError::Gone) => {
                if !self.report.gone.contains(&id) {
                    self.report.gone.push(id);
                }
                false
            }
            Err(SignalError::Denied(why)) => {
                self.refused.insert(id);
                self.report.denied.push((id, format!("{signal}: {why}")));
                false
            }
        }
    }

    fn finish(&mut self, lineage: &Lineage, ended: bool) -> Step {
        self.phase = Phase::Done;
        self.report.survivors = lineage.live();
        let refused_alive = self.report.survivors.iter().any(|id| self.refused.contains(id));
        self.report.complete = ended
            && !refused_alive
            && match self.report.signal {
                Signal::Kill => self.report.survivors.is_empty(),
                _ => true,
            };
        Step::Done(self.report.clone())
    }
}

#[cfg(test)]
#[path = "kill_tests.rs"]
mod tests;
