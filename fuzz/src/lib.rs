//! Helpers the D-Bus fuzz targets share.

use mcp_runner::fuzzing::{Message, Value};

/// Equality that counts a NaN equal to itself (bit for bit): what was
/// written must read back as the same bits.
pub fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::F64(x), Value::F64(y)) => x.to_bits() == y.to_bits(),
        (Value::Array(ta, va), Value::Array(tb, vb)) => ta == tb && same_values(va, vb),
        (Value::Struct(va), Value::Struct(vb)) => same_values(va, vb),
        (Value::DictEntry(a), Value::DictEntry(b)) => same_value(&a.0, &b.0) && same_value(&a.1, &b.1),
        (Value::Variant(a), Value::Variant(b)) => same_value(a, b),
        _ => a == b,
    }
}

pub fn same_values(a: &[Value], b: &[Value]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(a, b)| same_value(a, b))
}

pub fn same_message(a: &Message, b: &Message) -> bool {
    let header = |m: &Message| {
        (
            m.kind,
            m.flags,
            m.serial,
            m.path.clone(),
            m.interface.clone(),
            m.member.clone(),
            m.error_name.clone(),
            m.reply_serial,
            m.destination.clone(),
            m.sender.clone(),
        )
    };
    header(a) == header(b) && same_values(&a.body, &b.body)
}
