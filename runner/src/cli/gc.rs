//! `mcp-runner gc`: the crash sweep on demand (every `run` also does it).

use std::process::ExitCode;

use super::{Failure, OrExit};
use crate::exit;
use crate::state::StateDir;
use crate::state::sweep::{SweepAction, sweep};
use crate::tree::procfs::Procfs;

pub fn gc() -> Result<ExitCode, Failure> {
    let dir = StateDir::locate().or_exit(exit::RUNNER_FAILED)?;
    let actions = sweep(&dir, &Procfs::snapshot());
    for a in &actions {
        println!("{}", describe(a));
    }
    if actions.is_empty() {
        println!("nothing to clean up in {}", dir.path().display());
    }
    Ok(ExitCode::SUCCESS)
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
