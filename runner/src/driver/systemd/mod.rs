//! The systemd driver: each server is a transient scope in a per-session
//! slice inside `mcp-runner.slice`, created over systemd's own socket (the
//! user manager for normal users, the system manager for root), its limits
//! unit properties. systemd owns those cgroups; the runner only reads them
//! (memory.events, through the same watch as the cgroupfs driver).
//!
//! Crash safety comes from systemd, not from the runner: the runner first
//! moves itself into its own scope, and the server's scope is
//! `BindsTo=`+`After=` that scope. If the runner is SIGKILLed, its scope
//! empties, systemd stops it, and stopping it stops the server's scope:
//! SIGTERM to every process in it, SIGKILL after `kill_timeout`. (AddRef
//! would not do this: it only keeps a unit loaded while its creator is
//! connected.)
//!
//! The server is spawned gated: it waits before `exec` until systemd has
//! moved it into its scope, so it never runs outside its budget.

//!
//! `dbus`, `properties` and `units` are pure or portable (the unit file that
//! `systemd install` writes is built from them on any platform); the driver
//! itself runs on Linux only.

pub mod dbus;
#[cfg(target_os = "linux")]
pub mod levels;
pub mod properties;
#[cfg(target_os = "linux")]
mod scope;
pub mod units;

#[cfg(target_os = "linux")]
pub use scope::*;
