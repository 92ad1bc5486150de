//! Tests of the mux's routing rules; each asserts the exact actions.

mod hostile;
mod lifecycle;
mod probes;
mod requests;
mod server_requests;
mod sharing;

use super::{Action, ClientId, InstanceId, Mux, MuxConfig, Sharing};

pub const INIT_OK: &str = r#"{"protocolVersion":"2025-11-25","capabilities":{"tools":{"listChanged":true},"resources":{"subscribe":true},"logging":{}},"serverInfo":{"name":"s","version":"1"}}"#;

pub fn mux() -> Mux {
    Mux::new(MuxConfig::default())
}

pub fn mux_with(sharing: Sharing, max_in_flight: usize) -> Mux {
    Mux::new(MuxConfig { sharing, max_message: 4 << 20, max_in_flight })
}

pub fn from_client(m: &mut Mux, c: ClientId, line: &str) -> Vec<Action> {
    let mut out = Vec::new();
    m.from_client(c, line.as_bytes(), &mut out);
    out
}

pub fn from_server(m: &mut Mux, i: InstanceId, line: &str) -> Vec<Action> {
    let mut out = Vec::new();
    m.from_server(i, line.as_bytes(), &mut out);
    out
}

pub fn gone(m: &mut Mux, c: ClientId) -> Vec<Action> {
    let mut out = Vec::new();
    m.client_gone(c, &mut out);
    out
}

pub fn client(c: ClientId, line: &str) -> Action {
    Action::ToClient(c, line.as_bytes().to_vec())
}

pub fn server(i: InstanceId, line: &str) -> Action {
    Action::ToServer(i, line.as_bytes().to_vec())
}

pub fn log(line: &str) -> Action {
    Action::Log(line.to_owned())
}

pub fn initialize(id: &str) -> String {
    initialize_with(id, "2025-11-25", "{}")
}

pub fn initialize_with(id: &str, version: &str, caps: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":{id},"method":"initialize","params":{{"protocolVersion":"{version}","capabilities":{caps},"clientInfo":{{"name":"c","version":"1"}}}}}}"#
    )
}

pub fn request(id: &str, method: &str, params: &str) -> String {
    format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"{method}","params":{params}}}"#)
}

pub fn notification(method: &str, params: &str) -> String {
    format!(r#"{{"jsonrpc":"2.0","method":"{method}","params":{params}}}"#)
}

pub fn ok(id: &str, result: &str) -> String {
    format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{result}}}"#)
}

pub fn err(id: &str, code: i64, message: &str) -> String {
    format!(r#"{{"jsonrpc":"2.0","id":{id},"error":{{"code":{code},"message":"{message}"}}}}"#)
}

pub const INITIALIZED: &str = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;

/// Clients 1 and 2 (both using id 0, as the TypeScript SDK does) on
/// instance 1, initialized, with `initialized` sent upstream once; upstream
/// id 1 went to the initialize, so the next upstream id is 2.
pub fn two_clients(m: &mut Mux) {
    assert_eq!(from_client(m, 1, &initialize("0")), [Action::Spawn(1), server(1, &initialize("1"))]);
    assert_eq!(from_client(m, 2, &initialize("0")), []);
    assert_eq!(from_server(m, 1, &ok("1", INIT_OK)), [client(1, &ok("0", INIT_OK)), client(2, &ok("0", INIT_OK))]);
    assert_eq!(from_client(m, 1, INITIALIZED), [server(1, INITIALIZED)]);
    assert_eq!(from_client(m, 2, INITIALIZED), []);
}
