//! The server's process tree where no subreaper holds it together.
//!
//! On Linux the runner is a child subreaper, so the tree is "every
//! descendant of the runner" (see [`super::descendants`]). macOS has no
//! subreaper: a `setsid()` double-fork daemon is reparented to launchd
//! (pid 1) and a walk over child lists no longer reaches it. XNU does give
//! every process a 64-bit unique id that is never reused (`p_uniqueid`), and
//! remembers its parent's (`p_puniqueid`) through reparenting. The
//! [`Lineage`] tracker adopts processes by that link, so an escaped daemon
//! is still found as long as every process in its chain was seen alive once
//! or is still alive.
//!
//! Everything here is platform-neutral: no `cfg(target_os)`, no libc or nix
//! types. The operating system sits behind two traits, [`LineageOs`] (read)
//! and [`Signaller`] (write). The macOS driver implements them over
//! `proc_listpids`, `proc_pidinfo(PROC_PIDUNIQIDENTIFIERINFO)` and
//! `proc_pid_rusage`; [`procfs`] implements them over Linux `/proc` so the
//! same algorithm runs against real processes in tests; a scripted fake
//! (test builds only) drives the scenarios.
//!
//! Parts: [`tracker`] (who belongs to the tree), [`accounting`] (the summed
//! footprint, judged by [`super::verdict::Judge`]), [`jetsam`] (which
//! members the kernel's per-process limit still covers), [`kill`] (the
//! stop-then-kill plan).

pub mod accounting;
pub mod jetsam;
pub mod kill;
#[cfg(target_os = "linux")]
pub mod procfs;
pub mod tracker;

#[cfg(test)]
pub(crate) mod fake;
#[cfg(all(test, target_os = "linux"))]
mod real_tests;
#[cfg(test)]
mod scenarios;

use std::fmt;

pub use self::tracker::Lineage;
#[cfg(target_os = "macos")]
pub use self::tracker::LineageRecord;

/// One process, named so that a recycled pid can never be mistaken for it.
///
/// `unique_id` is macOS's `p_uniqueid`; on Linux it is derived from the
/// start time (see [`procfs::unique_id`]). Unique ids grow with birth
/// order, which the tracker relies on in one place (group adoption).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct Identity {
    pub pid: i32,
    pub unique_id: u64,
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pid {} (unique id {})", self.pid, self.unique_id)
    }
}

/// What the tracker needs to know about one process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcEntry {
    pub id: Identity,
    /// The current parent: the one it was forked by, or where it was
    /// reparented to (launchd on macOS, init or a subreaper on Linux).
    pub ppid: i32,
    pub pgid: i32,
    /// The unique id of the process that forked it (`p_puniqueid`), kept
    /// through reparenting on macOS. `None` when the system cannot tell.
    pub parent_unique_id: Option<u64>,
    /// Exited but not yet reaped: it cannot fork, use memory or be stopped.
    pub zombie: bool,
    /// Threads, the unit of `pids_max`.
    pub threads: u64,
}

/// Memory charged to one process, in bytes.
///
/// On macOS this is `ri_phys_footprint` and `ri_lifetime_max_phys_footprint`
/// from `proc_pid_rusage(RUSAGE_INFO_V4)`: the ledger the jetsam limit is
/// enforced on, which keeps compressed pages charged. RSS hides a leak that
/// the compressor has squeezed, so it is never used here.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Footprint {
    pub current: u64,
    /// The highest `current` the process ever had.
    pub lifetime_max: u64,
}

/// Read access to the system's processes.
///
/// Listing and identity are separate from memory because they cost
/// differently: the tracker needs an entry for every listed process on
/// every rescan, but a footprint only for members, once per poll (on Linux
/// a footprint read walks the process's memory map).
pub trait LineageOs {
    /// Every process the runner could own, in any order. On macOS,
    /// `proc_listpids(PROC_UID_ONLY, getuid())`: descendants keep the uid
    /// unless they run a setuid binary, and then they cannot be signalled
    /// anyway.
    fn pids(&self) -> Vec<i32>;
    /// `None` when the process is gone.
    fn entry(&self, pid: i32) -> Option<ProcEntry>;
    /// `None` when the process `id` names is gone (its pid may already
    /// belong to another process) or its memory is unreadable.
    fn footprint(&self, id: Identity) -> Option<Footprint>;
}

/// The signals the plans use, as the core's own type so that it needs no
/// libc or nix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Signal {
    /// SIGSTOP: cannot be caught; a stopped process cannot fork.
    Stop,
    /// SIGCONT: resumes a stopped process so it can act on a pending
    /// SIGTERM.
    Cont,
    /// SIGTERM: a request to exit.
    Term,
    /// SIGKILL: also ends a stopped process, no SIGCONT needed.
    Kill,
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Signal::Stop => "SIGSTOP",
            Signal::Cont => "SIGCONT",
            Signal::Term => "SIGTERM",
            Signal::Kill => "SIGKILL",
        })
    }
}

/// Why a signal was not sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SignalError {
    /// The process exited (or became a zombie) since it was listed, or its
    /// pid now names another process. Expected during a kill; not an error.
    Gone,
    /// The process is there but refused the signal (EPERM after a setuid
    /// exec, for example). The kill plan reports it as a survivor.
    Denied(String),
}

/// Sends signals to exact processes.
pub trait Signaller {
    /// Sends `signal` to `id.pid` only if that pid still names the process
    /// `id` (same unique id), checked right before sending. macOS has no
    /// pidfd, so a window between the check and `kill(2)` remains; it is as
    /// short as two system calls, and a stopped target does not exit by
    /// itself inside it.
    fn signal(&self, id: Identity, signal: Signal) -> Result<(), SignalError>;
}
