//! The macOS scenarios of research §7, against the scripted fake. Each test
//! is one behaviour. Pressure transitions are in [`crate::tree::pressure`];
//! the same algorithm against real processes is in
//! `runner/tests/lineage_linux.rs`.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use super::accounting::Accounting;
use super::fake::{FakeOs, LAUNCHD, Listing, MIB, RUNNER};
use super::jetsam::JetsamCover;
use super::kill::{Bounds, KillPlan, KillReport};
use super::tracker::Found;
use super::{Identity, Lineage, Signal};
use crate::tree::verdict::{Breach, TreeLimits, Verdict};

/// Runs a SIGKILL plan to the end; group signals go to the fake's killpg,
/// and each pause is one tick of the fake clock.
pub(super) fn kill_all(os: &FakeOs, lineage: &mut Lineage) -> KillReport {
    KillPlan::kill(Bounds::default()).run(
        os,
        lineage,
        os,
        |pgid, signal| os.world().killpg(pgid, signal),
        || {
            os.world().tick();
        },
    )
}

fn server_and_stranger(os: &FakeOs) -> (Identity, Identity) {
    let mut w = os.world();
    (w.spawn_server(None), w.spawn_stranger(None, LAUNCHD))
}

#[test]
fn double_fork_setsid_escape_is_found_by_lineage_and_killed() {
    let os = FakeOs::new();
    let (server, stranger) = server_and_stranger(&os);
    let mut lineage = Lineage::new(server, Some(server.pid));
    lineage.rescan(&os);

    // NOTE_FORK on the server: the runner rescans and sees the intermediate.
    let intermediate = os.world().fork(server.pid).expect("fork");
    assert!(lineage.on_fork(server.pid));
    assert_eq!(lineage.rescan(&os).adopted, vec![(intermediate, Found::Lineage)]);

    // The daemon dance, all between two rescans.
    let daemon = {
        let mut w = os.world();
        w.setsid(intermediate.pid);
        let daemon = w.fork(intermediate.pid).expect("fork");
        w.exit(intermediate.pid);
        let d = w.get(daemon.pid);
        assert_eq!((d.ppid, d.pgid), (LAUNCHD, intermediate.pid), "reparented to launchd, own session");
        w.listing = Listing::Descending;
        daemon
    };
    let r = lineage.rescan(&os);
    assert_eq!(r.departed, vec![intermediate]);
    assert_eq!(r.adopted, vec![(daemon, Found::Lineage)], "found by its parent unique id");
    assert_eq!(r.escaped, vec![(daemon, LAUNCHD)]);
    assert_eq!(lineage.escaped().map(|m| m.entry.id).collect::<Vec<_>>(), vec![daemon]);

    let report = kill_all(&os, &mut lineage);
    assert!(report.froze && report.complete, "{report:?}");
    let w = os.world();
    assert!(!w.alive(daemon) && !w.alive(server));
    assert!(w.alive(stranger) && w.procs.contains_key(&RUNNER) && w.procs.contains_key(&LAUNCHD));
    assert_eq!(w.signals_to(daemon), vec![Signal::Stop, Signal::Kill]);
    assert_eq!(w.group_delivered, vec![(server.pid, Signal::Kill)], "the belt hit the server's group only");
    assert_eq!(w.delivered_outside(&[server, daemon]), vec![]);
}

/// The limit of lineage: a chain is followed only through processes seen
/// alive once. This is why the macOS driver rescans on every NOTE_FORK of a
/// member, and why only a dedicated uid (root mode, research §3.3) is exact.
#[test]
fn a_setsid_chain_through_a_never_seen_intermediate_is_invisible() {
    let os = FakeOs::new();
    let (server, _) = server_and_stranger(&os);
    let mut lineage = Lineage::new(server, Some(server.pid));
    let daemon = {
        let mut w = os.world();
        let intermediate = w.fork(server.pid).expect("fork");
        w.setsid(intermediate.pid);
        let daemon = w.fork(intermediate.pid).expect("fork");
        w.exit(intermediate.pid);
        daemon
    };
    lineage.rescan(&os);
    assert!(!lineage.contains(daemon));
}

#[test]
fn a_never_seen_intermediate_that_kept_the_group_is_bridged_by_the_group() {
    let os = FakeOs::new();
    let (server, _) = server_and_stranger(&os);
    let mut lineage = Lineage::new(server, Some(server.pid));
    let (orphan, grandchild) = {
        let mut w = os.world();
        let intermediate = w.fork(server.pid).expect("fork");
        let orphan = w.fork(intermediate.pid).expect("fork");
        w.exit(intermediate.pid);
        let grandchild = w.fork(orphan.pid).expect("fork");
        (orphan, grandchild)
    };
    let r = lineage.rescan(&os);
    assert_eq!(r.adopted, vec![(orphan, Found::Group), (grandchild, Found::Lineage)]);
}

#[test]
fn pid_reuse_is_refused_by_unique_id() {
    let os = FakeOs::new();
    let (server, shell) = server_and_stranger(&os);
    let worker = os.world().fork(server.pid).expect("fork");
    let mut lineage = Lineage::new(server, Some(server.pid));
    lineage.rescan(&os);
    let (impostor, impostor_child) = {
        let mut w = os.world();
        w.exit(worker.pid);
        let impostor = w.spawn_stranger(Some(worker.pid), shell.pid);
        // Its child's ppid is the worker's old pid, and the system cannot
        // tell its parent unique id: the ppid rule must still refuse it.
        let child = w.fork(impostor.pid).expect("fork");
        w.get_mut(child.pid).parent_unique_id = None;
        (impostor, child)
    };
    assert_eq!(impostor.pid, worker.pid);
    let r = lineage.rescan(&os);
    assert_eq!(r.reused, vec![worker]);
    assert!(r.adopted.is_empty(), "{r:?}");
    assert!(!lineage.contains(impostor) && !lineage.contains(impostor_child));

    let report = kill_all(&os, &mut lineage);
    assert!(report.complete, "{report:?}");
    let w = os.world();
    assert!(w.alive(impostor) && w.alive(impostor_child) && w.alive(shell));
    assert_eq!(w.delivered_outside(&[server]), vec![]);
}

#[test]
fn a_member_exiting_between_listing_and_signalling_is_gone_not_an_error() {
    let os = FakeOs::new();
    let (server, _) = server_and_stranger(&os);
    let worker = os.world().fork(server.pid).expect("fork");
    let mut lineage = Lineage::new(server, Some(server.pid));
    // Right before the first signal (to the server, listed first), the
    // worker exits and a stranger takes its pid: the worst case.
    let taker = Rc::new(RefCell::new(None));
    let slot = taker.clone();
    os.world().before_signal(move |w| {
        w.exit(worker.pid);
        *slot.borrow_mut() = Some(w.spawn_stranger(Some(worker.pid), LAUNCHD));
    });
    let report = kill_all(&os, &mut lineage);
    assert_eq!(report.gone, vec![worker]);
    assert!(report.denied.is_empty() && report.complete, "{report:?}");
    let taker = taker.borrow().expect("the hook ran");
    let w = os.world();
    assert!(w.alive(taker));
    assert_eq!(w.delivered_outside(&[server]), vec![]);
}

#[test]
fn a_fork_race_during_the_kill_is_caught_by_the_stop_passes() {
    let os = FakeOs::new();
    let (server, stranger) = server_and_stranger(&os);
    let worker = os.world().fork(server.pid).expect("fork");
    let mut lineage = Lineage::new(server, Some(server.pid));
    lineage.rescan(&os);
    // Before every signal, each running process of the tree forks, up to 24
    // children; every other child leaves the group, so the group belt cannot
    // do the work of the passes.
    let forked = Rc::new(RefCell::new(Vec::<Identity>::new()));
    let log = forked.clone();
    let tree = Rc::new(RefCell::new(vec![server, worker]));
    let tree_log = tree.clone();
    os.world().on_every_signal(move |w, _, _| {
        let parents: Vec<Identity> = tree_log.borrow().clone();
        for parent in parents {
            if log.borrow().len() >= 24 {
                return;
            }
            if let Some(child) = w.fork(parent.pid) {
                if log.borrow().len().is_multiple_of(2) {
                    w.setsid(child.pid);
                }
                log.borrow_mut().push(child);
                tree_log.borrow_mut().push(child);
            }
        }
    });
    let report = kill_all(&os, &mut lineage);
    let forked = forked.borrow();
    assert!(forked.len() > 4, "the race happened: {forked:?}");
    assert!(report.froze && report.complete, "{report:?}");
    assert!(report.stop_passes >= 3, "new children needed more stop passes: {report:?}");
    assert!(report.stop_passes < Bounds::default().stop_passes);
    let w = os.world();
    let tree = tree.borrow();
    assert!(tree.iter().all(|id| !w.alive(*id)), "the sweep ended empty");
    assert!(w.alive(stranger));
    assert_eq!(w.delivered_outside(&tree), vec![]);
    for (i, child) in forked.iter().enumerate().filter(|(i, _)| i % 2 == 0) {
        assert_eq!(w.signals_to(*child), vec![Signal::Stop, Signal::Kill], "setsid child {i}");
    }
}

#[test]
fn exec_drops_the_jetsam_limit_so_the_footprint_poll_kills() {
    let os = FakeOs::new();
    let server = os.world().spawn_server(Some(100 * MIB));
    let mut cover = JetsamCover::spawned(server);
    let mut lineage = Lineage::new(server, Some(server.pid));
    lineage.rescan(&os);
    assert!(cover.covers(server));

    // `npx` → `node`: the server execs (NOTE_EXEC), then forks two workers,
    // and all three grow 40 MiB per 100 ms.
    let workers = {
        let mut w = os.world();
        w.exec(server.pid);
        let workers = [w.fork(server.pid).expect("fork"), w.fork(server.pid).expect("fork")];
        for id in workers.iter().chain([&server]) {
            w.get_mut(id.pid).growth_per_tick = 40 * MIB;
        }
        workers
    };
    cover.on_exec(server.pid);
    lineage.rescan(&os);
    for id in lineage.live() {
        let kernel_has_a_limit = os.world().get(id.pid).jetsam_limit.is_some();
        assert_eq!(cover.covers(id), kernel_has_a_limit, "model and kernel agree on {id}");
    }
    assert_eq!(cover.uncovered(&lineage), lineage.live(), "no member is covered any more");

    let mut acc = Accounting::new(TreeLimits { memory_max: Some(300 * MIB), ..TreeLimits::default() });
    let breach = loop {
        let now = os.world().tick();
        assert!(now <= Duration::from_secs(2), "the poll never fired");
        lineage.rescan(&os);
        if let Verdict::Exceeded(b) = acc.poll(&os, &lineage, now).verdict {
            break b;
        }
    };
    // Three processes at 1 + 3 × 40 MiB: each is past the 100 MiB the
    // server was spawned with, and the kernel killed none of them.
    assert_eq!(breach, Breach::Memory { used: 363 * MIB, limit: 300 * MIB });
    assert!(os.world().jetsam_kills.is_empty());
    let report = kill_all(&os, &mut lineage);
    assert!(report.complete, "{report:?}");
    assert!(workers.iter().chain([&server]).all(|id| !os.world().alive(*id)));
}

#[test]
fn the_spawned_image_is_held_by_the_kernel_until_it_execs() {
    let os = FakeOs::new();
    let server = os.world().spawn_server(Some(100 * MIB));
    let cover = JetsamCover::spawned(server);
    os.world().get_mut(server.pid).growth_per_tick = 40 * MIB;
    for _ in 0..3 {
        os.world().tick();
    }
    assert!(cover.covers(server));
    assert_eq!(os.world().jetsam_kills, vec![server], "the kernel acted at 121 MiB, as the model expects");
}

#[test]
fn a_fast_allocator_overshoots_one_poll_and_the_next_poll_kills_with_the_measured_figure() {
    let os = FakeOs::new();
    let (server, _) = server_and_stranger(&os);
    let mut lineage = Lineage::new(server, Some(server.pid));
    let mut acc = Accounting::new(TreeLimits { memory_max: Some(500 * MIB), ..TreeLimits::default() });
    os.world().set_footprint(server.pid, 400 * MIB);
    let now = os.world().tick();
    lineage.rescan(&os);
    assert_eq!(acc.poll(&os, &lineage, now).verdict, Verdict::Within);
    // Between two 100 ms polls the allocator reaches 871 MiB, the figure a
    // third party measured against a 500 MB limit (research §8.6).
    os.world().set_footprint(server.pid, 871 * MIB);
    let now = os.world().tick();
    lineage.rescan(&os);
    let poll = acc.poll(&os, &lineage, now);
    let breach = Breach::Memory { used: 871 * MIB, limit: 500 * MIB };
    assert_eq!(poll.verdict, Verdict::Exceeded(breach));
    assert_eq!(breach.to_string(), "memory 871 MiB exceeded memory_max 500 MiB");
    assert_eq!(poll.peak, 871 * MIB);
    assert!(kill_all(&os, &mut lineage).complete);
}

#[test]
fn a_spike_between_polls_shows_only_in_the_lifetime_maximum() {
    let os = FakeOs::new();
    let (server, _) = server_and_stranger(&os);
    let mut lineage = Lineage::new(server, Some(server.pid));
    lineage.rescan(&os);
    let mut acc = Accounting::new(TreeLimits { memory_max: Some(500 * MIB), ..TreeLimits::default() });
    os.world().set_footprint(server.pid, 871 * MIB);
    os.world().set_footprint(server.pid, 300 * MIB);
    let now = os.world().tick();
    let poll = acc.poll(&os, &lineage, now);
    assert_eq!(poll.verdict, Verdict::Within, "the poll cannot see what is gone");
    assert_eq!((poll.peak, poll.members_lifetime_max), (300 * MIB, 871 * MIB));
}

#[test]
fn the_crash_sweep_finds_the_surviving_lineage_and_spares_recycled_pids() {
    let os = FakeOs::new();
    let server = os.world().spawn_server(None);
    let (a, b) = {
        let mut w = os.world();
        let a = w.fork(server.pid).expect("fork");
        (a, w.fork(a.pid).expect("fork"))
    };
    let mut lineage = Lineage::new(server, Some(server.pid));
    lineage.rescan(&os);
    let record = lineage.record();
    drop(lineage);

    // After the last record: b starts a daemon the classic way and exits;
    // the daemon forks a worker, which forks again.
    let (daemon, worker, helper, strangers) = {
        let mut w = os.world();
        let daemon = w.fork(b.pid).expect("fork");
        w.setsid(daemon.pid);
        w.exit(b.pid);
        let worker = w.fork(daemon.pid).expect("fork");
        let helper = w.fork(worker.pid).expect("fork");
        // The runner is SIGKILLed and the server dies with it; a exits.
        // Strangers take a's pid, and the server's pid, which is also the
        // old group id: the stranger leads its own group under launchd,
        // exactly what the group rule must not adopt.
        w.exit(RUNNER);
        w.exit(server.pid);
        w.exit(a.pid);
        let strangers = [w.spawn_stranger(Some(a.pid), LAUNCHD), w.spawn_stranger(Some(server.pid), LAUNCHD)];
        assert_eq!(w.get(server.pid).pgid, record.group.expect("the server led its group"));
        (daemon, worker, helper, strangers)
    };

    let mut sweep = Lineage::from_record(&record);
    let r = sweep.rescan(&os);
    assert_eq!(r.reused, vec![server, a]);
    assert_eq!(r.departed, vec![b]);
    let found = vec![(daemon, Found::Lineage), (worker, Found::Lineage), (helper, Found::Lineage)];
    assert_eq!(r.adopted, found);
    assert!(!sweep.holds_group(), "no member is left in the old group");

    let report = kill_all(&os, &mut sweep);
    assert!(report.complete, "{report:?}");
    assert_eq!(report.group, None, "no killpg of a group id a stranger now holds");
    let w = os.world();
    assert!([daemon, worker, helper].iter().all(|id| !w.alive(*id)));
    assert!(strangers.iter().all(|id| w.alive(*id)));
    assert_eq!(w.delivered_outside(&[daemon, worker, helper]), vec![]);
}
