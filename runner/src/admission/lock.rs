//! One runner at a time decides and registers: without it, 200 runners
//! started at the same moment would all count the same 10 live servers
//! and all start.

use std::fs::File;

use nix::fcntl::{Flock, FlockArg};

use crate::state::{StateDir, StateError};

/// Held from the census to the record's registration.
pub struct AdmissionLock {
    _guard: Flock<File>,
}

/// Takes the exclusive lock on `<state dir>/admission.lock`, waiting for
/// it. The kernel drops an flock when its holder dies, so a SIGKILLed
/// runner never leaves it held.
pub fn lock(dir: &StateDir) -> Result<AdmissionLock, StateError> {
    let file = dir.lock_file()?;
    let guard = Flock::lock(file, FlockArg::LockExclusive)
        .map_err(|(_, e)| StateError::Lock { path: dir.path().join("admission.lock"), err: e.into() })?;
    Ok(AdmissionLock { _guard: guard })
}
