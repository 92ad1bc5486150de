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

mod frames;
mod instance;
mod listen;

use std::collections::BTreeMap;
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

/// Read size per readable descriptor per loop.
const SCRATCH: usize = 64 << 10;

/// The host's configuration.
pub struct HostConfig {
    pub key: PoolKey,
    pub sharing: Sharing,
    pub idle_timeout: Duration,
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
        let server_backlog = self.instances.values().map(|i| i.out.len()).max().unwrap_or(0);
        let mut slots = vec![Slot::Listener];
        let mut fds = vec![PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
        for (&id, c) in &self.clients {
            let mut ev = PollFlags::empty();
            let admitted = c.who.is_some();
            if !c.closing && (!admitted || (self.mux.may_read(id) && server_backlog < MAX_SERVER_BACKLOG)) {
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
        self.idle_timers();
        Ok(())
    }

    fn accept(&mut self, listener: &UnixListener) {
        while let Ok((stream, _)) = listener.accept() {
            let uid = crate::os::peer_uid(stream.as_fd());
            let me = nix::unistd::Uid::effective().as_raw();
            if uid.as_ref().ok() != Some(&me) {
                tracing::warn!("refused a connection from uid {uid:?}: the pool serves uid {me} only");
                continue;
            }
            if stream.set_nonblocking(true).is_err() {
                continue;
            }
            let id = self.next_client;
            self.next_client += 1;
            let client = Client {
                stream,
                reader: LineReader::new(wire::MAX_HELLO),
                out: OutQueue::default(),
                who: None,
                closing: false,
                placed: false,
            };
            self.clients.insert(id, client);
        }
    }

    fn read_client(&mut self, id: ClientId) {
        let Some(c) = self.clients.get_mut(&id) else { return };
        let n = match c.stream.read(&mut self.scratch) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::Interrupted => return,
            Err(_) => 0,
        };
        if n == 0 {
            self.client_gone(id, "closed its connection");
            return;
        }
        let mut lines: Vec<Option<Vec<u8>>> = Vec::new();
        let mut admitted = c.who.is_some();
        // The hello is the first line; what follows it in the same read is
        // the client's JSON-RPC, framed under the message cap.
        let data = &self.scratch[..n];
        let mut rest: &[u8] = data;
        if !admitted {
            let mut hello = None;
            let cut = data.iter().position(|&b| b == b'\n').map_or(data.len(), |p| p + 1);
            c.reader.feed(&data[..cut], &mut |f| {
                hello = Some(match f {
                    Frame::Line(l) => l.to_vec(),
                    Frame::Oversized => Vec::new(),
                })
            });
            rest = &data[cut..];
            if let Some(line) = hello {
                match self.cfg.check_hello(&line) {
                    Ok(who) => {
                        c.out.push_line(&Reply::accept().json());
                        c.who = Some(who);
                        c.reader = LineReader::new(MAX_CLIENT_MESSAGE);
                        admitted = true;
                        self.mux.connect(id);
                        self.served = true;
                        self.changed = true;
                    }
                    Err(why) => {
                        tracing::warn!("refused a relay: {why}");
                        c.out.push_line(&Reply::refuse(why).json());
                        c.closing = true;
                        rest = &[];
                    }
                }
            }
        }
        if admitted {
            c.reader.feed(rest, &mut |f| {
                lines.push(match f {
                    Frame::Line(l) => Some(l.to_vec()),
                    Frame::Oversized => None,
                })
            });
        }
        if let Some(first) = lines.first_mut().filter(|_| !c.placed) {
            // The first message places the client on an instance: the
            // status file shows it from then on.
            c.placed = first.is_some();
            self.changed |= c.placed;
        }
        for line in lines {
            match line {
                Some(l) => self.mux.from_client(id, &l, &mut self.actions),
                None => self.mux.oversized(id, &mut self.actions),
            }
        }
        self.apply();
        self.flush_client(id);
    }

    fn read_server(&mut self, id: InstanceId) {
        let Some(inst) = self.instances.get_mut(&id) else { return };
        let Some(stdout) = inst.stdout.as_mut() else { return };
        let n = match stdout.read(&mut self.scratch) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::Interrupted => return,
            Err(_) => 0,
        };
        if n == 0 {
            // The runner closed its stdout: it is exiting (or gone).
            if let Some(mut inst) = self.instances.remove(&id) {
                inst.stdout = None;
                inst.stdin = None;
                self.exited.push(inst);
            }
            tracing::info!("instance {id} ended");
            self.mux.server_gone(id, &mut self.actions);
            self.changed = true;
            self.apply();
            return;
        }
        let mut lines = Vec::new();
        inst.reader.feed(&self.scratch[..n], &mut |f| match f {
            Frame::Line(l) => lines.push(l.to_vec()),
            Frame::Oversized => tracing::warn!("instance {id} sent a line over the cap: dropped"),
        });
        for l in lines {
            self.mux.from_server(id, &l, &mut self.actions);
        }
        self.apply();
    }

    /// Carries out what the multiplexer decided.
    fn apply(&mut self) {
        let actions = std::mem::take(&mut self.actions);
        let mut touched_clients = Vec::new();
        let mut touched_servers = Vec::new();
        for a in actions {
            match a {
                Action::ToClient(c, line) => {
                    if let Some(client) = self.clients.get_mut(&c).filter(|c| !c.closing || !c.out.is_empty()) {
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

    fn spawn(&mut self, id: InstanceId) {
        let tag = format!("{}:{id}", self.cfg.key.id());
        match Instance::spawn(&self.cfg.launch, &tag) {
            Ok(inst) => {
                tracing::info!("instance {id} started: runner {}", inst.child.id());
                self.instances.insert(id, inst);
            }
            Err(e) => {
                tracing::error!("cannot start instance {id}: {e}");
                self.mux.server_gone(id, &mut self.actions);
            }
        }
        self.changed = true;
    }

    fn flush_server(&mut self, id: InstanceId) {
        let Some(inst) = self.instances.get_mut(&id) else { return };
        let Some(stdin) = inst.stdin.as_mut() else { return };
        if let Err(e) = inst.out.flush(stdin) {
            // The runner is going; its stdout's end tells the rest.
            tracing::warn!("instance {id}: cannot write to the server: {e}");
            inst.stop();
        }
    }

    fn flush_client(&mut self, id: ClientId) {
        let Some(c) = self.clients.get_mut(&id) else { return };
        match c.out.flush(&mut c.stream) {
            Ok(true) if c.closing => {
                let _ = c.stream.shutdown(std::net::Shutdown::Both);
                self.clients.remove(&id);
                self.changed = true;
            }
            Ok(_) if c.out.len() > MAX_CLIENT_BACKLOG => {
                // Closing is the error it gets: its relay tells the client
                // once it reads again.
                let why = format!("left {} bytes unread: dropped as too slow", c.out.len());
                tracing::warn!("client {id}: {why}");
                self.client_gone(id, &why);
            }
            Ok(_) => {}
            Err(_) => self.client_gone(id, "stopped reading (connection lost)"),
        }
    }

    fn client_gone(&mut self, id: ClientId, why: &str) {
        if let Some(c) = self.clients.remove(&id) {
            if let Some(who) = &c.who {
                tracing::info!("client {id} (session {}, runner {}) {why}", who.session, who.runner.pid);
                self.mux.client_gone(id, &mut self.actions);
            }
            self.changed = true;
        }
        self.apply();
    }

    /// Starts and stops the idle timers of instances without clients, and
    /// retires those whose timer ran out.
    fn idle_timers(&mut self) {
        let now = Instant::now();
        let idle = self.mux.idle();
        for (id, inst) in self.instances.iter_mut() {
            let is_idle = idle.contains(id);
            match (is_idle, inst.idle_since) {
                (true, None) => {
                    inst.idle_since = Some(now);
                    self.changed = true;
                }
                (false, Some(_)) => {
                    inst.idle_since = None;
                    self.changed = true;
                }
                _ => {}
            }
        }
        let expired: Vec<InstanceId> = self
            .instances
            .iter()
            .filter(|(_, i)| i.stdin.is_some() && i.idle_since.is_some_and(|t| now >= t + self.cfg.idle_timeout))
            .map(|(&id, _)| id)
            .collect();
        for id in expired {
            tracing::info!("instance {id} idle for {:?}: retired", self.cfg.idle_timeout);
            self.mux.retire(id, &mut self.actions);
        }
        self.apply();
    }

    fn next_deadline(&self) -> Option<Instant> {
        let first = (!self.served).then_some(self.first_client_by);
        self.instances
            .values()
            .filter(|i| i.stdin.is_some())
            .filter_map(|i| i.idle_since)
            .map(|t| t + self.cfg.idle_timeout)
            .chain(first)
            .min()
    }

    /// Reaps the runners of ended instances.
    fn reap(&mut self) {
        self.exited.retain_mut(|inst| match inst.child.try_wait() {
            Ok(Some(status)) => {
                tracing::info!("instance runner {} exited: {status}", inst.child.id());
                false
            }
            Ok(None) => true,
            Err(_) => false,
        });
    }

    fn status_json(&self) -> Vec<u8> {
        let views = self.mux.instances();
        let epoch = |t: Option<Instant>| {
            t.map(|t| {
                let ago = t.elapsed();
                SystemTime::now()
                    .checked_sub(ago)
                    .and_then(|s| s.duration_since(UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_secs())
            })
        };
        let instances = views
            .iter()
            .map(|v| {
                let inst = self.instances.get(&v.id);
                InstanceStatus {
                    id: v.id,
                    runner: inst.and_then(|i| i.runner),
                    class: v.class.clone(),
                    shareable: v.shareable,
                    clients: v.clients.iter().filter_map(|c| self.clients.get(c).and_then(|c| c.who.clone())).collect(),
                    idle_since: epoch(inst.and_then(|i| i.idle_since)),
                }
            })
            .collect();
        let status = PoolStatus {
            version: 1,
            pool: self.cfg.key.id(),
            host: self.cfg.me,
            name: self.cfg.name.clone(),
            command: self.cfg.launch.command.iter().map(|a| a.to_string_lossy().into_owned()).collect(),
            idle_timeout: self.cfg.idle_timeout.as_secs(),
            instances,
        };
        serde_json::to_vec(&status).unwrap_or_default()
    }
}

impl HostConfig {
    /// Accepts a relay whose key is this pool's, byte for byte.
    fn check_hello(&self, line: &[u8]) -> Result<ClientStatus, String> {
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
