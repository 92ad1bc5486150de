//! What to do with one server entry: the decision and the new argv, as pure
//! functions of its fields.

use std::fmt;

use super::servers::Entry;

/// The file name of the runner: entries whose command has it are already
/// wrapped, whatever directory it is in.
const RUNNER_NAMES: [&str; 2] = ["mcp-runner", "mcp-runner.exe"];

#[derive(Debug, PartialEq, Eq)]
pub enum Class<'e> {
    /// A local server, not wrapped.
    Stdio { command: &'e str, args: Vec<&'e str> },
    /// Runs through the runner; `inner` is the server's own command line
    /// (what follows `--`, never empty).
    Wrapped { inner: Vec<&'e str> },
    /// Left alone whatever the mode.
    Skip(Skip),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Skip {
    /// A remote server is not a process on this machine.
    Remote(String),
    NoCommand,
    /// Runs the runner, but not as `run ... -- COMMAND`: rewriting it would
    /// either nest two runners or lose the user's own arguments.
    OtherRunnerUse,
}

impl fmt::Display for Skip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Skip::Remote(why) => write!(f, "remote server ({why})"),
            Skip::NoCommand => f.write_str("no command"),
            Skip::OtherRunnerUse => f.write_str("runs mcp-runner, but not as `run ... -- COMMAND`"),
        }
    }
}

/// `runner` is the command wrap writes: an entry already running it counts
/// as wrapped even when it is not named `mcp-runner` (`--runner`).
pub fn classify<'e>(entry: &Entry<'e>, runner: Option<&str>) -> Class<'e> {
    // The declared type says most; a `url` alone marks a remote server too.
    if let Some(kind) = entry.node.get("type") {
        match kind.as_str() {
            Some("stdio") => {}
            Some(other) => return Class::Skip(Skip::Remote(format!("type {other:?}"))),
            None => return Class::Skip(Skip::Remote(format!("type is {}", kind.type_name()))),
        }
    }
    if entry.node.get("url").is_some() {
        return Class::Skip(Skip::Remote("url".to_owned()));
    }
    let Some(command) = entry.command else {
        return Class::Skip(Skip::NoCommand);
    };
    let args: Vec<&'e str> = entry.args.as_ref().map(|(_, a)| a.clone()).unwrap_or_default();
    if !is_runner(command, runner) {
        return Class::Stdio { command, args };
    }
    match inner_command(&args) {
        Some(inner) => Class::Wrapped { inner: inner.to_vec() },
        None => Class::Skip(Skip::OtherRunnerUse),
    }
}

fn is_runner(command: &str, runner: Option<&str>) -> bool {
    // Windows configs use backslashes; a Unix `Path` would not split them.
    let file_name = command.rsplit(['/', '\\']).next().unwrap_or(command);
    RUNNER_NAMES.contains(&file_name) || runner == Some(command)
}

/// The options of `run` that may take their value as the next argument
/// (`--name KEY`, as an older wrap wrote it), global ones included. Kept in
/// step with the command line by a test in `cli::args`.
pub(crate) const RUN_OPTIONS_WITH_VALUE: [&str; 6] =
    ["--name", "--policy", "--session", "--driver", "--log-level", "--pool-instance"];

/// What follows the `--` that ends the options of `run OPTIONS -- COMMAND
/// ARGS...`. An option's value is skipped, never taken for that `--`: an
/// older wrap wrote `--name KEY` as two arguments, and KEY may be `--`.
fn inner_command<'a, 'e>(args: &'a [&'e str]) -> Option<&'a [&'e str]> {
    let (first, mut rest) = args.split_first()?;
    if *first != "run" {
        return None;
    }
    loop {
        let (arg, after) = rest.split_first()?;
        rest = match *arg {
            "--" => return Some(after).filter(|inner| !inner.is_empty()),
            option if RUN_OPTIONS_WITH_VALUE.contains(&option) => after.get(1..)?,
            _ => after,
        };
    }
}

/// The runner's arguments for a server named `name`. `--name=NAME` is one
/// argument, so that a name such as `--policy=/x` cannot be read as a flag.
pub fn wrapped_args(name: &str, command: &str, args: &[&str]) -> Vec<String> {
    let head = ["run".to_owned(), format!("--name={name}"), "--".to_owned(), command.to_owned()];
    head.into_iter().chain(args.iter().map(|s| (*s).to_owned())).collect()
}

#[cfg(test)]
mod tests {
    use super::super::{json, servers};
    use super::*;

    fn class_of(entry_json: &str, runner: Option<&str>) -> String {
        let text = format!(r#"{{"mcpServers": {{"s": {entry_json}}}}}"#);
        let root = json::parse(&text).expect("parses");
        let entries = servers::find(&root).expect("valid");
        format!("{:?}", classify(&entries[0], runner))
    }

    #[test]
    fn classification() {
        let table = [
            (r#"{"command": "npx", "args": ["-y", "p"]}"#, None, r#"Stdio { command: "npx", args: ["-y", "p"] }"#),
            (r#"{"command": "node"}"#, None, r#"Stdio { command: "node", args: [] }"#),
            (r#"{"type": "stdio", "command": "uvx"}"#, None, r#"Stdio { command: "uvx", args: [] }"#),
            (r#"{"url": "https://x"}"#, None, r#"Skip(Remote("url"))"#),
            (r#"{"command": "npx", "url": "https://x"}"#, None, r#"Skip(Remote("url"))"#),
            (r#"{"type": "sse", "command": "x"}"#, None, r#"Skip(Remote("type \"sse\""))"#),
            (r#"{"type": "http"}"#, None, r#"Skip(Remote("type \"http\""))"#),
            (r#"{"type": "streamable-http"}"#, None, r#"Skip(Remote("type \"streamable-http\""))"#),
            (r#"{"type": 1, "command": "x"}"#, None, r#"Skip(Remote("type is a number"))"#),
            (r#"{"env": {}}"#, None, "Skip(NoCommand)"),
            (
                r#"{"command": "/usr/bin/mcp-runner", "args": ["run", "--name", "s", "--", "npx", "-y"]}"#,
                None,
                r#"Wrapped { inner: ["npx", "-y"] }"#,
            ),
            (
                r#"{"command": "C:\\bin\\mcp-runner.exe", "args": ["run", "--", "x"]}"#,
                None,
                r#"Wrapped { inner: ["x"] }"#,
            ),
            (r#"{"command": "mcp-runner", "args": ["run", "node", "s.js"]}"#, None, "Skip(OtherRunnerUse)"),
            (r#"{"command": "mcp-runner", "args": ["run", "--name", "s", "--"]}"#, None, "Skip(OtherRunnerUse)"),
            (r#"{"command": "mcp-runner", "args": ["doctor"]}"#, None, "Skip(OtherRunnerUse)"),
            // See: issue 9, finding 5. Both forms wrap has written: `--name=KEY`
            // now, `--name KEY` before, where KEY may look like a flag or be `--`.
            (
                r#"{"command": "mcp-runner", "args": ["run", "--name=--", "--", "uvx", "srv"]}"#,
                None,
                r#"Wrapped { inner: ["uvx", "srv"] }"#,
            ),
            (
                r#"{"command": "mcp-runner", "args": ["run", "--name", "--", "--", "uvx", "srv"]}"#,
                None,
                r#"Wrapped { inner: ["uvx", "srv"] }"#,
            ),
            (
                r#"{"command": "mcp-runner", "args": ["run", "--name", "--policy=/x", "--", "node"]}"#,
                None,
                r#"Wrapped { inner: ["node"] }"#,
            ),
            (
                r#"{"command": "mcp-runner", "args": ["run", "--policy", "/p.toml", "--name", "s", "--", "x"]}"#,
                None,
                r#"Wrapped { inner: ["x"] }"#,
            ),
            (r#"{"command": "mcp-runner", "args": ["run", "--name"]}"#, None, "Skip(OtherRunnerUse)"),
            (
                r#"{"command": "/opt/mcpr", "args": ["run", "--", "x"]}"#,
                Some("/opt/mcpr"),
                r#"Wrapped { inner: ["x"] }"#,
            ),
            (
                r#"{"command": "/opt/mcpr", "args": ["run", "--", "x"]}"#,
                None,
                r#"Stdio { command: "/opt/mcpr", args: ["run", "--", "x"] }"#,
            ),
        ];
        for (entry, runner, want) in table {
            assert_eq!(class_of(entry, runner), want, "{entry}");
        }
    }

    #[test]
    fn wrapped_args_put_the_server_after_dashdash() {
        assert_eq!(
            wrapped_args("gh", "npx", &["-y", "--name", "x"]),
            ["run", "--name=gh", "--", "npx", "-y", "--name", "x"]
        );
        assert_eq!(wrapped_args("--", "npx", &[]), ["run", "--name=--", "--", "npx"]);
        assert_eq!(wrapped_args("-x", "npx", &[]), ["run", "--name=-x", "--", "npx"]);
    }

    #[test]
    fn issue_9_a_name_that_looks_like_a_flag_is_one_argument() {
        // See: issue 9, finding 5
        assert_eq!(wrapped_args("--policy=/x", "node", &[]), ["run", "--name=--policy=/x", "--", "node"]);
        assert_eq!(wrapped_args("--", "node", &[]), ["run", "--name=--", "--", "node"]);
    }
}
