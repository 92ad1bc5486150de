//! D-Bus messages: the header (D-Bus specification, "Message Format"),
//! building the messages this client sends and parsing any it receives.

use super::wire::{
    Endian, MAX_ARRAY_LEN, MAX_MESSAGE_LEN, Reader, Type, Value, WireError, Writer, is_object_path, parse_signature,
    signature_of,
};

pub const PROTOCOL_VERSION: u8 = 1;
/// The fixed part of the header plus the header fields' array length:
/// enough to know how long the whole message is.
pub const FIXED_HEADER_LEN: usize = 16;

/// Header flags.
pub const NO_REPLY_EXPECTED: u8 = 0x1;

/// Header field codes.
const PATH: u8 = 1;
const INTERFACE: u8 = 2;
const MEMBER: u8 = 3;
const ERROR_NAME: u8 = 4;
const REPLY_SERIAL: u8 = 5;
const DESTINATION: u8 = 6;
const SENDER: u8 = 7;
const SIGNATURE: u8 = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageKind {
    MethodCall = 1,
    MethodReturn = 2,
    Error = 3,
    Signal = 4,
}

impl MessageKind {
    fn from_u8(b: u8) -> Result<MessageKind, WireError> {
        Ok(match b {
            1 => MessageKind::MethodCall,
            2 => MessageKind::MethodReturn,
            3 => MessageKind::Error,
            4 => MessageKind::Signal,
            other => return Err(WireError::UnknownMessageType(other)),
        })
    }

    fn name(self) -> &'static str {
        match self {
            MessageKind::MethodCall => "method call",
            MessageKind::MethodReturn => "method return",
            MessageKind::Error => "error",
            MessageKind::Signal => "signal",
        }
    }
}

/// A message with its header fields decoded. `serial` is 0 until the
/// connection sends it; the body's signature is derived from `body`.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    pub kind: MessageKind,
    pub flags: u8,
    pub serial: u32,
    pub path: Option<String>,
    pub interface: Option<String>,
    pub member: Option<String>,
    pub error_name: Option<String>,
    pub reply_serial: Option<u32>,
    pub destination: Option<String>,
    pub sender: Option<String>,
    pub body: Vec<Value>,
}

impl Message {
    fn new(kind: MessageKind) -> Message {
        Message {
            kind,
            flags: 0,
            serial: 0,
            path: None,
            interface: None,
            member: None,
            error_name: None,
            reply_serial: None,
            destination: None,
            sender: None,
            body: Vec::new(),
        }
    }

    pub fn method_call(destination: &str, path: &str, interface: &str, member: &str) -> Message {
        Message {
            destination: Some(destination.to_owned()),
            path: Some(path.to_owned()),
            interface: Some(interface.to_owned()),
            member: Some(member.to_owned()),
            ..Message::new(MessageKind::MethodCall)
        }
    }

    pub fn signal(path: &str, interface: &str, member: &str) -> Message {
        Message {
            path: Some(path.to_owned()),
            interface: Some(interface.to_owned()),
            member: Some(member.to_owned()),
            ..Message::new(MessageKind::Signal)
        }
    }

    pub fn method_return(to: &Message) -> Message {
        Message {
            reply_serial: Some(to.serial),
            destination: to.sender.clone(),
            ..Message::new(MessageKind::MethodReturn)
        }
    }

    pub fn error(to: &Message, name: &str, text: &str) -> Message {
        Message {
            error_name: Some(name.to_owned()),
            reply_serial: Some(to.serial),
            destination: to.sender.clone(),
            body: vec![Value::Str(text.to_owned())],
            ..Message::new(MessageKind::Error)
        }
    }

    pub fn with_body(mut self, body: Vec<Value>) -> Message {
        self.body = body;
        self
    }

    pub fn signature(&self) -> String {
        signature_of(&self.body)
    }

    /// Whether this is the signal `interface.member`.
    pub fn is_signal(&self, interface: &str, member: &str) -> bool {
        self.kind == MessageKind::Signal
            && self.interface.as_deref() == Some(interface)
            && self.member.as_deref() == Some(member)
    }

    /// Marshals the message with `serial`, in native byte order.
    pub fn encode(&self, serial: u32) -> Result<Vec<u8>, WireError> {
        if serial == 0 {
            return Err(WireError::ZeroSerial);
        }
        self.check_required()?;
        self.check_names()?;
        let sig = self.signature();
        // Catches what a value tree can hold but a signature cannot: dict
        // entries outside arrays, too deep nesting, over 255 bytes.
        parse_signature(&sig)?;

        let mut body = Writer::new();
        for v in &self.body {
            body.write(v)?;
        }
        let body = body.into_bytes();
        let body_len = u32::try_from(body.len())
            .ok()
            .filter(|&n| n as usize <= MAX_MESSAGE_LEN)
            .ok_or(WireError::MessageTooLong(body.len()))?;

        let mut fields = Vec::new();
        let mut field = |code, v| fields.push(Value::Struct(vec![Value::Byte(code), Value::variant(v)]));
        let text = |s: &Option<String>| s.clone().map(Value::Str);
        let all = [
            (PATH, self.path.clone().map(Value::ObjectPath)),
            (INTERFACE, text(&self.interface)),
            (MEMBER, text(&self.member)),
            (ERROR_NAME, text(&self.error_name)),
            (REPLY_SERIAL, self.reply_serial.map(Value::U32)),
            (DESTINATION, text(&self.destination)),
            (SENDER, text(&self.sender)),
            (SIGNATURE, (!sig.is_empty()).then(|| Value::Signature(sig.clone()))),
        ];
        for (code, v) in all {
            if let Some(v) = v {
                field(code, v);
            }
        }

        let mut w = Writer::new();
        w.put_u8(Endian::NATIVE.marker());
        w.put_u8(self.kind as u8);
        w.put_u8(self.flags);
        w.put_u8(PROTOCOL_VERSION);
        w.put_u32(body_len);
        w.put_u32(serial);
        w.write(&Value::Array(header_field_type(), fields))?;
        w.pad(8);
        let mut out = w.into_bytes();
        out.extend_from_slice(&body);
        if out.len() > MAX_MESSAGE_LEN {
            return Err(WireError::MessageTooLong(out.len()));
        }
        Ok(out)
    }

    /// Parses one complete message. `buf` must hold exactly
    /// [`frame_len`] bytes.
    pub fn decode(buf: &[u8]) -> Result<Message, WireError> {
        let total = frame_len(buf)?;
        if buf.len() != total {
            return match buf.len().checked_sub(total) {
                Some(extra) => Err(WireError::TrailingBytes(extra)),
                None => Err(WireError::Truncated { offset: 0, needed: total, len: buf.len() }),
            };
        }
        let endian = Endian::from_marker(buf[0])?;
        let mut m = Message::new(MessageKind::from_u8(buf[1])?);
        m.flags = buf[2];

        let mut r = Reader::at(buf, 4, endian);
        let body_len = r.u32()? as usize;
        m.serial = r.u32()?;
        if m.serial == 0 {
            return Err(WireError::ZeroSerial);
        }
        let fields = r.read(&Type::Array(Box::new(header_field_type())))?;
        let mut sig = String::new();
        for (code, v) in header_fields(fields) {
            match (code, v) {
                (PATH, Value::ObjectPath(p)) => m.path = Some(p),
                (INTERFACE, Value::Str(s)) => m.interface = Some(s),
                (MEMBER, Value::Str(s)) => m.member = Some(s),
                (ERROR_NAME, Value::Str(s)) => m.error_name = Some(s),
                (REPLY_SERIAL, Value::U32(n)) => m.reply_serial = Some(n),
                (DESTINATION, Value::Str(s)) => m.destination = Some(s),
                (SENDER, Value::Str(s)) => m.sender = Some(s),
                (SIGNATURE, Value::Signature(s)) => sig = s,
                (PATH..=SIGNATURE, other) => {
                    return Err(WireError::FieldType { code, found: other.type_of().to_string() });
                }
                // The spec: unknown header fields must be ignored (UNIX_FDS
                // included: fd passing is never negotiated).
                _ => {}
            }
        }
        r.align(8)?;
        let body = &buf[r.position()..];
        debug_assert_eq!(body.len(), body_len, "frame_len counted the body");

        // The body starts 8-aligned in the message, so its own offsets
        // align the same way.
        let mut br = Reader::new(body, endian);
        for t in parse_signature(&sig)? {
            m.body.push(br.read(&t)?);
        }
        if br.position() != body.len() {
            return Err(WireError::TrailingBytes(body.len() - br.position()));
        }
        m.check_required()?;
        Ok(m)
    }

    fn check_required(&self) -> Result<(), WireError> {
        let missing = |field| Err(WireError::MissingField { kind: self.kind.name(), field });
        let has_path = self.path.is_some();
        let has_member = self.member.is_some();
        match self.kind {
            MessageKind::MethodCall if !has_path => missing("PATH"),
            MessageKind::MethodCall if !has_member => missing("MEMBER"),
            MessageKind::Signal if !has_path => missing("PATH"),
            MessageKind::Signal if self.interface.is_none() => missing("INTERFACE"),
            MessageKind::Signal if !has_member => missing("MEMBER"),
            MessageKind::Error if self.error_name.is_none() => missing("ERROR_NAME"),
            MessageKind::Error | MessageKind::MethodReturn if self.reply_serial.is_none() => missing("REPLY_SERIAL"),
            _ => Ok(()),
        }
    }

    /// Only on what we send: a bus daemon disconnects a client that sends
    /// an invalid name, so catch it here with a clearer error.
    fn check_names(&self) -> Result<(), WireError> {
        let check = |what, name: &Option<String>, ok: fn(&str) -> bool| match name {
            Some(n) if !ok(n) => Err(WireError::BadName { what, name: n.clone() }),
            _ => Ok(()),
        };
        check("object path", &self.path, is_object_path)?;
        check("interface name", &self.interface, is_interface_name)?;
        check("member name", &self.member, is_member_name)?;
        check("error name", &self.error_name, is_interface_name)?;
        check("bus name", &self.destination, is_bus_name)?;
        check("bus name", &self.sender, is_bus_name)
    }
}

/// `a(yv)`'s element.
fn header_field_type() -> Type {
    Type::Struct(vec![Type::Byte, Type::Variant])
}

/// The (code, value) pairs of a header field array read as `a(yv)`.
fn header_fields(fields: Value) -> impl Iterator<Item = (u8, Value)> {
    let items = match fields {
        Value::Array(_, items) => items,
        _ => Vec::new(),
    };
    items.into_iter().filter_map(|f| match f {
        Value::Struct(pair) => match <[Value; 2]>::try_from(pair) {
            Ok([Value::Byte(code), Value::Variant(v)]) => Some((code, *v)),
            _ => None,
        },
        _ => None,
    })
}

/// The length of the whole message that starts with `head`, from its
/// first [`FIXED_HEADER_LEN`] bytes.
pub fn frame_len(head: &[u8]) -> Result<usize, WireError> {
    if head.len() < FIXED_HEADER_LEN {
        return Err(WireError::Truncated { offset: 0, needed: FIXED_HEADER_LEN, len: head.len() });
    }
    let endian = Endian::from_marker(head[0])?;
    if head[3] != PROTOCOL_VERSION {
        return Err(WireError::BadVersion(head[3]));
    }
    let mut r = Reader::at(head, 4, endian);
    let body_len = r.u32()? as usize;
    let _serial = r.u32()?;
    let fields_len = r.u32()? as usize;
    if fields_len > MAX_ARRAY_LEN {
        return Err(WireError::ArrayTooLong(fields_len));
    }
    let total = (FIXED_HEADER_LEN + fields_len).next_multiple_of(8) + body_len;
    if total > MAX_MESSAGE_LEN {
        return Err(WireError::MessageTooLong(total));
    }
    Ok(total)
}

/// `[A-Za-z_][A-Za-z0-9_]*`, as members and interface elements are.
fn is_element(e: &str, digit_first: bool, dash: bool) -> bool {
    let mut bytes = e.bytes();
    let ok = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || (dash && b == b'-');
    match bytes.next() {
        Some(b) if ok(b) && (digit_first || !b.is_ascii_digit()) => bytes.all(ok),
        _ => false,
    }
}

fn is_member_name(s: &str) -> bool {
    s.len() <= 255 && is_element(s, false, false)
}

fn is_interface_name(s: &str) -> bool {
    s.len() <= 255 && s.split('.').count() >= 2 && s.split('.').all(|e| is_element(e, false, false))
}

fn is_bus_name(s: &str) -> bool {
    if s.len() > 255 {
        return false;
    }
    // Unique names (":1.42") may start an element with a digit.
    let (rest, unique) = match s.strip_prefix(':') {
        Some(rest) => (rest, true),
        None => (s, false),
    };
    rest.split('.').count() >= 2 && rest.split('.').all(|e| is_element(e, unique, true))
}

#[cfg(test)]
#[path = "message_tests.rs"]
mod tests;
