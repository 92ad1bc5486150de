//! mcp-runner: runs MCP stdio servers under a budget and leaves nothing
//! behind.
//!
//! Layout: `cli` (the commands), `supervisor` (the event loop, reaping,
//! teardown plans), `driver` (enforcement: userland now, cgroup drivers
//! next), `tree` (the server's process tree and limit verdicts), `host`
//! (what the machine offers), `state` (runner records and the crash sweep),
//! `privileges` (what the server gives up of the runner's), `sys` (the only
//! `unsafe`: thin system call wrappers).
#![deny(unsafe_code)]
// The modules are private: only `cli::main` is the crate's interface, so the
// dead-code lint sees everything nothing calls. It judges on Linux, where
// every module is used; on macOS the Linux drivers' cgroup and D-Bus layers
// still compile (they are plain Rust) but nothing there calls them.
#![cfg_attr(target_os = "macos", allow(dead_code, unused_imports))]

mod admission;
mod cgroup;
pub mod cli;
mod driver;
mod exit;
mod fault;
mod host;
mod logging;
mod os;
mod pool;
mod privileges;
mod state;
mod status;
mod supervisor;
mod sys;
mod tree;
mod wrap;

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
