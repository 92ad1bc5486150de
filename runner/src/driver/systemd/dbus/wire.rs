//! The D-Bus type system and wire format (D-Bus specification, "Type
//! System" and "Marshaling (Wire Format)").
//!
//! Reading honours the byte order the peer announced; writing always uses
//! the native order, which the message header then announces. Alignment is
//! relative to the start of the buffer, so a [`Writer`] or [`Reader`] must
//! start at an 8-aligned offset of the message: the header and the body
//! both do. Everything read is validated: malformed input is a
//! [`WireError`], never a panic.

use std::fmt;

/// Largest array, in bytes of its elements.
pub const MAX_ARRAY_LEN: usize = 1 << 26;
/// Largest message, header and body together.
pub const MAX_MESSAGE_LEN: usize = 1 << 27;
pub const MAX_SIGNATURE_LEN: usize = 255;
const MAX_ARRAY_DEPTH: usize = 32;
const MAX_STRUCT_DEPTH: usize = 32;
/// Containers nested in one value, variants included. The spec's limit;
/// it also bounds the recursion a hostile message can cause.
const MAX_DEPTH: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("truncated: {needed} bytes needed at offset {offset}, {len} available")]
    Truncated { offset: usize, needed: usize, len: usize },
    #[error("invalid signature `{sig}`: {reason}")]
    BadSignature { sig: String, reason: &'static str },
    #[error("array of {0} bytes exceeds the 64 MiB limit")]
    ArrayTooLong(usize),
    #[error("message of {0} bytes exceeds the 128 MiB limit")]
    MessageTooLong(usize),
    #[error("array elements overrun its declared length at offset {0}")]
    ArrayOverrun(usize),
    #[error("non-zero padding at offset {0}")]
    BadPadding(usize),
    #[error("boolean at offset {offset} is {value}, not 0 or 1")]
    BadBool { offset: usize, value: u32 },
    #[error("string at offset {0} is not valid UTF-8")]
    NotUtf8(usize),
    #[error("string at offset {0} is not NUL-terminated")]
    NotNulTerminated(usize),
    #[error("string at offset {0} contains a NUL byte")]
    InteriorNul(usize),
    #[error("invalid object path `{0}`")]
    BadObjectPath(String),
    #[error("values nested deeper than {MAX_DEPTH} containers")]
    TooDeep,
    #[error("element of type `{found}` in an array of `{expected}`")]
    ElementType { expected: String, found: String },
    #[error("invalid {what} `{name}`")]
    BadName { what: &'static str, name: String },
    #[error("unknown byte order marker {0:#04x}")]
    BadEndian(u8),
    #[error("unsupported protocol version {0}")]
    BadVersion(u8),
    #[error("unknown message type {0}")]
    UnknownMessageType(u8),
    #[error("message serial is 0")]
    ZeroSerial,
    #[error("header field {code} has type `{found}`")]
    FieldType { code: u8, found: String },
    #[error("{kind} message lacks the {field} header field")]
    MissingField { kind: &'static str, field: &'static str },
    #[error("{0} bytes follow the body")]
    TrailingBytes(usize),
}

/// Byte order of a message, as announced by its first byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endian {
    Little,
    Big,
}

impl Endian {
    pub const NATIVE: Endian = if cfg!(target_endian = "big") { Endian::Big } else { Endian::Little };

    pub fn marker(self) -> u8 {
        match self {
            Endian::Little => b'l',
            Endian::Big => b'B',
        }
    }

    pub fn from_marker(b: u8) -> Result<Endian, WireError> {
        match b {
            b'l' => Ok(Endian::Little),
            b'B' => Ok(Endian::Big),
            other => Err(WireError::BadEndian(other)),
        }
    }
}

/// One complete type of a signature. `h` (Unix fd) is left out: file
/// descriptor passing is not negotiated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Type {
    Byte,
    Bool,
    I16,
    U16,
    I32,
    U32,
    I64,
    U64,
    F64,
    Str,
    ObjectPath,
    Signature,
    Variant,
    Array(Box<Type>),
    Struct(Vec<Type>),
    DictEntry(Box<Type>, Box<Type>),
}

impl Type {
    pub fn alignment(&self) -> usize {
        match self {
            Type::Byte | Type::Signature | Type::Variant => 1,
            Type::I16 | Type::U16 => 2,
            Type::Bool | Type::I32 | Type::U32 | Type::Str | Type::ObjectPath | Type::Array(_) => 4,
            Type::I64 | Type::U64 | Type::F64 | Type::Struct(_) | Type::DictEntry(..) => 8,
        }
    }

    /// Basic types are the only ones allowed as dict entry keys.
    pub fn is_basic(&self) -> bool {
        !matches!(self, Type::Variant | Type::Array(_) | Type::Struct(_) | Type::DictEntry(..))
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let code = match self {
            Type::Byte => "y",
            Type::Bool => "b",
            Type::I16 => "n",
            Type::U16 => "q",
            Type::I32 => "i",
            Type::U32 => "u",
            Type::I64 => "x",
            Type::U64 => "t",
            Type::F64 => "d",
            Type::Str => "s",
            Type::ObjectPath => "o",
            Type::Signature => "g",
            Type::Variant => "v",
            Type::Array(t) => return write!(f, "a{t}"),
            Type::Struct(ts) => {
                f.write_str("(")?;
                for t in ts {
                    write!(f, "{t}")?;
                }
                return f.write_str(")");
            }
            Type::DictEntry(k, v) => return write!(f, "{{{k}{v}}}"),
        };
        f.write_str(code)
    }
}

/// Parses a signature into its complete types, enforcing the spec's limits.
pub fn parse_signature(sig: &str) -> Result<Vec<Type>, WireError> {
    let mut p = SigParser { sig, pos: 0, arrays: 0, structs: 0 };
    if sig.len() > MAX_SIGNATURE_LEN {
        return Err(p.error("longer than 255 bytes"));
    }
    let mut types = Vec::new();
    while p.pos < sig.len() {
        types.push(p.complete_type()?);
    }
    Ok(types)
}

/// Parses a signature that must hold exactly one complete type, as a
/// variant's does.
pub fn parse_single(sig: &str) -> Result<Type, WireError> {
    let mut types = parse_signature(sig)?;
    match types.pop() {
        Some(t) if types.is_empty() => Ok(t),
        _ => Err(WireError::BadSignature { sig: sig.to_owned(), reason: "not a single complete type" }),
    }
}

struct SigParser<'a> {
    sig: &'a str,
    pos: usize,
    arrays: usize,
    structs: usize,
}

impl SigParser<'_> {
    fn error(&self, reason: &'static str) -> WireError {
        WireError::BadSignature { sig: self.sig.to_owned(), reason }
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.sig.as_bytes().get(self.pos).copied();
        self.pos += 1;
        b
    }

    fn peek(&self) -> Option<u8> {
        self.sig.as_bytes().get(self.pos).copied()
    }

    fn complete_type(&mut self) -> Result<Type, WireError> {
        let Some(code) = self.next() else { return Err(self.error("ends inside a container")) };
        Ok(match code {
            b'y' => Type::Byte,
            b'b' => Type::Bool,
            b'n' => Type::I16,
            b'q' => Type::U16,
            b'i' => Type::I32,
            b'u' => Type::U32,
            b'x' => Type::I64,
            b't' => Type::U64,
            b'd' => Type::F64,
            b's' => Type::Str,
            b'o' => Type::ObjectPath,
            b'g' => Type::Signature,
            b'v' => Type::Variant,
            b'a' => {
                self.arrays += 1;
                if self.arrays > MAX_ARRAY_DEPTH {
                    return Err(self.error("arrays nested deeper than 32"));
                }
                let elem = if self.peek() == Some(b'{') {
                    self.pos += 1;
                    self.dict_entry()?
                } else {
                    self.complete_type()?
                };
                self.arrays -= 1;
                Type::Array(Box::new(elem))
            }
            b'(' => {
                self.enter_struct()?;
                let mut fields = Vec::new();
                loop {
                    match self.peek() {
                        None => return Err(self.error("unclosed struct")),
                        Some(b')') => break,
                        Some(_) => fields.push(self.complete_type()?),
                    }
                }
                self.pos += 1;
                if fields.is_empty() {
                    return Err(self.error("empty struct"));
                }
                self.structs -= 1;
                Type::Struct(fields)
            }
            b'{' => return Err(self.error("dict entry outside an array")),
            b')' | b'}' => return Err(self.error("unbalanced brackets")),
            b'h' => return Err(self.error("unix fd passing is not supported")),
            _ => return Err(self.error("unknown type code")),
        })
    }

    /// After `a{`: a basic key, one value type, `}`.
    fn dict_entry(&mut self) -> Result<Type, WireError> {
        self.enter_struct()?;
        if self.peek() == Some(b'}') {
            return Err(self.error("dict entry must hold two types"));
        }
        let key = self.complete_type()?;
        if !key.is_basic() {
            return Err(self.error("dict entry key must be a basic type"));
        }
        if self.peek() == Some(b'}') {
            return Err(self.error("dict entry must hold two types"));
        }
        let value = self.complete_type()?;
        if self.next() != Some(b'}') {
            return Err(self.error("dict entry must hold two types"));
        }
        self.structs -= 1;
        Ok(Type::DictEntry(Box::new(key), Box::new(value)))
    }

    /// Dict entries count as structs towards the depth limit.
    fn enter_struct(&mut self) -> Result<(), WireError> {
        self.structs += 1;
        if self.structs > MAX_STRUCT_DEPTH {
            return Err(self.error("structs nested deeper than 32"));
        }
        Ok(())
    }
}

/// A value read from or written to the wire. An array carries its element
/// type so that an empty array still has a signature.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Byte(u8),
    Bool(bool),
    I16(i16),
    U16(u16),
    I32(i32),
    U32(u32),
    I64(i64),
    U64(u64),
    F64(f64),
    Str(String),
    ObjectPath(String),
    Signature(String),
    Array(Type, Vec<Value>),
    Struct(Vec<Value>),
    DictEntry(Box<(Value, Value)>),
    Variant(Box<Value>),
}

impl Value {
    pub fn variant(v: Value) -> Value {
        Value::Variant(Box::new(v))
    }

    pub fn type_of(&self) -> Type {
        match self {
            Value::Byte(_) => Type::Byte,
            Value::Bool(_) => Type::Bool,
            Value::I16(_) => Type::I16,
            Value::U16(_) => Type::U16,
            Value::I32(_) => Type::I32,
            Value::U32(_) => Type::U32,
            Value::I64(_) => Type::I64,
            Value::U64(_) => Type::U64,
            Value::F64(_) => Type::F64,
            Value::Str(_) => Type::Str,
            Value::ObjectPath(_) => Type::ObjectPath,
            Value::Signature(_) => Type::Signature,
            Value::Array(t, _) => Type::Array(Box::new(t.clone())),
            Value::Struct(vs) => Type::Struct(vs.iter().map(Value::type_of).collect()),
            Value::DictEntry(kv) => Type::DictEntry(Box::new(kv.0.type_of()), Box::new(kv.1.type_of())),
            Value::Variant(_) => Type::Variant,
        }
    }

    /// Whether this value has type `t`, without building its type.
    fn matches(&self, t: &Type) -> bool {
        match (self, t) {
            (Value::Array(e, _), Type::Array(te)) => e == &**te,
            (Value::Struct(vs), Type::Struct(ts)) => {
                vs.len() == ts.len() && vs.iter().zip(ts).all(|(v, t)| v.matches(t))
            }
            (Value::DictEntry(kv), Type::DictEntry(k, v)) => kv.0.matches(k) && kv.1.matches(v),
            (Value::Byte(_), Type::Byte)
            | (Value::Bool(_), Type::Bool)
            | (Value::I16(_), Type::I16)
            | (Value::U16(_), Type::U16)
            | (Value::I32(_), Type::I32)
            | (Value::U32(_), Type::U32)
            | (Value::I64(_), Type::I64)
            | (Value::U64(_), Type::U64)
            | (Value::F64(_), Type::F64)
            | (Value::Str(_), Type::Str)
            | (Value::ObjectPath(_), Type::ObjectPath)
            | (Value::Signature(_), Type::Signature)
            | (Value::Variant(_), Type::Variant) => true,
            _ => false,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) | Value::ObjectPath(s) | Value::Signature(s) => Some(s),
            _ => None,
        }
    }
}

/// The signature of a sequence of values, e.g. a message body.
pub fn signature_of(values: &[Value]) -> String {
    values.iter().map(|v| v.type_of().to_string()).collect()
}

pub fn is_object_path(p: &str) -> bool {
    if p == "/" {
        return true;
    }
    let Some(rest) = p.strip_prefix('/') else { return false };
    rest.split('/').all(|e| !e.is_empty() && e.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
}

/// Marshals values in native byte order.
#[derive(Debug, Default)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    pub fn new() -> Writer {
        Writer::default()
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    pub fn pad(&mut self, align: usize) {
        let target = self.buf.len().next_multiple_of(align);
        self.buf.resize(target, 0);
    }

    pub fn put_u8(&mut self, b: u8) {
        self.buf.push(b);
    }

    pub fn put_u32(&mut self, n: u32) {
        self.pad(4);
        self.buf.extend_from_slice(&n.to_ne_bytes());
    }

    pub fn write(&mut self, v: &Value) -> Result<(), WireError> {
        self.value(v, 0)
    }

    fn value(&mut self, v: &Value, depth: usize) -> Result<(), WireError> {
        match v {
            Value::Byte(b) => self.buf.push(*b),
            Value::Bool(b) => self.put_u32(u32::from(*b)),
            Value::I16(n) => self.fixed(&n.to_ne_bytes()),
            Value::U16(n) => self.fixed(&n.to_ne_bytes()),
            Value::I32(n) => self.fixed(&n.to_ne_bytes()),
            Value::U32(n) => self.fixed(&n.to_ne_bytes()),
            Value::I64(n) => self.fixed(&n.to_ne_bytes()),
            Value::U64(n) => self.fixed(&n.to_ne_bytes()),
            Value::F64(n) => self.fixed(&n.to_ne_bytes()),
            Value::Str(s) => self.string(s)?,
            Value::ObjectPath(p) => {
                if !is_object_path(p) {
                    return Err(WireError::BadObjectPath(p.clone()));
                }
                self.string(p)?;
            }
            Value::Signature(s) => {
                parse_signature(s)?;
                self.signature(s)?;
            }
            Value::Array(elem, items) => {
                let depth = nest(depth)?;
                self.pad(4);
                let len_at = self.buf.len();
                self.put_u32(0);
                // The padding to the element's alignment is there even
                // when the array is empty, and is not counted in its length.
                self.pad(elem.alignment());
                let start = self.buf.len();
                for item in items {
                    if !item.matches(elem) {
                        return Err(WireError::ElementType {
                            expected: elem.to_string(),
                            found: item.type_of().to_string(),
                        });
                    }
                    self.value(item, depth)?;
                }
                let len = self.buf.len() - start;
                let len32 = u32::try_from(len).ok().filter(|_| len <= MAX_ARRAY_LEN);
                let Some(len32) = len32 else { return Err(WireError::ArrayTooLong(len)) };
                self.buf[len_at..len_at + 4].copy_from_slice(&len32.to_ne_bytes());
            }
            Value::Struct(fields) => {
                let depth = nest(depth)?;
                if fields.is_empty() {
                    return Err(WireError::BadSignature { sig: "()".into(), reason: "empty struct" });
                }
                self.pad(8);
                for f in fields {
                    self.value(f, depth)?;
                }
            }
            Value::DictEntry(kv) => {
                let depth = nest(depth)?;
                self.pad(8);
                self.value(&kv.0, depth)?;
                self.value(&kv.1, depth)?;
            }
            Value::Variant(inner) => {
                let depth = nest(depth)?;
                let sig = inner.type_of().to_string();
                parse_single(&sig)?;
                self.signature(&sig)?;
                self.value(inner, depth)?;
            }
        }
        Ok(())
    }

    /// A fixed-size value is aligned to its own size.
    fn fixed(&mut self, bytes: &[u8]) {
        self.pad(bytes.len());
        self.buf.extend_from_slice(bytes);
    }

    fn string(&mut self, s: &str) -> Result<(), WireError> {
        if s.as_bytes().contains(&0) {
            return Err(WireError::InteriorNul(self.buf.len()));
        }
        let len = u32::try_from(s.len()).map_err(|_| WireError::MessageTooLong(s.len()))?;
        self.put_u32(len);
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
        Ok(())
    }

    fn signature(&mut self, s: &str) -> Result<(), WireError> {
        let Ok(len) = u8::try_from(s.len()) else {
            return Err(WireError::BadSignature { sig: s.to_owned(), reason: "longer than 255 bytes" });
        };
        self.buf.push(len);
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
        Ok(())
    }
}

fn nest(depth: usize) -> Result<usize, WireError> {
    if depth >= MAX_DEPTH { Err(WireError::TooDeep) } else { Ok(depth + 1) }
}

/// Unmarshals values in the byte order the message announced.
#[derive(Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    endian: Endian,
}

macro_rules! read_int {
    ($vis:vis $name:ident, $t:ty) => {
        $vis fn $name(&mut self) -> Result<$t, WireError> {
            let mut b = [0u8; size_of::<$t>()];
            b.copy_from_slice(self.aligned_take(size_of::<$t>())?);
            Ok(match self.endian {
                Endian::Little => <$t>::from_le_bytes(b),
                Endian::Big => <$t>::from_be_bytes(b),
            })
        }
    };
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8], endian: Endian) -> Reader<'a> {
        Reader { buf, pos: 0, endian }
    }

    /// A reader starting at `pos`; alignment still counts from 0.
    pub fn at(buf: &'a [u8], pos: usize, endian: Endian) -> Reader<'a> {
        Reader { buf, pos, endian }
    }

    pub fn position(&self) -> usize {
        self.pos
    }

    pub fn read(&mut self, t: &Type) -> Result<Value, WireError> {
        self.value(t, 0)
    }

    /// Skips padding up to `align`, which must be zero bytes.
    pub fn align(&mut self, align: usize) -> Result<(), WireError> {
        let target = self.pos.next_multiple_of(align);
        let pad = self.take(target - self.pos)?;
        match pad.iter().position(|&b| b != 0) {
            Some(i) => Err(WireError::BadPadding(target - pad.len() + i)),
            None => Ok(()),
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        let truncated = WireError::Truncated { offset: self.pos, needed: n, len: self.buf.len() };
        let end = self.pos.checked_add(n).ok_or_else(|| truncated.clone())?;
        let bytes = self.buf.get(self.pos..end).ok_or(truncated)?;
        self.pos = end;
        Ok(bytes)
    }

    fn aligned_take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        self.align(n)?;
        self.take(n)
    }

    read_int!(u16, u16);
    read_int!(pub u32, u32);
    read_int!(u64, u64);

    fn byte(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?[0])
    }

    fn value(&mut self, t: &Type, depth: usize) -> Result<Value, WireError> {
        Ok(match t {
            Type::Byte => Value::Byte(self.byte()?),
            Type::Bool => {
                self.align(4)?;
                let offset = self.pos;
                match self.u32()? {
                    0 => Value::Bool(false),
                    1 => Value::Bool(true),
                    value => return Err(WireError::BadBool { offset, value }),
                }
            }
            Type::I16 => Value::I16(self.u16()? as i16),
            Type::U16 => Value::U16(self.u16()?),
            Type::I32 => Value::I32(self.u32()? as i32),
            Type::U32 => Value::U32(self.u32()?),
            Type::I64 => Value::I64(self.u64()? as i64),
            Type::U64 => Value::U64(self.u64()?),
            Type::F64 => Value::F64(f64::from_bits(self.u64()?)),
            Type::Str => {
                let len = self.u32()? as usize;
                Value::Str(self.string_body(len)?)
            }
            Type::ObjectPath => {
                let len = self.u32()? as usize;
                let p = self.string_body(len)?;
                if !is_object_path(&p) {
                    return Err(WireError::BadObjectPath(p));
                }
                Value::ObjectPath(p)
            }
            Type::Signature => {
                let s = self.signature()?;
                parse_signature(&s)?;
                Value::Signature(s)
            }
            Type::Array(elem) => {
                let depth = nest(depth)?;
                let len = self.u32()? as usize;
                if len > MAX_ARRAY_LEN {
                    return Err(WireError::ArrayTooLong(len));
                }
                self.align(elem.alignment())?;
                let start = self.pos;
                // Check the whole extent first: a huge length must fail
                // here, not after reading a prefix of the elements.
                self.take(len)?;
                self.pos = start;
                let end = start + len;
                let mut items = Vec::new();
                // Every type takes at least one byte, so this terminates.
                while self.pos < end {
                    items.push(self.value(elem, depth)?);
                }
                if self.pos != end {
                    return Err(WireError::ArrayOverrun(end));
                }
                Value::Array((**elem).clone(), items)
            }
            Type::Struct(fields) => {
                let depth = nest(depth)?;
                self.align(8)?;
                let values = fields.iter().map(|f| self.value(f, depth)).collect::<Result<_, _>>()?;
                Value::Struct(values)
            }
            Type::DictEntry(k, v) => {
                let depth = nest(depth)?;
                self.align(8)?;
                let key = self.value(k, depth)?;
                let value = self.value(v, depth)?;
                Value::DictEntry(Box::new((key, value)))
            }
            Type::Variant => {
                let depth = nest(depth)?;
                let sig = self.signature()?;
                let inner = parse_single(&sig)?;
                Value::variant(self.value(&inner, depth)?)
            }
        })
    }

    fn signature(&mut self) -> Result<String, WireError> {
        let len = usize::from(self.byte()?);
        self.string_body(len)
    }

    /// `len` bytes of UTF-8 without NUL, then the terminating NUL.
    fn string_body(&mut self, len: usize) -> Result<String, WireError> {
        let at = self.pos;
        let bytes = self.take(len)?;
        if self.byte()? != 0 {
            return Err(WireError::NotNulTerminated(at));
        }
        if let Some(i) = bytes.iter().position(|&b| b == 0) {
            return Err(WireError::InteriorNul(at + i));
        }
        let s = std::str::from_utf8(bytes).map_err(|_| WireError::NotUtf8(at))?;
        Ok(s.to_owned())
    }
}

#[cfg(test)]
#[path = "wire_tests.rs"]
mod tests;
