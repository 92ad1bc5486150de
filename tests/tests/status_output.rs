//! `status` prints what runners recorded, and a project's `.mcp.json` chooses much of it
//! (session ids, names, commands): none of it may reach the terminal as a control sequence.

use mcp_runner_tests::{Fixture, Policy, hostile};
use serde_json::Value;

/// An OSC sequence that retitles the terminal, a colour and a C1 CSI that clears the screen.
const SESSION: &str = "\u{1b}]0;pwned\u{7}";
const NAME: &str = "\u{1b}[31mred";
const ARG: &str = "\u{9b}2J\u{7f}";

/// C0 controls but the newline, DEL and C1 controls.
fn controls(text: &str) -> Vec<char> {
    text.chars().filter(|&c| (c.is_control() && c != '\n') || ('\u{80}'..='\u{9f}').contains(&c)).collect()
}

#[test]
fn issue_9_status_prints_no_control_characters() {
    // See: issue 9, finding 8
    let fx = Fixture::new(&Policy::default());
    let mut runner = fx.run_in(SESSION, NAME, &[hostile!(), "echo", ARG]);
    runner.ready();
    fx.record(runner.pid);

    let text = fx.output(&["status"]);
    assert!(text.status.success(), "status: {}", text.stderr);
    assert!(!text.stdout.as_bytes().contains(&0x1b), "an ESC byte on stdout:\n{:?}", text.stdout);
    assert_eq!(controls(&text.stdout), Vec::<char>::new(), "{:?}", text.stdout);
    for shown in [r"\x1b]0;pwned\x07", r"\x1b[31mred", r"\u{9b}2J\x7f"] {
        assert!(text.stdout.contains(shown), "{shown} not shown escaped:\n{}", text.stdout);
    }

    let json = fx.output(&["status", "--json"]);
    assert!(json.status.success(), "status --json: {}", json.stderr);
    assert_eq!(controls(&json.stdout), Vec::<char>::new(), "{:?}", json.stdout);
    // Escaped, not altered: the values read back as they were recorded.
    let st: Value = serde_json::from_str(&json.stdout).expect("status --json parses");
    let session = st["sessions"].as_array().and_then(|s| s.iter().find(|s| s["id"] == SESSION));
    let server = session.map(|s| &s["servers"][0]).expect("the session is listed");
    assert_eq!(server["name"], NAME);
    assert_eq!(server["command"][2], ARG);

    runner.close_stdin();
    runner.assert_exit(0, None);
}
