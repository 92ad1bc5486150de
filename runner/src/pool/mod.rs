//! Sharing one server process among sessions (`share = "auto" | "always"`).
//!
//! - `key`: what two runs must have in common to share a server.
//! - `files`: a pool's files in the state directory, and its status.
//! - `wire`: the relay's hello and the host's reply.
//! - `relay`: the runner of a shared server, copying stdio to the socket.
//! - `host`: the pool host, owning the instances, serving the relays.
//! - `mux`: the JSON-RPC multiplexer, the host's routing decisions (no I/O).

pub mod files;
pub mod host;
pub mod key;
pub mod mux;
pub mod relay;
pub mod wire;
