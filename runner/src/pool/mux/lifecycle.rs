//! Clients attaching to and leaving instances; instances ending.

use std::mem;

use super::classify::Class;
use super::ids::Owner;
use super::instance::{Init, Instance};
use super::level::Level;
use super::msg::{self, Msg, Shape};
use super::{Action, ClientId, InstanceId, Mux};

impl Mux {
    /// Attaches `c` to a shareable instance of `class`, or to a new one
    /// (emitting `Spawn`); true if the instance is new.
    pub(super) fn attach(&mut self, c: ClientId, class: Class, out: &mut Vec<Action>) -> (InstanceId, bool) {
        let reusable = |inst: &Instance| inst.class == class && inst.shareable && !matches!(inst.init, Init::Failed(_));
        let found = self.instances.iter().find(|(_, inst)| reusable(inst)).map(|(id, _)| *id);
        let (i, new) = match found {
            Some(i) => (i, false),
            None => {
                let i = self.next_instance;
                self.next_instance += 1;
                let init = if class == Class::Modern { Init::NotNeeded } else { Init::Pending { waiters: Vec::new() } };
                self.instances.insert(i, Instance::new(class, init));
                out.push(Action::Spawn(i));
                (i, true)
            }
        };
        if let Some(inst) = self.instances.get_mut(&i) {
            inst.clients.insert(c);
            inst.ever += 1;
        }
        self.clients.entry(c).or_default().instance = Some(i);
        // A client that never set a level counts as "debug": a newcomer
        // may make the merged level more verbose.
        self.recompute_level(i, out);
        (i, new)
    }

    /// Undoes everything `c` holds on its instance, as if it had never
    /// attached (section 4.4 of the research notes, "Session drop"):
    /// - each request in flight: `notifications/cancelled` upstream with
    ///   reason "client disconnected", and its late answer is dropped (the
    ///   sender "SHOULD ignore any response … that arrives afterward",
    ///   2025-11-25 `basic/utilities/cancellation.mdx`);
    /// - its subscriptions: the last subscriber of a URI unsubscribes
    ///   upstream with a mux-owned id;
    /// - server→client requests routed to it: an error to the server each;
    /// - its log level, rounds and tasks: forgotten, the level recomputed.
    pub(super) fn detach(&mut self, c: ClientId, out: &mut Vec<Action>) {
        let Some(client) = self.clients.get_mut(&c) else { return };
        let Some(i) = client.instance.take() else { return };
        let in_flight = mem::take(&mut client.in_flight);
        let subs = mem::take(&mut client.subs);
        let server_reqs = mem::take(&mut client.server_reqs);
        client.queue.clear();
        client.rounds.clear();
        client.level = None;
        let Some(inst) = self.instances.get_mut(&i) else { return };
        inst.clients.remove(&c);
        let mut ups: Vec<u64> = in_flight.into_values().collect();
        ups.sort_unstable();
        for up in ups {
            inst.up.take(up);
            out.push(Action::ToServer(i, msg::cancelled(&up.to_string(), "client disconnected")));
        }
        if let Init::Pending { waiters, .. } = &mut inst.init {
            waiters.retain(|(w, _)| *w != c);
        }
        for uri in subs {
            if inst.unsubscribe(c, &uri) {
                let up = inst.up.send(Owner::Host);
                out.push(Action::ToServer(i, msg::request(up, "resources/unsubscribe", &msg::uri_params(&uri))));
            }
        }
        for server_id in server_reqs.into_values() {
            inst.out.forget(&server_id);
            let message = "the mcp-runner client this request was routed to disconnected";
            out.push(Action::ToServer(i, msg::error(Some(&server_id), msg::INTERNAL_ERROR, message)));
        }
        inst.tasks.retain(|_, owner| *owner != c);
        self.recompute_level(i, out);
    }

    /// The client's connection closed.
    pub fn client_gone(&mut self, c: ClientId, out: &mut Vec<Action>) {
        self.detach(c, out);
        self.clients.remove(&c);
    }

    /// The instance's server exited: each of its clients gets an error for
    /// each of its requests (with its own id), then is disconnected;
    /// nothing is replayed (mcp-mux's lesson, research notes 1.9).
    pub fn server_gone(&mut self, i: InstanceId, out: &mut Vec<Action>) {
        self.end(i, "the shared server exited", out);
        out.push(Action::Log(format!("instance {i}: the server exited")));
    }

    /// The host's idle timer for `i` fired.
    pub fn retire(&mut self, i: InstanceId, out: &mut Vec<Action>) {
        if self.instances.contains_key(&i) {
            self.end(i, "the shared server was stopped", out);
            out.push(Action::Stop(i));
        }
    }

    fn end(&mut self, i: InstanceId, why: &str, out: &mut Vec<Action>) {
        let Some(inst) = self.instances.remove(&i) else { return };
        let waiters = match inst.init {
            Init::Pending { waiters, .. } => waiters,
            _ => Vec::new(),
        };
        for c in inst.clients {
            let Some(client) = self.clients.remove(&c) else { continue };
            let mut ids: Vec<(u64, String)> = client.in_flight.into_iter().map(|(id, up)| (up, id)).collect();
            ids.sort_unstable();
            let held = client.queue.iter().filter_map(|line| {
                let m = Msg::parse(line).ok()?;
                match m.shape() {
                    Ok(Shape::Request { id, .. }) => Some(m.raw(id).to_owned()),
                    _ => None,
                }
            });
            let waiting = waiters.iter().filter(|(w, _)| *w == c).map(|(_, id)| id.clone());
            for id in waiting.chain(ids.into_iter().map(|(_, id)| id)).chain(held) {
                out.push(Action::ToClient(c, msg::error(Some(&id), msg::INTERNAL_ERROR, why)));
            }
            out.push(Action::Disconnect(c));
        }
    }

    /// Sends `logging/setLevel` upstream (mux-owned id, answer swallowed)
    /// when the most verbose level over the instance's clients changed.
    /// `logging/setLevel` is process-global (2025-11-25
    /// `server/utilities/logging.mdx`), so upstream gets the minimum and
    /// each client's messages are filtered to its own level; a client that
    /// never set one counts as "debug", so no client receives less than it
    /// would alone. Nothing is sent until some client set a level.
    pub(super) fn recompute_level(&mut self, i: InstanceId, out: &mut Vec<Action>) {
        let Some(inst) = self.instances.get_mut(&i) else { return };
        if !matches!(inst.init, Init::Ready(_) | Init::NotNeeded) {
            return;
        }
        let levels: Vec<Option<Level>> =
            inst.clients.iter().map(|c| self.clients.get(c).and_then(|cl| cl.level)).collect();
        if inst.level_sent.is_none() && levels.iter().all(Option::is_none) {
            return;
        }
        let Some(merged) = levels.iter().map(|l| l.unwrap_or(Level::Debug)).min() else { return };
        if inst.level_sent != Some(merged) {
            inst.level_sent = Some(merged);
            let up = inst.up.send(Owner::Host);
            out.push(Action::ToServer(i, msg::request(up, "logging/setLevel", &msg::level_params(merged.name()))));
        }
    }

    /// After the instance's `initialize` answered: each client's held
    /// lines, in order.
    pub(super) fn release(&mut self, i: InstanceId, out: &mut Vec<Action>) {
        let clients: Vec<ClientId> =
            self.instances.get(&i).map(|inst| inst.clients.iter().copied().collect()).unwrap_or_default();
        for c in clients {
            let held = self.clients.get_mut(&c).map(|cl| mem::take(&mut cl.queue)).unwrap_or_default();
            for line in held {
                self.handle(c, &line, out);
            }
        }
    }
}
