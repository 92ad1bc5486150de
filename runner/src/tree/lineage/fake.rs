//! A scripted operating system for the lineage scenarios.
//!
//! It models what the tracker and the kill plan depend on, the XNU way:
//! unique ids from a counter, never reused; `fork` records the parent's
//! unique id, which survives reparenting; `exit` reparents children to
//! launchd (pid 1); `exec` keeps the unique id but drops the per-process
//! jetsam limit, and fork children never get one (research §1.6); a stopped
//! process cannot fork; SIGTERM to a stopped process waits for SIGCONT.
//! Footprints grow per tick of a deterministic clock, and the fake kernel
//! kills a process whose footprint passes its own jetsam limit.
//!
//! Races are scripted with hooks that run after the listing (before the
//! entries are read) and right before a signal is delivered. Every signal
//! that was delivered is recorded.

use std::cell::{RefCell, RefMut};
use std::collections::BTreeMap;
use std::time::Duration;

use super::{Footprint, Identity, LineageOs, ProcEntry, Signal, SignalError, Signaller};

pub const LAUNCHD: i32 = 1;
pub const RUNNER: i32 = 100;
pub const MIB: u64 = 1 << 20;
/// The fake clock's step, the poll interval of the scenarios.
pub const TICK: Duration = Duration::from_millis(100);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Running,
    Stopped,
    Zombie,
}

#[derive(Clone, Debug)]
pub struct Proc {
    pub id: Identity,
    pub ppid: i32,
    pub pgid: i32,
    /// What `PROC_PIDUNIQIDENTIFIERINFO` would say, or `None` to script a
    /// system that cannot tell.
    pub parent_unique_id: Option<u64>,
    pub state: State,
    pub term_pending: bool,
    pub ignores_term: bool,
    /// Answers every signal with EPERM, as after a setuid exec.
    pub refuses_signals: bool,
    pub threads: u64,
    pub footprint: u64,
    pub lifetime_max: u64,
    pub growth_per_tick: u64,
    /// The kernel's per-process memory limit, if this image has one.
    pub jetsam_limit: Option<u64>,
}

/// In which order `pids()` lists processes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listing {
    Ascending,
    Descending,
}

type Hook = Box<dyn FnOnce(&mut World)>;
type SignalHook = Box<dyn FnMut(&mut World, Identity, Signal)>;

pub struct World {
    pub procs: BTreeMap<i32, Proc>,
    pub now: Duration,
    pub listing: Listing,
    /// Every signal delivered to one process, in order.
    pub delivered: Vec<(Identity, Signal)>,
    /// Every group signal, in order.
    pub group_delivered: Vec<(i32, Signal)>,
    /// Processes the fake kernel killed over their jetsam limit.
    pub jetsam_kills: Vec<Identity>,
    next_pid: i32,
    next_unique_id: u64,
    after_listing: Vec<Hook>,
    before_signal: Vec<Hook>,
    on_every_signal: Option<SignalHook>,
}

/// The fake system. `LineageOs` and `Signaller` take `&self`, so the state
/// sits in a `RefCell` that scripts reach through [`FakeOs::world`].
pub struct FakeOs {
    world: RefCell<World>,
}

impl FakeOs {
    /// launchd (pid 1) and the runner (pid 100), both foreign to any tree.
    pub fn new() -> FakeOs {
        let mut w = World {
            procs: BTreeMap::new(),
            now: Duration::ZERO,
            listing: Listing::Ascending,
            delivered: Vec::new(),
            group_delivered: Vec::new(),
            jetsam_kills: Vec::new(),
            next_pid: 1000,
            next_unique_id: 1,
            after_listing: Vec::new(),
            before_signal: Vec::new(),
            on_every_signal: None,
        };
        w.create(LAUNCHD, 0, LAUNCHD, None);
        w.create(RUNNER, LAUNCHD, RUNNER, Some(1));
        FakeOs { world: RefCell::new(w) }
    }

    pub fn world(&self) -> RefMut<'_, World> {
        self.world.borrow_mut()
    }
}

impl World {
    fn create(&mut self, pid: i32, ppid: i32, pgid: i32, parent_unique_id: Option<u64>) -> Identity {
        assert!(!self.procs.contains_key(&pid), "pid {pid} is taken");
        let id = Identity { pid, unique_id: self.next_unique_id };
        self.next_unique_id += 1;
        let proc = Proc {
            id,
            ppid,
            pgid,
            parent_unique_id,
            state: State::Running,
            term_pending: false,
            ignores_term: false,
            refuses_signals: false,
            threads: 1,
            footprint: MIB,
            lifetime_max: MIB,
            growth_per_tick: 0,
            jetsam_limit: None,
        };
        self.procs.insert(pid, proc);
        id
    }

    fn fresh_pid(&mut self) -> i32 {
        while self.procs.contains_key(&self.next_pid) {
            self.next_pid += 1;
        }
        self.next_pid
    }

    pub fn get(&self, pid: i32) -> &Proc {
        self.procs.get(&pid).unwrap_or_else(|| panic!("no process {pid}"))
    }

    pub fn get_mut(&mut self, pid: i32) -> &mut Proc {
        self.procs.get_mut(&pid).unwrap_or_else(|| panic!("no process {pid}"))
    }

    /// The runner spawns the server in its own group, with a jetsam limit
    /// set through the spawn attributes.
    pub fn spawn_server(&mut self, jetsam_limit: Option<u64>) -> Identity {
        let pid = self.fresh_pid();
        let runner = self.get(RUNNER).id.unique_id;
        let id = self.create(pid, RUNNER, pid, Some(runner));
        self.get_mut(pid).jetsam_limit = jetsam_limit;
        id
    }

    /// A process outside every tree, at `pid` if given (to recycle one).
    pub fn spawn_stranger(&mut self, pid: Option<i32>, ppid: i32) -> Identity {
        let pid = pid.unwrap_or_else(|| self.fresh_pid());
        let parent = self.procs.get(&ppid).map(|p| p.id.unique_id);
        self.create(pid, ppid, pid, parent)
    }

    /// `None` if the parent cannot fork: gone, a zombie, or stopped.
    pub fn fork(&mut self, parent: i32) -> Option<Identity> {
        let p = self.procs.get(&parent).filter(|p| p.state == State::Running)?.clone();
        let pid = self.fresh_pid();
        Some(self.create(pid, parent, p.pgid, Some(p.id.unique_id)))
    }

    /// Same process, new image: the jetsam limit is gone.
    pub fn exec(&mut self, pid: i32) {
        self.get_mut(pid).jetsam_limit = None;
    }

    pub fn setsid(&mut self, pid: i32) {
        self.get_mut(pid).pgid = pid;
    }

    /// Exits and is reaped at once; children go to launchd, keeping their
    /// parent unique id.
    pub fn exit(&mut self, pid: i32) {
        self.zombify(pid);
        self.procs.remove(&pid);
    }

    /// Exits but stays listed until [`World::exit`] reaps it.
    pub fn zombify(&mut self, pid: i32) {
        let p = self.get_mut(pid);
        p.state = State::Zombie;
        p.footprint = 0;
        for child in self.procs.values_mut().filter(|c| c.ppid == pid) {
            child.ppid = LAUNCHD;
        }
    }

    pub fn alive(&self, id: Identity) -> bool {
        self.procs.get(&id.pid).is_some_and(|p| p.id == id && p.state != State::Zombie)
    }

    pub fn set_footprint(&mut self, pid: i32, bytes: u64) {
        let p = self.get_mut(pid);
        p.footprint = bytes;
        p.lifetime_max = p.lifetime_max.max(bytes);
    }

    /// Advances the clock one [`TICK`]: footprints grow, then the kernel
    /// enforces each image's own jetsam limit.
    pub fn tick(&mut self) -> Duration {
        self.now += TICK;
        for p in self.procs.values_mut().filter(|p| p.state == State::Running) {
            p.footprint += p.growth_per_tick;
            p.lifetime_max = p.lifetime_max.max(p.footprint);
        }
        let over: Vec<Identity> =
            self.procs.values().filter(|p| p.jetsam_limit.is_some_and(|l| p.footprint > l)).map(|p| p.id).collect();
        for id in over {
            self.jetsam_kills.push(id);
            self.exit(id.pid);
        }
        self.now
    }

    pub fn after_listing(&mut self, hook: impl FnOnce(&mut World) + 'static) {
        self.after_listing.push(Box::new(hook));
    }

    pub fn before_signal(&mut self, hook: impl FnOnce(&mut World) + 'static) {
        self.before_signal.push(Box::new(hook));
    }

    /// Runs before every signal, with its target; for forks racing a kill.
    pub fn on_every_signal(&mut self, hook: impl FnMut(&mut World, Identity, Signal) + 'static) {
        self.on_every_signal = Some(Box::new(hook));
    }

    pub fn killpg(&mut self, pgid: i32, signal: Signal) {
        self.group_delivered.push((pgid, signal));
        let targets: Vec<i32> = self.procs.values().filter(|p| p.pgid == pgid).map(|p| p.id.pid).collect();
        for pid in targets {
            self.deliver(pid, signal);
        }
    }

    fn deliver(&mut self, pid: i32, signal: Signal) {
        let p = self.get_mut(pid);
        match (signal, p.state) {
            (_, State::Zombie) => {}
            (Signal::Kill, _) => self.exit(pid),
            (Signal::Stop, _) => p.state = State::Stopped,
            (Signal::Term, _) if p.ignores_term => {}
            (Signal::Term, State::Stopped) => p.term_pending = true,
            (Signal::Term, State::Running) => self.exit(pid),
            (Signal::Cont, State::Stopped) if p.term_pending => self.exit(pid),
            (Signal::Cont, _) => p.state = State::Running,
        }
    }

    /// Signals delivered to processes other than `tree`: must stay empty.
    pub fn delivered_outside(&self, tree: &[Identity]) -> Vec<(Identity, Signal)> {
        self.delivered.iter().filter(|(id, _)| !tree.contains(id)).copied().collect()
    }

    pub fn signals_to(&self, id: Identity) -> Vec<Signal> {
        self.delivered.iter().filter(|(to, _)| *to == id).map(|(_, s)| *s).collect()
    }
}

impl LineageOs for FakeOs {
    fn pids(&self) -> Vec<i32> {
        let mut w = self.world.borrow_mut();
        let mut pids: Vec<i32> = w.procs.keys().copied().collect();
        if w.listing == Listing::Descending {
            pids.reverse();
        }
        for hook in std::mem::take(&mut w.after_listing) {
            hook(&mut w);
        }
        pids
    }

    fn entry(&self, pid: i32) -> Option<ProcEntry> {
        let w = self.world.borrow();
        let p = w.procs.get(&pid)?;
        Some(ProcEntry {
            id: p.id,
            ppid: p.ppid,
            pgid: p.pgid,
            parent_unique_id: p.parent_unique_id,
            zombie: p.state == State::Zombie,
            threads: p.threads,
        })
    }

    fn footprint(&self, id: Identity) -> Option<Footprint> {
        let w = self.world.borrow();
        let p = w.procs.get(&id.pid).filter(|p| p.id == id)?;
        Some(Footprint { current: p.footprint, lifetime_max: p.lifetime_max })
    }
}

impl Signaller for FakeOs {
    fn signal(&self, id: Identity, signal: Signal) -> Result<(), SignalError> {
        let mut w = self.world.borrow_mut();
        for hook in std::mem::take(&mut w.before_signal) {
            hook(&mut w);
        }
        if let Some(mut hook) = w.on_every_signal.take() {
            hook(&mut w, id, signal);
            w.on_every_signal = Some(hook);
        }
        // The identity check a real signaller makes right before kill(2).
        if !w.procs.get(&id.pid).is_some_and(|p| p.id == id && p.state != State::Zombie) {
            return Err(SignalError::Gone);
        }
        if w.get(id.pid).refuses_signals {
            return Err(SignalError::Denied("Operation not permitted".to_string()));
        }
        w.delivered.push((id, signal));
        w.deliver(id.pid, signal);
        Ok(())
    }
}
