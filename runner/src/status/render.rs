//! The human form of `status`.
//!
//! Every string comes from a runner record, and much of it from whoever
//! wrote the client's config (a project's `.mcp.json` chooses session ids,
//! names and commands): each goes through [`shown`], so none can reach the
//! terminal as a control sequence.

use std::borrow::Cow;
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

/// `text` made safe to print on a terminal: C0 controls and DEL as `\x1b`,
/// C1 controls (which terminals also obey, e.g. U+009B as CSI) as
/// `\u{9b}`. Everything else, backslashes included, is shown as it is:
/// this is for reading, not for parsing back.
pub fn shown(text: &str) -> Cow<'_, str> {
    let control = |c: char| matches!(c, '\0'..='\u{1f}' | '\u{7f}'..='\u{9f}');
    if !text.chars().any(control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\0'..='\u{1f}' | '\u{7f}' => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            '\u{80}'..='\u{9f}' => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
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
        g.cgroup.as_deref().map(|c| format!(" ({})", shown(c))).unwrap_or_default()
    );
    for session in &st.sessions {
        let _ = writeln!(out, "\nsession {}  memory {}", shown(&session.id), format_bytes(session.memory_current));
        let _ = writeln!(
            out,
            "  {:<16} {:>7} {:>8} {:>10} {:>10} {:>10} {:>8} {:>6} {:>9} {:>5} {:<9} command",
            "name", "pid", "uptime", "memory", "peak", "max", "swap", "procs", "tasks/max", "oom", "driver"
        );
        for s in &session.servers {
            let _ = writeln!(
                out,
                "  {:<16} {:>7} {:>8} {:>10} {:>10} {:>10} {:>8} {:>6} {:>9} {:>5} {:<9} {}",
                shown(s.name.as_deref().unwrap_or("-")),
                s.server_pid.map_or_else(|| "-".to_string(), |p| p.to_string()),
                uptime(s.uptime_seconds),
                format_bytes(s.memory.current),
                opt_bytes(s.memory.peak),
                opt_bytes(s.memory.max),
                opt_bytes(s.memory.swap),
                s.processes,
                format!("{}/{}", opt(s.tasks), opt(s.pids_max)),
                opt(s.events.oom_kills),
                shown(&s.driver),
                shown(&s.command.join(" "))
            );
            if let Some(sh) = &s.shared {
                let clients: Vec<String> = sh
                    .clients
                    .iter()
                    .map(|c| format!("session {} (runner {})", shown(&c.session), c.runner_pid))
                    .collect();
                let idle = sh.idle_seconds.map(|s| format!(", idle for {}", uptime(s))).unwrap_or_default();
                let _ = writeln!(
                    out,
                    "  {:<16} shared (pool {}): {} client{}{idle}{}{}",
                    "",
                    sh.pool,
                    sh.clients.len(),
                    if sh.clients.len() == 1 { "" } else { "s" },
                    if clients.is_empty() { "" } else { ": " },
                    clients.join(", ")
                );
            }
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

    #[test]
    fn issue_9_control_characters_are_shown_escaped() {
        // See: issue 9, finding 8
        assert_eq!(shown("github"), "github");
        assert!(matches!(shown("plain ü \\ text"), Cow::Borrowed(_)));
        assert_eq!(shown("\u{1b}]0;pwned\u{7}"), "\\x1b]0;pwned\\x07");
        assert_eq!(shown("a\nb\tc\0\u{7f}"), "a\\x0ab\\x09c\\x00\\x7f");
        assert_eq!(shown("\u{9b}2J \u{80}\u{9f}\u{a0}"), "\\u{9b}2J \\u{80}\\u{9f}\u{a0}");
    }

    #[test]
    fn issue_9_the_renderer_prints_no_control_character() {
        // See: issue 9, finding 8
        let st = Status {
            version: 1,
            global: Global {
                servers: 1,
                sessions: 1,
                cgroup: Some("/sys/fs/cgroup/\u{1b}[2J".into()),
                ..Global::default()
            },
            sessions: vec![Session {
                id: "\u{1b}]0;pwned\u{7}".into(),
                memory_current: 0,
                servers: vec![Server {
                    name: Some("\u{1b}[31mred".into()),
                    driver: "user\u{9b}land".into(),
                    command: vec!["npx".into(), "\u{9b}2J".into(), "\r".into()],
                    ..Server::default()
                }],
            }],
        };
        let t = text(&st);
        let bad: Vec<char> =
            t.chars().filter(|&c| c != '\n' && (c.is_control() || ('\u{80}'..='\u{9f}').contains(&c))).collect();
        assert!(bad.is_empty(), "{bad:?} in {t:?}");
        for shown in [
            "session \\x1b]0;pwned\\x07",
            "\\x1b[31mred",
            "user\\u{9b}land",
            "npx \\u{9b}2J \\x0d",
            "(/sys/fs/cgroup/\\x1b[2J)",
        ] {
            assert!(t.contains(shown), "{shown} in {t}");
        }
    }
}
