//! `mcp-runner gc`: the crash sweep on demand (every `run` also does it).

use std::process::ExitCode;

use mcp_runner_policy::{HostMemory, ServerRequest};

use super::{Failure, OrExit, policy_source};
use crate::driver::{DriverKind, levels};
use crate::exit;
use crate::host::HostFacts;
use crate::state::StateDir;
use crate::state::sweep::{SweepAction, sweep};
use crate::tree::procfs::Procfs;

pub fn gc() -> Result<ExitCode, Failure> {
    let dir = StateDir::locate().or_exit(exit::RUNNER_FAILED)?;
    let facts = HostFacts::probe();
    let request = ServerRequest { name: None, argv: &[] };
    let memory = HostMemory { physical_bytes: facts.physical_memory };
    let budget = policy_source::load(&policy_source::locate(None))
        .ok()
        .and_then(|p| p.resolve(&request, &memory).ok())
        .map_or_else(|| mcp_runner_policy::builtin().resolve(&request, &memory), Ok)
        .or_exit(exit::RUNNER_FAILED)?;
    let levels_of = |kind| levels::for_kind(kind, &facts, &budget);
    let table = Procfs::snapshot();
    let actions = sweep(&dir, &table, &levels_of);
    for a in &actions {
        println!("{}", describe(a));
    }
    let mut orphans = 0;
    for kind in [DriverKind::Cgroupfs, DriverKind::Systemd] {
        let levels = levels_of(kind);
        let (leaves, killed) = levels.sweep_orphans();
        if leaves > 0 {
            let place = levels.global_place().map(|p| p.display().to_string()).unwrap_or_default();
            println!(
                "removed {leaves} leftover cgroup{} in {place} (killed {killed} processes)",
                if leaves == 1 { "" } else { "s" },
            );
        }
        orphans += leaves;
    }
    if actions.is_empty() && orphans == 0 {
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
