//! A shared server under the cgroupfs driver (cgroup v2 guest): the pool's one server runs in
//! its own leaf under session "shared", with its limits, placed by an ordinary runner; the
//! relays' sessions get no cgroup at all. After idle_timeout the leaf and the session cgroup
//! go; a SIGKILLed pool host takes its server's leaf with it.
#![cfg(target_os = "linux")]

use std::time::Duration;

use mcp_runner_tests::kernel::{self, Cgroup, kernel_or_skip, session_id};
use mcp_runner_tests::pool::{echo_ok, initialize, pool_files, pool_with_clients, server_pid};
use mcp_runner_tests::{Fixture, alive, hang_guard, hostile, poll_until};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

fn fixture() -> Fixture {
    let text = kernel::policy().set("memory_max", "\"96M\"").to_toml()
        + "\n[server.echo]\nshare = \"always\"\nidle_timeout = \"1s\"\n";
    Fixture::with_policy_text(&text)
}

/// The shared server's leaf: `GLOBAL/s-shared/echo.<runner marker>`, from its runner's record.
fn shared_leaf(fx: &Fixture, status: &serde_json::Value) -> Cgroup {
    let runner = status["instances"][0]["runner"]["pid"].as_i64().expect("instance runner pid") as i32;
    let record = fx.record(runner);
    assert_eq!(record["driver"], "cgroupfs", "record: {record}");
    assert_eq!(record["session"], "shared", "record: {record}");
    let leaf = Cgroup::new(record["cgroup"].as_str().expect("the record names its cgroup"));
    assert_eq!(leaf.parent(), Cgroup::session(&Cgroup::default_global(), "shared"), "{leaf:?}");
    leaf
}

#[test]
fn kernel_one_shared_server_in_its_own_leaf_under_session_shared() {
    if !kernel_or_skip() {
        return;
    }
    let fx = fixture();
    let global = Cgroup::default_global();
    let (sa, sb) = (session_id("share-a"), session_id("share-b"));
    let mut a = fx.run_in(&sa, "echo", &[hostile!(), "echo"]);
    let mut b = fx.run_in(&sb, "echo", &[hostile!(), "echo"]);
    initialize(&mut a);
    initialize(&mut b);
    echo_ok(&mut a, 1, "a");
    echo_ok(&mut b, 1, "b");
    let status = pool_with_clients(&fx, 2);
    let server = server_pid(&fx, &status);
    let leaf = shared_leaf(&fx, &status);
    assert_eq!(Cgroup::of_process(server), Some(leaf.clone()), "the server is not in the shared leaf");
    assert_eq!(leaf.procs(), vec![server], "{leaf:?}");
    assert_eq!(leaf.limit("memory.max"), Some(96 << 20), "{leaf:?}: memory.max");
    // The relays spawn nothing: their sessions have no cgroup.
    for s in [&sa, &sb] {
        assert!(!Cgroup::session(&global, s).exists(), "a relay's session {s} got a cgroup");
    }
    for r in [&mut a, &mut b] {
        r.close_stdin();
        r.assert_exit(0, None);
    }
    // idle_timeout later the server goes down its runner's teardown: leaf and session cgroup.
    let session_cg = leaf.parent();
    assert!(poll_until(hang_guard(), Duration::from_millis(50), || !leaf.exists()), "{leaf:?} outlived idle_timeout");
    assert!(!alive(server), "the server outlived its leaf");
    assert!(!session_cg.exists(), "{session_cg:?} is left after its last server");
}

#[test]
fn kernel_a_sigkilled_pool_host_takes_its_servers_leaf_with_it() {
    if !kernel_or_skip() {
        return;
    }
    let fx = fixture();
    let mut a = fx.run_in(&session_id("share-k"), "echo", &[hostile!(), "echo"]);
    initialize(&mut a);
    let status = pool_with_clients(&fx, 1);
    let leaf = shared_leaf(&fx, &status);
    let host = status["host"]["pid"].as_i64().expect("host pid") as i32;
    kill(Pid::from_raw(host), Signal::SIGKILL).expect("kill the pool host");
    a.assert_exit(125, Some("pool host closed the connection"));
    assert!(poll_until(hang_guard(), Duration::from_millis(50), || !leaf.exists()), "{leaf:?} outlived its host");
    // Its locks are let go as it exits: wait for the host to be a zombie at least.
    assert!(poll_until(hang_guard(), Duration::from_millis(50), || !alive(host)), "the SIGKILLed host lives on");
    // gc leaves a pool whose lock is still held: gc again until the kernel let go of it.
    let cleaned = poll_until(hang_guard(), Duration::from_millis(50), || {
        let out = fx.output(&["gc"]);
        assert!(out.status.success(), "{}", out.stderr);
        pool_files(&fx).is_empty()
    });
    assert!(cleaned, "gc left {:?}", pool_files(&fx));
}
