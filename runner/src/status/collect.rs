//! Gathering the figures. Reads only: status never changes anything.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use super::{Events, Global, Memory, SCHEMA_VERSION, Server, Session, Status};
use crate::driver::cgroupfs::fs::{CgroupDir, keyed};
use crate::driver::cgroupfs::{memory, pids};
use crate::state::RunnerRecord;
use crate::tree::procfs::Procfs;
use crate::tree::{self};

/// One server's figures from its cgroup (kernel drivers) or its tree.
pub fn server(rec: &RunnerRecord, table: &Procfs, now: u64) -> Server {
    let mut s = Server {
        name: rec.name.clone(),
        runner_pid: rec.runner.pid,
        server_pid: rec.server.map(|p| p.pid),
        uptime_seconds: now.saturating_sub(rec.started),
        driver: rec.driver.name().to_string(),
        enforcement: if rec.driver.is_kernel() { "kernel" } else { "userland" }.to_string(),
        command: rec.command.clone(),
        pids_max: rec.pids_max,
        memory: Memory { high: rec.memory_high, max: rec.memory_max, ..Memory::default() },
        ..Server::default()
    };
    match rec.stats_cgroup.as_ref().map(CgroupDir::new).filter(|d| d.exists()) {
        Some(cg) => {
            let n = |f: &str| cg.read_u64(f).ok().flatten();
            s.memory.current = n(memory::CURRENT).unwrap_or(0);
            s.memory.peak = n(memory::PEAK);
            s.memory.swap = n(memory::SWAP_CURRENT);
            s.memory.max = n(memory::MAX).or(s.memory.max);
            s.memory.high = n(memory::HIGH).or(s.memory.high);
            s.pids_max = n(pids::MAX).or(s.pids_max);
            s.tasks = n(pids::CURRENT);
            s.processes = cg.procs().map(|p| p.len() as u64).unwrap_or(0);
            let ev = memory::events(&cg).unwrap_or_default();
            s.events = Events {
                throttled: Some(ev.high),
                oom_kills: Some(ev.oom_kill),
                forks_refused: cg.read(pids::EVENTS).ok().and_then(|t| keyed(&t, "max")),
            };
            s.cgroup = Some(cg.path().display().to_string());
        }
        None => {
            let sample = tree::sample(table, rec.runner.pid);
            s.memory.current = sample.memory;
            s.processes = sample.processes;
            s.tasks = Some(sample.tasks);
        }
    }
    s
}

/// Everything: live records grouped by session, sessions and servers in a
/// stable order (by id, then by runner pid).
pub fn status(records: &[RunnerRecord], global: Global) -> Status {
    let table = Procfs::snapshot();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let mut by_session: BTreeMap<String, Vec<Server>> = BTreeMap::new();
    for rec in records {
        by_session.entry(rec.session.clone()).or_default().push(server(rec, &table, now));
    }
    let sessions: Vec<Session> = by_session
        .into_iter()
        .map(|(id, mut servers)| {
            servers.sort_by_key(|s| s.runner_pid);
            Session { memory_current: servers.iter().map(|s| s.memory.current).sum(), id, servers }
        })
        .collect();
    let global = Global {
        servers: records.len() as u64,
        sessions: sessions.len() as u64,
        memory_current: sessions.iter().map(|s| s.memory_current).sum(),
        ..global
    };
    Status { version: SCHEMA_VERSION, global, sessions }
}
