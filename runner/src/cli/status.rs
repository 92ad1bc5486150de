//! `mcp-runner status [--json] [--watch]`.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use mcp_runner_policy::{HostMemory, ServerRequest};

use super::args::StatusArgs;
use super::{Failure, OrExit, policy_source};
use crate::admission::{live_records, measure};
use crate::driver::{IMPLEMENTED, select};
use crate::exit;
use crate::host::HostFacts;
use crate::state::StateDir;
use crate::status::{self, Global, render};

pub fn status(args: StatusArgs) -> Result<ExitCode, Failure> {
    let dir = StateDir::locate().or_exit(exit::RUNNER_FAILED)?;
    loop {
        let st = status::collect::status(&live_records(&dir), global_cap());
        let body = if args.json {
            serde_json::to_string_pretty(&st).or_exit(exit::RUNNER_FAILED)? + "\n"
        } else {
            render::text(&st)
        };
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

/// The global cap as the kernel holds it (the global cgroup's memory.max)
/// or, under userland, as the policy states it.
fn global_cap() -> Global {
    let facts = HostFacts::probe();
    let policy = policy_source::load(&policy_source::locate(None)).ok();
    let budget = policy.and_then(|p| {
        p.resolve(&ServerRequest { name: None, argv: &[] }, &HostMemory { physical_bytes: facts.physical_memory }).ok()
    });
    let Some(budget) = budget else { return Global::default() };
    let kind = select::select(&facts, budget.global.driver, IMPLEMENTED).map(|s| s.kind).ok();
    let dir = kind.and_then(|k| measure::global_dir(k, &facts, &budget)).filter(|d| d.is_dir());
    let kernel_max = dir.as_ref().and_then(|d| {
        crate::driver::cgroupfs::fs::CgroupDir::new(d).read_u64(crate::driver::cgroupfs::memory::MAX).ok().flatten()
    });
    Global {
        memory_max: kernel_max.or(budget.global.limits.memory_max),
        cgroup: dir.map(|d| d.display().to_string()),
        ..Global::default()
    }
}
