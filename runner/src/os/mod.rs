//! The platform seam, split once: each platform module exports the same
//! names, so nothing above it carries a `cfg(target_os)`.
//!
//! - Linux (`linux/`): signalfd, pidfd, clone3, procfs, cgroups, systemd.
//! - macOS (`macos/`): kqueue, posix_spawn with a jetsam limit, libproc,
//!   through the `mcp-runner-macos` FFI crate.

#[cfg(target_os = "linux")]
#[path = "linux/mod.rs"]
mod imp;

#[cfg(target_os = "macos")]
#[path = "macos/mod.rs"]
mod imp;

pub use imp::*;
