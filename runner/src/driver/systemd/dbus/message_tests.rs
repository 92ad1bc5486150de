use super::*;

/// A method call on path "/a", member "M", one string argument "hi".
fn small_call() -> Message {
    Message {
        path: Some("/a".into()),
        member: Some("M".into()),
        body: vec![Value::Str("hi".into())],
        ..Message::new(MessageKind::MethodCall)
    }
}

/// Built by hand from the specification, offsets in the comments.
#[rustfmt::skip]
const SMALL_CALL_LE: [u8; 63] = [
    // 0: byte order 'l', type 1 (METHOD_CALL), flags 0, protocol version 1
    b'l', 1, 0, 1,
    // 4: body length 7; 8: serial 1
    7, 0, 0, 0,
    1, 0, 0, 0,
    // 12: header fields a(yv), 39 bytes counted from 16 (structs are
    // 8-aligned, and 16 already is)
    39, 0, 0, 0,
    // 16: (PATH = 1, variant: signature "o", then at 20 the path "/a")
    1, 1, b'o', 0, 2, 0, 0, 0, b'/', b'a', 0,
    // 27: padding to the next struct at 32
    0, 0, 0, 0, 0,
    // 32: (MEMBER = 3, variant: "s", then at 36 the string "M")
    3, 1, b's', 0, 1, 0, 0, 0, b'M', 0,
    // 42: padding to 48
    0, 0, 0, 0, 0, 0,
    // 48: (SIGNATURE = 8, variant: "g", then the signature "s"); the array
    // ends at 55 = 16 + 39
    8, 1, b'g', 0, 1, b's', 0,
    // 55: the header is padded to 8
    0,
    // 56: the body, string "hi"
    2, 0, 0, 0, b'h', b'i', 0,
];

#[test]
#[cfg(target_endian = "little")]
fn small_method_call_matches_the_golden_bytes() {
    assert_eq!(small_call().encode(1).expect("encodes"), SMALL_CALL_LE);
}

#[test]
fn golden_bytes_decode() {
    let m = Message::decode(&SMALL_CALL_LE).expect("decodes");
    assert_eq!(m, Message { serial: 1, ..small_call() });
    assert_eq!(frame_len(&SMALL_CALL_LE), Ok(63));
}

#[test]
fn big_endian_method_return_decodes() {
    #[rustfmt::skip]
    let bytes = [
        // 'B', type 2 (METHOD_RETURN), flags 0, version 1; body length 4;
        // serial 9; header fields 15 bytes
        b'B', 2, 0, 1, 0, 0, 0, 4, 0, 0, 0, 9, 0, 0, 0, 15,
        // 16: (REPLY_SERIAL = 5, "u", at 20: 5)
        5, 1, b'u', 0, 0, 0, 0, 5,
        // 24: (SIGNATURE = 8, "g", "u"), ends at 31 = 16 + 15
        8, 1, b'g', 0, 1, b'u', 0,
        // 31: padding; 32: body u32 7
        0, 0, 0, 0, 7,
    ];
    let m = Message::decode(&bytes).expect("decodes");
    assert_eq!(m.kind, MessageKind::MethodReturn);
    assert_eq!(m.serial, 9);
    assert_eq!(m.reply_serial, Some(5));
    assert_eq!(m.body, [Value::U32(7)]);
}

#[test]
fn every_message_type_round_trips() {
    let call = Message::method_call("org.example.Dest", "/org/example", "org.example.Iface", "Frob").with_body(vec![
        Value::Str("x".into()),
        Value::Array(Type::U64, vec![]),
        Value::I32(-1),
    ]);
    let mut call_sent = call.clone();
    call_sent.serial = 3;
    call_sent.sender = Some(":1.7".into());
    let ret = Message::method_return(&call_sent).with_body(vec![Value::ObjectPath("/j/1".into())]);
    let err = Message::error(&call_sent, "org.example.Error.Nope", "no");
    let sig = Message::signal("/org/example", "org.example.Iface", "Changed");
    for m in [call, call_sent.clone(), ret, err, sig] {
        let back = Message::decode(&m.encode(77).expect("encodes")).expect("decodes");
        assert_eq!(back, Message { serial: 77, ..m });
    }
    let err = Message::error(&call_sent, "org.example.Error.Nope", "no");
    assert_eq!(err.reply_serial, Some(3));
    assert_eq!(err.destination.as_deref(), Some(":1.7"));
}

#[test]
fn encode_refuses_invalid_messages() {
    let call = || Message::method_call("org.example.Dest", "/org/example", "org.example.Iface", "Frob");
    assert_eq!(call().encode(0), Err(WireError::ZeroSerial));
    let no_path = Message { path: None, ..call() };
    assert!(matches!(no_path.encode(1), Err(WireError::MissingField { field: "PATH", .. })));
    let reply = Message { reply_serial: None, ..Message::method_return(&call()) };
    assert!(matches!(reply.encode(1), Err(WireError::MissingField { field: "REPLY_SERIAL", .. })));
    for bad in [
        Message { interface: Some("nodot".into()), ..call() },
        Message { interface: Some("a..b".into()), ..call() },
        Message { member: Some("1abc".into()), ..call() },
        Message { member: Some("a.b".into()), ..call() },
        Message { destination: Some("org".into()), ..call() },
        Message { path: Some("/a/".into()), ..call() },
    ] {
        assert!(matches!(bad.encode(1), Err(WireError::BadName { .. })), "{bad:?}");
    }
    let dict_entry_alone = call().with_body(vec![Value::DictEntry(Box::new((Value::Byte(1), Value::Byte(2))))]);
    assert!(matches!(dict_entry_alone.encode(1), Err(WireError::BadSignature { .. })));
    // Unique names may start an element with a digit.
    assert!(Message { destination: Some(":1.42".into()), ..call() }.encode(1).is_ok());
}

/// A message with hand-picked header fields, `(code, value)`.
fn raw(kind: u8, fields: Vec<(u8, Value)>, body: &[u8]) -> Vec<u8> {
    let fields = fields.into_iter().map(|(c, v)| Value::Struct(vec![Value::Byte(c), Value::variant(v)])).collect();
    let mut w = Writer::new();
    for b in [Endian::NATIVE.marker(), kind, 0, 1] {
        w.put_u8(b);
    }
    w.put_u32(body.len() as u32);
    w.put_u32(1);
    w.write(&Value::Array(header_field_type(), fields)).expect("fields encode");
    w.pad(8);
    let mut out = w.into_bytes();
    out.extend_from_slice(body);
    out
}

#[test]
fn malformed_messages_are_errors() {
    let path = (PATH, Value::ObjectPath("/a".into()));
    let member = (MEMBER, Value::Str("M".into()));
    let sig_u = (SIGNATURE, Value::Signature("u".into()));
    // A well-formed baseline, to show the cases below fail for their reason.
    assert!(Message::decode(&raw(1, vec![path.clone(), member.clone()], &[])).is_ok());

    let missing_member = raw(1, vec![path.clone()], &[]);
    assert!(matches!(Message::decode(&missing_member), Err(WireError::MissingField { field: "MEMBER", .. })));
    let path_as_string = raw(1, vec![(PATH, Value::Str("/a".into())), member.clone()], &[]);
    assert_eq!(Message::decode(&path_as_string), Err(WireError::FieldType { code: PATH, found: "s".into() }));
    let body_short = raw(1, vec![path.clone(), member.clone(), sig_u.clone()], &[1, 0]);
    assert!(matches!(Message::decode(&body_short), Err(WireError::Truncated { .. })));
    let body_long = raw(1, vec![path.clone(), member.clone(), sig_u.clone()], &[1, 0, 0, 0, 9]);
    assert_eq!(Message::decode(&body_long), Err(WireError::TrailingBytes(1)));
    let unknown_type = raw(9, vec![path.clone(), member.clone()], &[]);
    assert_eq!(Message::decode(&unknown_type), Err(WireError::UnknownMessageType(9)));

    let mut bad_endian = SMALL_CALL_LE;
    bad_endian[0] = b'x';
    assert_eq!(frame_len(&bad_endian), Err(WireError::BadEndian(b'x')));
    let mut bad_version = SMALL_CALL_LE;
    bad_version[3] = 2;
    assert_eq!(Message::decode(&bad_version), Err(WireError::BadVersion(2)));
    let mut zero_serial = SMALL_CALL_LE;
    zero_serial[8] = 0;
    assert_eq!(Message::decode(&zero_serial), Err(WireError::ZeroSerial));
    let mut huge_fields = SMALL_CALL_LE;
    huge_fields[12..16].copy_from_slice(&[0xff; 4]);
    assert!(matches!(frame_len(&huge_fields), Err(WireError::ArrayTooLong(_))));
    let mut huge_body = SMALL_CALL_LE;
    huge_body[4..8].copy_from_slice(&[0xff, 0xff, 0xff, 0x7f]);
    assert!(matches!(frame_len(&huge_body), Err(WireError::MessageTooLong(_))));
    assert!(matches!(frame_len(&SMALL_CALL_LE[..10]), Err(WireError::Truncated { .. })));
    assert!(matches!(Message::decode(&SMALL_CALL_LE[..62]), Err(WireError::Truncated { .. })));
}

#[test]
fn unknown_header_fields_are_ignored() {
    let bytes = raw(
        4,
        vec![
            (PATH, Value::ObjectPath("/a".into())),
            (INTERFACE, Value::Str("a.b".into())),
            (MEMBER, Value::Str("S".into())),
            (200, Value::Array(Type::Str, vec![])),
        ],
        &[],
    );
    let m = Message::decode(&bytes).expect("decodes");
    assert!(m.is_signal("a.b", "S"));
}

#[test]
fn every_single_byte_corruption_is_handled() {
    let mut state = 7u64;
    for i in 0..SMALL_CALL_LE.len() {
        for _ in 0..32 {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let mut bytes = SMALL_CALL_LE;
            bytes[i] = (state >> 56) as u8;
            // Either outcome is fine; panicking is not.
            let _ = Message::decode(&bytes);
        }
    }
}
