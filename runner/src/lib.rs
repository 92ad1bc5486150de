//! mcp-runner: runs MCP stdio servers under a budget and leaves nothing
//! behind.
//!
//! Layout: `cli` (the commands), `supervisor` (the event loop, reaping,
//! teardown plans), `driver` (enforcement: userland now, cgroup drivers
//! next), `tree` (the server's process tree and limit verdicts), `host`
//! (what the machine offers), `state` (runner records and the crash sweep),
//! `sys` (the only `unsafe`: thin system call wrappers).
#![deny(unsafe_code)]

pub mod admission;
pub mod cgroup;
pub mod cli;
pub mod driver;
pub mod exit;
pub mod host;
pub mod logging;
pub mod os;
pub mod state;
pub mod status;
pub mod supervisor;
pub mod sys;
pub mod tree;
pub mod wrap;

/// What the fuzz targets in `fuzz/` call, and nothing else: the parsers of
/// outside input. Not an API: it follows the modules it re-exports from.
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::admission::decide::Refusal;
    pub use crate::admission::jsonrpc::{answer_from, refusal_response};
    pub use crate::driver::systemd::dbus::message::{Message, MessageKind};
    pub use crate::driver::systemd::dbus::wire::{Endian, Reader, Type, Value, WireError, Writer, parse_signature};
    pub use crate::wrap::json::{Kind as JsonKind, Node as JsonNode, parse as scan_json};
    pub use crate::wrap::{ConfigError, Mode, Outcome, Plan, plan};
}
