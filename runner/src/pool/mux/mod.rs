//! The multiplexer: pure routing between many MCP client sessions and the
//! server processes ("instances") they share. No I/O and no clock: the pool
//! host feeds it lines and carries out the [`Action`]s it returns.
//!
//! Protocols: 2025-11-25 (and earlier initialize-era clients) and
//! 2026-07-28. What is rewritten and why is documented where it happens:
//! ids and tokens in `ids`, the handshake in `instance`, client messages in
//! `from_client`, server messages in `from_server`, attach and detach in
//! `lifecycle`. Spec references are to the `modelcontextprotocol`
//! repository's `docs/specification/<version>/` and `schema/<version>/`.

mod classify;
mod client;
mod from_client;
mod from_server;
mod ids;
mod instance;
mod level;
mod lifecycle;
mod msg;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use client::Client;
use instance::Instance;

/// The host numbers connections.
pub type ClientId = u64;
/// The mux numbers instances (server processes).
pub type InstanceId = u64;

/// The policy's `share = "auto" | "always"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sharing {
    /// Share unless the server says or shows it keeps per-client state.
    Auto,
    /// The user asserted the server is stateless: share regardless (an
    /// unattributable server request is still refused, never guessed).
    Always,
}

#[derive(Debug, Clone)]
pub struct MuxConfig {
    pub sharing: Sharing,
    /// The client→server line cap (the host enforces it and calls
    /// [`Mux::oversized`]); 4 MiB, the TypeScript SDK's body cap.
    pub max_message: usize,
    /// Requests in flight per client before the host stops reading it.
    pub max_in_flight: usize,
}

impl Default for MuxConfig {
    fn default() -> MuxConfig {
        MuxConfig { sharing: Sharing::Auto, max_message: 4 << 20, max_in_flight: 256 }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// One JSON-RPC message, no trailing newline (the host adds it).
    ToClient(ClientId, Vec<u8>),
    /// The same; for an instance just spawned the host queues until it runs.
    ToServer(InstanceId, Vec<u8>),
    /// Start a new server process for this instance.
    Spawn(InstanceId),
    /// Tear this instance's server down.
    Stop(InstanceId),
    /// Flush what is queued for this client, then close it.
    Disconnect(ClientId),
    /// A line for the pool host's log.
    Log(String),
}

/// One instance, for status and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceView {
    pub id: InstanceId,
    pub class: String,
    pub clients: Vec<ClientId>,
    pub shareable: bool,
    /// Upstream requests awaiting an answer (clients' and the mux's own).
    pub in_flight: usize,
}

#[derive(Debug)]
pub struct Mux {
    cfg: MuxConfig,
    clients: BTreeMap<ClientId, Client>,
    instances: BTreeMap<InstanceId, Instance>,
    next_instance: InstanceId,
}

impl Mux {
    pub fn new(cfg: MuxConfig) -> Mux {
        Mux { cfg, clients: BTreeMap::new(), instances: BTreeMap::new(), next_instance: 1 }
    }

    /// A new connection; its first message picks its instance.
    pub fn connect(&mut self, c: ClientId) {
        self.clients.entry(c).or_default();
    }

    /// The host saw a line over `max_message` and discarded it: one error
    /// for that line, the session goes on (research probe 7: a 5 MB message
    /// ended a whole supergateway session, supergateway#190).
    pub fn oversized(&mut self, c: ClientId, out: &mut Vec<Action>) {
        self.connect(c);
        let message = format!("message over {} bytes", self.cfg.max_message);
        out.push(Action::ToClient(c, msg::error(None, msg::INVALID_REQUEST, &message)));
    }

    /// False while the client has `max_in_flight` requests in flight (or
    /// held): the host stops reading it, and only it.
    pub fn may_read(&self, c: ClientId) -> bool {
        self.clients.get(&c).is_none_or(|cl| cl.load() < self.cfg.max_in_flight)
    }

    /// Requests of the client the server has not answered yet (and lines
    /// held for it): the host keeps a client that closed its side until
    /// this is 0, so its last answers still reach it.
    pub fn owed(&self, c: ClientId) -> usize {
        self.clients.get(&c).map_or(0, |cl| cl.load())
    }

    /// The instance a client is placed on, once its first message placed it.
    pub fn instance_of(&self, c: ClientId) -> Option<InstanceId> {
        self.clients.get(&c).and_then(|cl| cl.instance)
    }

    /// Instances with no client attached and no open multi-round-trip
    /// round: the host starts their idle timers. Rounds belong to a client
    /// and are dropped with it, so an instance with a round open always has
    /// that client attached; both are checked all the same.
    pub fn idle(&self) -> Vec<InstanceId> {
        let rounds_open = |i: InstanceId| self.clients.values().any(|c| c.instance == Some(i) && !c.rounds.is_empty());
        self.instances
            .iter()
            .filter(|(id, inst)| inst.clients.is_empty() && !rounds_open(**id))
            .map(|(id, _)| *id)
            .collect()
    }

    pub fn instances(&self) -> Vec<InstanceView> {
        self.instances
            .iter()
            .map(|(id, inst)| InstanceView {
                id: *id,
                class: inst.class.describe(),
                clients: inst.clients.iter().copied().collect(),
                shareable: inst.shareable,
                in_flight: inst.up.len(),
            })
            .collect()
    }

    /// No instances and no clients.
    pub fn is_empty(&self) -> bool {
        self.instances.is_empty() && self.clients.is_empty()
    }

    /// Under `share = auto`, stops new clients from joining `i`; logs why
    /// once per instance.
    fn unshare(&mut self, i: InstanceId, why: &str, out: &mut Vec<Action>) {
        let Some(inst) = self.instances.get_mut(&i) else { return };
        if self.cfg.sharing == Sharing::Auto && inst.shareable {
            inst.shareable = false;
            out.push(Action::Log(format!("instance {i} is no longer shared with new clients: {why}")));
        }
    }
}
