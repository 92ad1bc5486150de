//! One JSON-RPC message as the mux sees it: the line's own text and where
//! every value sits in it.
//!
//! The mux edits messages by replacing a few byte ranges (an id, a progress
//! token, a request id) and never re-serializes a message: a proxy must not
//! change what it does not route. serde_json reads a number beyond 64 bits
//! as an `f64`, so re-serializing would corrupt big integers in tool
//! arguments and in ids, and MCP ids must come back as they were sent
//! (2025-11-25 `basic/index.mdx`: "Responses **MUST** include the same ID as
//! the request"). serde_json checks the syntax; `crate::wrap::json` (the
//! config editor's span-keeping reader) finds the spans.

use std::collections::HashSet;
use std::ops::Range;

use serde::de::IgnoredAny;

use crate::wrap::json::{self, Kind, Node};

/// JSON-RPC 2.0 error codes (section 5.1).
pub const PARSE_ERROR: i64 = -32700;
pub const INVALID_REQUEST: i64 = -32600;
pub const INVALID_PARAMS: i64 = -32602;
pub const INTERNAL_ERROR: i64 = -32603;
/// The implementation-defined range (-32000 to -32019, 2026-07-28
/// `basic/index.mdx` "Error codes"): the mux's own refusals.
pub const MUX_REFUSED: i64 = -32000;

/// The raw JSON text of an id or token, exactly as its sender wrote it.
pub type Raw = String;

/// Why a line is no message the mux will pass on.
#[derive(Debug, PartialEq, Eq)]
pub enum Bad {
    /// Not UTF-8 JSON: JSON-RPC's parse error.
    Parse,
    /// JSON, but no JSON-RPC message: JSON-RPC's invalid request.
    Invalid(&'static str),
}

/// What kind of JSON-RPC message a line is (JSON-RPC 2.0 sections 4, 4.1, 5).
#[derive(Debug)]
pub enum Shape<'m> {
    Request { method: &'m str, id: &'m Node },
    Notification { method: &'m str },
    Response { id: &'m Node },
}

pub struct Msg<'t> {
    pub text: &'t str,
    pub root: Node,
}

impl<'t> Msg<'t> {
    pub fn parse(line: &'t [u8]) -> Result<Msg<'t>, Bad> {
        let text = std::str::from_utf8(line).map_err(|_| Bad::Parse)?;
        serde_json::from_str::<IgnoredAny>(text).map_err(|_| Bad::Parse)?;
        let root = json::parse(text).map_err(|_| Bad::Parse)?;
        match root.kind {
            Kind::Object(_) => {}
            // Batches were added in 2025-03-26 and removed in 2025-06-18
            // (changelogs); 2025-11-25 and 2026-07-28 have none.
            Kind::Array(_) => {
                return Err(Bad::Invalid("JSON-RPC batches are not supported by MCP 2025-06-18 and later"));
            }
            _ => return Err(Bad::Invalid("a JSON-RPC message is an object")),
        }
        let msg = Msg { text, root };
        // A repeated key is read as the last one here (as `JSON.parse` does)
        // but some peers read the first: a client could then steer a
        // response to another client. Refuse them where the mux routes.
        for path in [&[][..], &["params"], &["params", "_meta"], &["result"], &["result", "_meta"]] {
            if msg.at(path).is_some_and(repeats_a_key) {
                return Err(Bad::Invalid("a key is repeated in the message"));
            }
        }
        Ok(msg)
    }

    pub fn shape(&self) -> Result<Shape<'_>, &'static str> {
        let id = self.root.get("id");
        match self.root.get("method") {
            Some(Node { kind: Kind::String(method), .. }) => match id {
                None => Ok(Shape::Notification { method }),
                Some(id) if is_id(id) => Ok(Shape::Request { method, id }),
                // MCP: "Requests MUST include a string or integer ID" and
                // "the ID MUST NOT be null" (2025-11-25 `basic/index.mdx`).
                Some(_) => Err("a request id is a string or a number"),
            },
            Some(_) => Err("the method is not a string"),
            None => match id {
                Some(id) if is_id(id) && (self.root.get("result").is_some() || self.root.get("error").is_some()) => {
                    Ok(Shape::Response { id })
                }
                _ => Err("neither a request, a notification nor a response"),
            },
        }
    }

    /// The value at `path` (object keys from the root).
    pub fn at(&self, path: &[&str]) -> Option<&Node> {
        path.iter().try_fold(&self.root, |node, key| node.get(key))
    }

    pub fn raw(&self, node: &Node) -> &'t str {
        self.text.get(node.start..node.end).unwrap_or("null")
    }

    pub fn str_at(&self, path: &[&str]) -> Option<&str> {
        self.at(path).and_then(Node::as_str)
    }

    /// The raw text of the id-like value at `path`: a string or a number.
    pub fn raw_id_at(&self, path: &[&str]) -> Option<&'t str> {
        self.at(path).filter(|n| is_id(n)).map(|n| self.raw(n))
    }

    /// A number written as a plain unsigned integer: how the mux writes its
    /// own upstream ids and tokens.
    pub fn as_u64(&self, node: &Node) -> Option<u64> {
        match node.kind {
            Kind::Number => self.raw(node).parse().ok(),
            _ => None,
        }
    }

    /// The value at `path` as a serde_json value (for reading only).
    pub fn value_at(&self, path: &[&str]) -> Option<serde_json::Value> {
        self.at(path).and_then(|n| serde_json::from_str(self.raw(n)).ok())
    }

    /// This message with the values at the given spans replaced.
    pub fn splice(&self, edits: Vec<(Range<usize>, String)>) -> Vec<u8> {
        splice(self.text, edits)
    }

    /// The span of the value at `path`, for [`Msg::splice`].
    pub fn span(&self, path: &[&str]) -> Option<Range<usize>> {
        self.at(path).map(|n| n.start..n.end)
    }
}

fn is_id(node: &Node) -> bool {
    matches!(node.kind, Kind::String(_) | Kind::Number)
}

fn repeats_a_key(node: &Node) -> bool {
    let members = node.members().unwrap_or(&[]);
    let mut seen = HashSet::with_capacity(members.len());
    members.iter().any(|m| !seen.insert(m.key.as_str()))
}

/// `text` with each range replaced; ranges come from one parse of `text`
/// and do not overlap (an overlapping one is skipped, never sliced).
pub fn splice(text: &str, mut edits: Vec<(Range<usize>, String)>) -> Vec<u8> {
    edits.sort_by_key(|(r, _)| r.start);
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(text.len() + 16 * edits.len());
    let mut at = 0;
    for (range, with) in edits {
        if range.start < at || range.end < range.start {
            continue;
        }
        out.extend_from_slice(bytes.get(at..range.start).unwrap_or_default());
        out.extend_from_slice(with.as_bytes());
        at = range.end;
    }
    out.extend_from_slice(bytes.get(at..).unwrap_or_default());
    out
}

fn quote(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

/// An error response; `id` is raw JSON text, `None` for `null` (JSON-RPC
/// 2.0 section 5: null when the id could not be read).
pub fn error(id: Option<&str>, code: i64, message: &str) -> Vec<u8> {
    let id = id.unwrap_or("null");
    format!(r#"{{"jsonrpc":"2.0","id":{id},"error":{{"code":{code},"message":{}}}}}"#, quote(message)).into_bytes()
}

/// A response carrying `result`, raw JSON text.
pub fn result(id: &str, result: &str) -> Vec<u8> {
    format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{result}}}"#).into_bytes()
}

/// A response carrying the raw `error` object of another response.
pub fn error_raw(id: &str, error: &str) -> Vec<u8> {
    format!(r#"{{"jsonrpc":"2.0","id":{id},"error":{error}}}"#).into_bytes()
}

/// A request the mux itself sends upstream; `params` is raw JSON text.
pub fn request(id: u64, method: &str, params: &str) -> Vec<u8> {
    format!(r#"{{"jsonrpc":"2.0","id":{id},"method":{},"params":{params}}}"#, quote(method)).into_bytes()
}

/// `notifications/cancelled` (2025-11-25 `basic/utilities/cancellation.mdx`).
pub fn cancelled(request_id: &str, reason: &str) -> Vec<u8> {
    format!(
        r#"{{"jsonrpc":"2.0","method":"notifications/cancelled","params":{{"requestId":{request_id},"reason":{}}}}}"#,
        quote(reason)
    )
    .into_bytes()
}

/// `{"uri": …}` params.
pub fn uri_params(uri: &str) -> String {
    format!(r#"{{"uri":{}}}"#, quote(uri))
}

/// `{"level": …}` params.
pub fn level_params(level: &str) -> String {
    format!(r#"{{"level":{}}}"#, quote(level))
}
