//! Harness for the end-to-end tests of the `mcp-runner` binary.
//!
//! The tests run the real binary on real processes and check the end state from `/proc`,
//! without trusting anything the runner says about itself:
//!
//! - every process of a server's tree carries `MCP_RUNNER_ID=<runner pid>.<runner start time>`
//!   in its environment (the crash-sweep marker of the contract); [`tree_marker_processes`]
//!   finds them all, including setsid/double-forked daemons;
//! - zombies are found by their state and parent in `/proc/PID/stat`;
//! - waiting for a process to end uses a pidfd and `poll`, an event with a timeout that only
//!   guards against hangs (30 s, times `TEST_TIME_SCALE`). Nothing sleeps as synchronisation.
//!
//! Each test gets a [`Fixture`]: a fresh temporary directory holding the runner's state dir
//! (`MCP_RUNNER_STATE_DIR`) and its policy file (`MCP_RUNNER_POLICY`).

use std::ffi::OsStr;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

pub mod fault;
pub mod kernel;
pub mod names;
pub mod pool;
mod procview;
pub mod systemd;

pub use procview::proc_stat;

/// Path of the `hostile` test server binary. A macro because `CARGO_BIN_EXE_*` is only set
/// when the integration tests themselves are compiled.
#[macro_export]
macro_rules! hostile {
    () => {
        env!("CARGO_BIN_EXE_hostile")
    };
}

/// The name of the marker variable the runner puts into the server's environment.
pub const MARKER_VAR: &str = "MCP_RUNNER_ID";

// ---------------------------------------------------------------------------------------------
// Time

/// `TEST_TIME_SCALE` (default 1): multiplies every timeout, for slow machines and emulators.
pub fn time_scale() -> f64 {
    std::env::var("TEST_TIME_SCALE").ok().and_then(|s| s.parse::<f64>().ok()).filter(|s| *s > 0.0).unwrap_or(1.0)
}

/// `d` scaled by `TEST_TIME_SCALE`.
pub fn scaled(d: Duration) -> Duration {
    d.mul_f64(time_scale())
}

/// The guard against hangs: how long any single wait may take before the test fails.
pub fn hang_guard() -> Duration {
    scaled(Duration::from_secs(30))
}

/// Polls `cond` every `interval` until it holds or `timeout` passes; returns whether it held.
/// Only for states that have no event to wait on (e.g. "this process has no zombie children
/// any more": the kernel offers no notification when a parent reaps).
pub fn poll_until(timeout: Duration, interval: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        thread::sleep(interval);
    }
}

// ---------------------------------------------------------------------------------------------
// Files

/// A fresh directory under the system temp dir, removed (recursively) on drop.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
        loop {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let name = format!("mcp-runner-{tag}-{}-{n}-{nanos:x}", std::process::id());
            let path = std::env::temp_dir().join(name);
            match fs::create_dir(&path) {
                Ok(()) => return TempDir { path },
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => panic!("cannot create {}: {e}", path.display()),
            }
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// The `mcp-runner` binary: `$MCP_RUNNER_BIN`, else `<dir of the test exe>/../mcp-runner`
/// (test executables live in `target/<profile>/deps/`).
pub fn runner_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("MCP_RUNNER_BIN") {
        let bin = PathBuf::from(bin);
        assert!(bin.is_file(), "MCP_RUNNER_BIN={} does not exist", bin.display());
        return bin;
    }
    let exe = std::env::current_exe().expect("current_exe");
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|profile_dir| profile_dir.join("mcp-runner"))
        .expect("test executable has no grandparent directory");
    assert!(bin.is_file(), "{} is missing: build it first: cargo build --workspace --bins", bin.display());
    // `cargo test -p mcp-runner-tests` does not rebuild the runner: refuse to test a binary
    // older than the sources it was built from (listed in cargo's dep-info file beside it)
    // rather than report on code that is not the code in the tree.
    let built = fs::metadata(&bin).and_then(|m| m.modified()).ok();
    let newest = fs::read_to_string(bin.with_extension("d")).ok().and_then(|d| newest_source(&d));
    if let (Some(built), Some((newest, path))) = (built, newest) {
        assert!(
            built >= newest,
            "{} is older than {path}: build it first: cargo build --workspace --bins",
            bin.display()
        );
    }
    bin
}

/// The newest of the files a cargo dep-info file (`target: dep dep ...`, spaces in paths
/// escaped as `\ `) lists on its first line, with its path.
fn newest_source(dep_info: &str) -> Option<(SystemTime, String)> {
    let (_, deps) = dep_info.lines().next()?.split_once(": ")?;
    let mut paths = Vec::new();
    let mut current = String::new();
    for word in deps.split(' ') {
        match word.strip_suffix('\\') {
            Some(part) => {
                current.push_str(part);
                current.push(' ');
            }
            None => {
                current.push_str(word);
                if !current.is_empty() {
                    paths.push(std::mem::take(&mut current));
                }
            }
        }
    }
    paths.into_iter().filter_map(|p| Some((fs::metadata(&p).ok()?.modified().ok()?, p))).max()
}

// ---------------------------------------------------------------------------------------------
// Policy and fixture

/// A policy: `[defaults]`, starting from the one every test uses unless it says otherwise, and
/// optionally `[global]` and `[session]` keys ([`Policy::set_in`]).
#[derive(Clone, Debug)]
pub struct Policy {
    entries: Vec<(String, String)>,
    /// Other sections, in the order they were first set: (section, key, TOML value).
    sections: Vec<(String, String, String)>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            entries: [
                ("memory_max", "\"128M\""),
                ("pids_max", "32"),
                ("grace", "\"300ms\""),
                ("kill_timeout", "\"300ms\""),
                ("sample_interval", "\"20ms\""),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
            sections: Vec::new(),
        }
    }
}

impl Policy {
    /// Sets `key` to `toml_value`, which is TOML (strings with their quotes).
    pub fn set(mut self, key: &str, toml_value: &str) -> Self {
        match self.entries.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 = toml_value.to_owned(),
            None => self.entries.push((key.to_owned(), toml_value.to_owned())),
        }
        self
    }

    /// Sets `key` in `[section]` (e.g. `global`, `session`) to `toml_value`.
    pub fn set_in(mut self, section: &str, key: &str, toml_value: &str) -> Self {
        match self.sections.iter_mut().find(|(s, k, _)| s == section && k == key) {
            Some(entry) => entry.2 = toml_value.to_owned(),
            None => self.sections.push((section.to_owned(), key.to_owned(), toml_value.to_owned())),
        }
        self
    }

    pub fn to_toml(&self) -> String {
        let mut text = String::from("[defaults]\n");
        for (k, v) in &self.entries {
            text.push_str(&format!("{k} = {v}\n"));
        }
        let mut names: Vec<&str> = Vec::new();
        for (section, _, _) in &self.sections {
            if !names.contains(&section.as_str()) {
                names.push(section);
            }
        }
        for name in names {
            text.push_str(&format!("\n[{name}]\n"));
            for (_, k, v) in self.sections.iter().filter(|(s, _, _)| s == name) {
                text.push_str(&format!("{k} = {v}\n"));
            }
        }
        text
    }
}

/// One test's private world: a temp dir with `state/` (the runner's state dir) and
/// `policy.toml`.
pub struct Fixture {
    dir: TempDir,
    pub state_dir: PathBuf,
    pub policy_file: PathBuf,
}

impl Fixture {
    pub fn new(policy: &Policy) -> Fixture {
        Fixture::with_policy_text(&policy.to_toml())
    }

    /// A fixture whose policy file holds exactly `text` (which may be invalid on purpose).
    pub fn with_policy_text(text: &str) -> Fixture {
        let dir = TempDir::new("test");
        let state_dir = dir.path().join("state");
        fs::create_dir(&state_dir).expect("create state dir");
        let policy_file = dir.path().join("policy.toml");
        fs::write(&policy_file, text).expect("write policy");
        Fixture { dir, state_dir, policy_file }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `mcp-runner ARGS...` with this fixture's environment and nothing inherited that could
    /// change the runner's behaviour.
    pub fn command<S: AsRef<OsStr>>(&self, args: &[S]) -> Command {
        let mut cmd = Command::new(runner_bin());
        cmd.args(args);
        self.apply_env(&mut cmd);
        cmd
    }

    /// Gives `cmd` (the runner, or a client that will start it) this fixture's state dir and
    /// policy, and removes the runner variables the test itself may have inherited.
    pub fn apply_env(&self, cmd: &mut Command) {
        cmd.env_remove("MCP_RUNNER_LOG")
            .env_remove("MCP_RUNNER_SESSION")
            .env_remove(MARKER_VAR)
            .env("MCP_RUNNER_STATE_DIR", &self.state_dir)
            .env("MCP_RUNNER_POLICY", &self.policy_file);
    }

    /// `mcp-runner run --name NAME -- SERVER...`, with piped stdio.
    pub fn run<S: AsRef<OsStr>>(&self, name: &str, server: &[S]) -> RunnerProc {
        let mut args: Vec<&OsStr> = vec!["run".as_ref(), "--name".as_ref(), name.as_ref()];
        args.push("--".as_ref());
        args.extend(server.iter().map(AsRef::as_ref));
        RunnerProc::spawn(self.command(&args))
    }

    /// `mcp-runner run --session SESSION --name NAME -- SERVER...`, with piped stdio.
    pub fn run_in<S: AsRef<OsStr>>(&self, session: &str, name: &str, server: &[S]) -> RunnerProc {
        let mut args: Vec<&OsStr> =
            vec!["run".as_ref(), "--session".as_ref(), session.as_ref(), "--name".as_ref(), name.as_ref()];
        args.push("--".as_ref());
        args.extend(server.iter().map(AsRef::as_ref));
        RunnerProc::spawn(self.command(&args))
    }

    /// The runner record (`runner-PID.json` in the state dir) of the runner with this pid,
    /// once it exists and parses (the runner writes it right after spawning the server, so
    /// it may not be there yet when the server reports ready). Panics after the hang guard.
    pub fn record(&self, runner_pid: i32) -> Value {
        let path = self.state_dir.join(format!("runner-{runner_pid}.json"));
        let mut record = None;
        let found = poll_until(hang_guard(), Duration::from_millis(10), || {
            record = fs::read(&path).ok().and_then(|b| serde_json::from_slice::<Value>(&b).ok());
            record.is_some()
        });
        assert!(found, "no runner record {} within {:?}", path.display(), hang_guard());
        record.expect("found")
    }

    /// Runs `mcp-runner ARGS...` to completion (stdin closed at once) within the hang guard.
    pub fn output<S: AsRef<OsStr>>(&self, args: &[S]) -> Finished {
        let mut proc = RunnerProc::spawn(self.command(args));
        proc.close_stdin();
        let status = proc.wait_exit();
        let mut stdout = String::new();
        while let Some(line) = proc.read_line() {
            stdout.push_str(&line);
            stdout.push('\n');
        }
        Finished { status, stdout, stderr: proc.stderr() }
    }
}

/// A process that ran to completion.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

// ---------------------------------------------------------------------------------------------
// The runner process

/// A spawned `mcp-runner` with piped stdio. Lines of stdout arrive through a reader thread;
/// stderr is collected by another. On drop, whatever is left (the runner, the processes that
/// carry its marker) is SIGKILLed, so a failing test does not litter the host.
pub struct RunnerProc {
    child: Child,
    pub pid: i32,
    /// `<pid>.<start time>`, the value of `MCP_RUNNER_ID` in the server's tree.
    pub marker: String,
    pidfd: Pidfd,
    stdin: Option<ChildStdin>,
    lines: Lines,
    stderr: Stderr,
    status: Option<ExitStatus>,
    /// Pids the hostile server reported (its own, its daemon's, its children's), with their
    /// start times, for the end-state checks.
    known: Vec<(i32, Option<u64>)>,
}

impl RunnerProc {
    pub fn spawn(mut cmd: Command) -> RunnerProc {
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot spawn {cmd:?}: {e}"));
        let pid = child.id() as i32;
        // The child is not reaped until we wait for it, so its /proc entry (even as a zombie)
        // and its pid are ours to read: no race here.
        let start = start_time(pid).expect("runner's /proc/PID/stat");
        let pidfd = Pidfd::open(pid).expect("pidfd_open(runner)");
        let stdout = child.stdout.take().expect("stdout");
        let stderr = Stderr::collect(child.stderr.take().expect("stderr"));
        RunnerProc {
            lines: Lines::read(stdout),
            stdin: child.stdin.take(),
            child,
            pid,
            marker: format!("{pid}.{start}"),
            pidfd,
            stderr,
            status: None,
            known: Vec::new(),
        }
    }

    /// The next line of stdout, or `None` at EOF. Panics after the hang guard.
    pub fn read_line(&mut self) -> Option<String> {
        match self.lines.next(hang_guard()) {
            Ok(line) => line,
            Err(TimedOut) => {
                panic!("no line on stdout within {:?}; {}", hang_guard(), self.diag())
            }
        }
    }

    /// Reads stdout until a notification `method` arrives and returns its params; other lines
    /// are skipped. Pids in hostile reports are remembered for [`Self::assert_nothing_left`].
    pub fn expect_notification(&mut self, method: &str) -> Value {
        loop {
            let Some(line) = self.read_line() else {
                panic!("stdout closed before {method}; {}", self.closed_diag());
            };
            let Ok(msg) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            if msg["method"] == method {
                let params = msg["params"].clone();
                self.remember_pids(&params);
                return params;
            }
        }
    }

    /// Like [`Self::expect_notification`], but `None` if stdout closes first (the server and
    /// the runner are gone, e.g. killed for a limit).
    pub fn notification_or_eof(&mut self, method: &str) -> Option<Value> {
        loop {
            let line = self.read_line()?;
            let Ok(msg) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            if msg["method"] == method {
                let params = msg["params"].clone();
                self.remember_pids(&params);
                return Some(params);
            }
        }
    }

    /// Waits for `hostile/ready` and returns its params.
    pub fn ready(&mut self) -> Value {
        self.expect_notification("hostile/ready")
    }

    fn remember_pids(&mut self, params: &Value) {
        let mut pids: Vec<i64> = ["pid", "daemon"].iter().filter_map(|k| params[k].as_i64()).collect();
        for list in ["children", "pids"] {
            if let Some(items) = params[list].as_array() {
                pids.extend(items.iter().filter_map(Value::as_i64));
            }
        }
        for pid in pids {
            let pid = pid as i32;
            self.known.push((pid, start_time(pid)));
        }
    }

    pub fn send_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin already closed");
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .and_then(|()| stdin.flush())
            .unwrap_or_else(|e| panic!("write to runner stdin: {e}"));
    }

    /// Sends a request and returns the raw response line with the same id (other lines, such
    /// as notifications, are skipped).
    pub fn request(&mut self, id: u64, method: &str, params: &Value) -> String {
        let req = serde_json::json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        self.send_line(&req.to_string());
        loop {
            let Some(line) = self.read_line() else {
                panic!("stdout closed before the response to {id}; {}", self.closed_diag());
            };
            if serde_json::from_str::<Value>(&line).is_ok_and(|m| m["id"] == id) {
                return line;
            }
        }
    }

    /// Sends a request and returns the response line, or `None` if the server cannot answer
    /// any more: stdin is broken or stdout closed first (it was killed and the runner exited).
    pub fn try_request(&mut self, id: u64, method: &str, params: &Value) -> Option<String> {
        let req = serde_json::json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let stdin = self.stdin.as_mut()?;
        stdin.write_all(format!("{req}\n").as_bytes()).and_then(|()| stdin.flush()).ok()?;
        loop {
            let line = self.read_line()?;
            if serde_json::from_str::<Value>(&line).is_ok_and(|m| m["id"] == id) {
                return Some(line);
            }
        }
    }

    /// Closes the runner's stdin: the session-close event.
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    pub fn signal(&self, signal: Signal) {
        // The runner is our unreaped child until `wait_exit`, so its pid cannot be reused.
        assert!(self.status.is_none(), "runner already reaped");
        kill(Pid::from_raw(self.pid), signal).expect("kill(runner)");
    }

    /// Whether the runner exits within `timeout` (pidfd + poll; it is not reaped).
    pub fn exits_within(&self, timeout: Duration) -> bool {
        self.status.is_some() || self.pidfd.wait(timeout)
    }

    /// Waits (pidfd + poll) for the runner to exit, within the hang guard, and reaps it.
    pub fn wait_exit(&mut self) -> ExitStatus {
        if let Some(status) = self.status {
            return status;
        }
        if !self.pidfd.wait(hang_guard()) {
            panic!("runner did not exit within {:?}; {}", hang_guard(), self.diag());
        }
        let status = self.child.wait().expect("wait(runner)");
        self.status = Some(status);
        status
    }

    /// The runner's exit code; panics if it died by a signal.
    pub fn exit_code(&mut self) -> i32 {
        let status = self.wait_exit();
        match status.code() {
            Some(code) => code,
            None => panic!("runner itself died: {status:?}; {}", self.diag()),
        }
    }

    /// Everything the runner (and the server, which shares the pipe) wrote to stderr. Call
    /// after the runner exited: the pipe closes when the last process holding it is gone.
    pub fn stderr(&mut self) -> String {
        self.stderr.wait_eof(scaled(Duration::from_secs(5)));
        self.stderr.text()
    }

    /// Waits until the runner's stderr (so far) contains `needle` and returns it; panics after
    /// the hang guard. Polled: the collector thread offers no event per chunk.
    pub fn wait_stderr(&self, needle: &str) -> String {
        let mut text = String::new();
        let found = poll_until(hang_guard(), Duration::from_millis(20), || {
            text = self.stderr.text();
            text.contains(needle)
        });
        assert!(found, "no \"{needle}\" on stderr within {:?}; {}", hang_guard(), self.diag());
        text
    }

    /// Live processes carrying this runner's marker (see [`tree_marker_processes`]).
    pub fn tree(&self) -> Vec<i32> {
        tree_marker_processes(&self.marker)
    }

    /// The end state after the runner exited: no process carries its marker, and none of the
    /// pids the server reported exists any more, not even as a zombie. (A zombie the runner
    /// failed to reap is reparented to init when the runner exits; it is caught here unless
    /// init reaped it first, which is why `zombie_factory` checks while the runner runs.)
    pub fn assert_nothing_left(&mut self) {
        assert!(self.status.is_some(), "assert_nothing_left before the runner exited");
        let tree = self.tree();
        assert!(tree.is_empty(), "processes of the tree left after the runner exited: {}", describe(&tree));
        let left: Vec<i32> = self
            .known
            .iter()
            .filter(|(pid, start)| start.is_some() && start_time(*pid) == *start)
            .map(|(pid, _)| *pid)
            .collect();
        assert!(left.is_empty(), "reported pids still exist after the runner exited: {}", describe(&left));
    }

    /// The usual ending: exit `code`, a runner line on stderr contains `reason` (if any),
    /// nothing left. Returns stderr.
    pub fn assert_exit(&mut self, code: i32, reason: Option<&str>) -> String {
        let got = self.exit_code();
        let stderr = self.stderr();
        assert_eq!(got, code, "runner exit code; stderr:\n{stderr}");
        if let Some(reason) = reason {
            assert!(
                stderr.lines().any(|l| l.starts_with("mcp-runner: ") && l.contains(reason)),
                "no stderr line \"mcp-runner: ...{reason}...\"; stderr:\n{stderr}"
            );
        }
        self.assert_nothing_left();
        stderr
    }

    /// [`Self::diag`] after stdout closed unexpectedly: the runner is probably exiting, so its
    /// exit status and whole stderr say more (waits for them a few seconds at most).
    fn closed_diag(&mut self) -> String {
        if self.status.is_none() && self.pidfd.wait(scaled(Duration::from_secs(5))) {
            self.status = self.child.wait().ok();
            self.stderr.wait_eof(scaled(Duration::from_secs(5)));
        }
        match self.status {
            Some(status) => format!("runner exited: {status}; {}", self.diag()),
            None => self.diag(),
        }
    }

    /// A description of the state for failure messages.
    pub fn diag(&self) -> String {
        format!(
            "runner pid {} marker {}; tree: {}; stderr so far:\n{}",
            self.pid,
            self.marker,
            describe(&self.tree()),
            self.stderr.text()
        )
    }
}

impl Drop for RunnerProc {
    fn drop(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        // Clean-up after a failed test only; the assertions have been made by now. A fork bomb
        // may still be forking, hence a few rounds.
        for _ in 0..20 {
            let tree = self.tree();
            let known: Vec<i32> = self
                .known
                .iter()
                .filter(|(pid, start)| start.is_some() && start_time(*pid) == *start)
                .map(|(pid, _)| *pid)
                .collect();
            if tree.is_empty() && known.is_empty() {
                break;
            }
            for pid in tree.into_iter().chain(known) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
            thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The lines of a pipe, read on a thread and handed over through a channel, so that a reader
/// can wait for the next one with a timeout.
pub struct Lines {
    rx: Receiver<String>,
}

/// A wait that reached its timeout.
#[derive(Debug)]
pub struct TimedOut;

impl Lines {
    pub fn read(pipe: impl Read + Send + 'static) -> Lines {
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Lines { rx }
    }

    /// The next line, `Ok(None)` at EOF.
    pub fn next(&self, timeout: Duration) -> Result<Option<String>, TimedOut> {
        match self.rx.recv_timeout(timeout) {
            Ok(line) => Ok(Some(line)),
            Err(RecvTimeoutError::Disconnected) => Ok(None),
            Err(RecvTimeoutError::Timeout) => Err(TimedOut),
        }
    }
}

/// Collects a pipe into memory on a thread and signals EOF.
pub struct Stderr {
    buf: Arc<Mutex<Vec<u8>>>,
    eof: Receiver<()>,
    done: bool,
}

impl Stderr {
    pub fn collect(mut pipe: impl Read + Send + 'static) -> Stderr {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let (tx, eof) = mpsc::channel();
        let sink = Arc::clone(&buf);
        thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&chunk[..n]);
            }
            let _ = tx.send(());
        });
        Stderr { buf, eof, done: false }
    }

    /// Waits for EOF, at most `timeout`.
    pub fn wait_eof(&mut self, timeout: Duration) {
        if !self.done {
            self.done = self.eof.recv_timeout(timeout).is_ok();
        }
    }

    /// What was collected so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.buf.lock().unwrap()).into_owned()
    }
}

// ---------------------------------------------------------------------------------------------
// The process table: /proc on Linux, libproc on macOS (`procview`)

/// The fields of `/proc/PID/stat` the tests need (on macOS, the same facts
/// from libproc; `start_time` is then the unique id, as in the runner).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcStat {
    pub state: char,
    pub ppid: i32,
    pub pgrp: i32,
    pub session: i32,
    /// Field 22: start time after boot, in clock ticks.
    pub start_time: u64,
}

pub fn start_time(pid: i32) -> Option<u64> {
    proc_stat(pid).map(|s| s.start_time)
}

/// The marker the runner with this pid gives its tree: `<pid>.<start time>`.
pub fn marker_of(runner_pid: i32) -> Option<String> {
    start_time(runner_pid).map(|start| format!("{runner_pid}.{start}"))
}

/// The process exists and is not a zombie (or dead, `X`).
pub fn alive(pid: i32) -> bool {
    proc_stat(pid).is_some_and(|s| s.state != 'Z' && s.state != 'X')
}

/// Zombie children of `ppid`.
pub fn zombies_of(ppid: i32) -> Vec<i32> {
    procview::all_pids()
        .into_iter()
        .filter(|&pid| proc_stat(pid).is_some_and(|s| s.state == 'Z' && s.ppid == ppid))
        .collect()
}

/// Every live process whose environment holds `MCP_RUNNER_ID=<marker>`: the server's whole
/// tree, whatever it did to escape its process group or session. Zombies have no readable
/// environment and are not listed (see [`zombies_of`]).
pub fn tree_marker_processes(marker: &str) -> Vec<i32> {
    let needle = format!("{MARKER_VAR}={marker}");
    procview::all_pids().into_iter().filter(|&pid| procview::environ_has(pid, &needle) && alive(pid)).collect()
}

/// `pid (comm) state` for each pid, for failure messages.
pub fn describe(pids: &[i32]) -> String {
    if pids.is_empty() {
        return "none".into();
    }
    pids.iter()
        .map(|pid| {
            let comm = procview::comm(*pid);
            let state = proc_stat(*pid).map_or('?', |s| s.state);
            format!("{pid} ({}) {state}", comm.trim())
        })
        .collect::<Vec<_>>()
        .join(", ")
}

// ---------------------------------------------------------------------------------------------
// Waiting for processes to end

pub use procview::Pidfd;

/// Waits (pidfd + poll) until `pid` has exited; returns whether it did within `timeout`.
pub fn wait_gone(pid: i32, timeout: Duration) -> bool {
    Pidfd::open(pid).expect("pidfd_open").wait(timeout)
}

// ---------------------------------------------------------------------------------------------
// Host facts

/// Whether a cgroup v2 hierarchy with the memory controller is mounted (kernel enforcement may
/// then be possible). On hybrid hosts the memory controller lives on v1 and this is false.
pub fn cgroup2_memory_available() -> bool {
    let Ok(mounts) = fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    mounts.lines().any(|line| {
        // "... mount_point ... - cgroup2 source options": the mount point is field 5.
        let mut parts = line.split(" - ");
        let (Some(left), Some(right)) = (parts.next(), parts.next()) else {
            return false;
        };
        right.starts_with("cgroup2 ")
            && left.split(' ').nth(4).is_some_and(|mount_point| {
                fs::read_to_string(Path::new(mount_point).join("cgroup.controllers"))
                    .is_ok_and(|c| c.split_whitespace().any(|c| c == "memory"))
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[test]
    fn stat_with_spaces_and_parens_in_comm() {
        let line = "1234 (a b) c)) S 77 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 200";
        let stat = procview::parse_stat(line).unwrap();
        assert_eq!(stat, ProcStat { state: 'S', ppid: 77, pgrp: 1234, session: 1234, start_time: 987654 });
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn own_start_time_matches_proc_self() {
        let me = std::process::id() as i32;
        assert!(alive(me));
        assert_eq!(
            start_time(me),
            procview::parse_stat(&fs::read_to_string("/proc/self/stat").unwrap()).map(|s| s.start_time)
        );
    }

    #[test]
    fn dep_info_paths_with_escaped_spaces() {
        let dir = TempDir::new("depinfo");
        let a = dir.path().join("a b.rs");
        fs::write(&a, "").unwrap();
        let escaped = a.display().to_string().replace(' ', "\\ ");
        let line = format!("/x/bin: /nonexistent/c.rs {escaped}\n");
        let (_, newest) = newest_source(&line).expect("a b.rs exists");
        assert_eq!(newest, a.display().to_string());
        assert!(newest_source("/x/bin: /nonexistent/file.rs\n").is_none());
    }

    #[test]
    fn policy_sections_follow_defaults() {
        let toml = Policy::default()
            .set_in("global", "memory_max", "\"128M\"")
            .set_in("session", "memory_max", "\"96M\"")
            .set_in("global", "memory_high", "\"max\"")
            .to_toml();
        assert!(toml.starts_with("[defaults]\nmemory_max = \"128M\"\n"), "{toml}");
        assert!(
            toml.ends_with(
                "\n[global]\nmemory_max = \"128M\"\nmemory_high = \"max\"\n\n[session]\nmemory_max = \"96M\"\n"
            ),
            "{toml}"
        );
    }

    #[test]
    fn policy_overrides_keep_order() {
        let toml = Policy::default().set("grace", "\"0s\"").to_toml();
        assert!(toml.starts_with("[defaults]\nmemory_max = \"128M\"\n"));
        assert!(toml.contains("grace = \"0s\"\n"));
    }
}
