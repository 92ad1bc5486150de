//! The runner SIGKILLed at each step of its start-up (userland driver, on the host): nothing
//! of a victim is left once `mcp-runner gc` ran, the bystanders in its session and in another
//! keep running with their records intact, and the next runner is admitted. The matrix
//! (tests/src/fault.rs) is printed as a table; the cgroupfs driver's is kernel_fault_startup.rs.
//!
//! Linux only: the fault points fire in debug builds on macOS too, but there the crash guard,
//! not a parent-death signal, ends a dead runner's server, and this matrix has not run on a Mac.
#![cfg(target_os = "linux")]

use mcp_runner_tests::fault::{Matrix, POINTS, report};
use mcp_runner_tests::{Fixture, Policy, hostile};

#[test]
fn a_runner_killed_at_any_start_up_step_leaves_nothing_and_harms_no_one() {
    // The victims' orphans are reparented to this process, which reaps them (see
    // runner_sigkilled.rs).
    // SAFETY: prctl(PR_SET_CHILD_SUBREAPER, 1) takes no pointers.
    assert_eq!(unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1) }, 0);

    let fx = Fixture::new(&Policy::default());
    let m = Matrix { fx: &fx, driver: "userland", tag: "ft", hostile: hostile!() };
    let shared = m.session("shared");
    let mut bystanders = vec![m.bystander(&shared, "bystander"), m.bystander(&m.session("other"), "other")];
    let rows: Vec<_> = POINTS
        .iter()
        // The userland driver makes no cgroups: the leaf point is not on its path.
        .map(|point| m.row(point, &shared, *point != "placement-leaf", &mut bystanders, &|_, _| Vec::new()))
        .collect();
    report(&rows);
    for b in bystanders {
        b.finish();
    }
}
