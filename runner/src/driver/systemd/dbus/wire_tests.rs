use super::*;

fn encode(v: &Value) -> Vec<u8> {
    let mut w = Writer::new();
    w.write(v).expect("value encodes");
    w.into_bytes()
}

fn round_trip(v: &Value) {
    let bytes = encode(v);
    let mut r = Reader::new(&bytes, Endian::NATIVE);
    assert_eq!(r.read(&v.type_of()).as_ref(), Ok(v), "{v:?}");
    assert_eq!(r.position(), bytes.len(), "{v:?} consumed exactly");
}

fn read(bytes: &[u8], sig: &str) -> Result<Value, WireError> {
    Reader::new(bytes, Endian::Little).read(&parse_single(sig).expect("test signature"))
}

fn strs(items: &[&str]) -> Value {
    Value::Array(Type::Str, items.iter().map(|s| Value::Str((*s).into())).collect())
}

#[test]
fn every_basic_type_round_trips() {
    for v in [
        Value::Byte(0xff),
        Value::Bool(true),
        Value::Bool(false),
        Value::I16(-2),
        Value::U16(0xfffe),
        Value::I32(-5),
        Value::U32(0xdead_beef),
        Value::I64(i64::MIN),
        Value::U64(u64::MAX),
        Value::F64(-1.5),
        Value::Str(String::new()),
        Value::Str("héllo".into()),
        Value::ObjectPath("/".into()),
        Value::ObjectPath("/org/freedesktop/systemd1/job/42".into()),
        Value::Signature(String::new()),
        Value::Signature("a{sv}(ia(sa(sv)))".into()),
    ] {
        round_trip(&v);
        // The same value after a byte: exercises every alignment.
        round_trip(&Value::Struct(vec![Value::Byte(1), v]));
    }
}

#[test]
fn nested_arrays_of_structs_of_variants_round_trip() {
    let sv = Type::Struct(vec![Type::Str, Type::Variant]);
    let props = Value::Array(
        sv.clone(),
        vec![
            Value::Struct(vec![
                Value::Str("PIDs".into()),
                Value::variant(Value::Array(Type::U32, vec![Value::U32(7)])),
            ]),
            Value::Struct(vec![Value::Str("After".into()), Value::variant(strs(&["a.slice", "b.scope"]))]),
            Value::Struct(vec![
                Value::Str("Nested".into()),
                Value::variant(Value::variant(Value::Struct(vec![Value::Byte(3), Value::U64(9)]))),
            ]),
            Value::Struct(vec![Value::Str("Empty".into()), Value::variant(Value::Array(sv.clone(), vec![]))]),
        ],
    );
    let aux_t = Type::Struct(vec![Type::Str, Type::Array(Box::new(sv.clone()))]);
    let aux = Value::Array(aux_t.clone(), vec![Value::Struct(vec![Value::Str("x.service".into()), props.clone()])]);
    let dict_t = Type::DictEntry(Box::new(Type::Str), Box::new(Type::Variant));
    let dict = Value::Array(
        dict_t,
        vec![
            Value::DictEntry(Box::new((Value::Str("k".into()), Value::variant(Value::F64(0.25))))),
            Value::DictEntry(Box::new((Value::Str("b".into()), Value::variant(Value::Bool(true))))),
        ],
    );
    let arrays_of_arrays = Value::Array(
        Type::Array(Box::new(Type::I64)),
        vec![Value::Array(Type::I64, vec![Value::I64(-1)]), Value::Array(Type::I64, vec![])],
    );
    for v in [&props, &aux, &dict, &arrays_of_arrays] {
        round_trip(v);
    }
    assert_eq!(aux.type_of().to_string(), "a(sa(sv))");
    assert_eq!(dict.type_of().to_string(), "a{sv}");
}

#[test]
fn empty_array_of_8_aligned_elements_is_padded() {
    // Length 0 at 0..4, then padding to the element alignment, 4..8, which
    // the length does not count.
    assert_eq!(encode(&Value::Array(Type::U64, vec![])), [0u8; 8]);
    let v = Value::Struct(vec![Value::Byte(1), Value::Array(Type::Struct(vec![Type::Byte]), vec![]), Value::Byte(2)]);
    // Byte at 0, pad to 4, length at 4..8 (already 8-aligned), byte at 8.
    assert_eq!(encode(&v), [1, 0, 0, 0, 0, 0, 0, 0, 2]);
    round_trip(&v);
    // u64 at 0..8, length at 8..12, padding 12..16 though there are no
    // elements, byte at 16.
    let v = Value::Struct(vec![Value::U64(5), Value::Array(Type::U64, vec![]), Value::Byte(9)]);
    let bytes = encode(&v);
    assert_eq!(bytes[8..17], [0, 0, 0, 0, 0, 0, 0, 0, 9], "{bytes:?}");
    round_trip(&v);
}

#[test]
fn big_endian_input_is_read() {
    let bytes = [0, 0, 0, 3, b'a', b'b', b'c', 0, 0x12, 0x34, 0x56, 0x78];
    let mut r = Reader::new(&bytes, Endian::Big);
    assert_eq!(r.read(&Type::Str), Ok(Value::Str("abc".into())));
    assert_eq!(r.read(&Type::U32), Ok(Value::U32(0x1234_5678)));
}

#[test]
fn signatures_parse_and_print_back() {
    for sig in ["", "y", "a{sv}", "ssa(sv)a(sa(sv))", "aai", "(ya{ox})v", "a{ya(dd)}"] {
        let printed: String = parse_signature(sig).expect(sig).iter().map(Type::to_string).collect();
        assert_eq!(printed, sig);
    }
}

#[test]
fn bad_signatures_are_rejected() {
    let deep_arrays = "a".repeat(33) + "y";
    let deep_structs = "(".repeat(33) + "y" + &")".repeat(33);
    let long = "y".repeat(256);
    for sig in [
        "a",
        "(",
        "(y",
        ")",
        "()",
        "{sv}",
        "a{vs}",
        "a{s}",
        "a{sss}",
        "a{sv",
        "h",
        "z",
        "a{(y)s}",
        deep_arrays.as_str(),
        deep_structs.as_str(),
        long.as_str(),
    ] {
        assert!(
            matches!(parse_signature(sig), Err(WireError::BadSignature { .. })),
            "{sig:?} -> {:?}",
            parse_signature(sig)
        );
    }
    assert!(parse_signature(&("a".repeat(32) + "y")).is_ok());
    assert!(matches!(parse_single("ss"), Err(WireError::BadSignature { .. })));
    assert!(matches!(parse_single(""), Err(WireError::BadSignature { .. })));
}

#[test]
fn malformed_values_are_errors() {
    let cases: &[(&[u8], &str)] = &[
        // Truncated: a u32 needs four bytes.
        (&[1, 2], "u"),
        // String length 10, three bytes present.
        (&[10, 0, 0, 0, b'a', b'b', 0], "s"),
        // Not NUL-terminated.
        (&[2, 0, 0, 0, b'a', b'b', b'c'], "s"),
        // NUL inside.
        (&[3, 0, 0, 0, b'a', 0, b'b', 0], "s"),
        // Not UTF-8.
        (&[2, 0, 0, 0, 0xc3, 0x28, 0], "s"),
        // Boolean 2.
        (&[2, 0, 0, 0], "b"),
        // Invalid object paths.
        (&[3, 0, 0, 0, b'/', b'a', b'/', 0], "o"),
        (&[1, 0, 0, 0, b'a', 0], "o"),
        // Signature of a variant holding two types, and an unknown code.
        (&[2, b's', b's', 0], "v"),
        (&[1, b'z', 0], "v"),
        // Signature not NUL-terminated.
        (&[1, b'y', 1], "g"),
        // Non-zero padding between a byte and a u32.
        (&[1, 7, 0, 0, 1, 0, 0, 0], "(yu)"),
        // Array length beyond the 64 MiB limit, and one beyond the buffer.
        (&[0xff, 0xff, 0xff, 0xff], "ay"),
        (&[0, 0, 0, 4], "ay"),
        (&[100, 0, 0, 0, 1, 2, 3], "ay"),
        // Length 4 but the u64 element takes 8: elements overrun the array.
        (&[4, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8], "at"),
    ];
    for (bytes, sig) in cases {
        assert!(read(bytes, sig).is_err(), "{sig} {bytes:?} -> {:?}", read(bytes, sig));
    }
    assert_eq!(read(&[2, 0, 0, 0], "b"), Err(WireError::BadBool { offset: 0, value: 2 }));
    assert_eq!(read(&[0xff, 0xff, 0xff, 0xff], "ay"), Err(WireError::ArrayTooLong(0xffff_ffff)));
    assert_eq!(read(&[2, 0, 0, 0, 0xc3, 0x28, 0], "s"), Err(WireError::NotUtf8(4)));
    assert_eq!(read(&[4, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8], "at"), Err(WireError::ArrayOverrun(12)));
}

#[test]
fn variants_nested_past_the_limit_are_refused() {
    // Each level is a variant whose signature is "v": without a depth limit
    // this would recurse as deep as the input is long.
    let mut bytes = [1, b'v', 0].repeat(10_000);
    bytes.push(0);
    assert_eq!(read(&bytes, "v"), Err(WireError::TooDeep));
}

#[test]
fn writer_rejects_what_it_cannot_encode() {
    let mut w = Writer::new();
    let mixed = Value::Array(Type::U32, vec![Value::U32(1), Value::Str("x".into())]);
    assert!(matches!(w.write(&mixed), Err(WireError::ElementType { .. })));
    assert_eq!(Writer::new().write(&Value::Str("a\0b".into())), Err(WireError::InteriorNul(0)));
    assert!(matches!(Writer::new().write(&Value::ObjectPath("/a/".into())), Err(WireError::BadObjectPath(_))));
    assert!(matches!(Writer::new().write(&Value::Struct(vec![])), Err(WireError::BadSignature { .. })));
    assert!(matches!(Writer::new().write(&Value::Signature("a{".into())), Err(WireError::BadSignature { .. })));
}

/// A small deterministic generator: no dependency for fuzzing.
fn lcg(state: &mut u64) -> u8 {
    *state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
    (*state >> 33) as u8
}

#[test]
fn random_bytes_never_panic() {
    let types: Vec<Type> =
        ["v", "a{sv}", "a(sa(sv))", "(ybnqiuxtdsog)", "aav"].iter().map(|s| parse_single(s).expect(s)).collect();
    // Small lengths, type codes and brackets: likely to get deep before failing.
    let alphabet = b"\x00\x01\x02\x03\x04\x08\xffvasgyoit{}()";
    let mut state = 1;
    for len in 0..200 {
        for _ in 0..20 {
            let bytes: Vec<u8> = (0..len).map(|_| alphabet[usize::from(lcg(&mut state)) % alphabet.len()]).collect();
            for t in &types {
                for endian in [Endian::Little, Endian::Big] {
                    let _ = Reader::new(&bytes, endian).read(t);
                }
            }
        }
    }
}
