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

use crate::driver::DriverKind;
use crate::driver::levels::Levels;
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

/// The levels of a record's driver: a dead runner's placement is undone by
/// the driver that made it.
pub type LevelsOf<'a> = &'a dyn Fn(DriverKind) -> Box<dyn Levels>;

/// Sweeps every dead runner's leftovers. Live runners are left alone.
pub fn sweep(dir: &StateDir, table: &Procfs, levels: LevelsOf<'_>) -> Vec<SweepAction> {
    let mut actions = Vec::new();
    for (path, rec) in dir.records() {
        match rec {
            Ok(rec) if table.alive(rec.runner) => {}
            Ok(rec) => {
                let killed = levels(rec.driver).sweep_dead(&rec) + kill_marked(&rec, table);
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

    fn no_levels(_: DriverKind) -> Box<dyn Levels> {
        Box::new(crate::driver::userland::levels::MachineLevels::new())
    }

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

        let actions = sweep(&d, &table, &no_levels);
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
        let actions = sweep(&d, &table, &no_levels);
        assert!(matches!(actions[0], SweepAction::Swept { killed: 0, .. }), "{actions:?}");
        assert_eq!(innocent.try_wait().expect("try_wait"), None, "innocent process was killed");
        innocent.kill().ok();
        innocent.wait().ok();
        std::fs::remove_dir_all(d.path()).ok();
    }
}
