//! The tree's memory: the members' summed footprint, judged by the same
//! [`Judge`] as the Linux userland driver's samples.
//!
//! On macOS this poll is the only limit on everything but the spawned image
//! (see [`super::jetsam`]), so how far a fast allocator gets between two
//! polls is the overshoot a user sees: the breach reports the sum measured
//! at the poll that caught it, not the limit.

use std::time::Duration;

use super::{Lineage, LineageOs};
use crate::tree::TreeSample;
use crate::tree::verdict::{Judge, TreeLimits, Verdict};

/// One poll's result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Poll {
    pub sample: TreeSample,
    pub verdict: Verdict,
    /// The highest summed footprint of any poll so far.
    pub peak: u64,
    /// The live members' lifetime maxima, summed: what each held at its
    /// worst, not necessarily at the same time. A spike that came and went
    /// between two polls shows here and nowhere else.
    pub members_lifetime_max: u64,
}

/// Polls the tree's footprint and remembers the peak.
#[derive(Debug)]
pub struct Accounting {
    judge: Judge,
    peak: u64,
}

impl Accounting {
    pub fn new(limits: TreeLimits) -> Accounting {
        Accounting { judge: Judge::new(limits), peak: 0 }
    }

    pub fn limits(&self) -> &TreeLimits {
        self.judge.limits()
    }

    pub fn peak(&self) -> u64 {
        self.peak
    }

    /// Reads the live members' footprints (rescan first: this counts the
    /// members the tracker knows) and judges the sum at `now`.
    pub fn poll(&mut self, os: &dyn LineageOs, lineage: &Lineage, now: Duration) -> Poll {
        let (sample, members_lifetime_max) = sample(os, lineage);
        self.peak = self.peak.max(sample.memory);
        let verdict = self.judge.judge(&sample, now);
        Poll { sample, verdict, peak: self.peak, members_lifetime_max }
    }
}

/// Measures the tree, and sums the members' lifetime maxima.
///
/// Processes and tasks come from the latest rescan, memory from footprints
/// read now; a member that vanished since the rescan counts no memory.
/// Zombies count nothing. `members` stays empty: [`crate::tree::ProcessId`]
/// carries a Linux start time, and a lineage is recorded by unique id
/// ([`Lineage::record`]).
pub fn sample(os: &dyn LineageOs, lineage: &Lineage) -> (TreeSample, u64) {
    let mut s = TreeSample::default();
    let mut lifetime_max = 0;
    for m in lineage.members().filter(|m| !m.entry.zombie) {
        s.processes += 1;
        s.tasks += m.entry.threads.max(1);
        if let Some(f) = os.footprint(m.entry.id) {
            s.memory += f.current;
            lifetime_max += f.lifetime_max;
        }
    }
    (s, lifetime_max)
}

#[cfg(test)]
mod tests {
    use super::super::fake::{FakeOs, MIB};
    use super::*;

    #[test]
    fn sums_footprints_of_live_members_only() {
        let os = FakeOs::new();
        let (server, worker, gone) = {
            let mut w = os.world();
            let server = w.spawn_server(None);
            let worker = w.fork(server.pid).expect("fork");
            let gone = w.fork(server.pid).expect("fork");
            w.spawn_stranger(None, 1);
            w.set_footprint(server.pid, 30 * MIB);
            w.set_footprint(worker.pid, 50 * MIB);
            w.get_mut(worker.pid).threads = 4;
            (server, worker, gone)
        };
        let mut lineage = Lineage::new(server, Some(server.pid));
        lineage.rescan(&os);
        {
            let mut w = os.world();
            w.set_footprint(worker.pid, 20 * MIB);
            // Exited after the rescan: still counted as a process, no memory.
            w.exit(gone.pid);
        }
        let (s, lifetime) = sample(&os, &lineage);
        assert_eq!((s.processes, s.tasks, s.memory), (3, 6, 50 * MIB));
        assert_eq!(lifetime, 80 * MIB, "the worker's 50 MiB peak shows although it is down to 20");
        os.world().zombify(worker.pid);
        lineage.rescan(&os);
        let (s, _) = sample(&os, &lineage);
        assert_eq!((s.processes, s.memory), (1, 30 * MIB), "zombies count nothing");
    }

    #[test]
    fn peak_is_the_highest_sum_of_any_poll() {
        let os = FakeOs::new();
        let server = os.world().spawn_server(None);
        let mut lineage = Lineage::new(server, Some(server.pid));
        lineage.rescan(&os);
        let mut acc = Accounting::new(TreeLimits::default());
        for (i, mib) in [10, 70, 40].into_iter().enumerate() {
            os.world().set_footprint(server.pid, mib * MIB);
            let poll = acc.poll(&os, &lineage, Duration::from_secs(i as u64));
            assert_eq!(poll.verdict, Verdict::Within);
            assert_eq!(poll.sample.memory, mib * MIB);
        }
        assert_eq!(acc.peak(), 70 * MIB);
    }
}
