//! `mcp-runner gc`: the crash sweep on demand (every `run` also does it).

use std::process::ExitCode;

use super::args::GcArgs;
use super::{Failure, OrExit, policy_source};
use crate::admission::shares;
use crate::driver::{DriverKind, levels};
use crate::exit;
use crate::host::HostFacts;
use crate::os;
use crate::os::Procs;
use crate::state::StateDir;
use crate::state::sweep::{SweepAction, sweep};
use crate::status::render::shown;

pub fn gc(args: GcArgs) -> Result<ExitCode, Failure> {
    if let Some(fd) = args.after_eof {
        if args.detach {
            os::detach_guard(fd).or_exit(exit::RUNNER_FAILED)?;
            return Ok(ExitCode::SUCCESS);
        }
        wait_for_eof(fd);
    }
    let dir = StateDir::locate().or_exit(exit::RUNNER_FAILED)?;
    let facts = HostFacts::probe();
    let budget = policy_source::levels_budget(facts.physical_memory).or_exit(exit::RUNNER_FAILED)?;
    let levels_of = |kind| levels::for_kind(kind, &facts, &budget);
    let table = Procs::snapshot();
    let dead = dead_sessions(&dir, &table);
    let actions = sweep(&dir, &table, &levels_of);
    for a in &actions {
        println!("{}", describe(a));
    }
    // A runner that died after its start rebalanced the session shares
    // still counts in them: give its share back to the live sessions, and
    // release its session if nothing of it runs any more.
    for (kind, session) in &dead {
        shares::rebalance(&dir, &*levels_of(*kind), &budget, Some(session));
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
    let pools = crate::pool::files::remove_dead(&dir);
    for id in &pools {
        println!("removed the files of pool {id} (its host was gone)");
    }
    if actions.is_empty() && orphans == 0 && pools.is_empty() {
        println!("nothing to clean up in {}", dir.path().display());
    }
    Ok(ExitCode::SUCCESS)
}

/// The (driver, session) pairs of the records whose runner is gone, before
/// the sweep removes them.
fn dead_sessions(dir: &StateDir, table: &Procs) -> Vec<(DriverKind, String)> {
    let mut dead = Vec::new();
    for rec in dir.records().into_iter().filter_map(|(_, rec)| rec.ok()) {
        let pair = (rec.driver, rec.session);
        if !table.alive(rec.runner) && !dead.contains(&pair) {
            dead.push(pair);
        }
    }
    dead
}

pub fn describe(a: &SweepAction) -> String {
    match a {
        SweepAction::Swept { name, runner_pid, killed, .. } => format!(
            "runner {runner_pid}{} was gone: killed {killed} leftover process{}",
            name.as_deref().map(|n| format!(" ({})", shown(n))).unwrap_or_default(),
            if *killed == 1 { "" } else { "es" }
        ),
        SweepAction::RemovedGarbage { record, why } => {
            format!("removed {}: {}", shown(&record.display().to_string()), shown(why))
        }
    }
}

/// Blocks until every writer of `fd` is gone (the runner exited). The
/// descriptor is reached through `/dev/fd`, which gives a descriptor of the
/// same pipe without claiming ownership of a raw number.
fn wait_for_eof(fd: i32) {
    let Ok(mut file) = std::fs::File::open(format!("/dev/fd/{fd}")) else { return };
    let mut buf = [0u8; 64];
    while let Ok(n) = std::io::Read::read(&mut file, &mut buf) {
        if n == 0 {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_9_describe_shows_record_strings_escaped() {
        // See: issue 9, finding 8
        let swept = SweepAction::Swept {
            record: "/run/mcp-runner/runner-1.json".into(),
            name: Some("\u{1b}[2Jx".into()),
            runner_pid: 1,
            killed: 1,
        };
        assert_eq!(describe(&swept), "runner 1 (\\x1b[2Jx) was gone: killed 1 leftover process");
        let garbage = SweepAction::RemovedGarbage { record: "/s/\u{9b}x".into(), why: "bad \u{7}".into() };
        assert_eq!(describe(&garbage), "removed /s/\\u{9b}x: bad \\x07");
    }
}
