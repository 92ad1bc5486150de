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

/// A path reaching `name` inside the state directory, for bind and connect
/// of a Unix socket. macOS has no `/proc/self/fd`: the directory's own path,
/// checked when it was opened.
pub fn dir_entry_path(_dir: &std::os::fd::OwnedFd, path: &std::path::Path, name: &str) -> std::path::PathBuf {
    path.join(name)
}

/// macOS: no pidfd; the relay of a shared server ends on its stdin's end
/// of file, which a dead client's pipe delivers.
pub fn watch_client() -> std::io::Result<Option<std::os::fd::OwnedFd>> {
    Ok(None)
}

/// The user at the other end of a Unix socket (getpeereid): the pool host
/// serves its own user only, whatever the socket's mode says.
pub fn peer_uid(sock: std::os::fd::BorrowedFd) -> std::io::Result<u32> {
    let (uid, _) = nix::unistd::getpeereid(sock)?;
    Ok(uid.as_raw())
}
