//! The crash sweep: finds records whose runner is gone and kills what its
//! tree left behind.
//!
//! A SIGKILLed runner's tree can outlive it: grandchildren reparented to
//! init, a leaf still populated. Which processes were its tree is the
//! business of the driver that built it ([`Levels::sweep_dead`]): the
//! members the record lists and the marker variable every server process
//! inherits on Linux, the leaf of the cgroupfs driver, the lineage on
//! macOS. They get SIGKILL without grace: their session is long gone.

use std::path::PathBuf;

use crate::driver::DriverKind;
use crate::driver::levels::Levels;
use crate::os::Procs;
use crate::state::StateDir;

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
pub fn sweep(dir: &StateDir, table: &Procs, levels: LevelsOf<'_>) -> Vec<SweepAction> {
    let mut actions = Vec::new();
    for (path, rec) in dir.records() {
        match rec {
            Ok(rec) if table.alive(rec.runner) => {}
            Ok(rec) => {
                let killed = levels(rec.driver).sweep_dead(&rec);
                dir.remove(rec.runner);
                actions.push(SweepAction::Swept { record: path, name: rec.name, runner_pid: rec.runner.pid, killed });
            }
            Err(e) => {
                dir.remove_garbage(&path);
                actions.push(SweepAction::RemovedGarbage { record: path, why: e.to_string() });
            }
        }
    }
    actions
}
