//! The kill plan's phases, bounds and SIGTERM variant, against the fake.

use super::*;
use crate::tree::lineage::fake::{FakeOs, LAUNCHD};
use crate::tree::lineage::scenarios::kill_all;

/// A server in its own group and a daemon that left it.
fn server_and_daemon(os: &FakeOs) -> (Identity, Identity, Lineage) {
    let mut w = os.world();
    let server = w.spawn_server(None);
    let daemon = w.fork(server.pid).expect("fork");
    w.setsid(daemon.pid);
    (server, daemon, Lineage::new(server, Some(server.pid)))
}

#[test]
fn each_step_is_one_pass_and_the_group_belt_comes_between_stop_and_kill() {
    let os = FakeOs::new();
    let (server, daemon, mut lineage) = server_and_daemon(&os);
    let mut plan = KillPlan::kill(Bounds::default());
    assert_eq!(plan.step(&os, &mut lineage, &os), Step::Continue, "stop pass 1");
    assert_eq!(os.world().signals_to(daemon), vec![Signal::Stop]);
    let belt = plan.step(&os, &mut lineage, &os);
    assert_eq!(belt, Step::SignalGroup { pgid: server.pid, signal: Signal::Kill }, "stop pass 2 froze the tree");
    os.world().killpg(server.pid, Signal::Kill);
    assert_eq!(plan.step(&os, &mut lineage, &os), Step::Continue, "kill pass 1");
    let Step::Done(report) = plan.step(&os, &mut lineage, &os) else { panic!("kill pass 2 finds nothing") };
    assert_eq!((report.stop_passes, report.signal_passes), (2, 2));
    assert_eq!(report.stopped, vec![server, daemon]);
    assert_eq!(report.signalled, vec![daemon], "the server went with its group");
    assert!(report.froze && report.complete && report.survivors.is_empty());
    assert_eq!(plan.step(&os, &mut lineage, &os), Step::Done(report), "done stays done");
}

#[test]
fn terminate_sends_term_then_cont_to_the_members_it_stopped() {
    let os = FakeOs::new();
    let (server, daemon, mut lineage) = server_and_daemon(&os);
    let stubborn = {
        let mut w = os.world();
        let s = w.fork(server.pid).expect("fork");
        w.setsid(s.pid);
        w.get_mut(s.pid).ignores_term = true;
        s
    };
    let report = KillPlan::terminate(Bounds::default()).run(
        &os,
        &mut lineage,
        &os,
        |pgid, signal| os.world().killpg(pgid, signal),
        || {
            os.world().tick();
        },
    );
    {
        let w = os.world();
        assert_eq!(w.group_delivered, vec![(server.pid, Signal::Term), (server.pid, Signal::Cont)]);
        // Without the SIGCONT the daemon would sit stopped with SIGTERM
        // pending until the SIGKILL stage.
        assert_eq!(w.signals_to(daemon), vec![Signal::Stop, Signal::Term, Signal::Cont]);
        assert!(!w.alive(server) && !w.alive(daemon));
        assert!(w.alive(stubborn));
    }
    assert!(report.complete, "every member was asked: {report:?}");
    assert_eq!(report.survivors, vec![stubborn]);
    assert!(kill_all(&os, &mut lineage).complete);
    assert!(!os.world().alive(stubborn));
}

#[test]
fn an_endless_fork_race_is_cut_off_by_the_bounds_and_reported() {
    let os = FakeOs::new();
    let (server, _, mut lineage) = server_and_daemon(&os);
    // A member that refuses signals (setuid) and forks whenever the plan
    // signals anyone: the stop passes can never freeze the tree.
    let refuser = {
        let mut w = os.world();
        let r = w.fork(server.pid).expect("fork");
        w.setsid(r.pid);
        w.get_mut(r.pid).refuses_signals = true;
        r
    };
    os.world().on_every_signal(move |w, _, _| {
        if let Some(child) = w.fork(refuser.pid) {
            w.setsid(child.pid);
        }
    });
    let bounds = Bounds { stop_passes: 5, signal_passes: 4 };
    let report = KillPlan::kill(bounds).run(&os, &mut lineage, &os, |p, s| os.world().killpg(p, s), || {});
    assert_eq!((report.stop_passes, report.signal_passes), (5, 4));
    assert!(!report.froze && !report.complete, "{report:?}");
    assert_eq!(report.denied, vec![(refuser, "SIGSTOP: Operation not permitted".to_string())]);
    assert!(report.survivors.contains(&refuser));
    assert!(report.survivors.len() > 1, "children forked in the last pass: {report:?}");
    assert!(os.world().alive(refuser));
    assert!(!os.world().alive(server));
}

#[test]
fn nothing_to_kill_is_complete_at_once() {
    let os = FakeOs::new();
    let server = os.world().spawn_server(None);
    os.world().exit(server.pid);
    let mut lineage = Lineage::new(server, Some(server.pid));
    let report = kill_all(&os, &mut lineage);
    assert!(report.froze && report.complete, "{report:?}");
    assert_eq!((report.stop_passes, report.signal_passes, report.group), (1, 1, None));
    assert!(os.world().delivered.is_empty());
    assert!(os.world().procs.contains_key(&LAUNCHD));
}
