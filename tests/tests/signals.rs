//! Signals to the runner close the session at once: SIGTERM/SIGHUP/SIGINT are forwarded to
//! the tree as SIGTERM without waiting for `grace`; a second signal means SIGKILL at once.
//!
//! `grace` and `kill_timeout` are 60 s here, longer than the hang guard: a runner that waited
//! for either would fail the test instead of passing slowly.

use mcp_runner_tests::{Fixture, Policy, hostile};
use nix::sys::signal::Signal;

fn slow_policy() -> Policy {
    Policy::default().set("grace", "\"60s\"").set("kill_timeout", "\"60s\"")
}

/// The runner may block signals for itself (to take them with signalfd or sigtimedwait), but
/// the server must start with none blocked, or SIGTERM stays pending until the SIGKILL.
#[test]
fn server_starts_with_no_signal_blocked() {
    let fx = Fixture::new(&Policy::default());
    let mut runner = fx.run("echo", &[hostile!(), "echo"]);
    let ready = runner.ready();
    let blocked = u64::from_str_radix(ready["sigblk"].as_str().expect("sigblk"), 16).unwrap();
    let names: Vec<String> = (1..=64)
        .filter(|n| blocked & (1u64 << (n - 1)) != 0)
        .map(|n| Signal::try_from(n).map_or(n.to_string(), |s| s.as_str().to_owned()))
        .collect();
    assert_eq!(blocked, 0, "the server starts with signals blocked: {names:?}");
    runner.close_stdin();
    runner.assert_exit(0, None);
}

/// The echo server dies of the forwarded SIGTERM: 128 + 15.
fn forwarded_as_sigterm(signal: Signal) {
    let fx = Fixture::new(&slow_policy());
    let mut runner = fx.run("echo", &[hostile!(), "echo"]);
    runner.ready();
    runner.signal(signal);
    runner.assert_exit(143, None);
}

#[test]
fn sigterm_is_forwarded_at_once() {
    forwarded_as_sigterm(Signal::SIGTERM);
}

#[test]
fn sighup_is_forwarded_as_sigterm_at_once() {
    forwarded_as_sigterm(Signal::SIGHUP);
}

#[test]
fn sigint_is_forwarded_as_sigterm_at_once() {
    forwarded_as_sigterm(Signal::SIGINT);
}

#[test]
fn second_signal_escalates_to_sigkill() {
    let fx = Fixture::new(&slow_policy());
    let mut runner = fx.run("ignore-term", &[hostile!(), "ignore-term"]);
    runner.ready();
    runner.signal(Signal::SIGTERM);
    // The server reports the forwarded SIGTERM; only then is the second signal a second one
    // (two pending SIGTERMs would merge into one).
    runner.expect_notification("hostile/sigterm-ignored");
    runner.signal(Signal::SIGTERM);
    runner.assert_exit(137, None);
}
