//! The runner SIGKILLed at each step of its start-up under the cgroupfs driver (cgroup v2
//! guest): the matrix of tests/src/fault.rs (nothing of a victim left after `mcp-runner gc`,
//! bystanders intact, the next run admitted), plus the places only this driver makes: no leaf
//! of a victim, no session cgroup of the victim that ran alone, the shared session holding
//! exactly its bystander's leaf, and every live session's share (memory.high) back to what it
//! was before the victims started.
#![cfg(target_os = "linux")]

use std::path::Path;

use mcp_runner_tests::fault::{Matrix, POINTS, Stage, Victim, report};
use mcp_runner_tests::kernel::{self, Cgroup, kernel_or_skip};
use mcp_runner_tests::{Fixture, hostile};

#[test]
fn kernel_a_runner_killed_at_any_start_up_step_leaves_no_cgroup_and_no_wrong_share() {
    if !kernel_or_skip() {
        return;
    }
    // SAFETY: prctl(PR_SET_CHILD_SUBREAPER, 1) takes no pointers (see runner_sigkilled.rs).
    assert_eq!(unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1) }, 0);

    // Shares that tell the sessions apart: global 200M, a session at most 150M, 90% of a
    // session's share is its memory.high, a floor low enough not to matter.
    let fx = Fixture::new(
        &kernel::policy()
            .set("memory_max", "\"64M\"")
            .set_in("global", "memory_max", "\"200M\"")
            .set_in("global", "min_headroom", "\"0\"")
            .set_in("session", "memory_max", "\"150M\"")
            .set_in("session", "memory_high", "\"90%\"")
            .set_in("session", "floor", "\"10M\""),
    );
    let m = Matrix { fx: &fx, driver: "cgroupfs", tag: "kft", hostile: hostile!() };
    let global = Cgroup::default_global();
    let shared = m.session("shared");
    let other = m.session("other");
    let mut bystanders = vec![m.bystander(&shared, "bystander"), m.bystander(&other, "other")];
    let bystander_leaf = format!("bystander.{}", bystanders[0].runner.marker);
    let shared_cg = Cgroup::session(&global, &shared);
    let baseline: Vec<(Cgroup, Option<u64>)> = [shared_cg.clone(), Cgroup::session(&global, &other)]
        .into_iter()
        .map(|cg| {
            let high = cg.limit("memory.high");
            (cg, high)
        })
        .collect();

    let places = |stage: Stage, victims: &[Victim]| {
        let mut found = Vec::new();
        for v in victims {
            let session = Cgroup::session(&global, &v.session);
            let leaf = session.child(&format!("{}.{}", v.name, v.runner.marker));
            if leaf.exists() {
                found.push(format!("the leaf {leaf:?}"));
            }
            if v.session != shared && session.exists() {
                found.push(format!("the session cgroup {session:?}"));
            }
        }
        for (cg, high) in &baseline {
            let now = cg.limit("memory.high");
            if now != *high {
                found.push(format!("{cg:?}: memory.high {now:?}, not its share {high:?}"));
            }
        }
        if stage == Stage::AfterGc {
            let children = children(shared_cg.path());
            if children != [bystander_leaf.clone()] {
                found.push(format!("{shared_cg:?} holds {children:?}, not only the bystander's leaf"));
            }
        }
        found
    };
    let rows: Vec<_> = POINTS.iter().map(|point| m.row(point, &shared, true, &mut bystanders, &places)).collect();
    report(&rows);
    for b in bystanders {
        b.finish();
    }
    for (cg, _) in &baseline {
        assert!(!cg.exists(), "{cg:?} left after its last server ended");
    }
}

/// The child cgroups of `dir`, by name.
fn children(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}
