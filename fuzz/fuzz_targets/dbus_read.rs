//! The D-Bus reader on arbitrary bytes from the bus.
//!
//! Input byte 0: bit 0 picks the byte order, the rest is ignored. Then
//! either a whole message (`Message::decode`), and also a signature (its
//! length byte, then its text) followed by values of that signature. What
//! reads must marshal again: a message re-encodes and decodes to itself,
//! and values read in native byte order marshal to exactly the bytes they
//! were read from (the wire format has one encoding per value).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_runner::fuzzing::{Endian, Message, Reader, Writer, parse_signature};
use mcp_runner_fuzz::{same_message, same_value};

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else { return };
    message(rest);
    let endian = if flags & 1 == 0 { Endian::Little } else { Endian::Big };
    values(rest, endian);
});

fn message(bytes: &[u8]) {
    let Ok(m) = Message::decode(bytes) else { return };
    // Names are only checked on what this client sends: a message from a
    // peer with a name it would not send itself may not encode.
    let Ok(encoded) = m.encode(m.serial) else { return };
    let again = Message::decode(&encoded).expect("an encoded message decodes");
    assert!(same_message(&m, &again), "{m:?}\n{again:?}");
}

fn values(bytes: &[u8], endian: Endian) {
    let Some((&len, rest)) = bytes.split_first() else { return };
    let Some((sig, body)) = rest.split_at_checked(usize::from(len)) else { return };
    let Ok(sig) = std::str::from_utf8(sig) else { return };
    let Ok(types) = parse_signature(sig) else { return };
    let mut r = Reader::new(body, endian);
    let mut read = Vec::new();
    for t in &types {
        match r.read(t) {
            Ok(v) => read.push(v),
            Err(_) => return,
        }
    }
    let mut w = Writer::new();
    for v in &read {
        w.write(v).expect("a value read marshals");
    }
    let written = w.into_bytes();
    if endian == Endian::NATIVE {
        assert_eq!(written, &body[..r.position()], "not the bytes it was read from");
    }
    let mut back = Reader::new(&written, Endian::NATIVE);
    for (t, v) in types.iter().zip(&read) {
        let again = back.read(t).expect("what was written reads");
        assert!(same_value(v, &again), "{v:?}\n{again:?}");
    }
    assert_eq!(back.position(), written.len());
}
