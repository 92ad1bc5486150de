//! The crash sweep: finds records whose runner is gone and kills what its
//! tree left behind.
//!
//! A SIGKILLed runner takes its direct child with it (parent-death signal),
//! but grandchildren are reparented to init and live on. The sweep finds
//! them two ways: the members the record lists (pid and start time must both
//! match, so a recycled pid is never hit) and the marker variable every
//! server process inherits (for processes born after the last sample). They
//! get SIGKILL without grace: their session is long gone.

use std::path::PathBuf;

use crate::driver::cgroupfs::fs::CgroupDir;
use crate::driver::cgroupfs::{hierarchy, wait_unpopulated};
use crate::state::{MARKER_VAR, RunnerRecord, StateDir, marker};
use crate::sys::Signal;
use crate::tree::kill::signal_exact;
use crate::tree::procfs::Procfs;

/// What the sweep did about one record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SweepAction {
    /// The runner was gone; `killed` processes of its tree were still alive.
    Swept { record: PathBuf, name: Option<String>, runner_pid: i32, killed: usize },
    /// The file was not a record; it was removed.
    RemovedGarbage { record: PathBuf, why: String },
}

/// Sweeps every dead runner's leftovers. Live runners are left alone.
pub fn sweep(dir: &StateDir, table: &Procfs) -> Vec<SweepAction> {
    let mut actions = Vec::new();
    for (path, rec) in dir.records() {
        match rec {
            Ok(rec) if table.alive(rec.runner) => {}
            Ok(rec) => {
                let killed = kill_leftovers(&rec, table);
                dir.remove(rec.runner);
                actions.push(SweepAction::Swept { record: path, name: rec.name, runner_pid: rec.runner.pid, killed });
            }
            Err(e) => {
                let _ = std::fs::remove_file(&path);
                actions.push(SweepAction::RemovedGarbage { record: path, why: e.to_string() });
            }
        }
    }
    actions
}

fn kill_leftovers(rec: &RunnerRecord, table: &Procfs) -> usize {
    let mut killed = 0;
    if let Some(path) = &rec.cgroup {
        killed += sweep_leaf(&CgroupDir::new(path));
    }
    killed + kill_marked(rec, table)
}

/// Kills everything in a dead runner's leaf and removes it (and its session
/// cgroup, if that is now empty).
pub fn sweep_leaf(leaf: &CgroupDir) -> usize {
    if !leaf.exists() {
        return 0;
    }
    let mut n = 0;
    // A directory without cgroup.procs is not (or no longer) a cgroup:
    // nothing to kill, only the directory to remove.
    if leaf.file("cgroup.procs").exists() {
        n = leaf.procs().map(|p| p.len()).unwrap_or(0);
        if let Err(e) = leaf.write("cgroup.kill", "1") {
            tracing::warn!("{e}");
        }
    }
    // A task leaves its cgroup when it exits, before its parent (not us)
    // reaps it: populated 0 means rmdir can succeed.
    wait_unpopulated(leaf, std::time::Duration::from_secs(5));
    if let Err(e) = leaf.remove() {
        tracing::warn!("{e}");
    }
    n
}

/// Leaves under the cgroupfs driver's global cgroup whose owner (named in
/// the leaf's name) is gone: a runner that died before it wrote its record
/// leaves no record to sweep by. Returns the leaves swept and the processes
/// killed; empty session cgroups are removed on the way.
pub fn sweep_orphan_leaves(global: &CgroupDir, table: &Procfs) -> (usize, usize) {
    let (mut leaves, mut killed) = (0, 0);
    for session in global.children() {
        let session = global.child(&session);
        for leaf in session.children() {
            let Some(owner) = hierarchy::leaf_owner(&leaf) else { continue };
            if !table.alive(owner) {
                killed += sweep_leaf(&session.child(&leaf));
                leaves += 1;
            }
        }
        // EBUSY while a live server uses it: fine.
        let _ = session.remove();
    }
    (leaves, killed)
}

fn kill_marked(rec: &RunnerRecord, table: &Procfs) -> usize {
    let entry = format!("{MARKER_VAR}={}", marker(rec.runner));
    let mut targets: Vec<_> = rec.members.iter().copied().chain(rec.server).collect();
    for pid in table.all_pids() {
        if table.environ_contains(pid, &entry)
            && let Some(id) = table.identity(pid)
        {
            targets.push(id);
        }
    }
    targets.sort_by_key(|id| (id.pid, id.start));
    targets.dedup();
    targets.into_iter().filter(|id| signal_exact(table, *id, Signal::SIGKILL)).count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::tests::{record, temp_state};
    use crate::tree::ProcessId;
    use std::process::Command;

    #[test]
    fn dead_runner_leftovers_are_killed_live_runner_untouched() {
        let d = temp_state("sweep");
        let table = Procfs::snapshot();
        // A leftover found through the record's member list.
        let mut by_member = Command::new("sleep").arg("60").spawn().expect("spawn");
        // A leftover found only through the marker variable.
        let dead_runner = ProcessId { pid: i32::MAX - 1, start: 1 };
        let mut by_marker =
            Command::new("sleep").arg("60").env(MARKER_VAR, marker(dead_runner)).spawn().expect("spawn");
        let member = table.identity(by_member.id() as i32).expect("alive");
        let mut dead = record(dead_runner.pid);
        dead.runner = dead_runner;
        dead.members = vec![member];
        d.write(&dead).expect("write");
        // This test process stands in for a live runner.
        let me = table.identity(std::process::id() as i32).expect("self");
        let mut live = record(me.pid);
        live.runner = me;
        d.write(&live).expect("write");

        // spawn() returns once the child is inside execve (vfork), before
        // the kernel has set the new environment's bounds: for a moment
        // /proc/PID/environ reads empty. There is no event for "exec is
        // complete", so wait for the marker to show, with a deadline.
        let entry = format!("{MARKER_VAR}={}", marker(dead_runner));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !table.environ_contains(by_marker.id() as i32, &entry) {
            assert!(std::time::Instant::now() < deadline, "marker never appeared in the child's environment");
            std::thread::sleep(std::time::Duration::from_millis(1));
        }

        let actions = sweep(&d, &table);
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(actions.len(), 1, "{actions:?}");
        assert!(matches!(actions[0], SweepAction::Swept { killed: 2, .. }), "{actions:?}");
        assert_eq!(by_member.wait().expect("wait").signal(), Some(9));
        assert_eq!(by_marker.wait().expect("wait").signal(), Some(9));
        let left: Vec<_> = d.records().into_iter().map(|(_, r)| r.expect("record").runner).collect();
        assert_eq!(left, vec![me]);
        std::fs::remove_dir_all(d.path()).ok();
    }

    #[test]
    fn orphan_leaves_of_dead_owners_are_removed() {
        // A directory tree shaped like the global cgroup (not a real cgroup:
        // rmdir works on plain empty directories too).
        let global = crate::driver::cgroupfs::fs::tests::fixture("orphans", &[]);
        let table = Procfs::snapshot();
        let me = table.identity(std::process::id() as i32).expect("self");
        let dead = ProcessId { pid: i32::MAX - 3, start: 9 };
        for (session, owner) in [("s-a", dead), ("s-b", me)] {
            std::fs::create_dir_all(global.path().join(session).join(hierarchy::leaf_name(Some("x"), owner)))
                .expect("mkdir");
        }
        let (leaves, killed) = sweep_orphan_leaves(&global, &table);
        assert_eq!((leaves, killed), (1, 0));
        assert!(!global.path().join("s-a").exists(), "empty session of the dead owner removed");
        assert!(global.path().join("s-b").join(hierarchy::leaf_name(Some("x"), me)).exists(), "live leaf kept");
        std::fs::remove_dir_all(global.path()).ok();
    }

    #[test]
    fn recycled_pid_is_not_killed() {
        let d = temp_state("recycled");
        let table = Procfs::snapshot();
        let mut innocent = Command::new("sleep").arg("60").spawn().expect("spawn");
        let real = table.identity(innocent.id() as i32).expect("alive");
        let mut dead = record(i32::MAX - 2);
        dead.runner = ProcessId { pid: i32::MAX - 2, start: 1 };
        // Same pid, other start time: a different process.
        dead.members = vec![ProcessId { pid: real.pid, start: real.start + 1 }];
        d.write(&dead).expect("write");
        let actions = sweep(&d, &table);
        assert!(matches!(actions[0], SweepAction::Swept { killed: 0, .. }), "{actions:?}");
        assert_eq!(innocent.try_wait().expect("try_wait"), None, "innocent process was killed");
        innocent.kill().ok();
        innocent.wait().ok();
        std::fs::remove_dir_all(d.path()).ok();
    }
}
