//! Spawning on macOS: `posix_spawnp` in a process group of its own, only
//! stdin, stdout and stderr passed on, the signal mask and dispositions
//! reset, and a fatal jetsam limit on the server's footprint when asked.

use std::ffi::{CString, OsString};
use std::os::unix::ffi::OsStringExt;

use mcp_runner_macos::spawn::{self as mac, JetsamStatus, SpawnErrorKind, SpawnRequest};
use nix::sys::resource::{Resource, setrlimit};

use crate::sys::Pid;

/// What to start.
#[derive(Debug, Default)]
pub struct SpawnSpec {
    /// The command as given (`argv[0]` is searched in `PATH` when it has no
    /// slash).
    pub argv: Vec<OsString>,
    /// The complete environment, `KEY=VALUE`.
    pub env: Vec<OsString>,
    /// A fatal memory limit on the main process's footprint, in MiB. It
    /// covers that one image only: exec and fork children drop it.
    pub jetsam_limit_mb: Option<u32>,
}

impl SpawnSpec {
    pub fn new(argv: Vec<OsString>, env: Vec<OsString>) -> SpawnSpec {
        SpawnSpec { argv, env, jetsam_limit_mb: None }
    }
}

/// A started server; it leads its own process group.
#[derive(Debug)]
pub struct Child {
    pub pid: Pid,
    pub jetsam: JetsamStatus,
}

impl Child {
    /// The server runs from the start on macOS (no gate to open).
    pub fn release(&mut self) -> Result<(), SpawnError> {
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("argument or environment contains a NUL byte")]
    Nul,
    #[error("{0}")]
    Spawn(#[from] mac::SpawnError),
}

impl SpawnError {
    /// The shell's convention: 127 not found, 126 found but not executable.
    pub fn is_not_found(&self) -> bool {
        matches!(self, SpawnError::Spawn(e) if e.kind() == SpawnErrorKind::NotFound)
    }
    pub fn is_not_executable(&self) -> bool {
        matches!(self, SpawnError::Spawn(e) if e.kind() == SpawnErrorKind::NotExecutable)
    }
}

fn c_strings(items: &[OsString]) -> Result<Vec<CString>, SpawnError> {
    items.iter().map(|s| CString::new(s.clone().into_vec()).map_err(|_| SpawnError::Nul)).collect()
}

pub fn spawn(spec: &SpawnSpec) -> Result<Child, SpawnError> {
    // RLIMIT_CORE 0, inherited through posix_spawn: a crashing
    // multi-gigabyte server would write its core right when memory is
    // tight. The runner itself never needs one either.
    if let Err(e) = setrlimit(Resource::RLIMIT_CORE, 0, 0) {
        tracing::debug!("RLIMIT_CORE 0: {e}");
    }
    let argv = c_strings(&spec.argv)?;
    let program = argv.first().cloned().ok_or(SpawnError::Nul)?;
    let request = SpawnRequest {
        program,
        argv,
        env: c_strings(&spec.env)?,
        inherit: Vec::new(),
        jetsam_limit_mb: spec.jetsam_limit_mb,
    };
    let spawned = mac::spawn(&request)?;
    match spawned.jetsam {
        JetsamStatus::Set { mb } => tracing::info!("jetsam limit {mb} MiB on the server's main process"),
        JetsamStatus::Unavailable => {
            tracing::warn!("this macOS has no posix_spawnattr_setjetsam_ext: no kernel memory limit at spawn")
        }
        JetsamStatus::Refused(errno) => tracing::warn!(
            "the kernel refused the jetsam limit ({}): the server runs without it",
            std::io::Error::from_raw_os_error(errno)
        ),
        JetsamStatus::NotRequested => {}
    }
    Ok(Child { pid: Pid::from_raw(spawned.pid), jetsam: spawned.jetsam })
}
