//! Linux: signalfd and poll for events, pidfds for exact signals, clone3
//! into a cgroup for spawning, procfs for the process table, a child
//! subreaper so that no process of the tree ever leaves it.

pub mod creds;
mod events;
mod host;
pub mod kill;
mod session;
mod watch;

pub use crate::sys::fds::cloexec_inherited;
pub use host::probe_host;
pub use kill::signal_exact;
pub use watch::RecordWatch;

pub use events::LinuxEvents as PlatformEvents;

/// Spawning: clone3 into the leaf's cgroup, a pidfd, a gate before exec.
pub mod spawn {
    pub use crate::sys::spawn::{Child, SpawnError, SpawnSpec, spawn};
}

/// The process table: `/proc`.
pub use crate::tree::procfs::Procfs as Procs;

/// Makes the runner a child subreaper: orphans of the server's tree are
/// reparented to it, so every process of the tree stays its descendant.
pub fn become_reaper() -> Result<(), ReaperError> {
    nix::sys::prctl::set_child_subreaper(true).map_err(|e| {
        ReaperError(format!("PR_SET_CHILD_SUBREAPER failed ({e}): Linux 3.4 or newer is needed to reap orphans"))
    })
}

/// The runner cannot hold its tree together.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ReaperError(String);

/// `gc --after-eof FD --detach` is macOS's crash guard; Linux has the
/// parent-death signal and the subreaper instead.
pub fn detach_guard(_fd: i32) -> std::io::Result<()> {
    Err(std::io::Error::new(std::io::ErrorKind::Unsupported, "the crash guard is macOS's (Linux needs none)"))
}

/// waitpid flags for the reaper. `__WALL`: also reap children created with
/// a non-SIGCHLD exit signal, which plain waitpid would leave as zombies
/// forever.
pub const REAP_FLAGS: nix::sys::wait::WaitPidFlag =
    nix::sys::wait::WaitPidFlag::WNOHANG.union(nix::sys::wait::WaitPidFlag::__WALL);

/// Where root's runners keep their records.
pub const ROOT_STATE_DIR: &str = "/run/mcp-runner";

/// A path reaching `name` inside the directory held open as `dir`, through
/// the descriptor: what bind and connect of a Unix socket take, walked by
/// the kernel from the open directory (no path component can be swapped
/// under it) and short whatever the directory's own path (sun_path holds
/// 108 bytes).
pub fn dir_entry_path(dir: &std::os::fd::OwnedFd, _path: &std::path::Path, name: &str) -> std::path::PathBuf {
    use std::os::fd::AsRawFd;
    std::path::PathBuf::from(format!("/proc/self/fd/{}/{name}", dir.as_raw_fd()))
}

/// A descriptor that becomes readable when the runner's parent (the
/// client) exits, for processes that do not otherwise watch the client:
/// the relay of a shared server. A pidfd, which does not depend on which of
/// the client's threads forked the runner (the parent-death signal does).
/// An error if the client is already gone.
pub fn watch_client() -> std::io::Result<Option<crate::sys::pidfd::PidFd>> {
    match session::watch_parent() {
        (_, true) => Err(std::io::Error::other("the client exited before the runner started")),
        (fd, false) => Ok(fd),
    }
}

/// The user at the other end of a Unix socket (SO_PEERCRED): the pool host
/// serves its own user only, whatever the socket's mode says.
pub fn peer_uid(sock: std::os::fd::BorrowedFd) -> std::io::Result<u32> {
    let cred = nix::sys::socket::getsockopt(&sock, nix::sys::socket::sockopt::PeerCredentials)?;
    Ok(cred.uid())
}

/// PIPE_BUF: a write of at most this many bytes to a pipe is atomic, and
/// never blocks when poll says the pipe is writable. Linux: 4096 bytes (pipe(7)), the least room poll reports POLLOUT for.
pub const PIPE_BUF: usize = 4096;
