//! The human form of `status`.

use std::fmt::Write as _;

use mcp_runner_policy::format_bytes;

use super::Status;

fn opt_bytes(v: Option<u64>) -> String {
    v.map_or_else(|| "-".to_string(), format_bytes)
}

fn opt(v: Option<u64>) -> String {
    v.map_or_else(|| "-".to_string(), |n| n.to_string())
}

fn uptime(s: u64) -> String {
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

pub fn text(st: &Status) -> String {
    let mut out = String::new();
    let g = &st.global;
    let _ = writeln!(
        out,
        "{} server{} in {} session{}, memory {} of {}{}",
        g.servers,
        if g.servers == 1 { "" } else { "s" },
        g.sessions,
        if g.sessions == 1 { "" } else { "s" },
        format_bytes(g.memory_current),
        opt_bytes(g.memory_max),
        g.cgroup.as_deref().map(|c| format!(" ({c})")).unwrap_or_default()
    );
    for session in &st.sessions {
        let _ = writeln!(out, "\nsession {}  memory {}", session.id, format_bytes(session.memory_current));
        let _ = writeln!(
            out,
            "  {:<16} {:>7} {:>8} {:>10} {:>10} {:>10} {:>8} {:>6} {:>9} {:>5} {:<9} command",
            "name", "pid", "uptime", "memory", "peak", "max", "swap", "procs", "tasks/max", "oom", "driver"
        );
        for s in &session.servers {
            let _ = writeln!(
                out,
                "  {:<16} {:>7} {:>8} {:>10} {:>10} {:>10} {:>8} {:>6} {:>9} {:>5} {:<9} {}",
                s.name.as_deref().unwrap_or("-"),
                s.server_pid.map_or_else(|| "-".to_string(), |p| p.to_string()),
                uptime(s.uptime_seconds),
                format_bytes(s.memory.current),
                opt_bytes(s.memory.peak),
                opt_bytes(s.memory.max),
                opt_bytes(s.memory.swap),
                s.processes,
                format!("{}/{}", opt(s.tasks), opt(s.pids_max)),
                opt(s.events.oom_kills),
                s.driver,
                s.command.join(" ")
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::{Global, Server, Session};

    #[test]
    fn renders_sessions_and_totals() {
        let st = Status {
            version: 1,
            global: Global {
                servers: 1,
                sessions: 1,
                memory_current: 150 << 20,
                memory_max: Some(8 << 30),
                cgroup: None,
            },
            sessions: vec![Session {
                id: "client-1".into(),
                memory_current: 150 << 20,
                servers: vec![Server {
                    name: Some("github".into()),
                    server_pid: Some(42),
                    uptime_seconds: 3725,
                    driver: "userland".into(),
                    command: vec!["npx".into(), "server-github".into()],
                    processes: 3,
                    ..Server::default()
                }],
            }],
        };
        let t = text(&st);
        assert!(t.starts_with("1 server in 1 session, memory 150 MiB of 8.0 GiB\n"), "{t}");
        assert!(t.contains("github"), "{t}");
        assert!(t.contains("1h02m"), "{t}");
        assert!(t.contains("npx server-github"), "{t}");
    }
}
