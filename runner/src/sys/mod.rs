//! Thin, typed wrappers over the system calls the runner needs and `nix` does
//! not cover (pidfds, `pre_exec` hooks, `clone3` probing).
//!
//! This is the only module allowed to use `unsafe`; every block states the
//! invariant it relies on. The rest of the crate uses these functions and the
//! safe `nix` API, never `libc` directly.
//!
//! `pidfd`, `probe` and `spawn` are Linux's (pidfds, clone3, the parent-death
//! signal); macOS's system calls live in the `mcp-runner-macos` crate.

#[cfg(target_os = "linux")]
pub mod fds;
#[cfg(target_os = "linux")]
pub mod pidfd;
pub mod poll;
#[cfg(target_os = "linux")]
pub mod probe;
#[cfg(target_os = "linux")]
pub mod spawn;

pub use nix::sys::signal::Signal;
pub use nix::unistd::Pid;
