//! `mcp-runner wrap`: rewrites the `mcpServers` of a client config (Claude
//! Desktop, Claude Code's `.mcp.json` and `~/.claude.json`, Cursor) so that
//! every stdio server runs as `RUNNER run --name=NAME -- COMMAND ARGS...`,
//! and `--undo` turns them back.
//!
//! The config is edited, not re-serialized: only the `command` and `args`
//! values of the entries that change are replaced, in the layout the file
//! already uses. Key order, indentation, line endings, the final newline and
//! every other byte stay as they were, and a second run changes nothing.
//! serde_json checks the syntax first (for its line:column errors), and the
//! edited text is parsed again and compared with the intended change before
//! anything is returned.
//!
//! Everything here is pure except [`file`], which reads and writes. [`edit`]
//! is the read-edit-write over a [`Store`], started over while the config
//! changes under it; [`file::ConfigFile`] is the store on disk.

mod diff;
mod edit;
mod entry;
mod error;
pub mod file;
mod json;
mod report;
mod servers;
mod splice;

use serde_json::Value;

pub use diff::unified as unified_diff;
pub use edit::{Action, Backup, EditError, Edited, MAX_ATTEMPTS, edit};
#[cfg(test)]
pub(crate) use entry::RUN_OPTIONS_WITH_VALUE;
pub use error::ConfigError;
pub use report::{EntryReport, Outcome};

use entry::Class;
use json::Node;
use servers::Entry;

pub enum Mode<'a> {
    /// Wrap every stdio server with `runner` as the command.
    Wrap { runner: &'a str },
    /// Unwrap every wrapped server. `runner` is a `--runner` to recognise
    /// besides `mcp-runner`; `backup` is the text saved before the first
    /// wrap, which tells which servers had no `args` at all.
    Undo { runner: Option<&'a str>, backup: Option<&'a str> },
}

/// What `wrap` would write.
#[derive(Debug)]
pub struct Plan {
    pub text: String,
    /// Whether `text` differs from the config as read.
    pub changed: bool,
    pub entries: Vec<EntryReport>,
}

/// The new text of a config, or why it cannot be edited.
pub fn plan(text: &str, mode: &Mode<'_>) -> Result<Plan, ConfigError> {
    let (bom, body) = split_bom(text);
    let mut expected: Value = serde_json::from_str(body).map_err(|e| ConfigError::syntax(&e))?;
    let root = json::parse(body).map_err(|e| internal(format!("reading the accepted JSON: {e}")))?;
    let entries = servers::find(&root).map_err(|e| {
        let (line, column) = json::line_col(body, e.offset);
        ConfigError::Shape { line, column, path: e.path, expected: e.expected, found: e.found }
    })?;
    let backup = match mode {
        Mode::Undo { backup: Some(b), .. } => parse_quietly(b),
        _ => None,
    };
    let mut edits = Vec::new();
    let mut reports = Vec::new();
    for e in &entries {
        let runner = match mode {
            Mode::Wrap { runner } => Some(*runner),
            Mode::Undo { runner, .. } => *runner,
        };
        let outcome = match (entry::classify(e, runner), mode) {
            (Class::Skip(why), _) => Outcome::Skipped(why),
            (Class::Wrapped { .. }, Mode::Wrap { .. }) => Outcome::AlreadyWrapped,
            (Class::Stdio { .. }, Mode::Undo { .. }) => Outcome::NotWrapped,
            (Class::Stdio { command, args }, Mode::Wrap { runner }) => {
                let args = ArgsEdit::Set(entry::wrapped_args(e.name, command, &args));
                rewrite(body, e, runner, args, &mut edits, &mut expected)?;
                Outcome::Wrapped
            }
            (Class::Wrapped { inner }, Mode::Undo { .. }) => {
                let Some((command, rest)) = inner.split_first() else {
                    return Err(internal(format!("{}: wrapped without a command", e.path)));
                };
                // `args: []` and no `args` mean the same; give back what the
                // original had, when the backup says.
                let args = if rest.is_empty() && had_no_args(backup.as_ref(), &e.keys) {
                    ArgsEdit::Remove
                } else {
                    ArgsEdit::Set(rest.iter().map(|s| (*s).to_owned()).collect())
                };
                rewrite(body, e, command, args, &mut edits, &mut expected)?;
                Outcome::Unwrapped
            }
        };
        reports.push(EntryReport { path: e.path.clone(), outcome });
    }
    let new_body = splice::apply(body, edits).map_err(|e| internal(e.to_string()))?;
    verify(&new_body, &expected)?;
    Ok(Plan { changed: new_body != body, text: format!("{bom}{new_body}"), entries: reports })
}

enum ArgsEdit {
    Set(Vec<String>),
    Remove,
}

/// Queues the text edits that give `entry` a new command and args, and
/// makes the same change to `expected`, the parsed config they must yield.
fn rewrite(
    text: &str,
    entry: &Entry<'_>,
    command: &str,
    args: ArgsEdit,
    edits: &mut Vec<splice::Replacement>,
    expected: &mut Value,
) -> Result<(), ConfigError> {
    let members = entry.node.members().unwrap_or_default();
    let Some(command_member) = entry.node.member("command") else {
        return Err(internal(format!("{}: no command to replace", entry.path)));
    };
    edits.push(splice::set_string(&command_member.value, command));
    let arg_members: Vec<usize> = members.iter().enumerate().filter(|(_, m)| m.key == "args").map(|(i, _)| i).collect();
    // Removing the last of repeated `args` would bring an earlier one back
    // into force: empty it instead.
    let removal = match (&args, arg_members.as_slice()) {
        (ArgsEdit::Remove, [only]) => splice::remove(members, *only),
        _ => None,
    };
    let items = match args {
        ArgsEdit::Set(items) => Some(items),
        ArgsEdit::Remove if removal.is_some() => None,
        ArgsEdit::Remove => Some(Vec::new()),
    };
    match (&items, &entry.args, removal) {
        (_, _, Some(removal)) => edits.push(removal),
        (Some(items), Some((node, _)), None) => edits.push(splice::set_array(text, node, items)),
        (Some(items), None, None) => edits.push(splice::insert_after(text, entry.node, command_member, "args", items)),
        (None, _, None) => {}
    }

    let mut target = &mut *expected;
    for key in &entry.keys {
        target = target.get_mut(*key).ok_or_else(|| internal(format!("{}: not in the parsed config", entry.path)))?;
    }
    let Some(object) = target.as_object_mut() else {
        return Err(internal(format!("{}: not an object in the parsed config", entry.path)));
    };
    object.insert("command".to_owned(), command.into());
    match items {
        Some(items) => object.insert("args".to_owned(), items.into()),
        None => object.remove("args"),
    };
    Ok(())
}

/// Whether the entry at `keys` exists in the backup without `args`.
fn had_no_args(backup: Option<&Node>, keys: &[&str]) -> bool {
    let mut node = backup;
    for key in keys {
        node = node.and_then(|n| n.get(key));
    }
    node.is_some_and(|n| n.members().is_some() && n.get("args").is_none())
}

/// A backup only gives hints: one that does not parse gives none.
fn parse_quietly(text: &str) -> Option<Node> {
    let (_, body) = split_bom(text);
    // serde_json first: it bounds the nesting depth `json::parse` recurses to.
    serde_json::from_str::<Value>(body).ok()?;
    json::parse(body).ok()
}

/// The safety net under the text edits: the new text must parse to exactly
/// the intended config.
fn verify(new_body: &str, expected: &Value) -> Result<(), ConfigError> {
    let got: Value =
        serde_json::from_str(new_body).map_err(|e| internal(format!("the edited config does not parse: {e}")))?;
    if &got != expected {
        return Err(internal("the edited config does not say what was intended".to_owned()));
    }
    Ok(())
}

/// A byte-order mark is not JSON, but some Windows editors write one.
fn split_bom(text: &str) -> (&str, &str) {
    match text.strip_prefix('\u{feff}') {
        Some(body) => ("\u{feff}", body),
        None => ("", text),
    }
}

fn internal(message: String) -> ConfigError {
    ConfigError::Internal(message)
}

#[cfg(test)]
mod tests;
