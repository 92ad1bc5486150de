//! `mcp-runner gc`: the crash sweep on demand (every `run` also does it).

use std::process::ExitCode;

use super::{Failure, OrExit};
use crate::driver::cgroupfs::root;
use crate::driver::select;
use crate::exit;
use crate::host::HostFacts;
use crate::state::StateDir;
use crate::state::sweep::{SweepAction, sweep, sweep_orphan_leaves};
use crate::tree::procfs::Procfs;

pub fn gc() -> Result<ExitCode, Failure> {
    let dir = StateDir::locate().or_exit(exit::RUNNER_FAILED)?;
    let table = Procfs::snapshot();
    let actions = sweep(&dir, &table);
    for a in &actions {
        println!("{}", describe(a));
    }
    let orphans = sweep_orphans(&table);
    if actions.is_empty() && orphans == 0 {
        println!("nothing to clean up in {}", dir.path().display());
    }
    Ok(ExitCode::SUCCESS)
}

/// Leaves of the cgroupfs driver whose runner is gone without a record.
/// Returns how many were removed.
pub fn sweep_orphans(table: &Procfs) -> usize {
    let facts = HostFacts::probe();
    if select::cgroupfs_unusable(&facts).is_some() {
        return 0;
    }
    let Ok((_, global)) = root::locate(&facts, None) else { return 0 };
    let (leaves, killed) = sweep_orphan_leaves(&global, table);
    if leaves > 0 {
        println!(
            "removed {leaves} leftover cgroup{} in {} (killed {killed} processes)",
            if leaves == 1 { "" } else { "s" },
            global.path().display()
        );
    }
    leaves
}

pub fn describe(a: &SweepAction) -> String {
    match a {
        SweepAction::Swept { name, runner_pid, killed, .. } => format!(
            "runner {runner_pid}{} was gone: killed {killed} leftover process{}",
            name.as_deref().map(|n| format!(" ({n})")).unwrap_or_default(),
            if *killed == 1 { "" } else { "es" }
        ),
        SweepAction::RemovedGarbage { record, why } => format!("removed {}: {why}", record.display()),
    }
}
