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
pub(crate) mod json;
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
use json::{Member, Node};
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
                let all = entry::wrapped_args(e.name, command, &args);
                // The server's command moves into `args` as written, and its
                // own args stay as they are, so that undo can give back the
                // very bytes.
                let added = all.len() - args.len();
                let mut json: Vec<String> = all[..added - 1].iter().map(|s| splice::quote(s)).collect();
                json.push(written(body, e.node.get("command"), e)?.to_owned());
                let edit =
                    if args.is_empty() { ArgsEdit::Set { items: all, json } } else { ArgsEdit::Prepend { all, json } };
                rewrite(body, e, (runner, &splice::quote(runner)), edit, &mut edits, &mut expected)?;
                Outcome::Wrapped
            }
            (Class::Wrapped { inner }, Mode::Undo { .. }) => {
                let Some((command, rest)) = inner.split_first() else {
                    return Err(internal(format!("{}: wrapped without a command", e.path)));
                };
                let rest: Vec<String> = rest.iter().map(|s| (*s).to_owned()).collect();
                let items = e.args.as_ref().and_then(|(array, _)| array.items()).unwrap_or_default();
                // Everything up to the server's command goes, and the
                // command comes back as it was written in `args`.
                let dropped = items.len().saturating_sub(rest.len());
                let command_json = written(body, dropped.checked_sub(1).and_then(|i| items.get(i)), e)?;
                // No `args`, `args: []` and `args: [ ]` mean the same; give
                // back what the original had, when the backup says.
                let args = if !rest.is_empty() {
                    ArgsEdit::DropFirst { rest, dropped }
                } else {
                    match backup_args(backup.as_ref(), &e.keys) {
                        BackupArgs::Missing => ArgsEdit::Remove,
                        BackupArgs::Empty(json) => ArgsEdit::Written(json),
                        BackupArgs::Other => ArgsEdit::Set { items: rest, json: Vec::new() },
                    }
                };
                rewrite(body, e, (command, command_json), args, &mut edits, &mut expected)?;
                Outcome::Unwrapped
            }
        };
        reports.push(EntryReport { path: e.path.clone(), outcome });
    }
    let new_body = splice::apply(body, edits).map_err(|e| internal(e.to_string()))?;
    verify(&new_body, &expected)?;
    Ok(Plan { changed: new_body != body, text: format!("{bom}{new_body}"), entries: reports })
}

/// The JSON text of a string value of `entry`, as the config has it.
fn written<'t>(text: &'t str, value: Option<&Node>, entry: &Entry<'_>) -> Result<&'t str, ConfigError> {
    value
        .and_then(|v| text.get(v.start..v.end))
        .ok_or_else(|| internal(format!("{}: the command is not where it was read", entry.path)))
}

/// What becomes of `args`: `items` are the strings it must hold, `json`
/// the JSON text written for them.
enum ArgsEdit<'a> {
    /// Exactly these, in the array's layout.
    Set {
        items: Vec<String>,
        json: Vec<String>,
    },
    /// `all`, of which the first ones, `json`, go before the items there,
    /// which keep their text.
    Prepend {
        all: Vec<String>,
        json: Vec<String>,
    },
    /// `rest`, the items left after the first `dropped`, as written.
    DropFirst {
        rest: Vec<String>,
        dropped: usize,
    },
    /// No items, as this JSON text (of an empty array).
    Written(&'a str),
    Remove,
}

/// Queues the text edits that give `entry` a new command and args, and
/// makes the same change to `expected`, the parsed config they must yield.
fn rewrite(
    text: &str,
    entry: &Entry<'_>,
    (command, command_json): (&str, &str),
    args: ArgsEdit<'_>,
    edits: &mut Vec<splice::Replacement>,
    expected: &mut Value,
) -> Result<(), ConfigError> {
    let members = entry.node.members().unwrap_or_default();
    let Some(command_member) = entry.node.member("command") else {
        return Err(internal(format!("{}: no command to replace", entry.path)));
    };
    edits.push(splice::replace(&command_member.value, command_json));
    let arg_members: Vec<usize> = members.iter().enumerate().filter(|(_, m)| m.key == "args").map(|(i, _)| i).collect();
    // Removing the last of repeated `args` would bring an earlier one back
    // into force: empty it instead.
    let removal = match (&args, arg_members.as_slice()) {
        (ArgsEdit::Remove, [only]) => splice::remove(members, *only),
        _ => None,
    };
    let array = entry.args.as_ref().map(|(node, _)| *node);
    let kept = |edit: Option<splice::Replacement>| {
        edit.ok_or_else(|| internal(format!("{}: args are not as they were read", entry.path)))
    };
    let (items, edit) = match args {
        ArgsEdit::Remove if removal.is_some() => (None, removal),
        ArgsEdit::Remove => (Some(Vec::new()), Some(set_args(text, entry, command_member, &[]))),
        ArgsEdit::Set { items, json } => {
            let edit = set_args(text, entry, command_member, &json);
            (Some(items), Some(edit))
        }
        ArgsEdit::Prepend { all, json } => {
            let edit = kept(array.and_then(|a| splice::prepend(text, a, &json)))?;
            (Some(all), Some(edit))
        }
        ArgsEdit::DropFirst { rest, dropped } => {
            let edit = kept(array.and_then(|a| splice::drop_first(a, dropped)))?;
            (Some(rest), Some(edit))
        }
        ArgsEdit::Written(json) => {
            let edit = kept(array.map(|a| splice::replace(a, json)))?;
            (Some(Vec::new()), Some(edit))
        }
    };
    edits.extend(edit);

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

/// Gives `entry` the args `json` (JSON text each): in its `args` array's
/// layout, or as a new member after `command`.
fn set_args(text: &str, entry: &Entry<'_>, command: &Member, json: &[String]) -> splice::Replacement {
    match &entry.args {
        Some((array, _)) => splice::set_array(text, array, json),
        None => splice::insert_after(text, entry.node, command, "args", json),
    }
}

/// What the backup says of an entry's `args`.
enum BackupArgs<'b> {
    /// The entry is there without `args`.
    Missing,
    /// An empty array, written as this JSON text.
    Empty(&'b str),
    /// Anything else, or nothing known.
    Other,
}

fn backup_args<'b>(backup: Option<&(&'b str, Node)>, keys: &[&str]) -> BackupArgs<'b> {
    let Some((text, root)) = backup else { return BackupArgs::Other };
    let mut node = Some(root);
    for key in keys {
        node = node.and_then(|n| n.get(key));
    }
    let Some(entry) = node.filter(|n| n.members().is_some()) else { return BackupArgs::Other };
    match entry.get("args") {
        None => BackupArgs::Missing,
        Some(args) if args.items().is_some_and(<[Node]>::is_empty) => {
            text.get(args.start..args.end).map_or(BackupArgs::Other, BackupArgs::Empty)
        }
        Some(_) => BackupArgs::Other,
    }
}

/// A backup only gives hints: one that does not parse gives none.
fn parse_quietly(text: &str) -> Option<(&str, Node)> {
    let (_, body) = split_bom(text);
    // serde_json first: it bounds the nesting depth `json::parse` recurses to.
    serde_json::from_str::<Value>(body).ok()?;
    Some((body, json::parse(body).ok()?))
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
