//! The pool host: one process per pool key that owns the shared server's
//! instances and multiplexes the relays' JSON-RPC onto them.
//!
//! Started by the first relay that finds no host (see `relay`), detached
//! from it (its own session: the first client's end is not the pool's),
//! holding the pool's host lock for life and listening on a 0600 socket in
//! the state directory, peers checked to be its own user. One thread, one
//! poll loop over the listener, the clients and the instances' pipes; every
//! routing decision is the multiplexer's (`mux`), which does no I/O. The
//! host ends when it has no client and no instance left.

mod clients;
mod frames;
mod instance;
mod listen;
mod servers;
mod status;

use std::collections::{BTreeMap, VecDeque};
use std::io::{self, Read};
use std::os::fd::AsFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use super::files::{ClientStatus, InstanceStatus, PoolFiles, PoolStatus};
use super::key::PoolKey;
use super::mux::{Action, ClientId, InstanceId, Mux, MuxConfig, Sharing};
use super::wire::{self, Hello, Reply};
use crate::state::StateDir;
use crate::tree::ProcessId;
use frames::{Frame, LineReader, OutQueue};
use instance::Instance;
pub use instance::Launch;
pub use listen::{Claimed, claim};

/// The longest message a client may send (the SDKs' own request cap).
const MAX_CLIENT_MESSAGE: usize = 4 << 20;

/// Requests a client may have in flight before the host stops reading it.
const MAX_IN_FLIGHT: usize = 256;

/// What a client may leave unread before it is dropped as too slow: it
/// must never hold the server or the other clients back.
const MAX_CLIENT_BACKLOG: usize = 16 << 20;

/// While a server has this much unwritten, the host reads no client: the
/// server is the bottleneck, and the clients' sockets push back on them.
const MAX_SERVER_BACKLOG: usize = 4 << 20;

/// How long a new host waits for the relay that started it.
const FIRST_CLIENT_WAIT: Duration = Duration::from_secs(30);

/// How long a connection may take to say hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections that have not said hello yet, at most (each may hold up to
/// `wire::MAX_HELLO` bytes).
const MAX_PENDING_HELLOS: usize = 16;

/// How long the host stops accepting after accept(2) failed for want of
/// descriptors or memory.
const ACCEPT_PAUSE: Duration = Duration::from_millis(200);

/// How often buffers are shrunk back while there is traffic.
const TIDY_EVERY: Duration = Duration::from_secs(1);

/// Read size per readable descriptor per loop.
const SCRATCH: usize = 64 << 10;

/// The host's configuration.
pub struct HostConfig {
    pub key: PoolKey,
    pub sharing: Sharing,
    pub idle_timeout: Duration,
    /// How long a client that closed its side may wait for its answers.
    pub grace: Duration,
    pub launch: Launch,
    pub name: Option<String>,
    pub me: ProcessId,
}

/// A relay's connection.
struct Client {
    stream: UnixStream,
    reader: LineReader,
    out: OutQueue,
    /// Set once its hello was accepted.
    who: Option<ClientStatus>,
    /// Close once `out` is written.
    closing: bool,
    /// Its first message went to the multiplexer.
    placed: bool,
    /// Lines read while it was at its in-flight cap (one read's worth at
    /// most: it is not read again until they are gone).
    held: VecDeque<Option<Vec<u8>>>,
    accepted: Instant,
    /// When it closed its side (end of file): it is detached once every
    /// answer it is owed is delivered, or `grace` later.
    done_sending: Option<Instant>,
}

/// Runs the host on `listener` until the pool is empty.
pub fn serve(dir: &StateDir, listener: UnixListener, cfg: HostConfig) -> io::Result<()> {
    listener.set_nonblocking(true)?;
    let started = Instant::now();
    let files = PoolFiles::new(&cfg.key.id());
    let mux =
        Mux::new(MuxConfig { sharing: cfg.sharing, max_message: MAX_CLIENT_MESSAGE, max_in_flight: MAX_IN_FLIGHT });
    let mut host = Host {
        cfg,
        mux,
        clients: BTreeMap::new(),
        instances: BTreeMap::new(),
        exited: Vec::new(),
        next_client: 1,
        scratch: vec![0; SCRATCH],
        actions: Vec::new(),
        changed: true,
        served: false,
        first_client_by: started + FIRST_CLIENT_WAIT,
        tidy_at: None,
        accept_paused_until: None,
    };
    loop {
        if host.changed {
            host.changed = false;
            if let Err(e) = dir.write_file(&files.status(), &host.status_json()) {
                tracing::warn!("{e}");
            }
        }
        host.reap();
        // Nothing left to serve: stop listening first, so that a relay
        // arriving now starts a new host instead of waiting on this one.
        if host.mux.is_empty()
            && host.clients.is_empty()
            && host.instances.is_empty()
            && host.exited.is_empty()
            && (host.served || started.elapsed() > FIRST_CLIENT_WAIT)
        {
            dir.unlink(&files.socket());
            dir.unlink(&files.status());
            // Connections already queued are refused (their relays retry).
            while let Ok((s, _)) = listener.accept() {
                drop(s);
            }
            tracing::info!("no client and no server left: the pool host exits");
            return Ok(());
        }
        host.poll_once(&listener)?;
    }
}

struct Host {
    cfg: HostConfig,
    mux: Mux,
    clients: BTreeMap<ClientId, Client>,
    instances: BTreeMap<InstanceId, Instance>,
    /// Instances whose stdout closed, waiting to be reaped.
    exited: Vec<Instance>,
    next_client: ClientId,
    scratch: Vec<u8>,
    actions: Vec<Action>,
    /// The status file needs rewriting.
    changed: bool,
    /// A client was admitted once: from then on, no client and no
    /// instance means the pool is done.
    served: bool,
    first_client_by: Instant,
    /// When buffers are next shrunk, if traffic since the last time.
    tidy_at: Option<Instant>,
    /// accept(2) failed: the listener is not polled until then.
    accept_paused_until: Option<Instant>,
}

/// Which descriptor a poll entry is.
#[derive(Clone, Copy)]
enum Slot {
    Listener,
    Client(ClientId),
    ServerOut(InstanceId),
    ServerIn(InstanceId),
}

impl Host {
    fn poll_once(&mut self, listener: &UnixListener) -> io::Result<()> {
        // A server with this much unwritten stops its own clients being
        // read (the server is their bottleneck), not every client's.
        let full: Vec<InstanceId> =
            self.instances.iter().filter(|(_, i)| i.out.len() >= MAX_SERVER_BACKLOG).map(|(&id, _)| id).collect();
        let now = Instant::now();
        let accepting = self.accept_paused_until.is_none_or(|t| now >= t);
        let mut slots = vec![Slot::Listener];
        let listen_events = if accepting { PollFlags::POLLIN } else { PollFlags::empty() };
        let mut fds = vec![PollFd::new(listener.as_fd(), listen_events)];
        for (&id, c) in &self.clients {
            let mut ev = PollFlags::empty();
            let admitted = c.who.is_some();
            let server_full = !full.is_empty() && self.mux.instance_of(id).is_some_and(|i| full.contains(&i));
            let room = c.held.is_empty() && self.mux.may_read(id) && !server_full;
            if !c.closing && c.done_sending.is_none() && (!admitted || room) {
                ev |= PollFlags::POLLIN;
            }
            if !c.out.is_empty() {
                ev |= PollFlags::POLLOUT;
            }
            slots.push(Slot::Client(id));
            fds.push(PollFd::new(c.stream.as_fd(), ev));
        }
        for (&id, inst) in &self.instances {
            if let Some(out) = &inst.stdout {
                slots.push(Slot::ServerOut(id));
                fds.push(PollFd::new(out.as_fd(), PollFlags::POLLIN));
            }
            if let Some(stdin) = inst.stdin.as_ref().filter(|_| !inst.out.is_empty()) {
                slots.push(Slot::ServerIn(id));
                fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLOUT));
            }
        }
        let timeout = self.next_deadline().map(|d| d.saturating_duration_since(Instant::now()));
        let timeout = match timeout {
            // Exiting instances are reaped on a short tick.
            _ if !self.exited.is_empty() => PollTimeout::from(20u16),
            Some(t) => PollTimeout::try_from(t.as_millis().min(60_000) as u32 + 1).unwrap_or(PollTimeout::MAX),
            None => PollTimeout::NONE,
        };
        match poll(&mut fds, timeout) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => return Ok(()),
            Err(e) => return Err(e.into()),
        }
        let ready: Vec<(Slot, PollFlags)> = slots
            .iter()
            .zip(&fds)
            .filter_map(|(s, f)| f.revents().filter(|r| !r.is_empty()).map(|r| (*s, r)))
            .collect();
        drop(fds);
        let busy = !ready.is_empty();
        for (slot, revents) in ready {
            match slot {
                Slot::Listener => self.accept(listener),
                Slot::Client(id) => {
                    if revents.contains(PollFlags::POLLOUT) {
                        self.flush_client(id);
                    }
                    if revents.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR) {
                        self.read_client(id);
                    }
                }
                Slot::ServerOut(id) => self.read_server(id),
                Slot::ServerIn(id) => self.flush_server(id),
            }
        }
        self.release_held();
        self.settle_clients(Instant::now());
        self.idle_timers();
        self.tidy(Instant::now(), busy);
        Ok(())
    }

    /// Carries out what the multiplexer decided.
    fn apply(&mut self) {
        let actions = std::mem::take(&mut self.actions);
        let mut touched_clients = Vec::new();
        let mut touched_servers = Vec::new();
        for a in actions {
            match a {
                Action::ToClient(c, line) => {
                    if let Some(client) = self.clients.get_mut(&c).filter(|c| !c.closing) {
                        client.out.push_line(&line);
                        touched_clients.push(c);
                    }
                }
                Action::ToServer(i, line) => {
                    if let Some(inst) = self.instances.get_mut(&i).filter(|i| i.stdin.is_some()) {
                        inst.out.push_line(&line);
                        touched_servers.push(i);
                    }
                }
                Action::Spawn(i) => self.spawn(i),
                Action::Stop(i) => {
                    if let Some(inst) = self.instances.get_mut(&i) {
                        tracing::info!("stopping instance {i}");
                        inst.stop();
                        self.changed = true;
                    }
                }
                Action::Disconnect(c) => {
                    if let Some(client) = self.clients.get_mut(&c) {
                        client.closing = true;
                        touched_clients.push(c);
                    }
                }
                Action::Log(line) => tracing::info!("{line}"),
            }
        }
        for i in touched_servers {
            self.flush_server(i);
        }
        for c in touched_clients {
            self.flush_client(c);
        }
    }
}

impl HostConfig {
    /// Accepts a relay whose key is this pool's, byte for byte.
    fn check_hello(&self, line: &[u8]) -> Result<ClientStatus, String> {
        if line.is_empty() {
            return Err(format!(
                "the hello is over {} MiB (an environment too large to key a pool by)",
                wire::MAX_HELLO >> 20
            ));
        }
        let hello: Hello = serde_json::from_slice(line).map_err(|e| format!("not a relay's hello: {e}"))?;
        if hello.version != wire::VERSION {
            return Err(format!("wire version {} (this host speaks {})", hello.version, wire::VERSION));
        }
        match wire::key_of(&hello) {
            Some(k) if k == self.key => {
                Ok(ClientStatus { session: hello.session, runner: hello.runner, since: hello.since })
            }
            _ => Err("a different server (pool key) behind the same pool id".into()),
        }
    }
}
