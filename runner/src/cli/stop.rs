//! `mcp-runner stop SESSION|SERVER`: SIGTERM to the matching runners, which
//! tear their servers down exactly as on a session close, then wait until
//! their records are gone.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::anyhow;

use super::{Failure, OrExit};
use crate::exit;
use crate::os::Procs;
use crate::os::signal_exact;
use crate::state::{RunnerRecord, StateDir};
use crate::status::render::shown;
use crate::sys::Signal;
use crate::tree::ProcessId;

/// Whether `target` names this runner's session, server name, runner pid
/// or server pid.
pub fn matches(rec: &RunnerRecord, target: &str) -> bool {
    let pid = target.parse::<i32>().ok();
    rec.session == target
        || rec.name.as_deref() == Some(target)
        || pid == Some(rec.runner.pid)
        || pid.is_some() && pid == rec.server.map(|s| s.pid)
}

pub fn stop(target: &str) -> Result<ExitCode, Failure> {
    let dir = StateDir::locate().or_exit(exit::RUNNER_FAILED)?;
    let chosen: Vec<RunnerRecord> = dir.live_records().into_iter().filter(|r| matches(r, target)).collect();
    // The relays of shared servers: stopping a session detaches its
    // clients; the shared server goes on for the others.
    let relays: Vec<(ProcessId, String)> = crate::pool::files::read_statuses(&dir)
        .iter()
        .flat_map(|p| p.instances.iter().flat_map(move |i| i.clients.iter().map(move |c| (p, c))))
        .filter(|(p, c)| c.session == target || target.parse() == Ok(c.runner.pid) || p.name.as_deref() == Some(target))
        .map(|(p, c)| {
            (c.runner, format!("{} client of session {}", p.name.as_deref().unwrap_or("shared server"), c.session))
        })
        .collect();
    if chosen.is_empty() && relays.is_empty() {
        return Err(anyhow!("no running session or server matches {target:?} (see `mcp-runner status`)"))
            .or_exit(exit::USAGE);
    }
    let table = Procs::snapshot();
    let relays: Vec<ProcessId> = relays
        .into_iter()
        .filter(|(runner, what)| {
            let signalled = signal_exact(&table, *runner, Signal::SIGTERM);
            if signalled {
                println!("detaching {} (runner {})", shown(what), runner.pid);
            }
            signalled
        })
        .map(|(runner, _)| runner)
        .collect();
    for r in &chosen {
        if signal_exact(&table, r.runner, Signal::SIGTERM) {
            println!(
                "stopping {} (runner {}, session {})",
                shown(r.name.as_deref().unwrap_or("server")),
                r.runner.pid,
                shown(&r.session)
            );
        }
    }
    // Each runner takes at most its kill_timeout after SIGTERM; its record
    // goes when its tree is gone. Poll the records: no event covers "the
    // runner of another user session finished".
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let table = Procs::snapshot();
        // A runner that exited but was not reaped yet (by its client) is a
        // zombie: gone for our purpose.
        let left = chosen.iter().filter(|r| table.alive(r.runner)).count()
            + relays.iter().filter(|r| table.alive(**r)).count();
        if left == 0 {
            if !relays.is_empty() {
                println!(
                    "detached {} client{} of shared servers",
                    relays.len(),
                    if relays.len() == 1 { "" } else { "s" }
                );
            }
            println!("stopped {} server{}", chosen.len(), if chosen.len() == 1 { "" } else { "s" });
            return Ok(ExitCode::SUCCESS);
        }
        if Instant::now() > deadline {
            return Err(anyhow!("{left} runner(s) still running after 60s")).or_exit(exit::RUNNER_FAILED);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::tests::record;
    use crate::tree::ProcessId;

    #[test]
    fn targets() {
        let mut r = record(100);
        r.session = "s1".into();
        r.server = Some(ProcessId { pid: 101, start: 1 });
        assert!(matches(&r, "s1"));
        assert!(matches(&r, "github"));
        assert!(matches(&r, "100"));
        assert!(matches(&r, "101"));
        assert!(!matches(&r, "102"));
        assert!(!matches(&r, "s2"));
    }
}
