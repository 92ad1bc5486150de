//! Server → client: answers go back by upstream id, notifications only to
//! the clients they are for, server requests only where attributable.

use std::collections::BTreeMap;

use super::classify::{self, Class};
use super::ids::{Forwarded, Kind, Owner};
use super::instance::Init;
use super::level::Level;
use super::msg::{self, Msg, Shape};
use super::{Action, ClientId, InstanceId, Mux, Sharing};
use crate::wrap::json::Node;

/// 2026-07-28 schema `NotificationMetaObject`: on stdio "clients MUST use
/// this field to correlate" subscription notifications; its value is the
/// JSON-RPC id of the `subscriptions/listen` request, here the upstream one.
const SUBSCRIPTION_ID: &str = "io.modelcontextprotocol/subscriptionId";
/// 2025-11-25 `basic/utilities/tasks.mdx`: "All requests, notifications,
/// and responses related to a task MUST include" it, `{"taskId": …}`.
const RELATED_TASK: &str = "io.modelcontextprotocol/related-task";

impl Mux {
    /// One complete line from instance `i`'s server, without its newline.
    // The name is the pool host's API: a line *from* the peer.
    #[allow(clippy::wrong_self_convention)]
    pub fn from_server(&mut self, i: InstanceId, line: &[u8], out: &mut Vec<Action>) {
        if !self.instances.contains_key(&i) {
            return out.push(Action::Log(format!("instance {i}: dropped a line from an instance the mux forgot")));
        }
        // Servers print junk on stdout; it reaches no client.
        let Ok(msg) = Msg::parse(line) else {
            return out.push(Action::Log(format!("instance {i}: dropped a line that is no JSON-RPC message")));
        };
        match msg.shape() {
            Ok(Shape::Response { id }) => self.response(i, &msg, id, out),
            Ok(Shape::Request { method, id }) => self.server_request(i, &msg, method, msg.raw(id), out),
            Ok(Shape::Notification { method }) => self.server_notification(i, &msg, method, out),
            Err(why) => out.push(Action::Log(format!("instance {i}: dropped a message: {why}"))),
        }
    }

    fn response(&mut self, i: InstanceId, msg: &Msg, id: &Node, out: &mut Vec<Action>) {
        let Some(inst) = self.instances.get_mut(&i) else { return };
        let up = msg.as_u64(id);
        let owner = match up.and_then(|up| inst.up.take(up)) {
            Some(owner) => owner,
            None => {
                let raw = msg.raw(id);
                return out.push(Action::Log(format!("instance {i}: dropped an answer to unknown id {raw}")));
            }
        };
        let f = match owner {
            Owner::Host => return,
            Owner::Init => return self.initialized(i, msg, out),
            Owner::Client(f) => f,
        };
        let Some(client) = self.clients.get_mut(&f.client) else { return };
        client.in_flight.remove(&f.id);
        let mut edits = vec![(id.start..id.end, f.id.clone())];
        if msg.at(&["result"]).is_some() {
            // 2026-07-28 `basic/patterns/mrtr.mdx`: an `InputRequiredResult`
            // (`resultType: "input_required"`, with `inputRequests` and/or
            // `requestState`) is answered by a retry that must reach this
            // process when it carries `requestState` (often sealed with a
            // key made at process start). Without one the retry needs
            // nothing of this process, so no round is opened.
            let input_required = msg.str_at(&["result", "resultType"]) == Some("input_required");
            if let Some(state) = msg.str_at(&["result", "requestState"]).filter(|_| input_required) {
                client.rounds.push_back(state.to_owned());
                if client.rounds.len() > self.cfg.max_in_flight {
                    client.rounds.pop_front();
                }
            }
            // 2025-11-25 `CreateTaskResult`: `result.task.taskId`.
            if let Some(task) = msg.str_at(&["result", "task", "taskId"]) {
                inst.tasks.insert(task.to_owned(), f.client);
            }
            // A listen's closing answer names its subscription too.
            let sub = msg.at(&["result", "_meta", SUBSCRIPTION_ID]);
            if let Some(sub) = sub.filter(|s| f.kind == Kind::Listen && msg.as_u64(s) == up) {
                edits.push((sub.start..sub.end, f.id.clone()));
            }
        } else if let Kind::Subscribe(uri) = &f.kind {
            // The server refused the subscription: the client holds none.
            client.subs.remove(uri);
            inst.unsubscribe(f.client, uri);
        }
        out.push(Action::ToClient(f.client, msg.splice(edits)));
    }

    /// The one `initialize` answered: every waiting client gets the result
    /// (or the error) with its own id, then their held lines go on.
    fn initialized(&mut self, i: InstanceId, msg: &Msg, out: &mut Vec<Action>) {
        let Some(inst) = self.instances.get_mut(&i) else { return };
        let Init::Pending { waiters, .. } = std::mem::replace(&mut inst.init, Init::NotNeeded) else { return };
        let mut isolated = None;
        if let Some(result) = msg.at(&["result"]) {
            let raw = msg.raw(result);
            for (c, id) in &waiters {
                out.push(Action::ToClient(*c, msg::result(id, raw)));
            }
            inst.init = Init::Ready(raw.to_owned());
            isolated = msg.value_at(&["result"]).as_ref().and_then(classify::isolation);
        } else {
            let raw = msg.at(&["error"]).map_or("null", |e| msg.raw(e));
            for (c, id) in &waiters {
                out.push(Action::ToClient(*c, msg::error_raw(id, raw)));
            }
            inst.init = Init::Failed(raw.to_owned());
            inst.shareable = false;
            out.push(Action::Log(format!("instance {i}: initialize failed; the instance is not reused")));
        }
        if let Some(why) = isolated {
            match self.cfg.sharing {
                Sharing::Auto => self.unshare(i, why, out),
                Sharing::Always => {
                    out.push(Action::Log(format!("instance {i}: {why}; shared anyway (share = always)")))
                }
            }
        }
        self.release(i, out);
    }

    /// Server→client requests (2025-11-25: `sampling/createMessage`,
    /// `elicitation/create`, `roots/list`, `ping`, …). `ping` is answered
    /// here ("The receiver MUST respond promptly with an empty response",
    /// `basic/utilities/ping.mdx`). The rest go to the one client they
    /// can be for, or are refused: a sampling or elicitation shown to the
    /// wrong user is a confidentiality bug, so nothing is ever guessed.
    fn server_request(&mut self, i: InstanceId, msg: &Msg, method: &str, sid: &str, out: &mut Vec<Action>) {
        if method == "ping" {
            return out.push(Action::ToServer(i, msg::result(sid, "{}")));
        }
        let Some(inst) = self.instances.get(&i) else { return };
        if inst.out.contains(sid) {
            return out.push(Action::Log(format!("instance {i}: dropped a request reusing pending id {sid}")));
        }
        if method == "roots/list" {
            // Roots are per client, and a server may act on one client's
            // (server-filesystem replaces its allowed directories with them).
            self.unshare(i, "its server asks for roots/list, and roots are per client", out);
        }
        let Some(c) = self.attribute(i, msg) else {
            let why = "mcp-runner cannot tell which shared client this request is for";
            out.push(Action::ToServer(i, msg::error(Some(sid), msg::INTERNAL_ERROR, why)));
            out.push(Action::Log(format!("instance {i}: refused {method}: {why}")));
            return self.unshare(i, "its server sent a request no one client could be named for", out);
        };
        let (Some(inst), Some(client)) = (self.instances.get_mut(&i), self.clients.get_mut(&c)) else { return };
        let seen = inst.out.route(sid, c, |id| client.server_reqs.contains_key(id));
        client.server_reqs.insert(seen.clone(), sid.to_owned());
        let edits = msg.span(&["id"]).map(|s| (s, seen)).into_iter().collect();
        out.push(Action::ToClient(c, msg.splice(edits)));
    }

    /// The client a server request is for: the owner of the task named by
    /// `related-task`; else the only client with requests in flight; else,
    /// with none in flight, the instance's only client ever (a departed
    /// client's work cannot be pinned on a newcomer).
    fn attribute(&self, i: InstanceId, msg: &Msg) -> Option<ClientId> {
        let inst = self.instances.get(&i)?;
        if let Some(task) = msg.str_at(&["params", "_meta", RELATED_TASK, "taskId"]) {
            return inst.tasks.get(task).copied();
        }
        let mut busy: Vec<ClientId> = inst.up.forwarded().map(|(_, f)| f.client).collect();
        busy.sort_unstable();
        busy.dedup();
        match busy[..] {
            [c] => Some(c),
            [] if inst.ever == 1 => inst.clients.first().copied(),
            _ => None,
        }
    }

    fn server_notification(&mut self, i: InstanceId, msg: &Msg, method: &str, out: &mut Vec<Action>) {
        let Some(inst) = self.instances.get_mut(&i) else { return };
        let line = || msg.text.as_bytes().to_vec();
        let drop =
            |out: &mut Vec<Action>, why: &str| out.push(Action::Log(format!("instance {i}: dropped {method}: {why}")));
        if let Some(sub) = msg.at(&["params", "_meta", SUBSCRIPTION_ID]) {
            return match msg.as_u64(sub).and_then(|up| inst.up.get(up)) {
                Some(Owner::Client(f)) if f.kind == Kind::Listen => {
                    out.push(Action::ToClient(f.client, msg.splice(vec![(sub.start..sub.end, f.id.clone())])))
                }
                _ => drop(out, "unknown subscription"),
            };
        }
        let task = msg.str_at(&["params", "_meta", RELATED_TASK, "taskId"]).or_else(|| match method {
            "notifications/tasks/status" => msg.str_at(&["params", "taskId"]),
            _ => None,
        });
        if let Some(task) = task {
            let Some(&c) = inst.tasks.get(task) else { return drop(out, "unknown task") };
            let wanted = self.clients.get(&c).and_then(|cl| cl.level).unwrap_or(Level::Debug);
            let level = msg.str_at(&["params", "level"]).and_then(Level::parse);
            if method != "notifications/message" || level.is_some_and(|l| l >= wanted) {
                out.push(Action::ToClient(c, line()));
            }
            return;
        }
        match method {
            // Minted token = upstream id; only its owner gets it, with its
            // own token back. Unknown tokens are dropped: clients tear the
            // connection down on them (research notes 1.9).
            "notifications/progress" => {
                let token = msg.at(&["params", "progressToken"]);
                match token.and_then(|t| inst.up.get(msg.as_u64(t)?)) {
                    Some(Owner::Client(Forwarded { client, token: Some(theirs), .. })) => {
                        let span = token.map_or(0..0, |t| t.start..t.end);
                        out.push(Action::ToClient(*client, msg.splice(vec![(span, theirs.clone())])))
                    }
                    _ => drop(out, "unknown progress token"),
                }
            }
            // A server cancelling its own request to a client.
            "notifications/cancelled" => {
                let span = msg.span(&["params", "requestId"]);
                let routed = msg.raw_id_at(&["params", "requestId"]).and_then(|sid| inst.out.forget(sid));
                let (Some((c, seen)), Some(span)) = (routed, span) else { return drop(out, "no such request") };
                if let Some(client) = self.clients.get_mut(&c) {
                    client.server_reqs.remove(&seen);
                }
                out.push(Action::ToClient(c, msg.splice(vec![(span, seen)])));
            }
            "notifications/message" => self.log_message(i, msg, out),
            "notifications/resources/updated" => {
                let subscribers = msg.str_at(&["params", "uri"]).map(|uri| inst.subscribers(uri)).unwrap_or_default();
                if subscribers.is_empty() {
                    drop(out, "no client subscribed to that URI");
                }
                out.extend(subscribers.into_iter().map(|c| Action::ToClient(c, line())));
            }
            // Server-wide by nature: every client of the instance.
            m if m.starts_with("notifications/") && m.ends_with("/list_changed") => {
                out.extend(inst.clients.iter().map(|c| Action::ToClient(*c, line())));
            }
            _ => drop(out, "nothing says which client it is for"),
        }
    }

    /// `notifications/message`. Initialize era: `logging/setLevel` is
    /// process-global and a message names no request, so each client gets
    /// what its own level lets through. 2026-07-28: a message is for one
    /// request that set `io.modelcontextprotocol/logLevel` (the server
    /// "MUST NOT emit notifications/message for a request that does not
    /// include this field", `server/utilities/logging.mdx`), but stdio has
    /// no key naming that request: deliver only when one client has such
    /// requests in flight.
    fn log_message(&mut self, i: InstanceId, msg: &Msg, out: &mut Vec<Action>) {
        let Some(inst) = self.instances.get(&i) else { return };
        let Some(level) = msg.str_at(&["params", "level"]).and_then(Level::parse) else {
            return out.push(Action::Log(format!("instance {i}: dropped a log message without a known level")));
        };
        let line = msg.text.as_bytes();
        if inst.class == Class::Modern {
            let mut askers: BTreeMap<ClientId, Level> = BTreeMap::new();
            for (_, f) in inst.up.forwarded() {
                if let Some(l) = f.log_level {
                    let e = askers.entry(f.client).or_insert(l);
                    *e = (*e).min(l);
                }
            }
            return match askers.into_iter().collect::<Vec<_>>()[..] {
                [(c, wanted)] if level >= wanted => out.push(Action::ToClient(c, line.to_vec())),
                [_] => {}
                _ => out.push(Action::Log(format!("instance {i}: dropped a log message no one request is named for"))),
            };
        }
        for c in &inst.clients {
            let wanted = self.clients.get(c).and_then(|cl| cl.level).unwrap_or(Level::Debug);
            if level >= wanted {
                out.push(Action::ToClient(*c, line.to_vec()));
            }
        }
    }
}
