//! The cgroup v2 file layer, shared by every driver that touches cgroups:
//! the cgroupfs driver writes through it, the systemd driver reads the
//! cgroups systemd made for it, the crash sweep kills through it.
//!
//! One module per controller (`memory`, `pids`, `cpu`): the file names as
//! constants, `&str` parsers for what the kernel writes, and `apply` for a
//! level's limits. `fs` is the directory handle whose errors name the
//! operation and the path. Nothing here decides anything.

pub mod cpu;
pub mod fs;
pub mod memory;
pub mod pids;
