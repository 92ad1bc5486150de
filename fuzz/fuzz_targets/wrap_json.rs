//! The JSON scanner `wrap` edits configs with: any text is scanned or
//! refused without a crash, and on every text serde_json accepts it agrees
//! with serde_json: the same tree, the same strings, and every value's span
//! holds exactly that value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_runner::fuzzing::{JsonKind, JsonNode, scan_json};
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let scanned = scan_json(text);
    let Ok(value) = serde_json::from_str::<Value>(text) else { return };
    let node = scanned.unwrap_or_else(|e| panic!("serde_json accepts what the scanner refuses: {e}"));
    agree(text, &node, &value);
});

fn agree(text: &str, node: &JsonNode, value: &Value) {
    let span = text.get(node.start..node.end).expect("a span on character boundaries");
    let reread: Value = serde_json::from_str(span).expect("a span holds one value");
    assert_eq!(&reread, value, "span {}..{}", node.start, node.end);
    match (&node.kind, value) {
        (JsonKind::Object(members), Value::Object(map)) => {
            for m in members {
                let key: Value = serde_json::from_str(&text[m.key_start..m.key_end]).expect("a key's span");
                assert_eq!(key.as_str(), Some(m.key.as_str()));
            }
            // A repeated key means its last value, as serde_json reads it.
            let mut keys: Vec<&str> = members.iter().map(|m| m.key.as_str()).collect();
            keys.sort_unstable();
            keys.dedup();
            assert_eq!(keys.len(), map.len());
            for (key, v) in map {
                agree(text, node.get(key).expect("every key"), v);
            }
        }
        (JsonKind::Array(items), Value::Array(values)) => {
            assert_eq!(items.len(), values.len());
            for (item, v) in items.iter().zip(values) {
                agree(text, item, v);
            }
        }
        (JsonKind::String(s), Value::String(v)) => assert_eq!(s, v),
        (JsonKind::Number, Value::Number(_)) | (JsonKind::Bool, Value::Bool(_)) | (JsonKind::Null, Value::Null) => {}
        (kind, value) => panic!("scanned {kind:?}, serde_json read {value}"),
    }
}
