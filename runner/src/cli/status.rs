//! `mcp-runner status [--json] [--watch]`.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use mcp_runner_policy::Effective;

use super::args::StatusArgs;
use super::{Failure, OrExit, policy_source};
use crate::driver::{IMPLEMENTED, levels, select};
use crate::exit;
use crate::host::HostFacts;
use crate::state::StateDir;
use crate::status::{self, Global, render};

pub fn status(args: StatusArgs) -> Result<ExitCode, Failure> {
    let dir = StateDir::locate().or_exit(exit::RUNNER_FAILED)?;
    let facts = HostFacts::probe();
    let budget = policy_source::levels_budget(facts.physical_memory).or_exit(exit::RUNNER_FAILED)?;
    let levels_of = |kind| levels::for_kind(kind, &facts, &budget);
    loop {
        let pools = crate::pool::files::read_statuses(&dir);
        let st = status::collect::status(&dir.live_records(), &pools, global_cap(&facts, &budget), &levels_of);
        let body = if args.json { status::json(&st).or_exit(exit::RUNNER_FAILED)? + "\n" } else { render::text(&st) };
        let mut out = std::io::stdout().lock();
        // --watch redraws in place: home the cursor, clear the screen.
        let clear = if args.watch { "\x1b[H\x1b[2J" } else { "" };
        if write!(out, "{clear}{body}").and_then(|_| out.flush()).is_err() {
            // A closed pipe (`status | head`) is not an error.
            return Ok(ExitCode::SUCCESS);
        }
        if !args.watch {
            return Ok(ExitCode::SUCCESS);
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// The global cap as the driver holds it (the global cgroup's memory.max)
/// or, under userland, as the policy states it.
fn global_cap(facts: &HostFacts, budget: &Effective) -> Global {
    let kind = select::select(facts, budget.global.driver, IMPLEMENTED).map(|s| s.kind).ok();
    let levels = kind.map(|k| levels::for_kind(k, facts, budget));
    let place = levels.as_ref().and_then(|l| l.global_place()).filter(|d| d.is_dir());
    let kernel_max = place.as_ref().and(levels.as_ref()).and_then(|l| l.global_memory_max());
    Global {
        memory_max: kernel_max.or(budget.global.limits.memory_max),
        cgroup: place.map(|d| d.display().to_string()),
        ..Global::default()
    }
}
