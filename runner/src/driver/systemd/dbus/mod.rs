//! A minimal, blocking, single-threaded D-Bus client: enough to ask
//! systemd's manager for transient slices and scopes and wait for the jobs.
//!
//! Why not zbus: it brings an async runtime and some fifty crates into a
//! small supervisor that makes a handful of calls per session. youki ships
//! a hand-written client for the same reason.
//!
//! What is implemented of the D-Bus specification:
//! - transport: Unix stream sockets by path; SASL `AUTH EXTERNAL` only,
//!   with `BEGIN` pipelined as sd-bus clients send it (systemd does not
//!   answer a first call that arrives in one read with `BEGIN`);
//! - types `y b n q i u x t d s o g v`, arrays, structs and dict entries,
//!   read in either byte order and written in the native one, with the
//!   spec's size, depth and validity checks on everything read;
//! - messages: all four types and the eight standard header fields;
//! - a connection that matches replies by serial, queues signals that
//!   arrive meanwhile (systemd's JobRemoved can overtake the reply that
//!   names the job), and bounds every read and write by a timeout;
//! - `Hello` and `AddMatch` for the bus-daemon case; neither is used on
//!   systemd's private peer-to-peer socket.
//!
//! Left out: Unix fd passing (`h`, NEGOTIATE_UNIX_FD), other SASL
//! mechanisms, TCP and address strings (`unix:path=...,guid=...`),
//! exporting objects (incoming method calls get UnknownMethod), and
//! introspection.

pub mod conn;
pub mod message;
pub mod systemd;
pub mod wire;

pub use conn::{Connection, DbusError};
pub use systemd::PropValue;

#[cfg(test)]
mod bus_tests;
#[cfg(test)]
mod fake_peer;
