//! Runner records in the user's runtime directory.
//!
//! Each live runner keeps one small JSON file naming itself (pid and start
//! time), its server and the tree's members as last sampled. `gc` (also run
//! at every runner start) uses them to find runners that died without
//! cleaning up, typically from SIGKILL, and to kill what they left. `status`
//! reads the same files.

pub mod sweep;

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::driver::DriverKind;
use crate::tree::ProcessId;

/// The environment variable every server process inherits: the sweep's
/// second way to find a dead runner's leftovers, for processes born after
/// the last sample.
pub const MARKER_VAR: &str = "MCP_RUNNER_ID";

/// The marker's value for a runner.
pub fn marker(runner: ProcessId) -> String {
    format!("{}.{}", runner.pid, runner.start)
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("failed to create state directory {path}: {err}")]
    CreateDir { path: PathBuf, err: io::Error },
    #[error("state directory {path} is not owned by uid {uid} or is accessible by others; refusing to use it")]
    Unsafe { path: PathBuf, uid: u32 },
    #[error("failed to write {path}: {err}")]
    Write { path: PathBuf, err: io::Error },
    #[error("failed to read {path}: {err}")]
    Read { path: PathBuf, err: io::Error },
    #[error("{path} is not a runner record: {err}")]
    Parse { path: PathBuf, err: serde_json::Error },
}

/// What a runner writes about itself. Field names are part of the status
/// schema: add fields, never rename them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunnerRecord {
    pub version: u32,
    pub runner: ProcessId,
    pub session: String,
    pub name: Option<String>,
    pub command: Vec<String>,
    pub driver: DriverKind,
    /// Seconds since the Unix epoch.
    pub started: u64,
    pub server: Option<ProcessId>,
    pub members: Vec<ProcessId>,
    /// The server's cgroup when the runner made it (cgroupfs driver), for
    /// the crash sweep.
    #[serde(default)]
    pub cgroup: Option<PathBuf>,
    /// The server's weight in its session's share of the global cap.
    #[serde(default = "one")]
    pub weight: u32,
    /// The cgroup to read the server's figures from, whichever driver made
    /// it (systemd's scopes included), for status.
    #[serde(default)]
    pub stats_cgroup: Option<PathBuf>,
    /// The limits the server runs under (bytes, tasks), for status.
    #[serde(default)]
    pub memory_high: Option<u64>,
    #[serde(default)]
    pub memory_max: Option<u64>,
    #[serde(default)]
    pub pids_max: Option<u64>,
}

fn one() -> u32 {
    1
}

/// The directory holding runner records.
#[derive(Clone, Debug)]
pub struct StateDir {
    path: PathBuf,
}

impl StateDir {
    /// `$MCP_RUNNER_STATE_DIR`, else `$XDG_RUNTIME_DIR/mcp-runner`, else
    /// `/run/mcp-runner` for root (`/var/run/mcp-runner` on macOS), else
    /// `$TMPDIR/mcp-runner-UID` (on macOS a per-user directory). Created 0700
    /// when missing; a directory someone else owns, or that others may
    /// write, is refused (it would let them plant records for `gc`).
    pub fn locate() -> Result<StateDir, StateError> {
        let uid = nix::unistd::Uid::effective().as_raw();
        let path = if let Some(p) = std::env::var_os("MCP_RUNNER_STATE_DIR") {
            PathBuf::from(p)
        } else if let Some(p) = std::env::var_os("XDG_RUNTIME_DIR") {
            PathBuf::from(p).join("mcp-runner")
        } else if uid == 0 {
            PathBuf::from(crate::os::ROOT_STATE_DIR)
        } else {
            std::env::temp_dir().join(format!("mcp-runner-{uid}"))
        };
        StateDir::open(path, uid)
    }

    pub fn open(path: PathBuf, uid: u32) -> Result<StateDir, StateError> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&path)
            .map_err(|err| StateError::CreateDir { path: path.clone(), err })?;
        let meta = fs::symlink_metadata(&path).map_err(|err| StateError::Read { path: path.clone(), err })?;
        if !meta.is_dir() || meta.uid() != uid || meta.mode() & 0o022 != 0 {
            return Err(StateError::Unsafe { path, uid });
        }
        Ok(StateDir { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn record_path(&self, runner: ProcessId) -> PathBuf {
        self.path.join(format!("runner-{}.json", runner.pid))
    }

    /// Writes the record atomically (temporary file, then rename), so a
    /// reader never sees half a record.
    pub fn write(&self, rec: &RunnerRecord) -> Result<(), StateError> {
        let path = self.record_path(rec.runner);
        let tmp = path.with_extension("json.tmp");
        let io_err = |err| StateError::Write { path: path.clone(), err };
        let body = serde_json::to_vec(rec).map_err(|e| io_err(io::Error::other(e)))?;
        let mut f =
            fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp).map_err(io_err)?;
        f.write_all(&body).map_err(io_err)?;
        fs::rename(&tmp, &path).map_err(io_err)
    }

    pub fn remove(&self, runner: ProcessId) {
        let _ = fs::remove_file(self.record_path(runner));
    }

    /// The live runners' records: a record whose runner is gone (or a
    /// zombie) does not count.
    pub fn live_records(&self) -> Vec<RunnerRecord> {
        let table = crate::os::Procs::snapshot();
        self.records().into_iter().filter_map(|(_, r)| r.ok()).filter(|r| table.alive(r.runner)).collect()
    }

    /// Every record in the directory; unreadable ones are returned as errors
    /// so that `gc` can report and remove them.
    pub fn records(&self) -> Vec<(PathBuf, Result<RunnerRecord, StateError>)> {
        let Ok(dir) = self.path.read_dir() else { return Vec::new() };
        let mut out: Vec<_> = dir
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .map(|p| {
                let rec = fs::read(&p)
                    .map_err(|err| StateError::Read { path: p.clone(), err })
                    .and_then(|b| serde_json::from_slice(&b).map_err(|err| StateError::Parse { path: p.clone(), err }));
                (p, rec)
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn temp_state(tag: &str) -> StateDir {
        let p = std::env::temp_dir().join(format!("mcp-runner-state-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        StateDir::open(p, nix::unistd::Uid::effective().as_raw()).expect("state dir")
    }

    pub fn record(pid: i32) -> RunnerRecord {
        RunnerRecord {
            version: 1,
            runner: ProcessId { pid, start: 5 },
            session: "s".into(),
            name: Some("github".into()),
            command: vec!["npx".into(), "x".into()],
            driver: DriverKind::Userland,
            started: 1,
            server: None,
            members: vec![ProcessId { pid: 7, start: 8 }],
            cgroup: None,
            weight: 1,
            stats_cgroup: None,
            memory_high: None,
            memory_max: None,
            pids_max: None,
        }
    }

    #[test]
    fn write_read_remove_round_trip() {
        let d = temp_state("rt");
        let r = record(4242);
        d.write(&r).expect("write");
        let recs = d.records();
        assert_eq!(recs.len(), 1);
        assert_eq!(recs[0].1.as_ref().expect("parses"), &r);
        d.remove(r.runner);
        assert!(d.records().is_empty());
        fs::remove_dir_all(d.path()).ok();
    }

    #[test]
    fn world_writable_dir_is_refused() {
        let d = temp_state("perm");
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(d.path(), fs::Permissions::from_mode(0o777)).expect("chmod");
        let err = StateDir::open(d.path().to_path_buf(), nix::unistd::Uid::effective().as_raw()).expect_err("refused");
        assert!(matches!(err, StateError::Unsafe { .. }), "{err}");
        fs::remove_dir_all(d.path()).ok();
    }

    #[test]
    fn garbage_record_is_reported_not_fatal() {
        let d = temp_state("garbage");
        fs::write(d.path().join("runner-1.json"), b"{not json").expect("write");
        let recs = d.records();
        assert!(matches!(recs[0].1, Err(StateError::Parse { .. })));
        fs::remove_dir_all(d.path()).ok();
    }
}
