//! The runner's exit code tells what happened (see the contract): the server's own code, 128+N
//! for a signal, 127/126 for exec failures, 2 for an invalid policy, 122 for a refusal.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use mcp_runner_tests::{Fixture, Policy, RunnerProc, cgroup2_memory_available};

/// A server command that leaves a file behind if it ever runs.
fn spawn_witness(fx: &Fixture) -> (Vec<String>, std::path::PathBuf) {
    let witness = fx.dir().join("spawned");
    let cmd = vec!["/bin/sh".to_owned(), "-c".to_owned(), format!("echo spawned > '{}'", witness.display())];
    (cmd, witness)
}

fn assert_runner_message(runner: &mut RunnerProc) {
    let stderr = runner.stderr();
    assert!(stderr.lines().any(|l| l.starts_with("mcp-runner: ")), "no \"mcp-runner: \" line on stderr:\n{stderr}");
}

#[test]
fn server_exit_code_is_passed_through() {
    let fx = Fixture::new(&Policy::default());
    let mut runner = fx.run("sh", &["/bin/sh", "-c", "exit 7"]);
    runner.assert_exit(7, None);
}

#[test]
fn server_killed_by_signal_gives_128_plus_n() {
    let fx = Fixture::new(&Policy::default());
    let mut runner = fx.run("sh", &["/bin/sh", "-c", "kill -USR1 $$"]);
    runner.assert_exit(128 + libc::SIGUSR1, None);
}

#[test]
fn missing_command_gives_127() {
    let fx = Fixture::new(&Policy::default());
    for cmd in ["/nonexistent/mcp-runner-test-server", "mcp-runner-test-no-such-command"] {
        let mut runner = fx.run("missing", &[cmd]);
        runner.assert_exit(127, None);
        assert_runner_message(&mut runner);
    }
}

#[test]
fn non_executable_file_gives_126() {
    let fx = Fixture::new(&Policy::default());
    let file = fx.dir().join("not-executable");
    fs::write(&file, "#!/bin/sh\nexit 0\n").unwrap();
    fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
    let mut runner = fx.run("noexec", &[&file]);
    runner.assert_exit(126, None);
    assert_runner_message(&mut runner);
}

#[test]
fn invalid_policy_gives_2_with_location_and_spawns_nothing() {
    // Line 3, column 1: an unknown key.
    let fx = Fixture::with_policy_text("[defaults]\nmemory_max = \"128M\"\npids_maxx = 32\n");
    let (cmd, witness) = spawn_witness(&fx);
    let mut runner = fx.run("bad-policy", &cmd);
    let stderr = runner.assert_exit(2, None);
    let location = format!("{}:3:1", fx.policy_file.display());
    assert!(stderr.contains(&location), "stderr does not name {location}:\n{stderr}");
    assert_not_spawned(&witness);
}

#[test]
fn require_kernel_without_kernel_enforcement_gives_122() {
    if cgroup2_memory_available() {
        eprintln!(
            "skipped: this host has a cgroup v2 memory controller, so kernel enforcement may \
             be available and require = \"kernel\" need not be refused"
        );
        return;
    }
    let fx = Fixture::new(&Policy::default().set("require", "\"kernel\""));
    let (cmd, witness) = spawn_witness(&fx);
    let mut runner = fx.run("kernel-only", &cmd);
    runner.assert_exit(122, None);
    assert_runner_message(&mut runner);
    assert_not_spawned(&witness);
}

#[test]
fn issue_9_a_non_utf8_policy_variable_is_a_path_like_any_other() {
    // See: issue 9, finding 7
    let fx = Fixture::new(&Policy::default());
    let (cmd, witness) = spawn_witness(&fx);
    let run = |policy: &Path| {
        let mut args = vec!["run".to_owned(), "--name".to_owned(), "latin1".to_owned(), "--".to_owned()];
        args.extend(cmd.iter().cloned());
        let mut command = fx.command(&args);
        command.env("MCP_RUNNER_POLICY", policy);
        let mut runner = RunnerProc::spawn(command);
        runner.assert_exit(2, None)
    };
    // Missing: the same exit 2 as any missing policy file, naming it (lossily).
    let missing = fx.dir().join(OsStr::from_bytes(b"no-such-\xff.toml"));
    let stderr = run(&missing);
    assert!(stderr.contains(&missing.display().to_string()), "stderr does not name {}:\n{stderr}", missing.display());
    assert_not_spawned(&witness);
    // Present (Linux file systems take any bytes): read, and its errors name it.
    #[cfg(target_os = "linux")]
    {
        let bad = fx.dir().join(OsStr::from_bytes(b"bad-\xff.toml"));
        fs::write(&bad, "[defaults]\npids_maxx = 32\n").unwrap();
        let stderr = run(&bad);
        let location = format!("{}:2:1", bad.display());
        assert!(stderr.contains(&location), "stderr does not name {location}:\n{stderr}");
        assert_not_spawned(&witness);
    }
}

fn assert_not_spawned(witness: &Path) {
    assert!(!witness.exists(), "the server was spawned ({} exists)", witness.display());
}
