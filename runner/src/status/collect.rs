//! Gathering the figures. Reads only: status never changes anything.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use super::{Events, Global, Memory, SCHEMA_VERSION, Server, Session, Shared, SharedClient, Status};
use crate::driver::DriverKind;
use crate::driver::levels::{Figures, Levels};
use crate::pool::files::PoolStatus;
use crate::state::RunnerRecord;

/// One server's line: the record's facts and its driver's figures.
pub fn server(rec: &RunnerRecord, figures: Figures, now: u64) -> Server {
    Server {
        name: rec.name.clone(),
        runner_pid: rec.runner.pid,
        server_pid: rec.server.map(|p| p.pid),
        uptime_seconds: now.saturating_sub(rec.started),
        driver: rec.driver.name().to_string(),
        enforcement: if rec.driver.is_kernel() { "kernel" } else { "userland" }.to_string(),
        command: rec.command.clone(),
        memory: Memory {
            current: figures.memory_current,
            peak: figures.memory_peak,
            swap: figures.swap,
            high: figures.memory_high.or(rec.memory_high),
            max: figures.memory_max.or(rec.memory_max),
        },
        processes: figures.processes,
        tasks: figures.tasks,
        pids_max: figures.pids_max.or(rec.pids_max),
        events: Events {
            throttled: figures.throttled,
            oom_kills: figures.oom_kills,
            forks_refused: figures.forks_refused,
        },
        cgroup: figures.place,
        shared: None,
    }
}

/// The clients of a shared server, from its pool host's status: the
/// instance whose runner is this record's.
fn shared(rec: &RunnerRecord, pools: &[PoolStatus], now: u64) -> Option<Shared> {
    rec.pool.as_ref()?;
    pools.iter().find_map(|p| {
        let inst = p.instances.iter().find(|i| i.runner == Some(rec.runner))?;
        Some(Shared {
            pool: p.pool.clone(),
            clients: inst
                .clients
                .iter()
                .map(|c| SharedClient { session: c.session.clone(), runner_pid: c.runner.pid, since: c.since })
                .collect(),
            idle_seconds: inst.idle_since.map(|t| now.saturating_sub(t)),
        })
    })
}

/// Everything: live records grouped by session, sessions and servers in a
/// stable order (by id, then by runner pid).
pub fn status(
    records: &[RunnerRecord],
    pools: &[PoolStatus],
    global: Global,
    levels: &dyn Fn(DriverKind) -> Box<dyn Levels>,
) -> Status {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let mut by_session: BTreeMap<String, Vec<Server>> = BTreeMap::new();
    for rec in records {
        let mut line = server(rec, levels(rec.driver).figures(rec), now);
        line.shared = shared(rec, pools, now);
        by_session.entry(rec.session.clone()).or_default().push(line);
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
