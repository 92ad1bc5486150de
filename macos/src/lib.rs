//! Thin, safe shims over the macOS APIs mcp-runner needs: `posix_spawn` with a
//! jetsam memory limit, libproc process listing and accounting, kqueue process
//! and descriptor events, and the system's memory pressure.
//!
//! Every function that calls macOS exists only on macOS; the data types and
//! [`layout`] compile everywhere, so the runner's platform-neutral code can
//! name them and the layout tests run on Linux. No `libc` type appears in the
//! public API. All `unsafe` code sits in the FFI modules, each block with the
//! invariant it relies on.
#![deny(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod fds;
pub mod kqueue;
pub mod layout;
pub mod memory;
pub mod proc;
pub mod spawn;
mod sys;
