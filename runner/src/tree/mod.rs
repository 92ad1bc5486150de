//! The server's process tree, as seen from its lineage.
//!
//! The runner is a child subreaper, so every process the server ever creates
//! stays its descendant: a double-forked `setsid()` daemon is reparented to
//! the runner, not to init. The tree is therefore exactly "every descendant of
//! the runner", which a walk over child lists finds without scanning all of
//! `/proc`. The walk and the limit verdicts are platform-neutral and run
//! against the [`ProcessTable`] trait, so they are tested with a fake table.
//!
//! Without a subreaper (macOS) the tree is followed by lineage instead
//! ([`lineage`]): unique ids and parent unique ids that survive reparenting.

// The lineage tracker and the pressure mapping serve the macOS driver; they
// are compiled and unit-tested on every platform (the point of keeping them
// platform-neutral), so on Linux nothing but their tests calls them.
#[cfg_attr(not(target_os = "macos"), allow(dead_code))]
pub mod lineage;
#[cfg_attr(not(target_os = "macos"), allow(dead_code))]
pub mod pressure;
pub mod procfs;
pub mod verdict;

use std::collections::HashSet;

/// One process's identity: a pid is only meaningful together with its start
/// time, since pids are recycled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct ProcessId {
    pub pid: i32,
    /// Start time since boot, in clock ticks (`/proc/PID/stat` field 22).
    pub start: u64,
}

/// What the supervisor needs to know about one live process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessInfo {
    pub id: ProcessId,
    pub ppid: i32,
    /// Threads count against `pids_max`, as they do in the kernel's pids
    /// controller.
    pub threads: u64,
    pub zombie: bool,
}

/// Read access to the system's processes.
pub trait ProcessTable {
    /// Direct children of `pid` (all its threads' children). A process that
    /// vanished meanwhile has none.
    fn children(&self, pid: i32) -> Vec<i32>;
    /// Identity and state, `None` if the process is gone.
    fn info(&self, pid: i32) -> Option<ProcessInfo>;
    /// Memory charged to the process in bytes: proportional set size plus
    /// proportional swap, so shared pages are not counted once per process
    /// and swapped-out leaks are not hidden. `None` if unreadable or gone.
    fn memory(&self, pid: i32) -> Option<u64>;
}

/// Every live descendant of `root` (not `root` itself), parents first.
pub fn descendants(table: &dyn ProcessTable, root: i32) -> Vec<ProcessInfo> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    let mut queue = table.children(root);
    let mut next = 0;
    while next < queue.len() {
        let pid = queue[next];
        next += 1;
        // A pid can show up twice if it was reparented during the walk.
        if !seen.insert(pid) {
            continue;
        }
        if let Some(info) = table.info(pid) {
            queue.extend(table.children(pid));
            out.push(info);
        }
    }
    out
}

/// One measurement of the whole tree.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TreeSample {
    /// Live (non-zombie) processes.
    pub processes: u64,
    /// Tasks (threads), the unit of `pids_max`.
    pub tasks: u64,
    /// Sum of the members' memory in bytes.
    pub memory: u64,
    /// Members, for the crash-sweep record.
    pub members: Vec<ProcessId>,
}

/// Measures the tree below `root`.
pub fn sample(table: &dyn ProcessTable, root: i32) -> TreeSample {
    let mut s = TreeSample::default();
    for p in descendants(table, root) {
        s.members.push(p.id);
        if p.zombie {
            continue;
        }
        s.processes += 1;
        s.tasks += p.threads.max(1);
        s.memory += table.memory(p.id.pid).unwrap_or(0);
    }
    s
}

#[cfg(test)]
pub(crate) mod fake {
    //! A process table in memory, for the decision logic's tests.
    use super::*;
    use std::collections::HashMap;

    #[derive(Default)]
    pub struct FakeTable {
        pub procs: HashMap<i32, (ProcessInfo, u64)>,
    }

    impl FakeTable {
        pub fn add(&mut self, pid: i32, ppid: i32, threads: u64, memory: u64) -> &mut Self {
            let info = ProcessInfo { id: ProcessId { pid, start: pid as u64 * 10 }, ppid, threads, zombie: false };
            self.procs.insert(pid, (info, memory));
            self
        }
        pub fn zombify(&mut self, pid: i32) {
            if let Some((info, mem)) = self.procs.get_mut(&pid) {
                info.zombie = true;
                *mem = 0;
            }
        }
    }

    impl ProcessTable for FakeTable {
        fn children(&self, pid: i32) -> Vec<i32> {
            let mut c: Vec<i32> = self.procs.values().filter(|(i, _)| i.ppid == pid).map(|(i, _)| i.id.pid).collect();
            c.sort();
            c
        }
        fn info(&self, pid: i32) -> Option<ProcessInfo> {
            self.procs.get(&pid).map(|(i, _)| i.clone())
        }
        fn memory(&self, pid: i32) -> Option<u64> {
            self.procs.get(&pid).map(|(_, m)| *m)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fake::FakeTable;
    use super::*;

    #[test]
    fn walk_finds_reparented_daemons_and_grandchildren() {
        let mut t = FakeTable::default();
        // runner 1 -> server 10 -> worker 11 -> helper 12; daemon 20 was
        // double-forked and reparented to the runner (subreaper).
        t.add(10, 1, 4, 100).add(11, 10, 1, 50).add(12, 11, 1, 5);
        t.add(20, 1, 1, 7).add(99, 2, 1, 1000); // 99: not ours
        let pids: Vec<i32> = descendants(&t, 1).iter().map(|p| p.id.pid).collect();
        assert_eq!(pids, vec![10, 20, 11, 12]);
    }

    #[test]
    fn sample_counts_threads_and_skips_zombie_memory() {
        let mut t = FakeTable::default();
        t.add(10, 1, 4, 100).add(11, 10, 2, 50).add(12, 10, 1, 9);
        t.zombify(12);
        let s = sample(&t, 1);
        assert_eq!(s.processes, 2);
        assert_eq!(s.tasks, 6);
        assert_eq!(s.memory, 150);
        assert_eq!(s.members.len(), 3, "zombies are still members until reaped");
    }

    #[test]
    fn empty_tree() {
        let t = FakeTable::default();
        assert_eq!(sample(&t, 1), TreeSample::default());
    }
}
