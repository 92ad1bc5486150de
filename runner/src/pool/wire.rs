//! The one exchange between a relay and its pool host before the bytes
//! flow: the relay says who it is and which key it holds, the host accepts
//! or refuses. One JSON line each way; after it the connection carries the
//! client's newline-delimited JSON-RPC untouched.

use serde::{Deserialize, Serialize};

use super::key::PoolKey;
use crate::tree::ProcessId;

/// The first line a relay sends.
#[derive(Debug, Serialize, Deserialize)]
pub struct Hello {
    /// The wire version: 1.
    #[serde(rename = "mcp-runner-pool")]
    pub version: u32,
    /// The relay's [`PoolKey`], hex: compared byte for byte with the host's.
    pub key: String,
    pub session: String,
    pub runner: ProcessId,
    /// Seconds since the epoch.
    pub since: u64,
}

/// The host's answer.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

pub const VERSION: u32 = 1;

/// The longest hello a host reads: the key carries the environment, in hex
/// (Linux caps arguments and environment together at a quarter of the
/// stack limit, 2 MiB by default).
pub const MAX_HELLO: usize = 5 << 20;

/// The longest reply a relay reads.
pub const MAX_REPLY: usize = 4096;

impl Hello {
    /// The hello with its newline.
    pub fn line(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec(self).unwrap_or_default();
        out.push(b'\n');
        out
    }
}

impl Reply {
    pub fn accept() -> Reply {
        Reply { ok: true, error: None }
    }

    pub fn refuse(why: impl Into<String>) -> Reply {
        Reply { ok: false, error: Some(why.into()) }
    }

    /// The reply as one JSON text, without the newline.
    pub fn json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

/// The key in a hello, or `None` if it is not even-length lower-case hex.
pub fn key_of(hello: &Hello) -> Option<PoolKey> {
    let digits = hello.key.as_bytes();
    if !digits.len().is_multiple_of(2) {
        return None;
    }
    let nibble = |d: u8| match d {
        b'0'..=b'9' => Some(d - b'0'),
        b'a'..=b'f' => Some(d - b'a' + 10),
        _ => None,
    };
    let bytes: Option<Vec<u8>> = digits.chunks(2).map(|p| Some((nibble(p[0])? << 4) | nibble(p[1])?)).collect();
    bytes.map(PoolKey::from_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello(key: String) -> Hello {
        Hello { version: VERSION, key, session: "s".into(), runner: ProcessId { pid: 1, start: 2 }, since: 3 }
    }

    #[test]
    fn the_key_survives_the_wire_and_bad_hex_is_refused() {
        let key = PoolKey::from_bytes((0..=255).collect());
        let back: Hello = serde_json::from_slice(&hello(hex(key.as_bytes())).line()).expect("parses");
        assert_eq!(key_of(&back), Some(key));
        for bad in ["0", "zz", "0G", "AB"] {
            assert_eq!(key_of(&hello(bad.into())), None, "{bad}");
        }
    }
}
