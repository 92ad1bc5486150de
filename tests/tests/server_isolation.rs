//! What reaches the server from the runner: of the descriptors only stdin, stdout and stderr,
//! whatever the client left open; and, when the runner is root, no capabilities, no way to
//! gain privileges on exec, and the user the policy names.

use std::process::Command;

use mcp_runner_tests::{Fixture, Policy, RunnerProc, hostile, runner_bin};
use serde_json::Value;

/// `mcp-runner run --name NAME -- hostile echo`, started by a shell that first opens fds 7 and
/// 9 without close-on-exec, as a client that leaks descriptors into its servers does.
fn run_with_leaked_fds(fx: &Fixture, name: &str) -> RunnerProc {
    let mut cmd = Command::new("/bin/sh");
    let runner = ["run", "--name", name, "--", hostile!(), "echo"];
    cmd.arg("-c").arg(r#"exec 7</dev/null 9</dev/null; exec "$0" "$@""#).arg(runner_bin()).args(runner);
    fx.apply_env(&mut cmd);
    RunnerProc::spawn(cmd)
}

fn numbers(v: &Value) -> Vec<i64> {
    v.as_array().map(|a| a.iter().filter_map(Value::as_i64).collect()).unwrap_or_default()
}

#[test]
fn issue_9_only_stdin_stdout_and_stderr_reach_the_server() {
    // See: issue 9, finding 6
    let fx = Fixture::new(&Policy::default());
    let mut runner = run_with_leaked_fds(&fx, "fds");
    let ready = runner.ready();
    // The runner itself got the leaked descriptors: the check below is not vacuous.
    #[cfg(target_os = "linux")]
    for fd in [7, 9] {
        let path = format!("/proc/{}/fd/{fd}", runner.pid);
        assert!(std::path::Path::new(&path).exists(), "the runner lacks fd {fd}; {}", runner.diag());
    }
    assert_eq!(numbers(&ready["fds"]), [0, 1, 2], "the server's descriptors: {ready}");
    runner.close_stdin();
    runner.assert_exit(0, None);
}
