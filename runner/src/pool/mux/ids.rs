//! The id maps of one instance.
//!
//! Every client numbers its own requests (the TypeScript SDK starts at 0 on
//! each connection), so ids collide on a shared server. Each request gets a
//! fresh integer upstream id: integers because some servers answer nothing
//! else (research notes 2.3: `xcrun mcpbridge`). The upstream id doubles as
//! the minted progress token: unique per instance, as progress tokens "MUST
//! be unique across all active requests" (2025-11-25
//! `basic/utilities/progress.mdx`).

use std::collections::BTreeMap;

use super::ClientId;
use super::level::Level;
use super::msg::Raw;

/// Who is waiting for the answer to an upstream request.
#[derive(Debug)]
pub enum Owner {
    /// The instance's one `initialize`, answered to every waiting client.
    Init,
    /// A request the mux sent on its own (a merged `logging/setLevel`, a
    /// departed client's `resources/unsubscribe`): its answer is swallowed.
    Host,
    Client(Forwarded),
}

/// A client's request as the server got it.
#[derive(Debug)]
pub struct Forwarded {
    pub client: ClientId,
    /// The client's id, raw JSON text.
    pub id: Raw,
    /// The client's `params._meta.progressToken`, raw JSON text.
    pub token: Option<Raw>,
    pub kind: Kind,
    /// 2026-07-28: the request's `_meta["io.modelcontextprotocol/logLevel"]`
    /// (schema `RequestMetaObject`); log messages may only be for it.
    pub log_level: Option<Level>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Kind {
    Plain,
    /// The first `resources/subscribe` of a URI: undone if it fails.
    Subscribe(String),
    /// 2026-07-28 `subscriptions/listen`: open until answered or cancelled.
    Listen,
}

/// Upstream id → owner, for one instance.
#[derive(Debug)]
pub struct Upstream {
    next: u64,
    pending: BTreeMap<u64, Owner>,
}

impl Upstream {
    pub fn new() -> Upstream {
        Upstream { next: 1, pending: BTreeMap::new() }
    }

    /// A fresh upstream id for `owner`'s request.
    pub fn send(&mut self, owner: Owner) -> u64 {
        let id = self.next;
        self.next += 1;
        self.pending.insert(id, owner);
        id
    }

    pub fn take(&mut self, id: u64) -> Option<Owner> {
        self.pending.remove(&id)
    }

    pub fn get(&self, id: u64) -> Option<&Owner> {
        self.pending.get(&id)
    }

    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// The clients' requests in flight, oldest first.
    pub fn forwarded(&self) -> impl Iterator<Item = (u64, &Forwarded)> {
        self.pending.iter().filter_map(|(id, o)| match o {
            Owner::Client(f) => Some((*id, f)),
            _ => None,
        })
    }
}

/// Server→client requests in flight: the server's id → the client it went
/// to and the id that client saw.
#[derive(Debug, Default)]
pub struct Outbound {
    by_server: BTreeMap<Raw, (ClientId, Raw)>,
    minted: u64,
}

impl Outbound {
    pub fn contains(&self, server_id: &str) -> bool {
        self.by_server.contains_key(server_id)
    }

    /// Records the server's request `server_id` as sent to `client` and
    /// returns the id that client sees: the server's own unless the client
    /// has a server request pending under that id (`taken`), else a minted
    /// string no pending request of the client uses.
    pub fn route(&mut self, server_id: &str, client: ClientId, taken: impl Fn(&str) -> bool) -> Raw {
        let mut seen = server_id.to_owned();
        while taken(&seen) {
            self.minted += 1;
            seen = format!("\"mcp-runner-{}\"", self.minted);
        }
        self.by_server.insert(server_id.to_owned(), (client, seen.clone()));
        seen
    }

    /// Forgets a server request (answered or cancelled): who it went to.
    pub fn forget(&mut self, server_id: &str) -> Option<(ClientId, Raw)> {
        self.by_server.remove(server_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_ids_are_fresh_and_taken_once() {
        let mut up = Upstream::new();
        let a = up.send(Owner::Host);
        let b = up.send(Owner::Init);
        assert_ne!(a, b);
        assert!(matches!(up.take(a), Some(Owner::Host)));
        assert!(up.take(a).is_none());
        assert_eq!(up.len(), 1);
    }

    #[test]
    fn outbound_keeps_the_server_id_unless_the_client_has_it_pending() {
        let mut out = Outbound::default();
        assert_eq!(out.route("7", 1, |_| false), "7");
        assert_eq!(out.route("8", 1, |id| id == "8"), "\"mcp-runner-1\"");
        assert_eq!(out.route("9", 1, |id| id == "9" || id == "\"mcp-runner-2\""), "\"mcp-runner-3\"");
        assert_eq!(out.forget("7"), Some((1, "7".to_owned())));
        assert_eq!(out.forget("7"), None);
    }
}
