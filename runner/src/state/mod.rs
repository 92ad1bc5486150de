//! Runner records in the user's runtime directory.
//!
//! Each live runner keeps one small JSON file naming itself (pid and start
//! time), its server and the tree's members as last sampled. `gc` (also run
//! at every runner start) uses them to find runners that died without
//! cleaning up, typically from SIGKILL, and to kill what they left. `status`
//! reads the same files.
//!
//! The directory is opened once, checked component by component
//! ([`dir`]), and held open: every record, temporary file and the admission
//! lock is opened relative to it with `O_NOFOLLOW`, new files are created
//! with `O_EXCL` under a fresh name and renamed into place, and removal is
//! `unlinkat`. Nothing is ever reached through the directory's path again.

mod dir;
pub mod sweep;

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use nix::errno::Errno;
use nix::fcntl::{OFlag, openat, renameat};
use nix::sys::stat::{Mode, SFlag, fstat};
use nix::unistd::{UnlinkatFlags, unlinkat};
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

/// The lock every runner of the user takes to decide admission.
const LOCK_NAME: &str = "admission.lock";

/// The largest record read: a record lists a tree's members, a few dozen
/// bytes each.
const MAX_RECORD: u64 = 4 << 20;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("failed to create state directory {path}: {err}")]
    CreateDir { path: PathBuf, err: io::Error },
    #[error("failed to open {path}: {err}")]
    Open { path: PathBuf, err: io::Error },
    #[error(
        "refusing to use state directory {path}: {why}; point MCP_RUNNER_STATE_DIR (or XDG_RUNTIME_DIR) \
         at a directory that only you and root can write"
    )]
    Unsafe { path: PathBuf, why: String },
    #[error("failed to lock {path}: {err}")]
    Lock { path: PathBuf, err: io::Error },
    #[error("failed to write {path}: {err}")]
    Write { path: PathBuf, err: io::Error },
    #[error("failed to read {path}: {err}")]
    Read { path: PathBuf, err: io::Error },
    #[error("{path} is not a runner record: {err}")]
    Parse { path: PathBuf, err: serde_json::Error },
}

impl StateError {
    /// The directory could be changed by someone else: it is never used,
    /// whatever the policy says.
    pub fn is_unsafe(&self) -> bool {
        matches!(self, StateError::Unsafe { .. })
    }
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
    /// The pool (and instance) this runner serves, `POOL:N`, when it runs
    /// a shared server for its pool host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
}

fn one() -> u32 {
    1
}

/// The directory holding runner records, held open.
#[derive(Debug)]
pub struct StateDir {
    /// The directory as walked (symlinks on the way resolved), for messages
    /// and for the record watch.
    path: PathBuf,
    fd: OwnedFd,
}

impl StateDir {
    /// `$MCP_RUNNER_STATE_DIR`, else `$XDG_RUNTIME_DIR/mcp-runner` when
    /// `$XDG_RUNTIME_DIR` is a directory of the effective user's (`su` and
    /// `sudo -E` hand root the user's), else `/run/mcp-runner` for root
    /// (`/var/run/mcp-runner` on macOS), else `$TMPDIR/mcp-runner-UID` (on
    /// macOS a per-user directory). Opened and checked as [`dir`] says.
    pub fn locate() -> Result<StateDir, StateError> {
        let euid = nix::unistd::Uid::effective().as_raw();
        let path =
            choose_path(euid, std::env::var_os("MCP_RUNNER_STATE_DIR"), std::env::var_os("XDG_RUNTIME_DIR"), &|p| {
                std::fs::metadata(p).ok().filter(|m| m.is_dir()).map(|m| std::os::unix::fs::MetadataExt::uid(&m))
            });
        StateDir::open(path, euid)
    }

    /// Opens (and creates, 0700) `path` as `uid`'s state directory, or
    /// refuses it if anyone else could change it.
    pub fn open(path: PathBuf, uid: u32) -> Result<StateDir, StateError> {
        let (path, fd) = dir::open_checked(&path, uid)?;
        Ok(StateDir { path, fd })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes the record atomically, so a reader never sees half a record:
    /// into a new file under a fresh name (`O_EXCL`, so never through
    /// anything already there), then renamed over the record.
    pub fn write(&self, rec: &RunnerRecord) -> Result<(), StateError> {
        let name = record_name(rec.runner.pid);
        let body = serde_json::to_vec(rec)
            .map_err(|e| StateError::Write { path: self.path.join(&name), err: io::Error::other(e) })?;
        self.write_file(&name, &body)
    }

    /// Writes `name` atomically, as records are written (see
    /// [`StateDir::write`]).
    pub fn write_file(&self, name: &str, body: &[u8]) -> Result<(), StateError> {
        let io_err = |err| StateError::Write { path: self.path.join(name), err };
        let (tmp, mut file) = self.create_temp(name).map_err(io_err)?;
        let written = file.write_all(body).and_then(|()| {
            drop(file);
            renameat(&self.fd, tmp.as_str(), &self.fd, name).map_err(io::Error::from)
        });
        if written.is_err() {
            let _ = unlinkat(&self.fd, tmp.as_str(), UnlinkatFlags::NoRemoveDir);
        }
        written.map_err(io_err)
    }

    /// The contents of the regular file `name`, `None` if there is none.
    pub fn read_file(&self, name: &str) -> io::Result<Option<Vec<u8>>> {
        self.read_regular(OsStr::new(name))
    }

    /// Removes `name` from the directory (never a directory).
    pub fn unlink(&self, name: &str) {
        let _ = unlinkat(&self.fd, name, UnlinkatFlags::NoRemoveDir);
    }

    /// The names in the directory that `keep` accepts, sorted.
    pub fn names(&self, keep: impl Fn(&str) -> bool) -> Vec<String> {
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        let Ok(listing) = nix::dir::Dir::openat(&self.fd, ".", flags, Mode::empty()) else { return Vec::new() };
        let mut names: Vec<String> = listing
            .into_iter()
            .flatten()
            .filter_map(|e| e.file_name().to_str().ok().map(str::to_owned))
            .filter(|n| keep(n))
            .collect();
        names.sort();
        names
    }

    /// A path that reaches `name` in this directory through the descriptor
    /// held open where the platform offers one (`/proc/self/fd/N/name` on
    /// Linux), for the calls that only take a path: bind and connect of a
    /// Unix socket. It is also short, whatever the directory's own path.
    pub fn entry_path(&self, name: &str) -> PathBuf {
        crate::os::dir_entry_path(&self.fd, &self.path, name)
    }

    /// A new file for the record `name`, under a name nothing had.
    fn create_temp(&self, name: &str) -> io::Result<(String, File)> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let flags = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        for _ in 0..16 {
            let tmp = format!("{name}.{}.{}.tmp", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
            match openat(&self.fd, tmp.as_str(), flags, Mode::S_IRUSR | Mode::S_IWUSR) {
                Ok(fd) => return Ok((tmp, File::from(fd))),
                // A leftover of a runner that had our pid: take another name.
                Err(Errno::EEXIST) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(io::Error::new(io::ErrorKind::AlreadyExists, "no free temporary name"))
    }

    pub fn remove(&self, runner: ProcessId) {
        let _ = unlinkat(&self.fd, record_name(runner.pid).as_str(), UnlinkatFlags::NoRemoveDir);
    }

    /// Removes a file [`StateDir::records`] returned as garbage: only ever a
    /// name of this directory that looks like a record.
    pub fn remove_garbage(&self, path: &Path) {
        if let Some(name) = path.file_name().filter(|n| is_record_name(n)) {
            let _ = unlinkat(&self.fd, name, UnlinkatFlags::NoRemoveDir);
        }
    }

    /// The admission lock file (see [`StateDir::open_lock`]).
    pub(crate) fn lock_file(&self) -> Result<File, StateError> {
        self.open_lock(LOCK_NAME)
    }

    /// The lock file `name`, opened (created 0600) in the directory, never
    /// through a symlink, and only if it is a regular file.
    pub(crate) fn open_lock(&self, name: &str) -> Result<File, StateError> {
        let flags = OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
        self.open_regular(name, flags).map_err(|err| StateError::Lock { path: self.path.join(name), err })
    }

    /// `name` (created 0600) for appending a log to, under the same rules as
    /// the lock files; emptied first once it is over `keep` bytes, so that
    /// it holds the last runs but does not grow forever.
    pub(crate) fn open_log(&self, name: &str, keep: u64) -> Result<File, StateError> {
        let flags = OFlag::O_WRONLY
            | OFlag::O_CREAT
            | OFlag::O_APPEND
            | OFlag::O_NOFOLLOW
            | OFlag::O_NONBLOCK
            | OFlag::O_CLOEXEC;
        let err = |err| StateError::Write { path: self.path.join(name), err };
        let file = self.open_regular(name, flags).map_err(err)?;
        if file.metadata().map_err(err)?.len() > keep {
            file.set_len(0).map_err(err)?;
        }
        Ok(file)
    }

    /// Whether `name` in the directory is still the file `file` is open on
    /// (same device and inode): a lock taken on a file that was unlinked
    /// meanwhile guards nothing.
    pub(crate) fn still_names(&self, name: &str, file: &File) -> bool {
        let here = nix::sys::stat::fstatat(&self.fd, name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW);
        match (here, fstat(file)) {
            (Ok(a), Ok(b)) => a.st_dev == b.st_dev && a.st_ino == b.st_ino,
            _ => false,
        }
    }

    fn open_regular(&self, name: &str, flags: OFlag) -> io::Result<File> {
        let fd = openat(&self.fd, name, flags, Mode::S_IRUSR | Mode::S_IWUSR)?;
        if dir::file_type(&fstat(&fd)?) != SFlag::S_IFREG {
            return Err(io::Error::other("not a regular file"));
        }
        Ok(File::from(fd))
    }

    /// The live runners' records: a record whose runner is gone (or a
    /// zombie) does not count.
    pub fn live_records(&self) -> Vec<RunnerRecord> {
        let table = crate::os::Procs::snapshot();
        self.records().into_iter().filter_map(|(_, r)| r.ok()).filter(|r| table.alive(r.runner)).collect()
    }

    /// Every record in the directory: the regular files named
    /// `runner-PID.json`. Anything else (other names, symlinks, fifos) is
    /// not looked at. Unreadable records are returned as errors so that `gc`
    /// can report and remove them.
    pub fn records(&self) -> Vec<(PathBuf, Result<RunnerRecord, StateError>)> {
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        let Ok(listing) = nix::dir::Dir::openat(&self.fd, ".", flags, Mode::empty()) else { return Vec::new() };
        let names: Vec<OsString> = listing
            .into_iter()
            .flatten()
            .map(|e| OsStr::from_bytes(e.file_name().to_bytes()).to_owned())
            .filter(|n| is_record_name(n))
            .collect();
        let mut out: Vec<_> = names
            .into_iter()
            .filter_map(|name| {
                let path = self.path.join(&name);
                let rec = match self.read_regular(&name) {
                    Ok(Some(body)) => {
                        serde_json::from_slice(&body).map_err(|err| StateError::Parse { path: path.clone(), err })
                    }
                    Ok(None) => return None,
                    Err(err) => Err(StateError::Read { path: path.clone(), err }),
                };
                Some((path, rec))
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// The contents of `name` if it is a regular file; `None` if it is not
    /// (or is gone).
    fn read_regular(&self, name: &OsStr) -> io::Result<Option<Vec<u8>>> {
        // O_NONBLOCK: opening a fifo must not wait for a writer.
        let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
        let fd = match openat(&self.fd, name, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::ELOOP | Errno::ENOENT | Errno::ENXIO) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        if dir::file_type(&fstat(&fd)?) != SFlag::S_IFREG {
            return Ok(None);
        }
        let mut body = Vec::new();
        File::from(fd).take(MAX_RECORD + 1).read_to_end(&mut body)?;
        if body.len() as u64 > MAX_RECORD {
            return Err(io::Error::other(format!("larger than {MAX_RECORD} bytes")));
        }
        Ok(Some(body))
    }
}

fn record_name(pid: i32) -> String {
    format!("runner-{pid}.json")
}

/// `runner-PID.json`, PID decimal digits.
fn is_record_name(name: &OsStr) -> bool {
    name.to_str()
        .and_then(|n| n.strip_prefix("runner-"))
        .and_then(|n| n.strip_suffix(".json"))
        .is_some_and(|pid| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()))
}

/// Where the state directory is (see [`StateDir::locate`]). `dir_owner`
/// gives the owner of a directory, `None` for anything else.
fn choose_path(
    euid: u32,
    explicit: Option<OsString>,
    xdg_runtime_dir: Option<OsString>,
    dir_owner: &dyn Fn(&Path) -> Option<u32>,
) -> PathBuf {
    if let Some(p) = explicit {
        return PathBuf::from(p);
    }
    if let Some(xdg) = xdg_runtime_dir.map(PathBuf::from) {
        match dir_owner(&xdg) {
            Some(owner) if owner == euid => return xdg.join("mcp-runner"),
            Some(owner) => tracing::info!(
                "ignoring XDG_RUNTIME_DIR={}: it belongs to uid {owner}, not to uid {euid}",
                xdg.display()
            ),
            None => tracing::info!("ignoring XDG_RUNTIME_DIR={}: not a directory", xdg.display()),
        }
    }
    if euid == 0 {
        PathBuf::from(crate::os::ROOT_STATE_DIR)
    } else {
        std::env::temp_dir().join(format!("mcp-runner-{euid}"))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::fs;

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
            pool: None,
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
        assert!(err.is_unsafe(), "{err}");
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

    #[test]
    fn issue_9_record_write_follows_no_symlink_at_the_temporary_name() {
        // See: issue 9, finding 1
        let d = temp_state("tmp-symlink");
        let outside = d.path().with_extension("outside");
        fs::write(&outside, "precious").expect("write outside");
        std::os::unix::fs::symlink(&outside, d.path().join("runner-4243.json.tmp")).expect("symlink");
        d.write(&record(4243)).expect("write");
        assert_eq!(fs::read_to_string(&outside).expect("read outside"), "precious", "written through the symlink");
        assert_eq!(d.records()[0].1.as_ref().expect("parses"), &record(4243));
        fs::remove_dir_all(d.path()).ok();
        fs::remove_file(&outside).ok();
    }

    #[test]
    fn issue_9_admission_lock_follows_no_symlink() {
        // See: issue 9, finding 1
        let d = temp_state("lock-symlink");
        let outside = d.path().with_extension("created");
        std::os::unix::fs::symlink(&outside, d.path().join("admission.lock")).expect("symlink");
        let held = crate::admission::lock::lock(&d);
        assert!(held.is_err(), "a lock taken through a symlink");
        assert!(!outside.exists(), "{} created through the symlink", outside.display());
        fs::remove_dir_all(d.path()).ok();
    }

    #[test]
    fn issue_9_records_are_regular_files_named_like_records() {
        // See: issue 9, finding 1
        let d = temp_state("names");
        let outside = d.path().with_extension("target");
        fs::write(&outside, "{not json").expect("write outside");
        fs::write(d.path().join("notes.json"), b"{not json").expect("write notes");
        fs::write(d.path().join("runner-x.json"), b"{not json").expect("write runner-x");
        std::os::unix::fs::symlink(&outside, d.path().join("runner-6.json")).expect("symlink");
        nix::unistd::mkfifo(&d.path().join("runner-7.json"), nix::sys::stat::Mode::S_IRWXU).expect("mkfifo");
        fs::write(d.path().join("runner-8.json"), b"{not json").expect("write runner-8");
        let recs = d.records();
        let names: Vec<_> = recs.iter().map(|(p, _)| p.file_name().map(|n| n.to_owned())).collect();
        assert_eq!(names, [Some("runner-8.json".into())], "{recs:?}");
        let swept = sweep::sweep(&d, &crate::os::Procs::snapshot(), &|_| unreachable!("no record to sweep"));
        assert_eq!(swept.len(), 1, "{swept:?}");
        for kept in ["notes.json", "runner-x.json", "runner-6.json", "runner-7.json"] {
            assert!(fs::symlink_metadata(d.path().join(kept)).is_ok(), "the sweep removed {kept}");
        }
        assert!(!d.path().join("runner-8.json").exists(), "garbage record left");
        assert!(outside.exists(), "the symlink's target was removed");
        fs::remove_dir_all(d.path()).ok();
        fs::remove_file(&outside).ok();
    }

    #[test]
    fn issue_9_a_state_dir_swapped_after_it_was_opened_is_not_followed() {
        // See: issue 9, finding 1
        // Whoever can rename the directory (its parent's owner) swaps it for
        // one of theirs, with a symlink at the record's name: the runner keeps
        // writing into the directory it checked.
        let d = temp_state("swap");
        let aside = d.path().with_extension("aside");
        let outside = d.path().with_extension("outside");
        fs::write(&outside, "precious").expect("write outside");
        fs::rename(d.path(), &aside).expect("rename");
        fs::create_dir(d.path()).expect("mkdir");
        std::os::unix::fs::symlink(&outside, d.path().join("runner-4244.json")).expect("symlink");
        d.write(&record(4244)).expect("write");
        assert_eq!(fs::read_to_string(&outside).expect("read"), "precious");
        assert!(aside.join("runner-4244.json").is_file(), "the record is not in the directory that was opened");
        assert_eq!(d.records().len(), 1);
        d.remove(record(4244).runner);
        assert!(!aside.join("runner-4244.json").exists(), "removed from the opened directory");
        assert!(fs::symlink_metadata(d.path().join("runner-4244.json")).is_ok(), "the planted link was touched");
        for p in [d.path(), aside.as_path()] {
            fs::remove_dir_all(p).ok();
        }
        fs::remove_file(&outside).ok();
    }

    #[test]
    fn issue_9_runtime_dir_of_another_user_is_ignored() {
        // See: issue 9, finding 1
        let owners = |p: &Path| match p.to_str() {
            Some("/run/user/1000") => Some(1000),
            Some("/run/user/0") => Some(0),
            _ => None,
        };
        let tmp = std::env::temp_dir();
        let table: [(u32, Option<&str>, Option<&str>, PathBuf); 7] = [
            (0, None, Some("/run/user/1000"), PathBuf::from(crate::os::ROOT_STATE_DIR)),
            (0, None, Some("/run/user/0"), PathBuf::from("/run/user/0/mcp-runner")),
            (0, None, Some("/nonexistent"), PathBuf::from(crate::os::ROOT_STATE_DIR)),
            (0, None, None, PathBuf::from(crate::os::ROOT_STATE_DIR)),
            (1000, None, Some("/run/user/1000"), PathBuf::from("/run/user/1000/mcp-runner")),
            (1001, None, Some("/run/user/1000"), tmp.join("mcp-runner-1001")),
            (0, Some("/srv/state"), Some("/run/user/1000"), PathBuf::from("/srv/state")),
        ];
        for (euid, explicit, xdg, want) in table {
            let got = choose_path(euid, explicit.map(OsString::from), xdg.map(OsString::from), &owners);
            assert_eq!(got, want, "euid {euid}, MCP_RUNNER_STATE_DIR {explicit:?}, XDG_RUNTIME_DIR {xdg:?}");
        }
    }

    #[test]
    fn record_names() {
        for (name, is) in [
            ("runner-1.json", true),
            ("runner-4242.json", true),
            ("runner-.json", false),
            ("runner-1a.json", false),
            ("runner-1.json.1.2.tmp", false),
            ("admission.lock", false),
            ("x.json", false),
        ] {
            assert_eq!(is_record_name(OsStr::new(name)), is, "{name}");
        }
    }
}
