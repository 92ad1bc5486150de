//! Where the servers are in a client config, and whether they have the
//! shape the clients expect.
//!
//! Claude Desktop, Cursor and Claude Code's `.mcp.json` have one top-level
//! `mcpServers` object; Claude Code's `~/.claude.json` has that one and one
//! more per project under `projects.<path>.mcpServers`. Only what this
//! command reads or rewrites is checked: `command` must be a string and
//! `args` an array of strings, wherever they appear. Anything else in a
//! config (other keys, `env`, unknown fields) is never looked at.

use super::json::{Kind, Member, Node};

/// One server entry, its shape checked.
#[derive(Debug)]
pub struct Entry<'n> {
    /// Where it is, for messages: `mcpServers.github`, `projects["/src/app"].mcpServers.db`.
    pub path: String,
    /// The object keys from the root down to the entry.
    pub keys: Vec<&'n str>,
    pub name: &'n str,
    pub node: &'n Node,
    pub command: Option<&'n str>,
    /// The `args` array and its items.
    pub args: Option<(&'n Node, Vec<&'n str>)>,
}

/// A value of the wrong type where a server list or entry is read.
#[derive(Debug, PartialEq, Eq)]
pub struct ShapeError {
    /// Empty for the top level.
    pub path: String,
    /// Byte offset of the offending value.
    pub offset: usize,
    pub expected: &'static str,
    pub found: &'static str,
}

/// Every server entry in the config, in file order.
pub fn find(root: &Node) -> Result<Vec<Entry<'_>>, ShapeError> {
    let Some(members) = root.members() else {
        return Err(ShapeError {
            path: String::new(),
            offset: root.start,
            expected: "an object",
            found: root.type_name(),
        });
    };
    let mut entries = Vec::new();
    for m in in_force(members) {
        match m.key.as_str() {
            "mcpServers" => servers(&m.value, "mcpServers".to_owned(), vec![m.key.as_str()], &mut entries)?,
            // Only Claude Code's ~/.claude.json has `projects`; in any other
            // file, a `projects` of another shape is none of our business.
            "projects" => {
                for project in in_force(m.value.members().unwrap_or_default()) {
                    if let Some(list) = project.value.member("mcpServers") {
                        let path = format!("projects{}.mcpServers", segment(&project.key));
                        servers(&list.value, path, vec!["projects", project.key.as_str(), "mcpServers"], &mut entries)?;
                    }
                }
            }
            _ => {}
        }
    }
    Ok(entries)
}

/// The members a client reads: of a key written twice, only the last one
/// (as `JSON.parse` does). The others are dead text, left as they are.
fn in_force(members: &[Member]) -> impl Iterator<Item = &Member> {
    members.iter().enumerate().filter(|(i, m)| members[i + 1..].iter().all(|later| later.key != m.key)).map(|(_, m)| m)
}

fn servers<'n>(list: &'n Node, path: String, keys: Vec<&'n str>, out: &mut Vec<Entry<'n>>) -> Result<(), ShapeError> {
    let Some(members) = list.members() else {
        return Err(ShapeError { path, offset: list.start, expected: "an object", found: list.type_name() });
    };
    for m in in_force(members) {
        let path = format!("{path}{}", segment(&m.key));
        let mut keys = keys.clone();
        keys.push(&m.key);
        out.push(entry(&m.value, &m.key, path, keys)?);
    }
    Ok(())
}

fn entry<'n>(node: &'n Node, name: &'n str, path: String, keys: Vec<&'n str>) -> Result<Entry<'n>, ShapeError> {
    if node.members().is_none() {
        return Err(ShapeError { path, offset: node.start, expected: "an object", found: node.type_name() });
    }
    let command = match node.get("command") {
        None => None,
        Some(c) => Some(c.as_str().ok_or_else(|| ShapeError {
            path: format!("{path}.command"),
            offset: c.start,
            expected: "a string",
            found: c.type_name(),
        })?),
    };
    let args = match node.get("args") {
        None => None,
        Some(a) => Some((a, strings(a, &format!("{path}.args"))?)),
    };
    Ok(Entry { path, keys, name, node, command, args })
}

fn strings<'n>(array: &'n Node, path: &str) -> Result<Vec<&'n str>, ShapeError> {
    let Kind::Array(items) = &array.kind else {
        return Err(ShapeError {
            path: path.to_owned(),
            offset: array.start,
            expected: "an array of strings",
            found: array.type_name(),
        });
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            item.as_str().ok_or_else(|| ShapeError {
                path: format!("{path}[{i}]"),
                offset: item.start,
                expected: "a string",
                found: item.type_name(),
            })
        })
        .collect()
}

/// `.key`, or `["key"]` when the key is not a plain word (project paths).
fn segment(key: &str) -> String {
    if !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        format!(".{key}")
    } else {
        format!("[{}]", serde_json::Value::from(key))
    }
}

#[cfg(test)]
mod tests {
    use super::super::json;
    use super::*;

    fn paths(text: &str) -> Vec<String> {
        let root = json::parse(text).expect("parses");
        find(&root).expect("valid").into_iter().map(|e| e.path).collect()
    }

    fn shape_error(text: &str) -> ShapeError {
        let root = json::parse(text).expect("parses");
        find(&root).expect_err("invalid")
    }

    #[test]
    fn finds_top_level_and_project_servers() {
        let text = r#"{"mcpServers": {"a": {"command": "x"}},
            "projects": {"/src/app": {"mcpServers": {"b": {}}}, "/src/none": {"other": 1}},
            "x": {"mcpServers": {"not-a-scope": 1}}}"#;
        assert_eq!(paths(text), ["mcpServers.a", r#"projects["/src/app"].mcpServers.b"#]);
    }

    #[test]
    fn reads_command_and_args() {
        let root = json::parse(r#"{"mcpServers": {"a": {"command": "npx", "args": ["-y", "pkg"]}}}"#).expect("parses");
        let entries = find(&root).expect("valid");
        assert_eq!(entries[0].command, Some("npx"));
        assert_eq!(entries[0].args.as_ref().map(|(_, a)| a.clone()), Some(vec!["-y", "pkg"]));
        assert_eq!(entries[0].keys, ["mcpServers", "a"]);
    }

    #[test]
    fn no_servers_is_not_an_error() {
        assert!(paths(r#"{"projects": [], "theme": "dark"}"#).is_empty());
    }

    #[test]
    fn wrong_shapes_name_their_path() {
        let cases = [
            ("[]", "", "an object", "an array"),
            (r#"{"mcpServers": []}"#, "mcpServers", "an object", "an array"),
            (r#"{"mcpServers": {"a": "npx"}}"#, "mcpServers.a", "an object", "a string"),
            (r#"{"mcpServers": {"a": {"command": ["npx"]}}}"#, "mcpServers.a.command", "a string", "an array"),
            (r#"{"mcpServers": {"a": {"args": "-y pkg"}}}"#, "mcpServers.a.args", "an array of strings", "a string"),
            (r#"{"mcpServers": {"a": {"args": ["x", "y", 3]}}}"#, "mcpServers.a.args[2]", "a string", "a number"),
            (r#"{"projects": {"/p": {"mcpServers": null}}}"#, r#"projects["/p"].mcpServers"#, "an object", "null"),
        ];
        for (text, path, expected, found) in cases {
            let e = shape_error(text);
            assert_eq!((e.path.as_str(), e.expected, e.found), (path, expected, found), "{text}");
        }
    }

    #[test]
    fn shape_error_points_at_the_value() {
        let text = "{\"mcpServers\": {\"a\": {\"args\": [\"x\", 3]}}}";
        assert_eq!(shape_error(text).offset, text.find('3').expect("3"));
    }
}
