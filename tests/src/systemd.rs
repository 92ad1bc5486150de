//! Helpers for the systemd driver tests (`tests/systemd_*.rs`), which run in the systemd guest:
//! `ci/vm-systemd-tests` boots `ci/vm-test --mode systemd` (systemd 252 as PID 1, cgroup v2
//! only, a uid-1000 user `tester` whose user manager a test starts) and runs them there, as
//! root, one test at a time.
//!
//! The end state is read from the kernel (`/proc/PID/cgroup`, the cgroup files) and from systemd
//! itself (`systemctl show`, `systemctl list-units`), never from what the runner says. Nothing
//! is timed: a wait is an event (a pidfd) or, where systemd offers no event a test could wait on
//! (a unit being garbage-collected), a poll bounded only by the hang guard.
//!
//! Unit names follow the driver (runner/src/driver/systemd/units.rs): the session slice
//! `mcp-runner-<session>.slice`, the server's scope `mcp-runner-<name>-<pid>-<start>.scope` and
//! the runner's own `mcp-runner-supervisor-<pid>-<start>.scope`, where `<pid>-<start>` is the
//! runner's identity (its marker `<pid>.<start>`) and names keep only `[A-Za-z0-9_]` (a dash in
//! a slice name means nesting, so systemd puts `mcp-runner.slice` inside an implicit
//! `mcp.slice`). A session id that is not already such a word gets a hash of itself in its
//! slice name, so that distinct sessions never share a slice ([`crate::names::slice_word`]).

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use nix::unistd::{Gid, Uid, chown};

use crate::kernel::{self, Cgroup, MOUNT};
use crate::{Fixture, Policy, RunnerProc, hang_guard, poll_until};

/// The unprivileged user of the guest (ci/vm-test adds it) and its user manager's runtime dir.
pub const TESTER_UID: u32 = 1000;
pub const TESTER_GID: u32 = 1000;
pub const TESTER_RUNTIME_DIR: &str = "/run/user/1000";
/// The cgroup of tester's user manager (its delegated subtree).
pub const TESTER_MANAGER_CGROUP: &str = "/user.slice/user-1000.slice/user@1000.service";

/// The global slice and its implicit parent.
pub const GLOBAL_SLICE: &str = "mcp-runner.slice";

// ---------------------------------------------------------------------------------------------
// The guard

/// The guard at the top of every systemd test: `true` when systemd is PID 1 on a cgroup v2 only
/// hierarchy with the memory, pids and cpu controllers, and we are root. Otherwise it panics
/// when `VMTEST` or `CI` is set (there a systemd test must fail, never skip), and elsewhere (a
/// developer's host) prints why the test is skipped and returns `false`.
pub fn systemd_or_skip() -> bool {
    let Some(why) = unavailable() else { return true };
    for var in ["VMTEST", "CI"] {
        if std::env::var_os(var).is_some() {
            panic!("systemd test cannot run: {why} ({var} is set, so this is a failure, not a skip)");
        }
    }
    eprintln!("SKIPPED (no systemd with cgroup v2 here): {why}; run ci/vm-systemd-tests");
    false
}

/// Why the systemd tests cannot run here, or `None` if they can.
pub fn unavailable() -> Option<String> {
    let comm = fs::read_to_string("/proc/1/comm").unwrap_or_default();
    if comm.trim() != "systemd" || !Path::new("/run/systemd/system").is_dir() {
        return Some(format!("PID 1 is {:?}, not systemd", comm.trim()));
    }
    // cgroup2 alone at /sys/fs/cgroup with memory, pids and cpu, and root.
    if let Some(why) = kernel::unavailable() {
        return Some(why);
    }
    if !Path::new("/run/systemd/private").exists() {
        return Some("systemd's private socket /run/systemd/private is missing".into());
    }
    None
}

// ---------------------------------------------------------------------------------------------
// systemctl

/// Which systemd manager: the system's, or tester's user manager.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Manager {
    System,
    /// tester's (uid 1000); see [`start_tester_manager`].
    Tester,
}

impl Manager {
    /// `systemctl ARGS...` for this manager (as tester, with `--user`, for the user manager).
    pub fn systemctl<S: AsRef<OsStr>>(self, args: &[S]) -> Command {
        let mut cmd = Command::new("systemctl");
        if self == Manager::Tester {
            as_tester(&mut cmd);
            cmd.arg("--user");
        }
        cmd.args(["--no-pager", "--no-ask-password"]).args(args);
        cmd
    }

    /// Runs `systemctl ARGS...` to completion; panics if it cannot be run.
    pub fn output<S: AsRef<OsStr>>(self, args: &[S]) -> Output {
        let mut cmd = self.systemctl(args);
        cmd.stdin(Stdio::null());
        cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
    }

    /// `systemctl show UNIT -p PROP...`: the properties, by name (a unit systemd does not know
    /// shows defaults, e.g. `LoadState=not-found`).
    pub fn show(self, unit: &str, props: &[&str]) -> Props {
        let mut args = vec!["show".to_owned(), unit.to_owned()];
        for p in props {
            args.push("-p".into());
            args.push((*p).into());
        }
        let out = self.output(&args);
        assert!(out.status.success(), "systemctl show {unit}: {out:?}");
        Props::parse(&String::from_utf8_lossy(&out.stdout))
    }

    /// The units this manager has loaded (any state) whose names match `pattern` (a systemctl
    /// glob).
    pub fn units(self, pattern: &str) -> Vec<String> {
        let out = self.output(&["list-units", "--all", "--plain", "--no-legend", pattern]);
        assert!(out.status.success(), "systemctl list-units {pattern}: {out:?}");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .map(str::to_owned)
            .collect()
    }

    /// Waits until none of `units` is loaded any more (stopped and garbage-collected); `Err`
    /// names those still there after the hang guard. systemd has no event a test could wait on
    /// for this, hence a poll.
    pub fn wait_units_gone(self, units: &[&str]) -> Result<(), String> {
        let mut left = Vec::new();
        let gone = poll_until(hang_guard(), Duration::from_millis(100), || {
            left = units.iter().flat_map(|u| self.units(u)).collect();
            left.is_empty()
        });
        if gone { Ok(()) } else { Err(format!("units still loaded after {:?}: {left:?}", hang_guard())) }
    }

    /// `systemctl daemon-reload`; panics if it fails.
    pub fn daemon_reload(self) {
        let out = self.output(&["daemon-reload"]);
        assert!(out.status.success(), "systemctl daemon-reload: {out:?}");
    }

    /// The manager's root cgroup (relative to the mount): `/` for the system manager.
    pub fn root_cgroup(self) -> &'static str {
        match self {
            Manager::System => "",
            Manager::Tester => TESTER_MANAGER_CGROUP,
        }
    }

    /// The cgroup of `mcp-runner.slice` under this manager (inside the implicit `mcp.slice`).
    pub fn global_slice_cgroup(self) -> Cgroup {
        Cgroup::new(format!("{MOUNT}{}/mcp.slice/mcp-runner.slice", self.root_cgroup()))
    }
}

/// The properties `systemctl show` printed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Props(pub BTreeMap<String, String>);

impl Props {
    pub fn parse(text: &str) -> Props {
        Props(text.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.to_owned(), v.to_owned())).collect())
    }

    /// The value of `key`; panics (showing them all) if it was not printed.
    pub fn get(&self, key: &str) -> &str {
        self.0.get(key).map(String::as_str).unwrap_or_else(|| panic!("no property {key} in {self:?}"))
    }

    /// A space-separated list property (BindsTo, After, ...).
    pub fn list(&self, key: &str) -> Vec<&str> {
        self.get(key).split_whitespace().collect()
    }
}

// ---------------------------------------------------------------------------------------------
// Unit names

/// A server name as the driver makes it one unit-name word in its scope's name: `[A-Za-z0-9]`
/// kept, the rest `_`, at most 48 characters (the runner's identity makes the scope unique).
pub fn word(raw: &str) -> String {
    let w: String = raw.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).take(48).collect();
    if w.is_empty() { "_".into() } else { w }
}

/// The units of one runner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunnerUnits {
    pub session_slice: String,
    pub server_scope: String,
    pub runner_scope: String,
}

impl RunnerUnits {
    /// The units of `runner` (by its marker `<pid>.<start>`) running server `name` in `session`.
    pub fn of(runner: &RunnerProc, session: &str, name: &str) -> RunnerUnits {
        let (pid, start) = runner.marker.split_once('.').expect("marker is <pid>.<start>");
        RunnerUnits {
            session_slice: format!("mcp-runner-{}.slice", crate::names::slice_word(session)),
            server_scope: format!("mcp-runner-{}-{pid}-{start}.scope", word(name)),
            runner_scope: format!("mcp-runner-supervisor-{pid}-{start}.scope"),
        }
    }

    /// The documented place of the server's scope under `manager`:
    /// `<manager root>/mcp.slice/mcp-runner.slice/<session slice>/<server scope>`.
    pub fn server_cgroup(&self, manager: Manager) -> Cgroup {
        manager.global_slice_cgroup().child(&self.session_slice).child(&self.server_scope)
    }

    pub fn session_cgroup(&self, manager: Manager) -> Cgroup {
        manager.global_slice_cgroup().child(&self.session_slice)
    }

    /// Both scopes: what must be gone once the runner is.
    pub fn scopes(&self) -> [&str; 2] {
        [self.server_scope.as_str(), self.runner_scope.as_str()]
    }
}

/// The cgroup of `pid` relative to the mount (the `0::` line of /proc/PID/cgroup).
pub fn cgroup_of(pid: i32) -> Option<String> {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    text.lines().find_map(|l| l.strip_prefix("0::")).map(str::to_owned)
}

/// A session id of this test process (unique per test binary and tag).
pub fn session_id(tag: &str) -> String {
    format!("sd-{tag}-{}", std::process::id())
}

// ---------------------------------------------------------------------------------------------
// Running as tester

/// Makes `cmd` run as tester (uid/gid 1000, no supplementary groups) with its user manager's
/// runtime dir, so that the runner, systemctl and systemd-run reach tester's user manager.
pub fn as_tester(cmd: &mut Command) {
    cmd.uid(TESTER_UID)
        .gid(TESTER_GID)
        .env("XDG_RUNTIME_DIR", TESTER_RUNTIME_DIR)
        .env("HOME", "/home/tester")
        .env("USER", "tester")
        .env("LOGNAME", "tester")
        .env_remove("DBUS_SESSION_BUS_ADDRESS");
}

/// Starts tester's user manager (`user@1000.service`; ci/vm-test delegates cpu, memory and pids
/// to it) and waits until its private socket exists. Idempotent.
pub fn start_tester_manager() {
    let out = Manager::System.output(&["start", "user@1000.service"]);
    assert!(out.status.success(), "systemctl start user@1000.service: {out:?}");
    let socket = Path::new(TESTER_RUNTIME_DIR).join("systemd/private");
    assert!(
        poll_until(hang_guard(), Duration::from_millis(50), || socket.exists()),
        "{} did not appear after user@1000.service started",
        socket.display()
    );
    let delegated = Cgroup::new(format!("{MOUNT}{TESTER_MANAGER_CGROUP}")).read("cgroup.controllers");
    for c in ["memory", "pids"] {
        assert!(
            delegated.split_whitespace().any(|d| d == c),
            "user@1000.service was not delegated {c}: cgroup.controllers {delegated:?}"
        );
    }
}

/// A fixture whose state dir belongs to tester (the runner refuses a state dir that is not its
/// own); the policy file and its directory are world-readable already.
pub fn tester_fixture(policy: &Policy) -> Fixture {
    let fx = Fixture::new(policy);
    chown(&fx.state_dir, Some(Uid::from_raw(TESTER_UID)), Some(Gid::from_raw(TESTER_GID)))
        .unwrap_or_else(|e| panic!("chown {}: {e}", fx.state_dir.display()));
    fx
}

/// `mcp-runner run --session SESSION --name NAME -- SERVER...` as tester.
pub fn run_as_tester<S: AsRef<OsStr>>(fx: &Fixture, session: &str, name: &str, server: &[S]) -> RunnerProc {
    let mut args: Vec<&OsStr> =
        vec!["run".as_ref(), "--session".as_ref(), session.as_ref(), "--name".as_ref(), name.as_ref(), "--".as_ref()];
    args.extend(server.iter().map(AsRef::as_ref));
    let mut cmd = fx.command(&args);
    as_tester(&mut cmd);
    RunnerProc::spawn(cmd)
}

// ---------------------------------------------------------------------------------------------
// The installed slice

/// Where `mcp-runner systemd install --system` writes the global slice.
pub const SYSTEM_SLICE_FILE: &str = "/etc/systemd/system/mcp-runner.slice";

/// Removes the system unit file at [`SYSTEM_SLICE_FILE`] (and the installer's temporary file)
/// and reloads systemd when dropped, so that a failing test does not leave the global cap
/// installed for the tests after it. Refuses to start if a file is there already: it is not
/// the test's to replace.
pub struct InstalledSliceGuard {
    path: PathBuf,
}

impl InstalledSliceGuard {
    pub fn new() -> InstalledSliceGuard {
        let path = PathBuf::from(SYSTEM_SLICE_FILE);
        assert!(!path.exists(), "{} exists before the test: not the test's to replace", path.display());
        InstalledSliceGuard { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Default for InstalledSliceGuard {
    fn default() -> Self {
        InstalledSliceGuard::new()
    }
}

impl Drop for InstalledSliceGuard {
    fn drop(&mut self) {
        let tmp = self.path.with_extension("slice.tmp");
        let existed = self.path.exists() || tmp.exists();
        let _ = fs::remove_file(&self.path);
        let _ = fs::remove_file(&tmp);
        if existed {
            eprintln!("guard: removed {} left by the test", self.path.display());
            let _ = Manager::System.output(&["daemon-reload"]);
        }
    }
}

/// Makes `mcp-runner.slice` of the system manager unknown to systemd again, if it is a transient
/// unit (created by an earlier runner of this boot) or one whose file is gone: a transient unit
/// takes precedence over any unit file, so an installed file would not take effect while it
/// exists. Panics if anything still runs under it (stopping the slice would stop that too).
pub fn forget_transient_global_slice() {
    let m = Manager::System;
    let props = m.show(GLOBAL_SLICE, &["LoadState", "ActiveState", "FragmentPath"]);
    let fragment = props.get("FragmentPath");
    let transient = fragment.starts_with("/run/systemd/transient/");
    if props.get("ActiveState") == "inactive" || !(transient || fragment.is_empty()) {
        return;
    }
    let cg = m.global_slice_cgroup();
    if cg.exists() {
        assert!(!cg.populated(), "processes still run under {cg:?}; cannot reset {GLOBAL_SLICE}");
    }
    let out = m.output(&["stop", GLOBAL_SLICE]);
    assert!(out.status.success(), "systemctl stop {GLOBAL_SLICE}: {out:?}");
    eprintln!(
        "stopped the {} {GLOBAL_SLICE} of an earlier test ({props:?})",
        if transient { "transient" } else { "file-less" }
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn props_parse_values_with_equals_and_lists() {
        let p =
            Props::parse("MemoryMax=134217728\nBindsTo=a.scope b.scope\nExecStart={ path=/bin/x ; }\nFragmentPath=\n");
        assert_eq!(p.get("MemoryMax"), "134217728");
        assert_eq!(p.list("BindsTo"), vec!["a.scope", "b.scope"]);
        assert_eq!(p.get("ExecStart"), "{ path=/bin/x ; }");
        assert_eq!(p.get("FragmentPath"), "");
    }

    #[test]
    fn words_as_the_driver_makes_them() {
        assert_eq!(word("client-12-345"), "client_12_345");
        assert_eq!(word(""), "_");
        assert_eq!(word("git-hub/x"), "git_hub_x");
    }
}
