//! Client → server: requests get upstream ids, some are answered by the
//! mux itself, notifications and answers to server requests are mapped.
//!
//! Not done: `tasks/list` (2025-11-25) answers with every task of the
//! process, other clients' included; filtering it means editing the
//! result's array.

use super::classify::Class;
use super::ids::{Forwarded, Kind, Owner};
use super::instance::Init;
use super::level::Level;
use super::msg::{self, Bad, Msg, Shape};
use super::{Action, ClientId, InstanceId, Mux};

/// `_meta` keys of 2026-07-28 (schema `RequestMetaObject`).
const LOG_LEVEL: &str = "io.modelcontextprotocol/logLevel";

impl Mux {
    /// One complete line from client `c`, without its newline.
    // The name is the pool host's API: a line *from* the peer.
    #[allow(clippy::wrong_self_convention)]
    pub fn from_client(&mut self, c: ClientId, line: &[u8], out: &mut Vec<Action>) {
        self.connect(c);
        self.handle(c, line, out);
    }

    pub(super) fn handle(&mut self, c: ClientId, line: &[u8], out: &mut Vec<Action>) {
        let reply = |out: &mut Vec<Action>, bytes| out.push(Action::ToClient(c, bytes));
        let msg = match Msg::parse(line) {
            Ok(msg) => msg,
            Err(Bad::Parse) => return reply(out, msg::error(None, msg::PARSE_ERROR, "parse error: not JSON")),
            Err(Bad::Invalid(why)) => return reply(out, msg::error(None, msg::INVALID_REQUEST, why)),
        };
        let shape = match msg.shape() {
            Ok(shape) => shape,
            Err(why) => return reply(out, msg::error(msg.raw_id_at(&["id"]), msg::INVALID_REQUEST, why)),
        };
        if let Shape::Request { method: "initialize", id } = shape {
            return self.initialize(c, &msg, msg.raw(id), out);
        }
        // Any other first message is a 2026-07-28 client's: it sends no
        // initialize (changelog, item 2).
        let i = match self.clients.get(&c).and_then(|cl| cl.instance) {
            Some(i) => i,
            None => self.attach(c, Class::Modern, out).0,
        };
        let Some(inst) = self.instances.get(&i) else { return };
        if inst.initializing() {
            return self.hold(c, line, &msg, &shape, out);
        }
        match shape {
            Shape::Request { method, id } => self.request(c, i, &msg, method, msg.raw(id), out),
            Shape::Notification { method } => self.notification(c, i, &msg, method, out),
            Shape::Response { id } => self.answer(c, i, &msg, msg.raw(id), out),
        }
    }

    /// Keeps a line until the instance's `initialize` is answered: the
    /// server "SHOULD NOT" get requests before `initialized` (2025-11-25
    /// `basic/lifecycle.mdx`). Bounded by `max_in_flight`.
    fn hold(&mut self, c: ClientId, line: &[u8], msg: &Msg, shape: &Shape, out: &mut Vec<Action>) {
        let Some(client) = self.clients.get_mut(&c) else { return };
        if client.queue.len() < self.cfg.max_in_flight {
            client.queue.push_back(line.to_vec());
        } else if let Shape::Request { id, .. } = shape {
            let why = "too many messages held while the shared server initializes";
            out.push(Action::ToClient(c, msg::error(Some(msg.raw(id)), msg::MUX_REFUSED, why)));
        } else {
            out.push(Action::Log(format!("client {c}: dropped a notification held over the limit")));
        }
    }

    /// `initialize` picks (or makes) the instance of the client's class.
    /// The first client's goes upstream; later clients are answered from
    /// the cached result with their own id (or wait for it). A 2026-07-28
    /// client that probed with `server/discover` and fell back to
    /// `initialize` (the changelog's backward-compatibility probe) moves to
    /// an instance of its new class.
    fn initialize(&mut self, c: ClientId, msg: &Msg, id: &str, out: &mut Vec<Action>) {
        if let Some(i) = self.clients.get(&c).and_then(|cl| cl.instance) {
            if self.instances.get(&i).is_some_and(|inst| inst.class != Class::Modern) {
                let why = "initialize was already sent on this connection";
                return out.push(Action::ToClient(c, msg::error(Some(id), msg::INVALID_REQUEST, why)));
            }
            self.detach(c, out);
        }
        let class = Class::of_initialize(msg.value_at(&["params"]).as_ref());
        let (i, new) = self.attach(c, class, out);
        let Some(inst) = self.instances.get_mut(&i) else { return };
        if new {
            let up = inst.up.send(Owner::Init);
            inst.init = Init::Pending { waiters: vec![(c, id.to_owned())] };
            let edits = msg.span(&["id"]).map(|s| (s, up.to_string())).into_iter().collect();
            return out.push(Action::ToServer(i, msg.splice(edits)));
        }
        match &mut inst.init {
            Init::Pending { waiters, .. } => waiters.push((c, id.to_owned())),
            Init::Ready(result) => out.push(Action::ToClient(c, msg::result(id, result))),
            Init::Failed(error) => out.push(Action::ToClient(c, msg::error_raw(id, error))),
            Init::NotNeeded => {}
        }
    }

    fn request(&mut self, c: ClientId, i: InstanceId, msg: &Msg, method: &str, id: &str, out: &mut Vec<Action>) {
        let reply = |out: &mut Vec<Action>, bytes| out.push(Action::ToClient(c, bytes));
        let (Some(client), Some(inst)) = (self.clients.get_mut(&c), self.instances.get_mut(&i)) else { return };
        if client.in_flight.contains_key(id) {
            // "The request ID MUST NOT have been previously used by the
            // requestor within the same session" (2025-11-25 `basic/index.mdx`).
            let why = format!("request id {id} is already in flight on this connection");
            return reply(out, msg::error(Some(id), msg::INVALID_REQUEST, &why));
        }
        if client.in_flight.len() >= self.cfg.max_in_flight {
            let why = format!("more than {} requests in flight on this connection", self.cfg.max_in_flight);
            return reply(out, msg::error(Some(id), msg::MUX_REFUSED, &why));
        }
        if matches!(inst.init, Init::Failed(_)) {
            return reply(out, msg::error(Some(id), msg::INTERNAL_ERROR, "the shared server's initialize failed"));
        }
        // Task ids are server-global (2025-11-25 `basic/utilities/tasks.mdx`);
        // a task another client created is not this client's to read or
        // cancel. (`tasks/list` results are not filtered: see the module.)
        let task = msg.str_at(&["params", "taskId"]).filter(|_| method.starts_with("tasks/"));
        if task.and_then(|t| inst.tasks.get(t)).is_some_and(|owner| *owner != c) {
            return reply(out, msg::error(Some(id), msg::INVALID_PARAMS, "no such task on this connection"));
        }
        let uri = msg.str_at(&["params", "uri"]);
        let kind = match method {
            // Process-global on the server: merged, answered here.
            "logging/setLevel" => {
                let Some(level) = msg.str_at(&["params", "level"]).and_then(Level::parse) else {
                    return reply(out, msg::error(Some(id), msg::INVALID_PARAMS, "params.level is not a log level"));
                };
                client.level = Some(level);
                reply(out, msg::result(id, "{}"));
                return self.recompute_level(i, out);
            }
            // Reference-counted per URI (2025-11-25 `server/resources.mdx`
            // "Subscriptions"): only the first subscriber's request and
            // the last subscriber's unsubscribe reach the server.
            "resources/subscribe" | "resources/unsubscribe" if uri.is_none() => {
                return reply(out, msg::error(Some(id), msg::INVALID_PARAMS, "params.uri is not a string"));
            }
            "resources/subscribe" => {
                let uri = uri.unwrap_or_default();
                if !client.subs.insert(uri.to_owned()) || !inst.subscribe(c, uri) {
                    return reply(out, msg::result(id, "{}"));
                }
                Kind::Subscribe(uri.to_owned())
            }
            "resources/unsubscribe" => {
                let uri = uri.unwrap_or_default();
                if !client.subs.remove(uri) || !inst.unsubscribe(c, uri) {
                    return reply(out, msg::result(id, "{}"));
                }
                Kind::Plain
            }
            "subscriptions/listen" => Kind::Listen,
            _ => Kind::Plain,
        };
        let token = msg
            .at(&["params", "_meta", "progressToken"])
            .filter(|_| msg.raw_id_at(&["params", "_meta", "progressToken"]).is_some());
        let log_level = msg.str_at(&["params", "_meta", LOG_LEVEL]).and_then(Level::parse);
        let forwarded =
            Forwarded { client: c, id: id.to_owned(), token: token.map(|t| msg.raw(t).to_owned()), kind, log_level };
        let up = inst.up.send(Owner::Client(forwarded));
        client.in_flight.insert(id.to_owned(), up);
        // A retry carrying `requestState` closes the round it answers
        // (2026-07-28 `basic/patterns/mrtr.mdx`); its own answer may open
        // the next one.
        if let Some(state) = msg.str_at(&["params", "requestState"]) {
            client.rounds.retain(|s| s != state);
        }
        let mut edits: Vec<_> = msg.span(&["id"]).map(|s| (s, up.to_string())).into_iter().collect();
        edits.extend(token.map(|t| (t.start..t.end, up.to_string())));
        out.push(Action::ToServer(i, msg.splice(edits)));
    }

    fn notification(&mut self, c: ClientId, i: InstanceId, msg: &Msg, method: &str, out: &mut Vec<Action>) {
        let (Some(client), Some(inst)) = (self.clients.get_mut(&c), self.instances.get_mut(&i)) else { return };
        let forward = |out: &mut Vec<Action>, bytes: Vec<u8>| out.push(Action::ToServer(i, bytes));
        match method {
            // Once per instance: the server was initialized once.
            "notifications/initialized" if inst.class != Class::Modern => {
                if !std::mem::replace(&mut inst.initialized_sent, true) {
                    forward(out, msg.text.as_bytes().to_vec());
                }
            }
            // The request id is the client's; the server knows the
            // upstream one. Unknown or finished ones are ignored, as a
            // receiver "MAY" (2025-11-25 `basic/utilities/cancellation.mdx`);
            // the mux's own initialize is never among them ("MUST NOT be
            // cancelled").
            "notifications/cancelled" => {
                let raw = msg.raw_id_at(&["params", "requestId"]);
                let Some(up) = raw.and_then(|r| client.in_flight.remove(r)) else {
                    let raw = raw.unwrap_or("(none)");
                    return out.push(Action::Log(format!("client {c}: ignored a cancel of {raw}, not in flight")));
                };
                inst.up.take(up);
                let edits = msg.span(&["params", "requestId"]).map(|s| (s, up.to_string())).into_iter().collect();
                forward(out, msg.splice(edits));
            }
            _ => forward(out, msg.text.as_bytes().to_vec()),
        }
    }

    /// The client's answer to a server→client request: back to the
    /// server's own id. An answer to nothing pending is dropped.
    fn answer(&mut self, c: ClientId, i: InstanceId, msg: &Msg, id: &str, out: &mut Vec<Action>) {
        let (Some(client), Some(inst)) = (self.clients.get_mut(&c), self.instances.get_mut(&i)) else { return };
        let Some(server_id) = client.server_reqs.remove(id) else {
            return out.push(Action::Log(format!("client {c}: dropped an answer to {id}, no such server request")));
        };
        inst.out.forget(&server_id);
        let edits = msg.span(&["id"]).map(|s| (s, server_id)).into_iter().collect();
        out.push(Action::ToServer(i, msg.splice(edits)));
    }
}
