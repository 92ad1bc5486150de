//! `status`: what runs and what it costs, from the runner records and the
//! kernel's own files (the server's cgroup for the kernel drivers, /proc
//! for the userland driver). The JSON form is a stable schema: fields are
//! added, never renamed or removed; `version` changes if that ever breaks.

pub mod collect;
pub mod render;

use serde::Serialize;

pub const SCHEMA_VERSION: u32 = 1;

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Status {
    pub version: u32,
    pub global: Global,
    pub sessions: Vec<Session>,
}

/// Totals against the global cap.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Global {
    pub servers: u64,
    pub sessions: u64,
    /// Sum of the servers' memory, bytes.
    pub memory_current: u64,
    /// The global cap's memory.max where a kernel driver holds it, else the
    /// policy's global memory_max; `null` when unlimited.
    pub memory_max: Option<u64>,
    /// The global cgroup, if a kernel driver made one.
    pub cgroup: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Session {
    pub id: String,
    pub memory_current: u64,
    pub servers: Vec<Server>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Server {
    pub name: Option<String>,
    pub runner_pid: i32,
    pub server_pid: Option<i32>,
    pub uptime_seconds: u64,
    /// `systemd`, `cgroupfs` or `userland`.
    pub driver: String,
    /// `kernel` or `userland`.
    pub enforcement: String,
    pub command: Vec<String>,
    pub memory: Memory,
    /// Live processes of the server's tree.
    pub processes: u64,
    /// Tasks (threads), the unit of pids_max.
    pub tasks: Option<u64>,
    pub pids_max: Option<u64>,
    pub events: Events,
    pub cgroup: Option<String>,
    /// Set for a shared server: its pool and the clients it serves.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shared: Option<Shared>,
}

/// A shared server's pool and clients.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Shared {
    pub pool: String,
    pub clients: Vec<SharedClient>,
    /// Seconds the server has been without a client, if it has none.
    pub idle_seconds: Option<u64>,
}

/// One session's relay to a shared server.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SharedClient {
    pub session: String,
    pub runner_pid: i32,
    pub since: u64,
}

/// Bytes. `peak` and `swap` are known only where the kernel counts them.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Memory {
    pub current: u64,
    pub peak: Option<u64>,
    pub high: Option<u64>,
    pub max: Option<u64>,
    pub swap: Option<u64>,
}

/// Kernel counters of the server's cgroup (`null` under userland).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Events {
    /// memory.events `high`: times the server was throttled.
    pub throttled: Option<u64>,
    /// memory.events `oom_kill`.
    pub oom_kills: Option<u64>,
    /// pids.events `max`: forks refused at pids_max.
    pub forks_refused: Option<u64>,
}

/// The `--json` form: pretty JSON whose strings carry no raw control
/// character. serde_json escapes C0 (as JSON requires) but writes DEL and
/// the C1 controls (U+0080..U+009F; U+009B is CSI to many terminals) as
/// they are, so those are escaped here as `\u00XX`. Outside strings JSON is
/// ASCII punctuation, digits and words, so every such character sits inside
/// a string, and the escape reads back as the same string.
pub fn json(st: &Status) -> serde_json::Result<String> {
    let text = serde_json::to_string_pretty(st)?;
    if !text.chars().any(is_raw_control) {
        return Ok(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if is_raw_control(c) {
            out.push_str(&format!("\\u{:04x}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

/// What serde_json leaves unescaped but a terminal may obey.
fn is_raw_control(c: char) -> bool {
    matches!(c, '\u{7f}'..='\u{9f}')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_session(id: &str) -> Status {
        Status {
            version: SCHEMA_VERSION,
            sessions: vec![Session { id: id.into(), ..Session::default() }],
            ..Status::default()
        }
    }

    #[test]
    fn issue_9_json_escapes_every_control_character() {
        // See: issue 9, finding 8
        let id = "\u{1b}]0;pwned\u{7} \u{9b}2J \u{7f} ü";
        // Why `json` exists: serde_json escapes C0 only.
        let plain = serde_json::to_string_pretty(&with_session(id)).unwrap();
        assert!(!plain.contains('\u{1b}') && plain.contains('\u{9b}') && plain.contains('\u{7f}'), "{plain:?}");
        let text = json(&with_session(id)).unwrap();
        assert!(!text.chars().any(|c| (c.is_control() && c != '\n') || is_raw_control(c)), "{text:?}");
        assert!(text.contains(r#""id": "\u001b]0;pwned\u0007 \u009b2J \u007f ü""#), "{text}");
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back["sessions"][0]["id"], id);
        assert_eq!(
            json(&with_session("plain")).unwrap(),
            serde_json::to_string_pretty(&with_session("plain")).unwrap()
        );
    }
}
