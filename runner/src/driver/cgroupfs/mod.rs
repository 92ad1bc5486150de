//! The cgroupfs driver: plain cgroup v2 files under a delegated root. The
//! kernel holds the server to its budget: memory.high throttles,
//! memory.max OOM-kills the whole leaf (memory.oom.group), pids.max refuses
//! forks. The supervisor only listens (memory.events wakes it by POLLPRI)
//! and tears the leaf down with cgroup.kill.

pub mod hierarchy;
pub mod levels;
pub mod root;
pub mod watch;

use std::os::fd::{BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use mcp_runner_policy::{Effective, Limits};

use self::root::RootError;
use self::watch::LeafWatch;
use crate::cgroup::fs::{CgroupDir, CgroupIoError};
use crate::cgroup::{cpu, fs, memory, pids};
use crate::driver::{Driver, DriverError, DriverKind};
use crate::host::HostFacts;
use crate::os::kill::signal_descendants;
use crate::sys::Signal;
use crate::sys::spawn::{Child, SpawnSpec};
use crate::tree::ProcessId;
use crate::tree::verdict::Verdict;

#[derive(Debug, thiserror::Error)]
pub enum CgroupfsError {
    #[error(transparent)]
    Root(#[from] RootError),
    #[error(transparent)]
    Io(#[from] CgroupIoError),
    #[error("failed to open {0} for the server to be born in: {1}")]
    OpenLeaf(std::path::PathBuf, std::io::Error),
}

/// One server's place in the hierarchy and what the supervisor watches.
pub struct Cgroupfs {
    watch: LeafWatch,
    interval: Duration,
    runner: i32,
    kill_passes: u32,
}

impl Cgroupfs {
    /// Builds GLOBAL -> SESSION -> a fresh LEAF for this server and writes
    /// every level's limits.
    pub fn setup(
        facts: &HostFacts,
        budget: &Effective,
        session: &str,
        name: Option<&str>,
        runner: ProcessId,
    ) -> Result<Cgroupfs, CgroupfsError> {
        let (parent, global) = root::locate(facts, budget.global.cgroup_root.as_deref())?;
        let parent_is_root = facts.cgroup2_mount.as_deref() == Some(parent.path());
        root::enable_controllers(&parent, parent_is_root)?;
        global.create()?;
        apply(&global, &budget.global.limits, false)?;
        // Runners of other sessions may remove an empty session cgroup
        // between our mkdir and our leaf's mkdir: retry the pair.
        let session_dir = global.child(&hierarchy::session_name(session));
        let leaf = session_dir.child(&hierarchy::leaf_name(name, runner));
        let mut attempt = 0;
        loop {
            attempt += 1;
            let made = root::enable_controllers(&global, false)
                .map_err(CgroupfsError::from)
                .and_then(|_| Ok(session_dir.create()?))
                .and_then(|_| Ok(apply(&session_dir, &budget.session.limits, false)?))
                .and_then(|_| Ok(root::enable_controllers(&session_dir, false)?))
                .and_then(|_| Ok(leaf.create_new()?));
            match made {
                Ok(()) => break,
                Err(e) if attempt < 3 => tracing::debug!("retrying the session cgroup: {e}"),
                Err(e) => {
                    // Nothing of ours may stay behind; a session another
                    // server uses refuses the rmdir (EBUSY).
                    let _ = session_dir.remove();
                    return Err(e);
                }
            }
        }
        let configured = (|| {
            crate::fault::point("placement-leaf");
            apply(&leaf, &budget.server.limits, true)?;
            LeafWatch::new(
                leaf.clone(),
                session_dir.clone(),
                budget.server.limits.clone(),
                budget.session.limits.memory_max,
                budget.server.throttle_timeout,
            )
        })();
        match configured {
            Ok(watch) => {
                Ok(Cgroupfs { watch, interval: budget.server.sample_interval, runner: runner.pid, kill_passes: 0 })
            }
            Err(e) => {
                // The leaf is empty (nothing was spawned yet): take it and
                // an empty session down before reporting.
                if let Err(rm) = leaf.remove() {
                    tracing::warn!("{rm}; `mcp-runner gc` will retry");
                }
                let _ = session_dir.remove();
                Err(e.into())
            }
        }
    }

    pub fn leaf(&self) -> &CgroupDir {
        self.watch.leaf()
    }

    /// Removes the leaf and, if no other server uses it, the session.
    /// The tree is gone when this runs (the supervisor saw no child left),
    /// but the kernel may take a moment to release the last tasks: wait for
    /// `populated 0` in cgroup.events (POLLPRI), then rmdir.
    pub fn remove(&self) {
        wait_unpopulated(self.leaf(), Duration::from_secs(5));
        if let Err(e) = self.leaf().remove() {
            tracing::warn!("{e}; `mcp-runner gc` will retry");
            return;
        }
        // EBUSY: another server of the session still runs there.
        let _ = self.watch.session().remove();
    }
}

/// Waits until `cgroup.events` says `populated 0`, woken by the kernel's
/// POLLPRI on the file (re-read after every wake: a wake can belong to an
/// earlier change). Gives up at `timeout`.
pub fn wait_unpopulated(dir: &CgroupDir, timeout: Duration) -> bool {
    use std::os::fd::AsFd;
    use std::os::unix::fs::FileExt;
    let Ok(file) = std::fs::File::open(dir.file("cgroup.events")) else { return true };
    let deadline = Instant::now() + timeout;
    loop {
        let mut buf = [0u8; 128];
        let n = file.read_at(&mut buf, 0).unwrap_or(0);
        if fs::keyed(&String::from_utf8_lossy(&buf[..n]), "populated") != Some(1) {
            return true;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        let mut set = crate::sys::poll::PollSet::new();
        set.add(file.as_fd(), crate::sys::poll::Events::PRI);
        let _ = set.wait(Some(left));
    }
}

/// Applies one level's limits, controllers in a fixed order.
fn apply(dir: &CgroupDir, limits: &Limits, leaf: bool) -> Result<(), CgroupIoError> {
    memory::apply(dir, limits, leaf)?;
    pids::apply(dir, limits.pids_max)?;
    cpu::apply(dir, limits.cpu_max)
}

impl Driver for Cgroupfs {
    fn kind(&self) -> DriverKind {
        DriverKind::Cgroupfs
    }

    fn prepare(&mut self, spec: &mut SpawnSpec) -> Result<(), DriverError> {
        // The directory for CLONE_INTO_CGROUP, cgroup.procs for the fork
        // fallback; both close once the spawn is done.
        let open = |path: std::path::PathBuf, write: bool| {
            std::fs::OpenOptions::new()
                .read(!write)
                .write(write)
                .open(&path)
                .map(OwnedFd::from)
                .map_err(|e| CgroupfsError::OpenLeaf(path, e))
        };
        spec.cgroup_dir = Some(open(self.leaf().path().to_path_buf(), false)?);
        spec.cgroup_procs = Some(open(self.leaf().file("cgroup.procs"), true)?);
        Ok(())
    }

    fn place(&mut self, _child: &Child) -> Result<(), DriverError> {
        Ok(())
    }

    fn sample_interval(&self) -> Option<Duration> {
        Some(self.interval)
    }

    fn event_fds(&self) -> Vec<BorrowedFd<'_>> {
        vec![self.watch.event_fd()]
    }

    fn check(&mut self, now: Duration) -> Verdict {
        self.watch.check(now)
    }

    fn signal_all(&mut self, signal: Signal) -> usize {
        if signal != Signal::SIGKILL {
            return signal_descendants(self.runner, signal);
        }
        // cgroup.kill takes the whole leaf at once, forks in flight
        // included. The lineage walk is only for a process that moved
        // itself out of the leaf: it runs if cgroup.kill failed, and on
        // every fourth repeat while the tree is still not gone.
        self.kill_passes += 1;
        let killed = match self.leaf().write("cgroup.kill", "1") {
            Ok(()) => self.leaf().procs().map(|p| p.len()).unwrap_or(0),
            Err(e) => {
                tracing::warn!("{e}");
                return signal_descendants(self.runner, signal);
            }
        };
        if self.kill_passes.is_multiple_of(4) { killed + signal_descendants(self.runner, signal) } else { killed }
    }

    fn members(&self) -> &[ProcessId] {
        self.watch.members()
    }

    fn describe_limits(&self) -> String {
        self.watch.describe()
    }
}
