//! Edits as byte-range replacements in the original text, written in the
//! style the text around them already uses (inline or one item per line,
//! its indentation, `", "` or `","`), so that a wrapped config differs from
//! the original only in the values that had to change.

use std::ops::Range;

use super::json::{Kind, Member, Node};

#[derive(Debug, PartialEq, Eq)]
pub struct Replacement {
    pub range: Range<usize>,
    pub text: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("overlapping edits at bytes {0:?} and {1:?}")]
pub struct Overlap(Range<usize>, Range<usize>);

/// Replaces a value with `json`, JSON text.
pub fn replace(node: &Node, json: &str) -> Replacement {
    Replacement { range: node.start..node.end, text: json.to_owned() }
}

/// Replaces an array with `items` (JSON text each), keeping its layout.
pub fn set_array(text: &str, node: &Node, items: &[String]) -> Replacement {
    Replacement { range: node.start..node.end, text: ArrayLayout::of(text, node).render(items) }
}

/// Puts `items` (JSON text each) before the first item of a non-empty array,
/// separated the way its first items are. The items already there keep
/// their text, escapes and spacing: `drop_first` can then take exactly
/// these away again. `None` for an empty array or a value that is none.
pub fn prepend(text: &str, array: &Node, items: &[String]) -> Option<Replacement> {
    let Kind::Array(existing) = &array.kind else { return None };
    let first = existing.first()?;
    let sep = ArrayLayout::of(text, array).sep;
    let added: String = items.iter().map(|s| format!("{s}{sep}")).collect();
    Some(Replacement { range: first.start..first.start, text: added })
}

/// Removes the first `n` items of an array and their separators, leaving
/// the rest as written. `None` unless at least one item stays.
pub fn drop_first(array: &Node, n: usize) -> Option<Replacement> {
    let Kind::Array(items) = &array.kind else { return None };
    let (first, kept) = (items.first()?, items.get(n)?);
    Some(Replacement { range: first.start..kept.start, text: String::new() })
}

/// Adds `"key": [items]` (JSON text each) right after the member `after`,
/// in the object `object`, indented like the object's first member.
pub fn insert_after(text: &str, object: &Node, after: &Member, key: &str, items: &[String]) -> Replacement {
    let first_key = object.members().and_then(|m| m.first()).map_or(after.key_start, |m| m.key_start);
    let lead = text.get(object.start + 1..first_key).unwrap_or(" ");
    let colon = text.get(after.key_end..after.value.start).unwrap_or(": ");
    let layout = ArrayLayout::inline(colon.ends_with(' '));
    Replacement {
        range: after.value.end..after.value.end,
        text: format!(",{lead}{}{colon}{}", quote(key), layout.render(items)),
    }
}

/// Removes the member at `index` of `members`, with the comma and the
/// whitespace that belonged to it. `None` for a lone member: the object
/// cannot lose it without leaving a dangling comma or changing its layout.
pub fn remove(members: &[Member], index: usize) -> Option<Replacement> {
    let member = members.get(index)?;
    let range = if let Some(prev) = index.checked_sub(1).and_then(|i| members.get(i)) {
        prev.value.end..member.value.end
    } else {
        member.key_start..members.get(index + 1)?.key_start
    };
    Some(Replacement { range, text: String::new() })
}

/// Applies the replacements; they must not overlap.
pub fn apply(text: &str, mut edits: Vec<Replacement>) -> Result<String, Overlap> {
    edits.sort_by_key(|e| (e.range.start, e.range.end));
    let mut out = String::with_capacity(text.len() + edits.iter().map(|e| e.text.len()).sum::<usize>());
    let mut done = 0..0;
    for e in edits {
        if e.range.start < done.end {
            return Err(Overlap(done, e.range));
        }
        out.push_str(text.get(done.end..e.range.start).ok_or_else(|| Overlap(done.clone(), e.range.clone()))?);
        out.push_str(&e.text);
        done = e.range;
    }
    out.push_str(text.get(done.end..).unwrap_or_default());
    Ok(out)
}

/// A string as JSON text.
pub fn quote(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

/// What an array has after `[`, between items and before `]`.
#[derive(Debug, PartialEq, Eq)]
struct ArrayLayout {
    open: String,
    sep: String,
    close: String,
}

impl ArrayLayout {
    fn inline(spaced: bool) -> ArrayLayout {
        let sep = if spaced { ", " } else { "," };
        ArrayLayout { open: String::new(), sep: sep.to_owned(), close: String::new() }
    }

    fn of(text: &str, array: &Node) -> ArrayLayout {
        let Kind::Array(items) = &array.kind else { return ArrayLayout::inline(true) };
        let between = |a: usize, b: usize| text.get(a..b).unwrap_or_default().to_owned();
        match items.as_slice() {
            [] => ArrayLayout::inline(true),
            [only] => {
                let open = between(array.start + 1, only.start);
                // One item per line if the one item has a line of its own.
                let sep = if open.contains('\n') { format!(",{open}") } else { ", ".to_owned() };
                ArrayLayout { sep, open, close: between(only.end, array.end - 1) }
            }
            [first, second, ..] => ArrayLayout {
                open: between(array.start + 1, first.start),
                sep: between(first.end, second.start),
                close: items.last().map_or_else(String::new, |last| between(last.end, array.end - 1)),
            },
        }
    }

    fn render(&self, items: &[String]) -> String {
        if items.is_empty() {
            return "[]".to_owned();
        }
        format!("[{}{}{}]", self.open, items.join(&self.sep), self.close)
    }
}

#[cfg(test)]
mod tests {
    use super::super::json;
    use super::*;

    /// The items as JSON text.
    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| quote(s)).collect()
    }

    /// Replaces the value of `key` in a one-object document.
    fn reformat(text: &str, key: &str, items: &[&str]) -> String {
        let root = json::parse(text).expect("parses");
        let node = root.get(key).expect("key");
        apply(text, vec![set_array(text, node, &strings(items))]).expect("applies")
    }

    #[test]
    fn arrays_keep_their_layout() {
        let cases = [
            (r#"{"a": ["x", "y"]}"#, r#"{"a": ["p", "q", "r"]}"#),
            (r#"{"a": ["x","y"]}"#, r#"{"a": ["p","q","r"]}"#),
            (r#"{"a": [ "x" ]}"#, r#"{"a": [ "p", "q", "r" ]}"#),
            (r#"{"a": []}"#, r#"{"a": ["p", "q", "r"]}"#),
            (
                "{\n  \"a\": [\n    \"x\",\n    \"y\"\n  ]\n}",
                "{\n  \"a\": [\n    \"p\",\n    \"q\",\n    \"r\"\n  ]\n}",
            ),
            ("{\n\t\"a\": [\n\t\t\"x\"\n\t]\n}", "{\n\t\"a\": [\n\t\t\"p\",\n\t\t\"q\",\n\t\t\"r\"\n\t]\n}"),
        ];
        for (before, after) in cases {
            assert_eq!(reformat(before, "a", &["p", "q", "r"]), after, "{before}");
        }
    }

    #[test]
    fn prepend_and_drop_first_keep_the_items_as_written() {
        let cases = [
            (r#"{"a": ["x",  "y"]}"#, r#"{"a": ["p",  "q",  "x",  "y"]}"#),
            ("{\"a\": [\n  \"\\u0078\"\n]}", "{\"a\": [\n  \"p\",\n  \"q\",\n  \"\\u0078\"\n]}"),
            (r#"{"a": [ "x" ]}"#, r#"{"a": [ "p", "q", "x" ]}"#),
        ];
        for (before, after) in cases {
            let root = json::parse(before).expect("parses");
            let edit = prepend(before, root.get("a").expect("a"), &strings(&["p", "q"])).expect("non-empty");
            let prepended = apply(before, vec![edit]).expect("applies");
            assert_eq!(prepended, after, "{before}");
            let root = json::parse(&prepended).expect("parses");
            let edit = drop_first(root.get("a").expect("a"), 2).expect("an item stays");
            assert_eq!(apply(&prepended, vec![edit]).expect("applies"), before);
        }
        let empty = json::parse(r#"{"a": []}"#).expect("parses");
        assert_eq!(prepend(r#"{"a": []}"#, empty.get("a").expect("a"), &strings(&["p"])), None);
        let one = json::parse(r#"{"a": ["x"]}"#).expect("parses");
        assert_eq!(drop_first(one.get("a").expect("a"), 1), None);
    }

    #[test]
    fn empty_items_give_an_empty_array() {
        assert_eq!(reformat("{\"a\": [\n  \"x\"\n]}", "a", &[]), r#"{"a": []}"#);
    }

    #[test]
    fn strings_are_json_quoted() {
        let text = r#"{"c": "x"}"#;
        let root = json::parse(text).expect("parses");
        let node = root.get("c").expect("c");
        let out = apply(text, vec![replace(node, &quote("C:\\bin\\\"é\""))]).expect("applies");
        assert_eq!(out, r#"{"c": "C:\\bin\\\"é\""}"#);
    }

    #[test]
    fn insert_follows_the_member_and_the_indentation() {
        let cases = [
            (
                "{\n    \"command\": \"x\",\n    \"env\": {}\n}",
                "{\n    \"command\": \"x\",\n    \"args\": [\"a\", \"b\"],\n    \"env\": {}\n}",
            ),
            ("{\r\n\t\"command\": \"x\"\r\n}", "{\r\n\t\"command\": \"x\",\r\n\t\"args\": [\"a\", \"b\"]\r\n}"),
            (r#"{ "command": "x" }"#, r#"{ "command": "x", "args": ["a", "b"] }"#),
            (r#"{"command":"x"}"#, r#"{"command":"x","args":["a","b"]}"#),
        ];
        for (before, after) in cases {
            let root = json::parse(before).expect("parses");
            let member = root.member("command").expect("command");
            let edit = insert_after(before, &root, member, "args", &strings(&["a", "b"]));
            assert_eq!(apply(before, vec![edit]).expect("applies"), after, "{before}");
        }
    }

    #[test]
    fn remove_takes_the_comma_with_it() {
        let cases = [
            ("{\n  \"c\": \"x\",\n  \"args\": [],\n  \"env\": {}\n}", 1, "{\n  \"c\": \"x\",\n  \"env\": {}\n}"),
            ("{\n  \"c\": \"x\",\n  \"args\": []\n}", 1, "{\n  \"c\": \"x\"\n}"),
            ("{\n  \"args\": [],\n  \"c\": \"x\"\n}", 0, "{\n  \"c\": \"x\"\n}"),
        ];
        for (before, index, after) in cases {
            let root = json::parse(before).expect("parses");
            let edit = remove(root.members().expect("object"), index).expect("removable");
            assert_eq!(apply(before, vec![edit]).expect("applies"), after, "{before}");
        }
        let lone = json::parse(r#"{"args": []}"#).expect("parses");
        assert_eq!(remove(lone.members().expect("object"), 0), None);
    }

    #[test]
    fn overlapping_edits_are_refused() {
        let edits =
            vec![Replacement { range: 0..4, text: String::new() }, Replacement { range: 2..6, text: String::new() }];
        assert!(apply("0123456789", edits).is_err());
        let adjacent =
            vec![Replacement { range: 4..4, text: "b".to_owned() }, Replacement { range: 0..4, text: "a".to_owned() }];
        assert_eq!(apply("0123456789", adjacent), Ok("ab456789".to_owned()));
    }
}
