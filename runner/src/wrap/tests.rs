//! The transform against the fixtures of the end-to-end tests: every valid
//! fixture is wrapped, wrapped again, and unwrapped.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::entry::Skip;
use super::*;

const RUNNER: &str = "/opt/mcp-runner/bin/mcp-runner";

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/configs")
}

fn fixture(name: &str) -> String {
    let path = fixture_dir().join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// (name, text) of every fixture that is a valid config.
fn valid_fixtures() -> Vec<(String, String)> {
    let mut names: Vec<String> = std::fs::read_dir(fixture_dir())
        .expect("fixture dir")
        .map(|e| e.expect("dir entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json") && !n.starts_with("malformed"))
        .collect();
    names.sort();
    assert!(names.len() >= 4, "fixtures missing: {names:?}");
    names.into_iter().map(|n| (fixture(&n), n)).map(|(t, n)| (n, t)).collect()
}

fn wrap(text: &str) -> Plan {
    plan(text, &Mode::Wrap { runner: RUNNER }).expect("wraps")
}

fn undo(text: &str, backup: Option<&str>) -> Plan {
    plan(text, &Mode::Undo { runner: None, backup }).expect("unwraps")
}

fn parse(text: &str) -> Value {
    serde_json::from_str(text.trim_start_matches('\u{feff}')).expect("valid JSON")
}

fn outcomes(p: &Plan) -> Vec<(String, Outcome)> {
    p.entries.iter().map(|e| (e.path.clone(), e.outcome.clone())).collect()
}

/// The specification, written independently of the implementation: every
/// local server not already run by `mcp-runner` gets the runner as its
/// command and `run --name=NAME -- COMMAND ARGS...` as its args.
fn wrap_oracle(original: &Value) -> Value {
    let mut v = original.clone();
    for_each_entry(&mut v, &mut |name, e| {
        let remote = e.contains_key("url") || e.get("type").is_some_and(|t| t != "stdio");
        let Some(command) = e.get("command").and_then(Value::as_str).map(str::to_owned) else { return };
        if remote || command.ends_with("mcp-runner") {
            return;
        }
        let name = format!("--name={name}");
        let mut args: Vec<Value> = ["run", &name, "--", &command].map(Value::from).into();
        args.extend(e.get("args").and_then(Value::as_array).cloned().unwrap_or_default());
        e.insert("command".to_owned(), RUNNER.into());
        e.insert("args".to_owned(), args.into());
    });
    v
}

fn for_each_entry(v: &mut Value, f: &mut impl FnMut(&str, &mut Map<String, Value>)) {
    let Some(root) = v.as_object_mut() else { return };
    for (key, value) in root.iter_mut() {
        match key.as_str() {
            "mcpServers" => each_server(value, f),
            "projects" => {
                for project in value.as_object_mut().into_iter().flat_map(|p| p.values_mut()) {
                    if let Some(servers) = project.get_mut("mcpServers") {
                        each_server(servers, f);
                    }
                }
            }
            _ => {}
        }
    }
}

fn each_server(servers: &mut Value, f: &mut impl FnMut(&str, &mut Map<String, Value>)) {
    for (name, entry) in servers.as_object_mut().into_iter().flat_map(|s| s.iter_mut()) {
        if let Some(e) = entry.as_object_mut() {
            f(name, e);
        }
    }
}

#[test]
fn every_fixture_is_wrapped_as_specified() {
    for (name, text) in valid_fixtures() {
        let p = wrap(&text);
        assert!(p.changed, "{name}");
        assert_eq!(parse(&p.text), wrap_oracle(&parse(&text)), "{name}:\n{}", p.text);
    }
}

#[test]
fn wrapping_twice_changes_nothing() {
    for (name, text) in valid_fixtures() {
        let once = wrap(&text);
        let twice = wrap(&once.text);
        assert!(!twice.changed, "{name}");
        assert_eq!(twice.text, once.text, "{name}");
        assert!(twice.entries.iter().all(|e| e.outcome != Outcome::Wrapped), "{name}: {:?}", twice.entries);
    }
}

#[test]
fn undo_after_wrap_gives_back_the_original_bytes() {
    for (name, text) in valid_fixtures() {
        let wrapped = wrap(&text);
        let restored = undo(&wrapped.text, Some(&text));
        // What undo does to the original itself (it unwraps entries that
        // were wrapped before, by hand): the round trip must match it.
        let direct = undo(&text, Some(&text));
        assert_eq!(restored.text, direct.text, "{name}");
        if !direct.changed {
            assert_eq!(restored.text, text, "{name}");
        }
    }
}

#[test]
fn only_the_command_and_args_lines_change() {
    let text = fixture("claude_desktop_config.json");
    let d = unified_diff(&text, &wrap(&text).text, "a", "b", 3);
    let changed: Vec<&str> = d.lines().skip(2).filter(|l| l.starts_with('-') || l.starts_with('+')).collect();
    // -2 +2 lines for each of three servers; `weather` had no args: -1 +2.
    assert_eq!(changed.len(), 3 * 4 + 3, "{d}");
    assert!(changed.iter().all(|l| l.contains("\"command\": ") || l.contains("\"args\": ")), "{d}");
}

#[test]
fn remote_servers_are_left_alone_and_reported() {
    let p = wrap(&fixture("claude_desktop_config.json"));
    let remote = Outcome::Skipped(Skip::Remote("url".to_owned()));
    assert_eq!(
        outcomes(&p),
        [
            ("mcpServers.filesystem".to_owned(), Outcome::Wrapped),
            ("mcpServers.github".to_owned(), Outcome::Wrapped),
            ("mcpServers.sqlite".to_owned(), Outcome::Wrapped),
            ("mcpServers.weather".to_owned(), Outcome::Wrapped),
            ("mcpServers.linear".to_owned(), remote),
        ]
    );
    let p = wrap(&fixture("claude-code.mcp.json"));
    let kinds: Vec<Outcome> = p.entries.iter().map(|e| e.outcome.clone()).collect();
    assert_eq!(
        kinds,
        [
            Outcome::Wrapped,
            Outcome::Skipped(Skip::Remote("type \"http\"".to_owned())),
            Outcome::Skipped(Skip::Remote("type \"sse\"".to_owned())),
            Outcome::Wrapped,
        ]
    );
}

#[test]
fn unknown_fields_and_other_keys_are_kept() {
    let text = fixture("claude_desktop_config.json");
    let wrapped = parse(&wrap(&text).text);
    assert_eq!(wrapped["globalShortcut"], "Ctrl+Space");
    let weather = &wrapped["mcpServers"]["weather"];
    assert_eq!(weather["cwd"], "/home/ada/src/weather");
    assert_eq!(weather["x-note"], "unknown fields stay");
    assert_eq!(weather["args"], serde_json::json!(["run", "--name=weather", "--", "/home/ada/bin/weather-server"]));
    assert_eq!(wrapped["mcpServers"]["sqlite"]["disabled"], true);
    assert_eq!(wrapped["mcpServers"]["github"]["env"]["GITHUB_PERSONAL_ACCESS_TOKEN"], "ghp_example");
}

#[test]
fn claude_json_project_servers_are_wrapped_too() {
    let p = wrap(&fixture("claude.json"));
    let wrapped: Vec<&str> =
        p.entries.iter().filter(|e| e.outcome == Outcome::Wrapped).map(|e| e.path.as_str()).collect();
    assert_eq!(
        wrapped,
        [
            "mcpServers.memory",
            "mcpServers.time",
            r#"projects["/home/ada/src/app"].mcpServers.postgres"#,
            r#"projects["/home/ada/src/site"].mcpServers.fetch"#,
        ]
    );
    // Multi-line arrays stay multi-line, at their own indentation.
    assert!(
        p.text.contains("\"args\": [\n            \"run\",\n            \"--name=postgres\",\n            \"--\","),
        "{}",
        p.text
    );
}

#[test]
fn already_wrapped_and_hand_made_runner_entries_are_left_alone() {
    let p = wrap(&fixture("partly-wrapped.json"));
    assert_eq!(
        outcomes(&p),
        [
            ("mcpServers.fetch".to_owned(), Outcome::AlreadyWrapped),
            ("mcpServers.git".to_owned(), Outcome::Wrapped),
            ("mcpServers.handmade".to_owned(), Outcome::Skipped(Skip::OtherRunnerUse)),
        ]
    );
}

#[test]
fn a_custom_runner_counts_as_wrapped() {
    let text = r#"{"mcpServers": {"a": {"command": "node", "args": ["s.js"]}}}"#;
    let custom = Mode::Wrap { runner: "/opt/bin/mcpr" };
    let once = plan(text, &custom).expect("wraps");
    assert!(!plan(&once.text, &custom).expect("wraps").changed);
    let back = plan(&once.text, &Mode::Undo { runner: Some("/opt/bin/mcpr"), backup: None }).expect("unwraps");
    assert_eq!(back.text, text);
}

#[test]
fn missing_args_come_back_missing_when_the_backup_says_so() {
    let text = "{\n  \"mcpServers\": {\n    \"a\": {\n      \"command\": \"srv\"\n    }\n  }\n}\n";
    let wrapped = wrap(text);
    assert!(wrapped.text.contains("      \"command\": \"/opt/mcp-runner/bin/mcp-runner\",\n      \"args\": [\"run\""));
    assert_eq!(undo(&wrapped.text, Some(text)).text, text);
    let no_backup = parse(&undo(&wrapped.text, None).text);
    assert_eq!(no_backup["mcpServers"]["a"], serde_json::json!({"command": "srv", "args": []}));
}

#[test]
fn undo_keeps_edits_made_since() {
    let text = fixture("claude_desktop_config.json");
    let edited = wrap(&text).text.replace("\"ghp_example\"", "\"ghp_rotated\"");
    let restored = undo(&edited, Some(&text));
    assert_eq!(restored.text, text.replace("\"ghp_example\"", "\"ghp_rotated\""));
}

#[test]
fn undo_with_nothing_wrapped_changes_nothing() {
    let text = fixture("cursor-mcp.json");
    let p = undo(&text, None);
    assert!(!p.changed);
    assert_eq!(p.text, text);
    assert!(p.entries.iter().all(|e| !e.outcome.changes()));
}

#[test]
fn bom_crlf_and_missing_final_newline_are_kept() {
    let text = "\u{feff}{\r\n    \"mcpServers\": {\r\n        \"a\": { \"command\": \"x\" }\r\n    }\r\n}";
    let wrapped = wrap(text);
    assert!(wrapped.text.starts_with('\u{feff}') && wrapped.text.ends_with('}'));
    assert_eq!(wrapped.text.matches('\n').count(), wrapped.text.matches("\r\n").count());
    assert_eq!(undo(&wrapped.text, Some(text)).text, text);
}

#[test]
fn no_servers_is_no_change() {
    let p = wrap("{\"theme\": \"dark\"}\n");
    assert!(!p.changed && p.entries.is_empty());
}

#[test]
fn malformed_configs_name_line_column_and_path() {
    let cases = [
        ("malformed-trailing-comma.json", "6:5: trailing comma"),
        ("malformed-args-not-array.json", "9:15: mcpServers.github.args: expected an array of strings, found a string"),
        ("malformed-mcpservers-array.json", "2:17: mcpServers: expected an object, found an array"),
    ];
    for (name, want) in cases {
        let e = plan(&fixture(name), &Mode::Wrap { runner: RUNNER }).expect_err("malformed");
        assert_eq!(e.to_string(), want, "{name}");
        assert!(!e.is_internal());
    }
    let e = plan("", &Mode::Wrap { runner: RUNNER }).expect_err("empty");
    assert!(e.to_string().starts_with("1:0: EOF while parsing"), "{e}");
    let e = plan("[1]", &Mode::Wrap { runner: RUNNER }).expect_err("array");
    assert_eq!(e.to_string(), "1:1: the config must be a JSON object, found an array");
}

/// Found by `ci/fuzz` (wrap_plan, crash-fec3123b9c6e): the claude.json
/// fixture with one `args` item indented five spaces deeper than the one
/// before it. Wrap re-rendered the whole array with the first separator,
/// so undo gave every item the first item's indentation.
#[test]
fn fuzz_wrap_plan_uneven_separators() {
    let text = "{\"mcpServers\": {\"a\": {\"command\": \"x\", \"args\": [\n  \"p\",\n  \"q\",\n       \"r\"\n]}}}";
    let wrapped = wrap(text);
    assert_eq!(parse(&wrapped.text), wrap_oracle(&parse(text)));
    assert_eq!(undo(&wrapped.text, Some(text)).text, text);
}

/// Found by `ci/fuzz` (wrap_plan, crash-2944dce7186e, minimised):
/// `{"mcpServers":{"mqlite":{"command":""},"mqlite":{}}}`. A server name
/// written twice is the last one to every client (as `JSON.parse` reads
/// it), but wrap edited the first too and then refused its own result as
/// an internal error.
#[test]
fn fuzz_wrap_plan_repeated_server_name() {
    let text = r#"{"mcpServers":{"mqlite":{"command":""},"mqlite":{}}}"#;
    let p = wrap(text);
    assert!(!p.changed, "{}", p.text);
    let text =
        r#"{"mcpServers": {"a": {"command": "x"}, "a": {"command": "y"}}, "mcpServers": {"b": {"command": "z"}}}"#;
    let p = wrap(text);
    assert_eq!(outcomes(&p), [("mcpServers.b".to_owned(), Outcome::Wrapped)]);
    assert_eq!(undo(&p.text, Some(text)).text, text);
    let text = r#"{"mcpServers": {"a": {"command": "x"}, "a": {"command": "y"}}}"#;
    let p = wrap(text);
    assert_eq!(parse(&p.text), wrap_oracle(&parse(text)));
    assert!(p.text.starts_with(r#"{"mcpServers": {"a": {"command": "x"}, "a": {"command": "/opt"#), "{}", p.text);
    assert_eq!(undo(&p.text, Some(text)).text, text);
}

/// Found by `ci/fuzz` (wrap_plan, crash-b267910986ab, minimised):
/// `{"mcpServers":{"--":{"command":""}}}`. A server named `--` was
/// wrapped as `run --name -- -- COMMAND`: undo took the name's `--` for
/// the end of the runner's options and gave the server the command `--`,
/// and the runner itself refuses `--name --` as a missing value.
#[test]
fn fuzz_wrap_plan_server_named_dashdash() {
    let text = r#"{"mcpServers":{"--":{"command":"x","args":["-y"]}}}"#;
    let wrapped = wrap(text);
    assert_eq!(
        parse(&wrapped.text)["mcpServers"]["--"]["args"],
        serde_json::json!(["run", "--name=--", "--", "x", "-y"])
    );
    assert_eq!(undo(&wrapped.text, Some(text)).text, text);
    assert!(!wrap(&wrapped.text).changed);
}

/// Found by `ci/fuzz` (wrap_plan, crash-830348f55eb3, minimised):
/// `{"mcpServers":{"":{"command":"\u0078"}}}`. Wrap moved the command
/// into `args` re-quoted, so undo wrote it back as `"x"`, not as the
/// original `"\u0078"`.
#[test]
fn fuzz_wrap_plan_escaped_command() {
    for text in
        [r#"{"mcpServers":{"":{"command":"\u0078"}}}"#, r#"{"mcpServers":{"a":{"command":"np\u0078","args":["-y"]}}}"#]
    {
        let wrapped = wrap(text);
        assert_eq!(parse(&wrapped.text), wrap_oracle(&parse(text)), "{text}");
        assert_eq!(undo(&wrapped.text, Some(text)).text, text);
    }
}

/// Found by `ci/fuzz` (wrap_plan, crash-2a2bcc382775, minimised):
/// `{"mcpServers":{"":{"command":"","args":[ ]}}}`. An empty `args` has
/// no items to keep as written, and undo gave it back as `[]`.
#[test]
fn fuzz_wrap_plan_spaced_empty_args() {
    for text in [
        r#"{"mcpServers":{"":{"command":"","args":[ ]}}}"#,
        "{\"mcpServers\": {\"a\": {\"command\": \"x\", \"args\": [\n]}}}",
    ] {
        let wrapped = wrap(text);
        assert_eq!(undo(&wrapped.text, Some(text)).text, text);
        // Without the backup, nothing says how it was spaced.
        assert_eq!(parse(&undo(&wrapped.text, None).text), parse(text));
    }
}
