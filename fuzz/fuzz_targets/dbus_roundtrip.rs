//! D-Bus marshalling round trip: what the writer accepts, the reader reads
//! back equal and to the last byte, alone and as the body of a message;
//! what the writer refuses is an error, never a panic.
//!
//! The input drives a generator of value trees (every type, nested
//! arrays, structs, dict entries and variants, strings that may hold NUL
//! or not be an object path, now and then an array item of the wrong
//! type) and of message headers.
#![no_main]

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use mcp_runner::fuzzing::{Endian, Message, MessageKind, Reader, Type, Value, Writer};
use mcp_runner_fuzz::{same_message, same_value};

/// Deep enough to cross the wire format's limits (32 arrays, 32
/// structs, 64 containers) now and then.
const MAX_DEPTH: u32 = 70;

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(values) = gen_values(&mut u) else { return };
    for v in &values {
        round_trip(v);
    }
    let Ok(m) = gen_message(&mut u, values) else { return };
    let Ok(serial) = u.arbitrary::<u32>() else { return };
    let Ok(bytes) = m.encode(serial) else { return };
    let back = Message::decode(&bytes).expect("an encoded message decodes");
    let mut sent = m.clone();
    sent.serial = serial;
    assert!(same_message(&sent, &back), "{sent:?}\n{back:?}");
});

fn round_trip(v: &Value) {
    let mut w = Writer::new();
    if w.write(v).is_err() {
        return;
    }
    let bytes = w.into_bytes();
    let mut r = Reader::new(&bytes, Endian::NATIVE);
    let back = r.read(&v.type_of()).unwrap_or_else(|e| panic!("{v:?} wrote but reads as {e}"));
    assert!(same_value(v, &back), "{v:?}\n{back:?}");
    assert_eq!(r.position(), bytes.len(), "{v:?}: bytes left over");
}

fn gen_values(u: &mut Unstructured<'_>) -> Result<Vec<Value>> {
    let n = u.int_in_range(0..=4)?;
    (0..n).map(|_| gen_any(u, 0)).collect()
}

fn gen_message(u: &mut Unstructured<'_>, body: Vec<Value>) -> Result<Message> {
    let kind =
        *u.choose(&[MessageKind::MethodCall, MessageKind::MethodReturn, MessageKind::Error, MessageKind::Signal])?;
    let mut m = match kind {
        MessageKind::MethodCall => Message::method_call(
            "org.freedesktop.systemd1",
            "/org/freedesktop/systemd1",
            "org.freedesktop.systemd1.Manager",
            "StartTransientUnit",
        ),
        MessageKind::Signal => {
            Message::signal("/org/freedesktop/systemd1", "org.freedesktop.systemd1.Manager", "JobRemoved")
        }
        MessageKind::MethodReturn | MessageKind::Error => {
            let mut call = Message::method_call("a.b", "/", "a.b", "c");
            call.serial = u.arbitrary()?;
            call.sender = Some(":1.42".to_owned());
            if kind == MessageKind::Error {
                Message::error(&call, "org.freedesktop.DBus.Error.Failed", "failed")
            } else {
                Message::method_return(&call)
            }
        }
    };
    m.flags = u.arbitrary()?;
    // Now and then a header field of the fuzzer's own: valid or not.
    let names = [&mut m.path, &mut m.interface, &mut m.member, &mut m.error_name, &mut m.destination, &mut m.sender];
    for field in names {
        if u.ratio(1, 8)? {
            *field = if u.arbitrary()? { Some(gen_string(u)?) } else { None };
        }
    }
    if u.ratio(1, 8)? {
        m.reply_serial = u.arbitrary()?;
    }
    Ok(m.with_body(body))
}

fn gen_type(u: &mut Unstructured<'_>, depth: u32) -> Result<Type> {
    let leaf = depth >= MAX_DEPTH || u.ratio(2, 3)?;
    if leaf {
        return Ok(u
            .choose(&[
                Type::Byte,
                Type::Bool,
                Type::I16,
                Type::U16,
                Type::I32,
                Type::U32,
                Type::I64,
                Type::U64,
                Type::F64,
                Type::Str,
                Type::ObjectPath,
                Type::Signature,
                Type::Variant,
            ])?
            .clone());
    }
    Ok(match u.int_in_range(0..=2)? {
        0 => Type::Array(Box::new(gen_type(u, depth + 1)?)),
        1 => {
            let n = u.int_in_range(1..=3)?;
            Type::Struct((0..n).map(|_| gen_type(u, depth + 1)).collect::<Result<_>>()?)
        }
        _ => Type::DictEntry(Box::new(gen_type(u, depth + 1)?), Box::new(gen_type(u, depth + 1)?)),
    })
}

fn gen_any(u: &mut Unstructured<'_>, depth: u32) -> Result<Value> {
    let t = gen_type(u, depth)?;
    gen_value(u, &t, depth)
}

fn gen_value(u: &mut Unstructured<'_>, t: &Type, depth: u32) -> Result<Value> {
    Ok(match t {
        Type::Byte => Value::Byte(u.arbitrary()?),
        Type::Bool => Value::Bool(u.arbitrary()?),
        Type::I16 => Value::I16(u.arbitrary()?),
        Type::U16 => Value::U16(u.arbitrary()?),
        Type::I32 => Value::I32(u.arbitrary()?),
        Type::U32 => Value::U32(u.arbitrary()?),
        Type::I64 => Value::I64(u.arbitrary()?),
        Type::U64 => Value::U64(u.arbitrary()?),
        Type::F64 => Value::F64(f64::from_bits(u.arbitrary()?)),
        Type::Str => Value::Str(gen_string(u)?),
        Type::ObjectPath => Value::ObjectPath(if u.arbitrary()? { gen_path(u)? } else { gen_string(u)? }),
        Type::Signature => Value::Signature(gen_string(u)?),
        Type::Variant => Value::variant(gen_any(u, depth + 1)?),
        Type::Array(elem) => {
            let n = u.int_in_range(0..=4)?;
            let mut items = Vec::with_capacity(n);
            for _ in 0..n {
                let item = if u.ratio(1, 32)? { gen_any(u, depth + 1)? } else { gen_value(u, elem, depth + 1)? };
                items.push(item);
            }
            Value::Array((**elem).clone(), items)
        }
        Type::Struct(fields) => {
            Value::Struct(fields.iter().map(|f| gen_value(u, f, depth + 1)).collect::<Result<_>>()?)
        }
        Type::DictEntry(k, v) => Value::DictEntry(Box::new((gen_value(u, k, depth + 1)?, gen_value(u, v, depth + 1)?))),
    })
}

fn gen_string(u: &mut Unstructured<'_>) -> Result<String> {
    let len = u.int_in_range(0..=12)?;
    let bytes = u.bytes(len)?;
    Ok(String::from_utf8_lossy(bytes).into_owned())
}

fn gen_path(u: &mut Unstructured<'_>) -> Result<String> {
    let n = u.int_in_range(0..=3)?;
    let mut p = String::new();
    for _ in 0..n {
        p.push('/');
        let len = u.int_in_range(1..=6)?;
        for _ in 0..len {
            p.push(*u.choose(&['a', 'Z', '0', '_', '9'])?);
        }
    }
    if p.is_empty() {
        p.push('/');
    }
    Ok(p)
}
