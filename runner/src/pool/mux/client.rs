//! What the mux keeps per client connection.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::InstanceId;
use super::level::Level;
use super::msg::Raw;

#[derive(Debug, Default)]
pub struct Client {
    /// Chosen by its first message; `None` until then.
    pub instance: Option<InstanceId>,
    /// Its requests in flight: its raw id → the upstream id.
    pub in_flight: BTreeMap<Raw, u64>,
    /// Lines held, in order, while its instance's `initialize` is in flight.
    pub queue: VecDeque<Vec<u8>>,
    /// Server→client requests sent to it: the id it saw → the server's id.
    pub server_reqs: BTreeMap<Raw, Raw>,
    /// Its `logging/setLevel`, if it sent one.
    pub level: Option<Level>,
    /// The URIs it subscribed to with `resources/subscribe`.
    pub subs: BTreeSet<String>,
    /// 2026-07-28 multi-round-trip rounds it has open: the `requestState`
    /// of each `InputRequiredResult` it got, oldest first.
    pub rounds: VecDeque<String>,
}

impl Client {
    /// Requests in flight plus lines held: what backpressure counts.
    pub fn load(&self) -> usize {
        self.in_flight.len() + self.queue.len()
    }
}
