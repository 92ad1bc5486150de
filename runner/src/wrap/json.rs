//! A reader for JSON text that keeps where every value is, so that a config
//! can be edited by replacing a few byte ranges instead of re-serializing the
//! whole file (which would reformat every hand-written array and object).
//!
//! It only ever sees text serde_json has already accepted: serde_json reports
//! syntax errors (with their line and column). It still returns an error
//! rather than panic on anything unexpected, and bounds its own nesting depth
//! (above serde_json's), which keeps this recursive reader's stack small.

/// One value and the byte range it occupies.
#[derive(Debug)]
pub struct Node {
    pub start: usize,
    pub end: usize,
    pub kind: Kind,
}

#[derive(Debug)]
pub enum Kind {
    Object(Vec<Member>),
    Array(Vec<Node>),
    String(String),
    Number,
    Bool,
    Null,
}

/// One `"key": value` of an object.
#[derive(Debug)]
pub struct Member {
    pub key: String,
    pub key_start: usize,
    pub key_end: usize,
    pub value: Node,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unexpected JSON at byte {0}")]
pub struct Unexpected(pub usize);

impl Node {
    pub fn members(&self) -> Option<&[Member]> {
        match &self.kind {
            Kind::Object(m) => Some(m),
            _ => None,
        }
    }

    pub fn items(&self) -> Option<&[Node]> {
        match &self.kind {
            Kind::Array(items) => Some(items),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            Kind::String(s) => Some(s),
            _ => None,
        }
    }

    /// The member named `key`; the last one if the key is repeated, as
    /// `JSON.parse` (and so every client) reads it.
    pub fn member(&self, key: &str) -> Option<&Member> {
        self.members()?.iter().rev().find(|m| m.key == key)
    }

    pub fn get(&self, key: &str) -> Option<&Node> {
        self.member(key).map(|m| &m.value)
    }

    /// How an error message names this value's type.
    pub fn type_name(&self) -> &'static str {
        match self.kind {
            Kind::Object(_) => "an object",
            Kind::Array(_) => "an array",
            Kind::String(_) => "a string",
            Kind::Number => "a number",
            Kind::Bool => "a boolean",
            Kind::Null => "null",
        }
    }
}

/// Arrays and objects nested deeper are refused: twice serde_json's limit,
/// so that this reads whatever serde_json accepts.
const MAX_DEPTH: usize = 256;

pub fn parse(text: &str) -> Result<Node, Unexpected> {
    let mut p = Parser { text, pos: 0, depth: 0 };
    p.skip_ws();
    let node = p.value()?;
    p.skip_ws();
    if p.pos != text.len() {
        return Err(Unexpected(p.pos));
    }
    Ok(node)
}

/// 1-based line and column (in characters, as editors count) of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = text.as_bytes().get(..offset).unwrap_or(text.as_bytes());
    let line_start = before.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let line = 1 + before.iter().filter(|&&b| b == b'\n').count();
    // A UTF-8 continuation byte is 0b10xxxxxx: skip those to count characters.
    let column = 1 + before[line_start..].iter().filter(|&&b| b & 0xC0 != 0x80).count();
    (line, column)
}

struct Parser<'t> {
    text: &'t str,
    pos: usize,
    /// Arrays and objects open around `pos`.
    depth: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn expect(&mut self, byte: u8) -> Result<(), Unexpected> {
        if self.peek() != Some(byte) {
            return Err(Unexpected(self.pos));
        }
        self.pos += 1;
        Ok(())
    }

    fn value(&mut self) -> Result<Node, Unexpected> {
        let start = self.pos;
        let kind = match self.peek() {
            Some(b'{' | b'[') if self.depth == MAX_DEPTH => return Err(Unexpected(start)),
            Some(b'{') => Kind::Object(self.nested(Self::object)?),
            Some(b'[') => Kind::Array(self.nested(Self::array)?),
            Some(b'"') => Kind::String(self.string()?),
            Some(b't' | b'f') => self.word(Kind::Bool)?,
            Some(b'n') => self.word(Kind::Null)?,
            Some(b'-' | b'0'..=b'9') => self.word(Kind::Number)?,
            _ => return Err(Unexpected(start)),
        };
        Ok(Node { start, end: self.pos, kind })
    }

    fn nested<T>(&mut self, read: fn(&mut Self) -> Result<T, Unexpected>) -> Result<T, Unexpected> {
        self.depth += 1;
        let read = read(self);
        self.depth -= 1;
        read
    }

    /// A literal or a number: serde_json has checked its spelling already.
    fn word(&mut self, kind: Kind) -> Result<Kind, Unexpected> {
        let start = self.pos;
        while matches!(self.peek(), Some(b) if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'+' | b'.')) {
            self.pos += 1;
        }
        if self.pos == start { Err(Unexpected(start)) } else { Ok(kind) }
    }

    fn string(&mut self) -> Result<String, Unexpected> {
        let start = self.pos;
        self.expect(b'"')?;
        let mut escaped = false;
        loop {
            // Straight to the next quote or backslash: a long string is
            // skipped at memory speed, not byte by byte.
            let rest = self.text.as_bytes().get(self.pos..).unwrap_or_default();
            self.pos += memchr::memchr2(b'"', b'\\', rest).unwrap_or(rest.len());
            match self.peek() {
                None => return Err(Unexpected(self.pos)),
                Some(b'"') => break,
                // Every escape is a backslash and one ASCII byte (`\u` then hex digits).
                Some(b'\\') => {
                    escaped = true;
                    self.pos += 2;
                }
                Some(_) => self.pos += 1,
            }
        }
        self.pos += 1;
        let raw = self.text.get(start..self.pos).ok_or(Unexpected(start))?;
        if escaped {
            // Decoding escapes (surrogate pairs included) is serde_json's job.
            serde_json::from_str(raw).map_err(|_| Unexpected(start))
        } else {
            Ok(raw[1..raw.len() - 1].to_owned())
        }
    }

    fn object(&mut self) -> Result<Vec<Member>, Unexpected> {
        self.expect(b'{')?;
        let mut members = Vec::new();
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(members);
        }
        loop {
            self.skip_ws();
            let key_start = self.pos;
            let key = self.string()?;
            let key_end = self.pos;
            self.skip_ws();
            self.expect(b':')?;
            self.skip_ws();
            let value = self.value()?;
            members.push(Member { key, key_start, key_end, value });
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(members);
                }
                _ => return Err(Unexpected(self.pos)),
            }
        }
    }

    fn array(&mut self) -> Result<Vec<Node>, Unexpected> {
        self.expect(b'[')?;
        let mut items = Vec::new();
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(items);
        }
        loop {
            self.skip_ws();
            items.push(self.value()?);
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(items);
                }
                _ => return Err(Unexpected(self.pos)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slice<'t>(text: &'t str, n: &Node) -> &'t str {
        &text[n.start..n.end]
    }

    #[test]
    fn keeps_spans_of_members_and_items() {
        let text = r#" { "a" : [1, -2.5e3, "x"], "b": {"c": null, "d": true} } "#;
        let root = parse(text).expect("parses");
        assert_eq!(slice(text, &root), r#"{ "a" : [1, -2.5e3, "x"], "b": {"c": null, "d": true} }"#);
        let a = root.member("a").expect("a");
        assert_eq!(&text[a.key_start..a.key_end], r#""a""#);
        let Kind::Array(items) = &a.value.kind else { panic!("not an array") };
        let got: Vec<_> = items.iter().map(|n| slice(text, n)).collect();
        assert_eq!(got, ["1", "-2.5e3", r#""x""#]);
        assert_eq!(root.get("b").and_then(|b| b.get("d")).map(Node::type_name), Some("a boolean"));
    }

    #[test]
    fn decodes_escaped_keys_and_strings() {
        let text = r#"{"a\"b": "\u00e9\\\ud83d\ude00", "plain": "caf\u00e9"}"#;
        let root = parse(text).expect("parses");
        assert_eq!(root.get("a\"b").and_then(Node::as_str), Some("é\\😀"));
        assert_eq!(root.get("plain").and_then(Node::as_str), Some("café"));
    }

    #[test]
    fn repeated_key_reads_the_last_one() {
        let root = parse(r#"{"k": 1, "k": "two"}"#).expect("parses");
        assert_eq!(root.get("k").and_then(Node::as_str), Some("two"));
    }

    #[test]
    fn unexpected_input_is_an_error_not_a_panic() {
        for bad in ["", "{", "[1,", r#"{"a" 1}"#, r#""\"#, "@", "{} x", r#"{"a":1,}"#] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    /// Found by running the `wrap_json` fuzz target on inputs beyond
    /// libFuzzer's default 4 KiB: 20,000 `[` overflowed the stack. `wrap`
    /// itself was safe (serde_json reads the text first and stops at 128
    /// levels), but the scanner promises an error on any input.
    #[test]
    fn fuzz_wrap_json_deep_nesting() {
        for open in ["[", "{\"a\":"] {
            let text = open.repeat(100_000);
            assert!(parse(&text).is_err());
        }
        let deepest = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(parse(&deepest).is_ok());
        let deeper = format!("[{deepest}]");
        assert!(parse(&deeper).is_err());
    }

    #[test]
    fn line_col_counts_characters() {
        let text = "{\n  \"é\": 1\n}";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, text.find('1').expect("1")), (2, 8));
        assert_eq!(line_col(text, 999), (3, 2));
    }
}
