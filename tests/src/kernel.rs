//! The kernel tests' part of the harness (`tests/kernel_*.rs`, run in the cgroup v2 guest of
//! `ci/vm-test`): the guard that decides whether they can run here, and the cgroup v2 files
//! they read. They check the kernel's own word, not the runner's:
//!
//! - where a server lives: `/proc/PID/cgroup` (the runner's record must agree);
//! - `memory.events` is hierarchical (this cgroup and every one below it), `memory.events.local`
//!   counts the events of this cgroup's own limits only. The level (global, session, leaf)
//!   whose memory.max stopped a tree is the one whose local `max` and `oom` moved; when a
//!   cgroup's hierarchical `max` equals its local `max`, no cgroup below it hit its own limit;
//! - `pids.current`, `pids.peak`, `pids.events`, `cgroup.procs`, `cgroup.events` (populated).
//!
//! Counters are asserted as "> 0", as "== 0", or as deltas of a cgroup that outlives the test,
//! never as exact counts (one OOM kill of a one-process leaf with memory.oom.group reports
//! `oom_kill 2`). Nothing is timed: the guest runs 15-25x slower than the host, and every wait
//! is an event (POLLPRI on a cgroup file, a pidfd) bounded only by the hang guard.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use crate::{Fixture, Policy, RunnerProc, hang_guard};

/// Where the tests expect the cgroup v2 hierarchy (the guest mounts it there, alone).
pub const MOUNT: &str = "/sys/fs/cgroup";
/// The controllers the kernel tests need in the root cgroup.
pub const CONTROLLERS: [&str; 3] = ["memory", "pids", "cpu"];

/// The guard at the top of every kernel test: `true` when the kernel tests can run here (cgroup2
/// is mounted at /sys/fs/cgroup with the memory, pids and cpu controllers, and we are root).
/// Otherwise, when `VMTEST` (set by `ci/vm-test` in its guest) or `CI` is set, it panics with
/// the reason: there a kernel test must fail, never skip. Anywhere else (a developer's hybrid
/// host) it prints why the test is skipped and returns `false`.
///
/// ```ignore
/// if !kernel_or_skip() { return; }
/// ```
pub fn kernel_or_skip() -> bool {
    let Some(why) = unavailable() else { return true };
    for var in ["VMTEST", "CI"] {
        if std::env::var_os(var).is_some() {
            panic!("kernel test cannot run: {why} ({var} is set, so this is a failure, not a skip)");
        }
    }
    eprintln!("SKIPPED (no kernel enforcement here): {why}; run the kernel tests in the guest, see ci/test");
    false
}

/// Why the kernel tests cannot run here, or `None` if they can.
pub fn unavailable() -> Option<String> {
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    // The last mount on the mount point is the one visible there.
    let fstype = mounts
        .lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            (left.split(' ').nth(4)? == MOUNT).then(|| right.split(' ').next().unwrap_or("").to_owned())
        })
        .next_back();
    match fstype.as_deref() {
        Some("cgroup2") => {}
        Some(other) => return Some(format!("{MOUNT} is {other}, not cgroup2 (a hybrid or v1 layout)")),
        None => return Some(format!("nothing is mounted at {MOUNT}")),
    }
    let available = fs::read_to_string(Path::new(MOUNT).join("cgroup.controllers")).unwrap_or_default();
    let missing: Vec<&str> =
        CONTROLLERS.into_iter().filter(|c| !available.split_whitespace().any(|a| a == *c)).collect();
    if !missing.is_empty() {
        return Some(format!(
            "the root cgroup lacks the {} controller(s) (it has: {})",
            missing.join(" "),
            available.trim()
        ));
    }
    if !nix::unistd::geteuid().is_root() {
        return Some("not root (the tests build /sys/fs/cgroup/mcp-runner and delegate cgroups)".into());
    }
    None
}

/// The policy the kernel tests start from: the harness default, and no admission check on
/// memory pressure. The global cgroup is shared by every test of one guest boot: a test about
/// a limit must not be refused (exit 122) for the pressure of what the previous test left
/// stalling. (Admission judges the present when the average is high; that is tested on its own
/// in kernel_admission_pressure.rs.)
pub fn policy() -> Policy {
    Policy::default().set_in("global", "max_pressure", "\"max\"")
}

/// A session id of this test process: unique per test binary, and short enough to be one safe
/// cgroup name component (the runner keeps `[A-Za-z0-9_@-]`).
pub fn session_id(tag: &str) -> String {
    format!("kt-{tag}-{}", std::process::id())
}

/// One cgroup directory.
#[derive(Clone, PartialEq, Eq)]
pub struct Cgroup {
    path: PathBuf,
}

impl fmt::Debug for Cgroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())
    }
}

impl Cgroup {
    pub fn new(path: impl Into<PathBuf>) -> Cgroup {
        Cgroup { path: path.into() }
    }

    /// The root's default global cgroup, `/sys/fs/cgroup/mcp-runner`.
    pub fn default_global() -> Cgroup {
        Cgroup::new(Path::new(MOUNT).join("mcp-runner"))
    }

    /// The cgroup `pid` lives in (the `0::` line of `/proc/PID/cgroup`), or `None` if the
    /// process is gone.
    pub fn of_process(pid: i32) -> Option<Cgroup> {
        let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
        let rel = text.lines().find_map(|l| l.strip_prefix("0::"))?;
        Some(Cgroup::new(Path::new(MOUNT).join(rel.trim_start_matches('/'))))
    }

    /// `GLOBAL/s-SESSION`, as the runner names a session's cgroup (the id itself when it is a
    /// safe name, else a cleaned prefix and a hash: see [`crate::names`]).
    pub fn session(global: &Cgroup, session: &str) -> Cgroup {
        global.child(&crate::names::session_cgroup_name(session))
    }

    pub fn child(&self, name: &str) -> Cgroup {
        Cgroup::new(self.path.join(name))
    }

    pub fn parent(&self) -> Cgroup {
        Cgroup::new(self.path.parent().expect("a cgroup below the mount"))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn exists(&self) -> bool {
        self.path.is_dir()
    }

    /// The text of one file; panics (naming it) if it cannot be read.
    pub fn read(&self, file: &str) -> String {
        let path = self.path.join(file);
        fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
    }

    /// A single-value file: a number, or `None` for `max`.
    pub fn limit(&self, file: &str) -> Option<u64> {
        let text = self.read(file);
        match text.trim() {
            "max" => None,
            n => Some(n.parse().unwrap_or_else(|_| panic!("{}/{file}: not a number: {n:?}", self.path.display()))),
        }
    }

    /// memory.high does not throttle below memory.max: it is `max`, or at least memory.max
    /// (equal to it, memory.high can never be exceeded). Panics naming both otherwise.
    pub fn assert_no_throttle_below_max(&self) {
        let (high, max) = (self.limit("memory.high"), self.limit("memory.max"));
        let ok = match (high, max) {
            (None, _) => true,
            (Some(h), Some(m)) => h >= m,
            (Some(_), None) => false,
        };
        assert!(ok, "{self:?}: memory.high {high:?} throttles below memory.max {max:?}");
    }

    /// A single-number file (memory.current, pids.current, memory.peak, ...).
    pub fn value(&self, file: &str) -> u64 {
        self.limit(file).unwrap_or_else(|| panic!("{}/{file} is \"max\"", self.path.display()))
    }

    /// A flat-keyed file (memory.events, pids.events, cgroup.events, ...).
    pub fn counters(&self, file: &str) -> Counters {
        Counters::parse(&self.read(file))
    }

    pub fn procs(&self) -> Vec<i32> {
        self.read("cgroup.procs").split_whitespace().filter_map(|p| p.parse().ok()).collect()
    }

    /// `populated` of cgroup.events: a process lives here or below.
    pub fn populated(&self) -> bool {
        self.counters("cgroup.events").get("populated") > 0
    }

    /// `some avg10` of memory.pressure: the share of the last ~10 s in which a task of this
    /// cgroup or below stalled on memory, percent (a decaying average, updated every 2 s).
    pub fn memory_pressure_avg10(&self) -> f64 {
        let text = self.read("memory.pressure");
        text.lines()
            .find(|l| l.starts_with("some "))
            .and_then(|l| l.split_whitespace().find_map(|kv| kv.strip_prefix("avg10=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{}/memory.pressure: no some avg10 in {text:?}", self.path.display()))
    }

    /// Waits until `cond` holds for the counters of `file`, woken by the kernel's
    /// notification (kernfs signals POLLPRI when a counter of memory.events, pids.events or
    /// cgroup.events changes), with a re-read every 50 ms in case a notification is
    /// coalesced. `Err` describes the last counters seen when the hang guard ran out or the
    /// file went away.
    pub fn wait_counters(&self, file: &str, mut cond: impl FnMut(&Counters) -> bool) -> Result<Counters, String> {
        let path = self.path.join(file);
        let f = File::open(&path).map_err(|e| format!("open {}: {e}", path.display()))?;
        let end = Instant::now() + hang_guard();
        let mut last = Counters::default();
        loop {
            let mut buf = [0u8; 1024];
            let n = f.read_at(&mut buf, 0).map_err(|e| format!("read {}: {e} (last: {last})", path.display()))?;
            last = Counters::parse(&String::from_utf8_lossy(&buf[..n]));
            if cond(&last) {
                return Ok(last);
            }
            if Instant::now() >= end {
                return Err(format!("{}: not reached within {:?}; last: {last}", path.display(), hang_guard()));
            }
            let mut fds = [PollFd::new(f.as_fd(), PollFlags::POLLPRI)];
            match poll(&mut fds, PollTimeout::from(50u16)) {
                Ok(_) | Err(Errno::EINTR) => {}
                Err(e) => return Err(format!("poll {}: {e}", path.display())),
            }
        }
    }

    /// Removes this cgroup and every cgroup below it (deepest first), killing what is still
    /// in it. For the test's own cgroups only (a delegated root, a private global).
    pub fn remove_tree(&self) {
        if !self.exists() {
            return;
        }
        let _ = fs::write(self.path.join("cgroup.kill"), "1");
        if let Ok(entries) = fs::read_dir(&self.path) {
            for entry in entries.flatten() {
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    Cgroup::new(entry.path()).remove_tree();
                }
            }
        }
        // The killed tasks leave the cgroup a moment after the signal; no event says when.
        crate::poll_until(hang_guard(), Duration::from_millis(10), || fs::remove_dir(&self.path).is_ok());
    }
}

/// The counters of a flat-keyed cgroup file. A key the file lacks reads as 0.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Counters(pub BTreeMap<String, u64>);

impl Counters {
    pub fn parse(text: &str) -> Counters {
        Counters(
            text.lines()
                .filter_map(|l| {
                    let (k, v) = l.split_once(' ')?;
                    Some((k.to_owned(), v.trim().parse().ok()?))
                })
                .collect(),
        )
    }

    pub fn get(&self, key: &str) -> u64 {
        self.0.get(key).copied().unwrap_or(0)
    }

    /// What changed since `before` (for cgroups that outlive one test, e.g. the global one).
    pub fn since(&self, before: &Counters) -> Counters {
        Counters(self.0.iter().map(|(k, v)| (k.clone(), v.saturating_sub(before.get(k)))).collect())
    }
}

impl fmt::Display for Counters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|(k, v)| format!("{k} {v}")).collect();
        write!(f, "[{}]", parts.join(", "))
    }
}

impl fmt::Debug for Counters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// memory.peak of a cgroup that outlives the test (the global one), measured from now: since
/// Linux 6.12 a write to memory.peak resets the peak seen through that open file.
pub struct PeakFromNow {
    file: File,
    path: PathBuf,
}

impl PeakFromNow {
    pub fn start(cgroup: &Cgroup, file: &str) -> PeakFromNow {
        let path = cgroup.path().join(file);
        let mut f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("open {} for writing: {e}", path.display()));
        f.write_all(b"reset\n")
            .unwrap_or_else(|e| panic!("reset {} (a per-file peak needs Linux 6.12 or newer): {e}", path.display()));
        PeakFromNow { file: f, path }
    }

    /// The highest usage since [`PeakFromNow::start`].
    pub fn get(&self) -> u64 {
        let mut buf = [0u8; 64];
        let n = self.file.read_at(&mut buf, 0).unwrap_or_else(|e| panic!("read {}: {e}", self.path.display()));
        let text = String::from_utf8_lossy(&buf[..n]);
        text.trim().parse().unwrap_or_else(|_| panic!("{}: not a number: {text:?}", self.path.display()))
    }
}

/// The leaf of `runner`'s server `server_pid`, checked against the documented layout
/// `GLOBAL/s-SESSION/NAME.RUNNERPID.RUNNERSTART`, the `cgroup` field of the runner's record,
/// and the limits every leaf carries (memory.oom.group = 1, and no swap when
/// `memory.swap.max` exists).
pub fn server_leaf(
    fx: &Fixture,
    runner: &RunnerProc,
    server_pid: i32,
    global: &Cgroup,
    session: &str,
    name: &str,
) -> Cgroup {
    let leaf = Cgroup::of_process(server_pid)
        .unwrap_or_else(|| panic!("server {server_pid} is gone before its cgroup was read; {}", runner.diag()));
    let expected = Cgroup::session(global, session).child(&format!("{name}.{}", runner.marker));
    assert_eq!(leaf, expected, "the server is not in its leaf (is the cgroupfs driver in use?); {}", runner.diag());
    let record = fx.record(runner.pid);
    assert_eq!(record["driver"], "cgroupfs", "record: {record}");
    assert_eq!(
        record["cgroup"].as_str().map(Path::new),
        Some(leaf.path()),
        "the record's cgroup is not the server's leaf: {record}"
    );
    assert_eq!(leaf.read("memory.oom.group").trim(), "1", "{leaf:?}: memory.oom.group");
    if leaf.path().join("memory.swap.max").exists() {
        assert_eq!(leaf.limit("memory.swap.max"), Some(0), "{leaf:?}: memory.swap.max (default swap_max 0)");
    }
    leaf
}

/// Runners, each with what the test keeps about it (e.g. its leaf).
pub type Runners<T> = Vec<(RunnerProc, T)>;

/// Every victim exited 123 with a stderr line naming `level` (e.g. "(the session's limit,
/// shared with its other servers)") and the kernel's whole-server OOM kill, and its leaf is
/// gone.
pub fn assert_oom_victims(victims: &mut Runners<Cgroup>, level: &str) {
    for (victim, leaf) in victims {
        let stderr = victim.assert_exit(123, Some("exceeded memory_max"));
        assert!(
            stderr.lines().any(|l| l.contains(level) && l.contains("the kernel OOM-killed the whole server")),
            "the runner did not name {level} as the level; stderr:\n{stderr}"
        );
        assert!(!leaf.exists(), "the victim's leaf {leaf:?} is left");
    }
}

/// Splits `hostile leak-on-input` runners into (killed, alive) once the kernel is done with
/// them. First every server either reports `hostile/leak-done` or its stdout closes (killed).
/// A server that finished can still be chosen as the OOM victim of another one's allocation,
/// so each of those is then asked for an echo: by now nobody allocates any more, and every OOM
/// kill was issued before the allocation that triggered it returned, so a server that answers
/// was not killed, and one that was killed never answers (its stdout closes).
pub fn killed_or_alive<T>(runners: Runners<T>) -> (Runners<T>, Runners<T>) {
    let (mut killed, mut finished) = (Vec::new(), Vec::new());
    for (mut runner, t) in runners {
        match runner.notification_or_eof("hostile/leak-done") {
            Some(_) => finished.push((runner, t)),
            None => killed.push((runner, t)),
        }
    }
    let mut alive = Vec::new();
    for (mut runner, t) in finished {
        match runner.try_request(1, "ping", &serde_json::Value::Null) {
            Some(_) => alive.push((runner, t)),
            None => killed.push((runner, t)),
        }
    }
    (killed, alive)
}

/// `n` MiB in bytes (the policy's `"64M"` is 64 MiB).
pub const fn mib(n: u64) -> u64 {
    n << 20
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_parse_and_subtract() {
        let before = Counters::parse("low 0\nhigh 3\nmax 1\noom 0\noom_kill 0\n");
        let after = Counters::parse("low 0\nhigh 10\nmax 4\noom 1\noom_kill 2\noom_group_kill 1\n");
        let d = after.since(&before);
        assert_eq!((d.get("high"), d.get("max"), d.get("oom_kill"), d.get("oom_group_kill")), (7, 3, 2, 1));
        assert_eq!(d.get("absent"), 0);
        assert_eq!(Counters::parse("populated 1\nfrozen 0\n").get("populated"), 1);
    }
}
