//! The tracker's rules, one at a time, against the scripted fake.

use std::cell::RefCell;
use std::rc::Rc;

use super::*;
use crate::tree::lineage::fake::{FakeOs, LAUNCHD, Listing, RUNNER};

fn seeded(os: &FakeOs) -> (Identity, Lineage) {
    let server = os.world().spawn_server(None);
    (server, Lineage::new(server, Some(server.pid)))
}

#[test]
fn adoption_is_transitive_in_one_rescan_whatever_the_listing_order() {
    for listing in [Listing::Ascending, Listing::Descending] {
        let os = FakeOs::new();
        let (server, mut lineage) = seeded(&os);
        let chain: Vec<Identity> = {
            let mut w = os.world();
            w.listing = listing;
            let mut parent = server.pid;
            (0..4)
                .map(|_| {
                    let child = w.fork(parent).expect("fork");
                    parent = child.pid;
                    child
                })
                .collect()
        };
        let r = lineage.rescan(&os);
        let adopted: Vec<Identity> = r.adopted.iter().map(|(id, _)| *id).collect();
        assert_eq!(adopted, chain, "{listing:?}");
        assert_eq!(lineage.rescans(), 1);
    }
}

#[test]
fn the_runner_launchd_and_strangers_are_never_adopted() {
    let os = FakeOs::new();
    let (server, mut lineage) = seeded(&os);
    let stranger = os.world().spawn_stranger(None, RUNNER);
    lineage.rescan(&os);
    let members: Vec<i32> = lineage.members().map(|m| m.entry.id.pid).collect();
    assert_eq!(members, vec![server.pid]);
    assert!(!lineage.contains(stranger));
}

#[test]
fn a_child_forked_by_a_parent_exiting_after_the_listing_is_adopted_next_rescan() {
    let os = FakeOs::new();
    let (server, mut lineage) = seeded(&os);
    let worker = os.world().fork(server.pid).expect("fork");
    lineage.rescan(&os);
    let child = Rc::new(RefCell::new(None));
    let slot = child.clone();
    os.world().after_listing(move |w| {
        let c = w.fork(worker.pid).expect("fork");
        w.setsid(c.pid);
        w.exit(worker.pid);
        *slot.borrow_mut() = Some(c);
    });
    let r = lineage.rescan(&os);
    assert_eq!(r.departed, vec![worker]);
    assert!(r.adopted.is_empty(), "the child was not listed yet: {r:?}");
    let child = child.borrow().expect("the hook ran");
    let r = lineage.rescan(&os);
    assert_eq!(r.adopted, vec![(child, Found::Lineage)], "the departed worker still anchors");
}

#[test]
fn a_departed_member_anchors_one_rescan_only() {
    let os = FakeOs::new();
    let (server, mut lineage) = seeded(&os);
    let worker = os.world().fork(server.pid).expect("fork");
    lineage.rescan(&os);
    os.world().exit(worker.pid);
    lineage.rescan(&os);
    lineage.rescan(&os);
    // Not possible on a real system (a dead process cannot fork); scripted
    // to show the anchor was let go and the set does not grow forever.
    let late = {
        let mut w = os.world();
        let late = w.spawn_stranger(None, LAUNCHD);
        w.get_mut(late.pid).parent_unique_id = Some(worker.unique_id);
        late
    };
    lineage.rescan(&os);
    assert!(!lineage.contains(late));
}

#[test]
fn the_parent_pid_links_only_when_the_parent_unique_id_is_unknown() {
    let os = FakeOs::new();
    let (server, mut lineage) = seeded(&os);
    let (unknown, mismatched) = {
        let mut w = os.world();
        let unknown = w.fork(server.pid).expect("fork");
        w.get_mut(unknown.pid).parent_unique_id = None;
        let mismatched = w.fork(server.pid).expect("fork");
        // The system says another process forked it (macOS: traced).
        w.get_mut(mismatched.pid).parent_unique_id = Some(9999);
        w.setsid(mismatched.pid);
        (unknown, mismatched)
    };
    let r = lineage.rescan(&os);
    assert_eq!(r.adopted, vec![(unknown, Found::Parent)]);
    assert!(!lineage.contains(mismatched));
}

#[test]
fn the_group_rule_refuses_older_processes_and_children_of_live_strangers() {
    let os = FakeOs::new();
    let older = os.world().spawn_stranger(None, LAUNCHD);
    let (server, mut lineage) = seeded(&os);
    let shell = os.world().spawn_stranger(None, LAUNCHD);
    let joined = os.world().fork(shell.pid).expect("fork");
    {
        // Both moved into the server's group (setpgid within the session).
        let mut w = os.world();
        w.get_mut(older.pid).pgid = server.pid;
        w.get_mut(joined.pid).pgid = server.pid;
    }
    lineage.rescan(&os);
    assert!(!lineage.contains(older), "born before the server");
    assert!(!lineage.contains(joined), "its parent is a live stranger");
}

#[test]
fn without_a_group_of_its_own_the_server_adopts_nothing_by_group() {
    let os = FakeOs::new();
    let server = os.world().spawn_server(None);
    let mut lineage = Lineage::new(server, None);
    let orphan = {
        let mut w = os.world();
        let intermediate = w.fork(server.pid).expect("fork");
        let orphan = w.fork(intermediate.pid).expect("fork");
        w.exit(intermediate.pid);
        orphan
    };
    lineage.rescan(&os);
    assert!(!lineage.contains(orphan));
    assert!(!lineage.holds_group());
}

#[test]
fn hints_mark_the_tree_stale_and_an_exit_stops_counting_at_once() {
    let os = FakeOs::new();
    let (server, mut lineage) = seeded(&os);
    let worker = os.world().fork(server.pid).expect("fork");
    assert!(lineage.is_stale(), "never scanned");
    lineage.rescan(&os);
    assert!(!lineage.is_stale());
    assert!(!lineage.on_fork(LAUNCHD), "not a member");
    assert!(lineage.is_stale());
    lineage.rescan(&os);
    assert!(lineage.on_exit(worker.pid));
    assert_eq!(lineage.live(), vec![server], "no longer counted or signalled");
    // The event lied (or was for an older process): the rescan is the truth.
    lineage.rescan(&os);
    assert_eq!(lineage.live(), vec![server, worker]);
}

#[test]
fn zombies_stay_members_but_are_not_live() {
    let os = FakeOs::new();
    let (server, mut lineage) = seeded(&os);
    let worker = os.world().fork(server.pid).expect("fork");
    os.world().zombify(worker.pid);
    lineage.rescan(&os);
    assert!(lineage.contains(worker));
    assert_eq!(lineage.live(), vec![server]);
}

#[test]
fn escapes_are_reported_once() {
    let os = FakeOs::new();
    let (server, mut lineage) = seeded(&os);
    let (a, b) = {
        let mut w = os.world();
        let a = w.fork(server.pid).expect("fork");
        (a, w.fork(a.pid).expect("fork"))
    };
    assert!(lineage.rescan(&os).escaped.is_empty());
    os.world().exit(a.pid);
    assert_eq!(lineage.rescan(&os).escaped, vec![(b, LAUNCHD)]);
    assert!(lineage.rescan(&os).escaped.is_empty());
    assert_eq!(lineage.escaped().count(), 1);
}

#[test]
fn the_record_round_trips_and_reseeds() {
    let os = FakeOs::new();
    let (server, mut lineage) = seeded(&os);
    let worker = os.world().fork(server.pid).expect("fork");
    lineage.rescan(&os);
    let record = lineage.record();
    assert_eq!(record, LineageRecord { root: server, group: Some(server.pid), members: vec![server, worker] });
    let text = serde_json::to_string(&record).expect("serialize");
    let back: LineageRecord = serde_json::from_str(&text).expect("parse");
    let mut again = Lineage::from_record(&back);
    assert!(again.rescan(&os).adopted.is_empty(), "record members are seeds, not adoptions");
    assert_eq!(again.live(), vec![server, worker]);
    assert!(again.members().all(|m| m.found == Found::Seed));
}
