//! The lineage tracker and kill plan against real processes.
//!
//! The test process is not a subreaper, so an orphan goes to init (or the
//! nearest subreaper above it), as on macOS it goes to launchd. The OS view
//! is /proc ([`ProcfsOs`]); Linux keeps no parent unique id after
//! reparenting, so the intermediate of the double fork lingers until the
//! test has seen its child, and the test says when it may go by closing a
//! pipe. Events drive the test; sleeps only pace rescans and kill passes,
//! and every wait has a deadline.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::Mutex;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use crate::tree::lineage::kill::{Bounds, KillPlan, KillReport};
use crate::tree::lineage::procfs::{PidfdSignaller, ProcfsOs, signal_group};
use crate::tree::lineage::tracker::Found;
use crate::tree::lineage::{Identity, Lineage, LineageOs, Signal, SignalError, Signaller};

/// The two tests fork many processes; one at a time keeps the rescans of
/// one from starving in the other's fork loop on a two-core machine.
static SERIAL: Mutex<()> = Mutex::new(());

const RESCAN_EVERY: Duration = Duration::from_millis(15);
const DEADLINE: Duration = Duration::from_secs(20);

/// Sends for real and records what went out.
#[derive(Default)]
struct Recording {
    inner: PidfdSignaller,
    sent: RefCell<Vec<(Identity, Signal)>>,
    groups: RefCell<Vec<(i32, Signal)>>,
}

impl Signaller for Recording {
    fn signal(&self, id: Identity, signal: Signal) -> Result<(), SignalError> {
        let r = self.inner.signal(id, signal);
        if r.is_ok() {
            self.sent.borrow_mut().push((id, signal));
        }
        r
    }
}

impl Recording {
    fn kill(&self, os: &ProcfsOs, lineage: &mut Lineage) -> KillReport {
        let group = |pgid, signal| {
            self.groups.borrow_mut().push((pgid, signal));
            signal_group(pgid, signal).ok();
        };
        KillPlan::kill(Bounds::default()).run(os, lineage, self, group, || std::thread::sleep(Duration::from_millis(2)))
    }
}

/// An unrelated process that must survive; killed when the test ends,
/// even by a panic, so it never holds the test harness's output open.
struct Bystander(Child);

impl Bystander {
    fn spawn() -> Bystander {
        let mut sleep = Command::new("sleep");
        sleep.arg("300").stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
        Bystander(sleep.spawn().expect("spawn sleep"))
    }

    fn alive(&mut self) -> bool {
        self.0.try_wait().expect("try_wait").is_none()
    }
}

impl Drop for Bystander {
    fn drop(&mut self) {
        self.0.kill().ok();
        self.0.wait().ok();
    }
}

/// Kills what a failed test left behind: the processes it saw, by
/// identity, so a recycled pid is never hit.
#[derive(Default)]
struct Cleanup(RefCell<BTreeSet<Identity>>);

impl Cleanup {
    fn add(&self, ids: impl IntoIterator<Item = Identity>) {
        self.0.borrow_mut().extend(ids);
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let signaller = PidfdSignaller::default();
        for id in self.0.borrow().iter() {
            signaller.signal(*id, Signal::Kill).ok();
        }
    }
}

fn not_a_subreaper() {
    assert!(!nix::sys::prctl::get_child_subreaper().expect("prctl"), "the test process must not be a subreaper");
}

fn identity(os: &ProcfsOs, child: &Child) -> Identity {
    os.entry(child.id() as i32).expect("the child is listed").id
}

/// A server in its own process group, as the macOS driver spawns it.
fn spawn_server(script: &str) -> Child {
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("spawn sh")
}

enum Line {
    Text(String),
    Eof,
}

/// The server's stdout as events: each line, then EOF once every process
/// holding it has exited.
fn lines(stdout: ChildStdout) -> Receiver<Line> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(Line::Text(line));
        }
        let _ = tx.send(Line::Eof);
    });
    rx
}

/// Dead: gone, its pid recycled, or a zombie waiting for init to reap it.
fn dead(os: &ProcfsOs, id: Identity) -> bool {
    os.entry(id.pid).is_none_or(|e| e.id != id || e.zombie)
}

#[test]
fn a_setsid_double_fork_daemon_is_found_after_reparenting_and_killed() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    not_a_subreaper();
    let os = ProcfsOs::default();
    let me = std::process::id() as i32;
    let mut bystander = Bystander::spawn();

    // The server starts the classic daemon: setsid(1) in a background job
    // (not a group leader, so it calls setsid() without forking again),
    // whose shell forks the daemon, prints its pid, and lingers until the
    // test closes the server's stdin (kept on fd 3: a background job's
    // stdin is /dev/null).
    let mut server = spawn_server(
        "exec 3<&0; setsid sh -c 'sleep 300 </dev/null >/dev/null 2>&1 3<&- & echo $!; read _ <&3' & wait",
    );
    let server_id = identity(&os, &server);
    let cleanup = Cleanup::default();
    cleanup.add([server_id]);
    let stdin = server.stdin.take().expect("stdin");
    let events = lines(server.stdout.take().expect("stdout"));
    let mut lineage = Lineage::new(server_id, Some(server_id.pid));

    let start = Instant::now();
    let mut daemon_pid = None;
    let daemon = loop {
        assert!(start.elapsed() < DEADLINE, "the daemon was never adopted");
        lineage.rescan(&os);
        if let Some(pid) = daemon_pid
            && let Some(m) = lineage.members().find(|m| m.entry.id.pid == pid)
        {
            cleanup.add([m.entry.id]);
            break m.clone();
        }
        match events.recv_timeout(RESCAN_EVERY) {
            Ok(Line::Text(pid)) => daemon_pid = Some(pid.trim().parse::<i32>().expect("a pid")),
            Ok(Line::Eof) => panic!("the server ended before printing the daemon's pid"),
            Err(_) => {}
        }
    };
    let intermediate = daemon.entry.ppid;
    assert_eq!(daemon.found, Found::Lineage);
    assert!(lineage.members().any(|m| m.entry.id.pid == intermediate), "the intermediate is a member");
    assert_eq!(daemon.escaped_to, None, "not reparented yet");

    // Let the intermediate go; EOF on stdout means it and the server exited.
    drop(stdin);
    loop {
        assert!(start.elapsed() < DEADLINE, "the intermediate never exited");
        lineage.rescan(&os);
        match events.recv_timeout(RESCAN_EVERY) {
            Ok(Line::Eof) => break,
            Ok(Line::Text(t)) => panic!("unexpected output {t:?}"),
            Err(RecvTimeoutError::Timeout) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert!(server.wait().expect("wait").success());
    let r = lineage.rescan(&os);
    assert!(r.departed.contains(&server_id) || !lineage.contains(server_id), "{r:?}");

    let now = lineage.members().find(|m| m.entry.id == daemon.entry.id).expect("still a member").clone();
    let new_parent = now.entry.ppid;
    assert_ne!(new_parent, intermediate);
    assert_ne!(new_parent, me, "the test is not a subreaper");
    assert!(!lineage.members().any(|m| m.entry.id.pid == new_parent), "the new parent is outside the tree");
    assert_eq!(now.escaped_to, Some(new_parent));
    assert_eq!(lineage.escaped().map(|m| m.entry.id).collect::<Vec<_>>(), vec![daemon.entry.id]);
    eprintln!("daemon {} reparented from {intermediate} to {new_parent}", daemon.entry.id);

    let signaller = Recording::default();
    let report = signaller.kill(&os, &mut lineage);
    assert!(report.froze && report.complete, "{report:?}");
    let id = daemon.entry.id;
    assert_eq!(*signaller.sent.borrow(), vec![(id, Signal::Stop), (id, Signal::Kill)], "only the daemon");
    assert!(signaller.groups.borrow().is_empty(), "the server's group is gone: no killpg");
    assert!(dead(&os, id), "the daemon is dead");
    assert!(bystander.alive(), "the bystander lives");
}

#[test]
fn a_real_fork_loop_during_the_kill_ends_with_an_empty_sweep() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    not_a_subreaper();
    let os = ProcfsOs::default();
    let mut bystander = Bystander::spawn();
    let bystander_id = identity(&os, &bystander.0);

    // Four loops fork side by side, so some fork while the stop pass runs.
    // Each round: a child, a child in its own session, and an orphan whose
    // parent shell exits at once (often never seen: the group bridges it).
    let mut server = spawn_server(
        "spin() { while :; do sleep 30 & setsid sleep 30 & sh -c 'sleep 30 &'; sleep 0.02; done; }
         for i in 1 2 3 4; do spin & done >/dev/null 2>&1; wait",
    );
    let server_id = identity(&os, &server);
    let cleanup = Cleanup::default();
    let mut lineage = Lineage::new(server_id, Some(server_id.pid));
    let mut ever: BTreeSet<Identity> = BTreeSet::new();
    let start = Instant::now();
    while lineage.live().len() < 40 {
        assert!(start.elapsed() < DEADLINE, "the fork loop never got going");
        let r = lineage.rescan(&os);
        ever.extend(r.adopted.iter().map(|(id, _)| *id));
        std::thread::sleep(RESCAN_EVERY);
    }
    cleanup.add(lineage.live());
    let by_group = lineage.members().filter(|m| m.found == Found::Group).count();

    let signaller = Recording::default();
    let report = signaller.kill(&os, &mut lineage);
    eprintln!(
        "fork loop: {} adopted before the kill ({by_group} bridged by the group), {} stop passes, {} kill passes, \
         {} stopped, {} killed one by one, {} gone between listing and signal, group {:?}",
        ever.len(),
        report.stop_passes,
        report.signal_passes,
        report.stopped.len(),
        report.signalled.len(),
        report.gone.len(),
        report.group,
    );
    assert!(report.froze && report.complete, "{report:?}");
    assert_eq!(*signaller.groups.borrow(), vec![(server_id.pid, Signal::Kill)]);
    assert_eq!(server.wait().expect("wait").signal(), Some(9));

    ever.extend(report.stopped.iter().chain(&report.signalled));
    let alive: Vec<Identity> = ever.iter().copied().filter(|id| !dead(&os, *id)).collect();
    assert!(alive.is_empty(), "survivors: {alive:?}");
    let in_group: Vec<i32> = os
        .pids()
        .into_iter()
        .filter_map(|pid| os.entry(pid))
        .filter(|e| e.pgid == server_id.pid && !e.zombie)
        .map(|e| e.id.pid)
        .collect();
    assert!(in_group.is_empty(), "still in the server's group: {in_group:?}");
    for (id, _) in signaller.sent.borrow().iter() {
        assert!(id.unique_id >= server_id.unique_id, "{id} was born before the server: not its descendant");
        assert_ne!(*id, bystander_id);
    }
    assert!(bystander.alive(), "the bystander lives");
}
