//! Becoming a pool's host: the pool's lock, then the socket.

use std::fs::File;
use std::os::unix::net::UnixListener;
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};
use nix::sys::stat::{Mode, umask};

use crate::pool::files::PoolFiles;
use crate::state::{StateDir, StateError};

/// How long a new host waits for the previous one to finish exiting.
const LOCK_WAIT: Duration = Duration::from_secs(5);

/// The result of trying to become the host.
pub enum Claimed {
    /// This process is the host: the lock is held as long as this lives.
    Listening { listener: UnixListener, _lock: Flock<File> },
    /// Another host holds the pool.
    Busy,
}

#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error("cannot listen on {path}: {err}")]
    Listen { path: String, err: std::io::Error },
}

/// Takes the pool's host lock and listens on its socket (0600, whatever
/// the umask). The lock makes the socket trustworthy: a socket file whose
/// lock is free is a dead host's, and is replaced. A previous host that is
/// exiting (it unlinked its socket, it still holds the lock) is waited for,
/// briefly, by retrying: flock has no timed wait.
pub fn claim(dir: &StateDir, files: &PoolFiles) -> Result<Claimed, ClaimError> {
    let deadline = Instant::now() + LOCK_WAIT;
    let lock = loop {
        let file = dir.open_lock(&files.host_lock())?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            // `gc` may have unlinked the lock file after we opened it: a
            // lock on the old file would let a second host in. Take the
            // lock on the file the name holds now.
            Ok(l) if !dir.still_names(&files.host_lock(), &l) => continue,
            Ok(l) => break l,
            Err(_) if Instant::now() < deadline => {
                // A live host's socket answers: then there is nothing to wait for.
                if std::os::unix::net::UnixStream::connect(dir.entry_path(&files.socket())).is_ok() {
                    return Ok(Claimed::Busy);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(_) => return Ok(Claimed::Busy),
        }
    };
    dir.unlink(&files.socket());
    let old = umask(Mode::from_bits_truncate(0o077));
    let bound = UnixListener::bind(dir.entry_path(&files.socket()));
    umask(old);
    let listener =
        bound.map_err(|err| ClaimError::Listen { path: dir.path().join(files.socket()).display().to_string(), err })?;
    Ok(Claimed::Listening { listener, _lock: lock })
}
