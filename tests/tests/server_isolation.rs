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

#[cfg(target_os = "linux")]
mod as_root {
    use super::*;

    fn root() -> bool {
        let root = nix::unistd::geteuid().is_root();
        if !root {
            eprintln!("skipped: the runner drops privileges only when it runs as root (CI runs as root)");
        }
        root
    }

    /// The server's `hostile/ready` under `policy`, after which it is closed and the end state
    /// checked.
    fn ready_under(policy: Policy) -> Value {
        let fx = Fixture::new(&policy);
        let mut runner = fx.run("creds", &[hostile!(), "echo"]);
        let ready = runner.ready();
        runner.close_stdin();
        runner.assert_exit(0, None);
        ready
    }

    const NO_CAPS: &str = "0000000000000000";

    #[test]
    fn issue_9_by_default_a_root_server_has_no_capabilities_and_no_new_privs() {
        // See: issue 9, finding 6
        if !root() {
            return;
        }
        let ready = ready_under(Policy::default());
        for set in ["cap_eff", "cap_prm", "cap_inh", "cap_bnd", "cap_amb"] {
            assert_eq!(ready[set], NO_CAPS, "{set}: {ready}");
        }
        assert_eq!(ready["no_new_privs"], 1, "{ready}");
        // Still root by id: dropping capabilities is not a change of user.
        assert_eq!(numbers(&ready["uids"]), [0, 0, 0, 0], "{ready}");
    }

    #[test]
    fn issue_9_a_root_server_runs_as_the_policy_user() {
        // See: issue 9, finding 6
        if !root() {
            return;
        }
        let nobody = nix::unistd::User::from_name("nobody").ok().flatten().expect("user nobody");
        let (uid, gid) = (i64::from(nobody.uid.as_raw()), i64::from(nobody.gid.as_raw()));
        let ready = ready_under(Policy::default().set("user", "\"nobody\""));
        assert_eq!(numbers(&ready["uids"]), [uid; 4], "{ready}");
        assert_eq!(numbers(&ready["gids"]), [gid; 4], "{ready}");
        // Root's supplementary groups are not kept: only nobody's own (none on most systems).
        let groups = nix::unistd::getgrouplist(c"nobody", nobody.gid).expect("getgrouplist");
        let mut expected: Vec<i64> = groups.iter().map(|g| i64::from(g.as_raw())).collect();
        expected.sort_unstable();
        expected.dedup();
        let mut got = numbers(&ready["groups"]);
        got.sort_unstable();
        assert_eq!(got, expected, "{ready}");
        assert_eq!(ready["no_new_privs"], 1, "{ready}");
        assert_eq!(ready["cap_bnd"], NO_CAPS, "{ready}");
        assert_eq!(ready["cap_eff"], NO_CAPS, "{ready}");
        assert_eq!(ready["cap_prm"], NO_CAPS, "{ready}");
    }

    #[test]
    fn issue_9_a_numeric_user_and_group_are_used_as_given() {
        // See: issue 9, finding 6
        if !root() {
            return;
        }
        let ready = ready_under(Policy::default().set("user", "4242").set("group", "\"4343\""));
        assert_eq!(numbers(&ready["uids"]), [4242; 4], "{ready}");
        assert_eq!(numbers(&ready["gids"]), [4343; 4], "{ready}");
        assert_eq!(numbers(&ready["groups"]), Vec::<i64>::new(), "{ready}");
    }

    #[test]
    fn issue_9_a_server_run_as_another_user_still_dies_with_the_runner() {
        // See: issue 9, finding 6
        // The change of user clears the parent-death signal (prctl(2)): the
        // child must arm it again after the switch.
        if !root() {
            return;
        }
        // The SIGKILLed runner's orphan (the server) is reparented to this
        // process, which reaps it below, rather than to an init that may not.
        // SAFETY: prctl(PR_SET_CHILD_SUBREAPER, 1) takes no pointers.
        assert_eq!(unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1) }, 0);
        let fx = Fixture::new(&Policy::default().set("user", "\"nobody\""));
        let mut runner = fx.run("pdeath", &[hostile!(), "echo"]);
        let server = runner.ready()["pid"].as_i64().expect("pid") as i32;
        let server_fd = mcp_runner_tests::Pidfd::open(server).expect("pidfd_open(server)");
        runner.signal(nix::sys::signal::Signal::SIGKILL);
        let gone = server_fd.wait(mcp_runner_tests::hang_guard());
        runner.wait_exit();
        // Adopted by this process (above), so its pid is still the server's.
        let server_pid = nix::unistd::Pid::from_raw(server);
        if !gone {
            let _ = nix::sys::signal::kill(server_pid, nix::sys::signal::Signal::SIGKILL);
        }
        let _ = nix::sys::wait::waitpid(server_pid, None);
        assert!(gone, "server {server} (run as nobody) survived the runner's SIGKILL");
    }

    #[test]
    fn issue_9_an_unknown_user_is_a_policy_error_at_its_place() {
        // See: issue 9, finding 6
        if !root() {
            return;
        }
        let fx = Fixture::new(&Policy::default().set("user", "\"no-such-user-mcp\""));
        let witness = fx.dir().join("spawned");
        let cmd = ["/bin/sh".to_owned(), "-c".to_owned(), format!("echo > '{}'", witness.display())];
        let mut runner = fx.run("unknown-user", &cmd);
        let stderr = runner.assert_exit(2, None);
        // [defaults] is line 1; `user` is the sixth key of the test policy.
        let expected = format!("{}:7:8: no user \"no-such-user-mcp\" on this host", fx.policy_file.display());
        assert!(stderr.contains(&expected), "stderr lacks {expected:?}:\n{stderr}");
        assert!(!witness.exists(), "the server was spawned");
    }

    #[test]
    fn issue_9_user_is_refused_when_the_runner_is_not_root() {
        // See: issue 9, finding 6
        if !root() {
            return;
        }
        use std::os::unix::process::CommandExt;
        let fx = Fixture::new(&Policy::default().set("user", "\"nobody\""));
        let mut cmd = fx.command(&["run", "--name", "refused", "--", "/bin/true"]);
        // The runner itself runs as nobody here (the fixture is readable by all).
        cmd.uid(65534).gid(65534);
        let mut runner = RunnerProc::spawn(cmd);
        let stderr = runner.assert_exit(122, None);
        let expected = format!(
            "{}:7:8: user \"nobody\" needs the runner to run as root (it runs as uid 65534)",
            fx.policy_file.display()
        );
        assert!(stderr.contains(&expected), "stderr lacks {expected:?}:\n{stderr}");
    }

    #[test]
    fn issue_9_a_root_server_keeps_its_privileges_when_the_policy_says_so() {
        // See: issue 9, finding 6
        if !root() {
            return;
        }
        let policy = Policy::default().set("no_new_privs", "false").set("drop_capabilities", "false");
        let ready = ready_under(policy);
        assert_eq!(ready["no_new_privs"], 0, "{ready}");
        assert_ne!(ready["cap_bnd"], NO_CAPS, "{ready}");
        assert_ne!(ready["cap_eff"], NO_CAPS, "{ready}");
    }
}
