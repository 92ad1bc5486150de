//! Thin, typed wrappers over the system calls the runner needs and `nix` does
//! not cover (pidfds, `pre_exec` hooks, `clone3` probing).
//!
//! This is the only module allowed to use `unsafe`; every block states the
//! invariant it relies on. The rest of the crate uses these functions and the
//! safe `nix` API, never `libc` directly.

pub mod pidfd;
pub mod poll;
pub mod probe;
pub mod spawn;

pub use nix::sys::signal::Signal;
pub use nix::unistd::Pid;
