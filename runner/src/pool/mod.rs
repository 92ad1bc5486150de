//! Sharing one MCP server process among many client sessions.
// The pool host (sockets, poll loop, spawning) is the caller of the mux's
// API; until it lands only the tests call it. Remove with the host's merge.
#[cfg_attr(not(test), allow(dead_code))]
pub mod mux;
