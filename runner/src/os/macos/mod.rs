//! macOS: kqueue for events, `posix_spawn` with a jetsam limit for spawning,
//! libproc for the process table, all through the `mcp-runner-macos` FFI
//! crate. There is no child subreaper on macOS: orphans of the server's
//! tree are adopted by launchd, which reaps them; the `macos` driver follows
//! them by lineage (`p_puniqueid`) and kills them itself.

pub mod creds;
mod events;
mod guard;
mod host;
mod kill;
mod procs;
pub mod spawn;
mod watch;

pub use events::MacEvents as PlatformEvents;
pub use guard::{Guard, detach_guard};
pub use host::probe_host;
pub use kill::signal_exact;
pub use procs::Procs;
pub use watch::RecordWatch;

/// The runner cannot hold its tree together.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ReaperError(String);

/// macOS has no `PR_SET_CHILD_SUBREAPER`: nothing to become. The `macos`
/// driver finds orphans by lineage instead, and launchd reaps them.
pub fn become_reaper() -> Result<(), ReaperError> {
    tracing::debug!("no child subreaper on macOS: orphans go to launchd, the lineage sweep follows them");
    Ok(())
}

/// waitpid flags for the reaper.
pub const REAP_FLAGS: nix::sys::wait::WaitPidFlag = nix::sys::wait::WaitPidFlag::WNOHANG;

/// Where root's runners keep their records.
pub const ROOT_STATE_DIR: &str = "/var/run/mcp-runner";
