//! What the mux keeps per instance (one server process).

use std::collections::{BTreeMap, BTreeSet};

use super::ClientId;
use super::classify::Class;
use super::ids::{Outbound, Upstream};
use super::level::Level;
use super::msg::Raw;

/// An initialize-era server is initialized once per process (2025-11-25
/// `basic/lifecycle.mdx`; go-sdk 1.7+ rejects a second `initialize`): the
/// first client's `initialize` goes upstream and every client of the
/// instance is answered from its result.
#[derive(Debug)]
pub enum Init {
    /// A 2026-07-28 instance: there is no handshake.
    NotNeeded,
    /// The first `initialize` is upstream; these clients wait for it.
    Pending { waiters: Vec<(ClientId, Raw)> },
    /// The raw `result` of the one `initialize`.
    Ready(String),
    /// The raw `error` of the one `initialize`: the instance is never
    /// reused and its clients get this error again.
    Failed(String),
}

#[derive(Debug)]
pub struct Instance {
    pub class: Class,
    pub clients: BTreeSet<ClientId>,
    /// How many clients have ever attached: a lone client's server request
    /// is only its own if no other client was ever there.
    pub ever: usize,
    /// Whether a new client of the class may join.
    pub shareable: bool,
    pub init: Init,
    /// `notifications/initialized` reached the server (once per instance).
    pub initialized_sent: bool,
    pub up: Upstream,
    pub out: Outbound,
    /// `resources/subscribe` reference counts: URI → subscribed clients.
    pub subs: BTreeMap<String, BTreeSet<ClientId>>,
    /// The last level the mux sent upstream with `logging/setLevel`.
    pub level_sent: Option<Level>,
    /// 2025-11-25 tasks: task id → the client whose request created it.
    pub tasks: BTreeMap<String, ClientId>,
}

impl Instance {
    pub fn new(class: Class, init: Init) -> Instance {
        Instance {
            class,
            clients: BTreeSet::new(),
            ever: 0,
            shareable: true,
            init,
            initialized_sent: false,
            up: Upstream::new(),
            out: Outbound::default(),
            subs: BTreeMap::new(),
            level_sent: None,
            tasks: BTreeMap::new(),
        }
    }

    /// Whether the one `initialize` is still upstream.
    pub fn initializing(&self) -> bool {
        matches!(self.init, Init::Pending { .. })
    }

    /// Adds `client` to `uri`'s subscribers; true if it is the first.
    pub fn subscribe(&mut self, client: ClientId, uri: &str) -> bool {
        let subs = self.subs.entry(uri.to_owned()).or_default();
        subs.insert(client);
        subs.len() == 1
    }

    /// Removes `client` from `uri`'s subscribers; true if it was the last.
    pub fn unsubscribe(&mut self, client: ClientId, uri: &str) -> bool {
        let Some(subs) = self.subs.get_mut(uri) else { return false };
        if !subs.remove(&client) || !subs.is_empty() {
            return false;
        }
        self.subs.remove(uri);
        true
    }

    pub fn subscribers(&self, uri: &str) -> Vec<ClientId> {
        self.subs.get(uri).map(|s| s.iter().copied().collect()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscriptions_are_reference_counted() {
        let mut i = Instance::new(Class::Modern, Init::NotNeeded);
        assert!(i.subscribe(1, "u"));
        assert!(!i.subscribe(2, "u"));
        assert!(!i.unsubscribe(3, "u"), "a client that never subscribed");
        assert!(!i.unsubscribe(1, "u"));
        assert_eq!(i.subscribers("u"), [2]);
        assert!(i.unsubscribe(2, "u"));
        assert!(i.subs.is_empty());
        assert!(!i.unsubscribe(2, "u"));
    }
}
