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

/// A descriptor that becomes readable when the runner's parent (the
/// client) exits, for the relay of a shared server: a kqueue watching the
/// parent's exit only (EVFILT_PROC, NOTE_EXIT: its forks must not wake
/// the relay); a kqueue descriptor can be polled. An
/// error if the client is already gone.
pub fn watch_client() -> std::io::Result<Option<mcp_runner_macos::kqueue::Kqueue>> {
    use mcp_runner_macos::kqueue::{Kqueue, ProcessWatch};
    let ppid = nix::unistd::getppid().as_raw();
    if ppid <= 1 {
        return Ok(None);
    }
    let queue = Kqueue::new()?;
    match queue.watch_exit(ppid)? {
        // The parent may have died between getppid and the watch, and its
        // pid been reused: if our parent changed, the watch names a stranger.
        ProcessWatch::Watching if nix::unistd::getppid().as_raw() == ppid => Ok(Some(queue)),
        _ => Err(std::io::Error::other("the client exited before the runner started")),
    }
}

/// The user at the other end of a Unix socket (getpeereid): the pool host
/// serves its own user only, whatever the socket's mode says.
pub fn peer_uid(sock: std::os::fd::BorrowedFd) -> std::io::Result<u32> {
    let (uid, _) = nix::unistd::getpeereid(sock)?;
    Ok(uid.as_raw())
}

/// Marks every descriptor above 2 close-on-exec (see the Linux version):
/// what the pool host inherited by accident does not reach its servers.
pub fn cloexec_inherited() {
    mcp_runner_macos::fds::cloexec_inherited();
}

/// PIPE_BUF: a write of at most this many bytes to a pipe is atomic, and
/// never blocks when poll says the pipe is writable. macOS: 512 bytes (<sys/syslimits.h>).
pub const PIPE_BUF: usize = 512;
