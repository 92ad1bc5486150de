//! Which instance a client may share: its capability class, read from its
//! first message, and what an initialize result says about sharing.

use serde_json::Value;

/// Clients of different classes never share a process.
///
/// An initialize-era server negotiates once per process: the protocol
/// version and the client capabilities of the first `initialize` stick
/// (2025-11-25 `basic/lifecycle.mdx`, "Only use capabilities that were
/// successfully negotiated"), so the class is both. A 2026-07-28 client
/// sends no `initialize`; it carries `io.modelcontextprotocol/protocolVersion`
/// and `io.modelcontextprotocol/clientCapabilities` in every request's
/// `_meta` (2026-07-28 changelog, item 2), which the mux passes through, so
/// all such clients form one class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Class {
    Legacy { version: String, capabilities: String },
    Modern,
}

impl Class {
    /// The class of an `initialize` request's params.
    pub fn of_initialize(params: Option<&Value>) -> Class {
        let version = params.and_then(|p| p.get("protocolVersion"));
        let capabilities = params.and_then(|p| p.get("capabilities"));
        Class::Legacy {
            version: version.map_or_else(|| "null".to_owned(), canonical),
            capabilities: capabilities.map_or_else(|| "null".to_owned(), canonical),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Class::Legacy { version, capabilities } => format!("initialize {version} capabilities {capabilities}"),
            Class::Modern => "2026-07-28 (no initialize)".to_owned(),
        }
    }
}

/// `value` as compact JSON with every object's keys sorted, so that two
/// clients listing the same capabilities in another order are one class.
pub fn canonical(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (n, key) in keys.into_iter().enumerate() {
                if n > 0 {
                    out.push(',');
                }
                out.push_str(&Value::from(key.as_str()).to_string());
                out.push(':');
                if let Some(v) = map.get(key) {
                    write_canonical(v, out);
                }
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (n, item) in items.iter().enumerate() {
                if n > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// Why an initialize result says its server keeps per-session state, if it
/// does. Two declarations are honoured:
/// - mcp-mux's `x-mux` capability with `"sharing": "isolated"`; its README
///   puts it directly in `capabilities`, servers written for it also put it
///   under `capabilities.experimental`, so both are read;
/// - mcp-runner's own `capabilities.experimental["io.github.mcp-runner"]`
///   with `"share": false`.
pub fn isolation(result: &Value) -> Option<&'static str> {
    let caps = result.get("capabilities")?;
    let experimental = caps.get("experimental");
    let x_mux = [caps.get("x-mux"), experimental.and_then(|e| e.get("x-mux"))];
    if x_mux.iter().flatten().any(|m| m.get("sharing").and_then(Value::as_str) == Some("isolated")) {
        return Some("its initialize result declares x-mux sharing \"isolated\"");
    }
    let ours = experimental.and_then(|e| e.get("io.github.mcp-runner"));
    if ours.and_then(|o| o.get("share")).and_then(Value::as_bool) == Some(false) {
        return Some("its initialize result declares io.github.mcp-runner share false");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn class_ignores_key_order_but_not_values() {
        let a =
            json!({"protocolVersion": "2025-11-25", "capabilities": {"roots": {"listChanged": true}, "sampling": {}}});
        let b =
            json!({"capabilities": {"sampling": {}, "roots": {"listChanged": true}}, "protocolVersion": "2025-11-25"});
        let c = json!({"protocolVersion": "2025-11-25", "capabilities": {"sampling": {}}});
        let d = json!({"protocolVersion": "2025-06-18", "capabilities": {"sampling": {}}});
        assert_eq!(Class::of_initialize(Some(&a)), Class::of_initialize(Some(&b)));
        assert_ne!(Class::of_initialize(Some(&a)), Class::of_initialize(Some(&c)));
        assert_ne!(Class::of_initialize(Some(&c)), Class::of_initialize(Some(&d)));
        assert_eq!(canonical(&json!({"b": [1, {"d": 1, "c": 2}], "a": null})), r#"{"a":null,"b":[1,{"c":2,"d":1}]}"#);
    }

    #[test]
    fn isolation_declarations() {
        let cases = [
            (json!({"capabilities": {"x-mux": {"sharing": "isolated"}}}), true),
            (json!({"capabilities": {"experimental": {"x-mux": {"sharing": "isolated"}}}}), true),
            (json!({"capabilities": {"experimental": {"io.github.mcp-runner": {"share": false}}}}), true),
            (json!({"capabilities": {"x-mux": {"sharing": "shared"}}}), false),
            (json!({"capabilities": {"experimental": {"io.github.mcp-runner": {"share": "no"}}}}), false),
            (json!({"capabilities": {}}), false),
            (json!([]), false),
        ];
        for (result, isolated) in cases {
            assert_eq!(isolation(&result).is_some(), isolated, "{result}");
        }
    }
}
