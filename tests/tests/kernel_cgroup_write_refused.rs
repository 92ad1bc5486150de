//! A cgroup write the kernel refuses (cgroup v2 guest): a server `pids_max` above the kernel's
//! limit (PID_MAX_LIMIT, 4194304) makes the leaf's pids.max write fail with EINVAL. With the
//! cgroupfs driver forced the runner fails (exit 125) naming the file and the controller; under
//! `auto` it falls back to the userland driver with a warning that says the same. Either way the
//! leaf and the session cgroup it made are gone, and nothing of the tree is left.
#![cfg(target_os = "linux")]

use mcp_runner_tests::kernel::{self, Cgroup, kernel_or_skip, session_id};
use std::time::Duration;

use mcp_runner_tests::{Fixture, RunnerProc, hang_guard, hostile, poll_until};

const REFUSED: &str = "pids.max: Invalid argument (os error 22) (the `pids` controller refused it)";

#[test]
fn kernel_a_refused_controller_write_fails_clearly_or_falls_back_and_leaves_no_cgroup() {
    if !kernel_or_skip() {
        return;
    }
    // The global and session levels are unlimited, so the policy is valid and only the leaf's
    // write reaches the kernel's range check.
    let fx = Fixture::new(
        &kernel::policy()
            .set("pids_max", "5000000")
            .set_in("global", "pids_max", "\"max\"")
            .set_in("session", "pids_max", "\"max\""),
    );
    let global = Cgroup::default_global();

    // Forced: the runner fails, nothing was spawned, nothing is left.
    let forced = session_id("refused-forced");
    let args = ["run", "--driver", "cgroupfs", "--session", &forced, "--name", "refused", "--", hostile!(), "echo"];
    let mut runner = RunnerProc::spawn(fx.command(&args));
    runner.close_stdin();
    let stderr = runner.assert_exit(125, Some(REFUSED));
    assert!(stderr.contains("failed to write 5000000 to "), "the value is not named; stderr:\n{stderr}");
    assert!(!stderr.contains("hostile/ready"), "the server was spawned; stderr:\n{stderr}");
    let session = Cgroup::session(&global, &forced);
    assert!(!session.exists(), "the failed runner left {session:?}");
    assert!(!fx.state_dir.join(format!("runner-{}.json", runner.pid)).exists(), "its record is left");

    // auto: the warning names the same write, and the server runs under userland.
    let fallback = session_id("refused-auto");
    let args = ["run", "--session", &fallback, "--name", "refused", "--", hostile!(), "echo"];
    let mut runner = RunnerProc::spawn(fx.command(&args));
    runner.ready();
    let warned = runner.wait_stderr("trying the userland driver");
    assert!(
        warned.lines().any(|l| l.starts_with("mcp-runner: warn: cgroupfs driver: ") && l.contains(REFUSED)),
        "no warning naming the refused write; stderr:\n{warned}"
    );
    // The record says cgroupfs from admission until the runner updates it after the spawn.
    let mut record = fx.record(runner.pid);
    let updated = poll_until(hang_guard(), Duration::from_millis(10), || {
        record = fx.record(runner.pid);
        record["driver"] == "userland"
    });
    assert!(updated, "the record does not say userland: {record}");
    let session = Cgroup::session(&global, &fallback);
    assert!(!session.exists(), "the failed cgroupfs setup left {session:?} while the server runs");
    runner.close_stdin();
    runner.assert_exit(0, None);
    assert!(!session.exists(), "{session:?} left");
}
