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

pub mod admission;
pub mod cgroup;
pub mod cli;
pub mod driver;
pub mod exit;
pub mod fault;
pub mod host;
pub mod logging;
pub mod os;
pub mod privileges;
pub mod state;
pub mod status;
pub mod supervisor;
pub mod sys;
pub mod tree;
pub mod wrap;
