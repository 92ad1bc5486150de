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
