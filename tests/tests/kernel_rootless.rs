//! The cgroupfs driver for a normal user inside a delegated cgroup (cgroup v2 guest): the test
//! (root) prepares `/sys/fs/cgroup/kt-user-PID` for uid 1000 the way a delegating manager does
//! (the directory and its cgroup.procs, cgroup.subtree_control and cgroup.threads belong to the
//! user), puts the runner there and drops to uid 1000 (`setpriv`). The runner must:
//!
//! - pick the cgroupfs driver by itself (`mcp-runner doctor` as that user says so);
//! - move itself into `supervisor/` (the no-internal-process rule: a cgroup that hands
//!   controllers to its children may hold no process), enable memory and pids for its
//!   children, and build `mcp-runner/s-SESSION/LEAF` under its own cgroup;
//! - have the kernel enforce the leaf's memory.max there: the leaker is OOM-killed (exit 123),
//!   the leaf and the session cgroup are removed, nothing is left.
#![cfg(target_os = "linux")]

use std::os::unix::fs::chown;
use std::process::Command;

use mcp_runner_tests::kernel::{self, Cgroup, MOUNT, kernel_or_skip, mib, server_leaf, session_id};
use mcp_runner_tests::{Fixture, RunnerProc, hostile, runner_bin};

const UID: u32 = 1000;

/// `sh -c ENTER_AND_DROP sh CGROUP ARGV...`
const ENTER_AND_DROP: &str = r#"cg=$1; shift; echo $$ > "$cg/cgroup.procs" && exec setpriv --reuid="$RUID" --regid="$RUID" --clear-groups -- "$@""#;

/// A cgroup delegated to `UID`, removed (with whatever is left in it) on drop.
struct Delegated {
    cgroup: Cgroup,
}

impl Delegated {
    fn new(name: &str) -> Delegated {
        let root = Cgroup::new(MOUNT);
        // The root hands the controllers down (the runner does this too when it runs as root).
        std::fs::write(root.path().join("cgroup.subtree_control"), "+memory +pids +cpu")
            .expect("enable memory pids cpu in the root cgroup");
        let cgroup = root.child(name);
        std::fs::create_dir(cgroup.path()).unwrap_or_else(|e| panic!("mkdir {cgroup:?}: {e}"));
        let delegated = Delegated { cgroup };
        for file in ["", "cgroup.procs", "cgroup.subtree_control", "cgroup.threads"] {
            let path = delegated.cgroup.path().join(file);
            chown(&path, Some(UID), Some(UID)).unwrap_or_else(|e| panic!("chown {}: {e}", path.display()));
        }
        delegated
    }

    /// `ARGV` as uid 1000, started inside the delegated cgroup: a shell moves itself there (as
    /// root), then execs setpriv, which drops to the user and execs ARGV (same pid throughout,
    /// so the runner's marker is the shell's pid and start time).
    fn command_as_user(&self, fx: &Fixture, argv: &[&str]) -> Command {
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg(ENTER_AND_DROP).arg("sh").arg(self.cgroup.path()).args(argv).env("RUID", UID.to_string());
        fx.apply_env(&mut cmd);
        cmd
    }
}

impl Drop for Delegated {
    fn drop(&mut self) {
        self.cgroup.remove_tree();
    }
}

#[test]
fn kernel_rootless_runner_in_a_delegated_cgroup() {
    if !kernel_or_skip() {
        return;
    }
    let fx = Fixture::new(&kernel::policy().set("memory_high", "\"max\"").set("memory_max", "\"64M\""));
    chown(&fx.state_dir, Some(UID), Some(UID)).expect("chown the state dir");
    let delegated = Delegated::new(&format!("kt-user-{}", std::process::id()));
    let runner_bin = runner_bin();
    let runner_bin = runner_bin.to_str().expect("utf-8 path");

    // What the runner would choose for this user, there.
    let doctor = delegated.command_as_user(&fx, &[runner_bin, "doctor"]).output().expect("run doctor");
    let report = String::from_utf8_lossy(&doctor.stdout);
    assert!(
        report.lines().any(|l| l.starts_with("driver: cgroupfs")),
        "doctor as uid {UID} in {:?} does not choose cgroupfs: {}\n{report}{}",
        delegated.cgroup,
        doctor.status,
        String::from_utf8_lossy(&doctor.stderr)
    );

    let session = session_id("rootless");
    let global = delegated.cgroup.child("mcp-runner");
    let session_cg = Cgroup::session(&global, &session);
    let argv = [runner_bin, "run", "--session", &session, "--name", "leak", "--", hostile!(), "leak-on-input"];
    let mut runner = RunnerProc::spawn(delegated.command_as_user(&fx, &argv));
    let server = runner.ready()["pid"].as_i64().expect("pid") as i32;

    let leaf = server_leaf(&fx, &runner, server, &global, &session, "leak");
    assert_eq!(
        Cgroup::of_process(runner.pid),
        Some(delegated.cgroup.child("supervisor")),
        "the runner did not move itself into supervisor/; {}",
        runner.diag()
    );
    assert!(delegated.cgroup.procs().is_empty(), "{:?} still holds processes", delegated.cgroup);
    let enabled = delegated.cgroup.read("cgroup.subtree_control");
    for controller in ["memory", "pids"] {
        assert!(
            enabled.split_whitespace().any(|c| c == controller),
            "{:?}: subtree_control {enabled:?}",
            delegated.cgroup
        );
    }
    assert_eq!(leaf.limit("memory.max"), Some(mib(64)), "{leaf:?}: memory.max");
    let owner = std::fs::metadata(leaf.path()).map(|m| std::os::unix::fs::MetadataExt::uid(&m)).expect("stat leaf");
    assert_eq!(owner, UID, "{leaf:?} was not created by the user");

    runner.send_line("go");
    runner.assert_exit(123, Some("exceeded memory_max"));
    assert!(!leaf.exists(), "the leaf {leaf:?} is left after the runner exited");
    assert!(!session_cg.exists(), "the session cgroup {session_cg:?} is left after its last server");
    // The kernel killed it, under the user's own global cgroup, and not for that cgroup's limit.
    let events = global.counters("memory.events");
    let local = global.counters("memory.events.local");
    assert!(events.get("oom_kill") > 0 && events.get("oom_group_kill") > 0, "{global:?} memory.events {events}");
    assert_eq!((local.get("max"), local.get("oom")), (0, 0), "{global:?} memory.events.local {local}");
}
