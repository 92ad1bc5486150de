//! `mcp-runner wrap` on any config: never an internal error (the edited
//! text not saying what was intended), wrapping twice changes nothing, and
//! wrap then undo gives back the original bytes (or, where the original
//! had servers wrapped already, exactly what undo makes of the original).
//! Both with the default runner and with a `--runner` of another name.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_runner::fuzzing::{ConfigError, Mode, Plan, plan};

const RUNNERS: [(&str, Option<&str>); 2] =
    [("/opt/mcp-runner/bin/mcp-runner", None), ("C:\\tools\\mcpr.exe", Some("C:\\tools\\mcpr.exe"))];

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    for (runner, undo_runner) in RUNNERS {
        let wrap = Mode::Wrap { runner };
        let undo = |backup| Mode::Undo { runner: undo_runner, backup };
        let Some(wrapped) = run(text, &wrap) else {
            // Malformed: undo refuses it too, and for the same reason.
            assert!(run(text, &undo(None)).is_none());
            continue;
        };
        let twice = run(&wrapped.text, &wrap).expect("the wrapped config is valid");
        assert!(!twice.changed, "wrapping twice changed it:\n{}\n---\n{}", wrapped.text, twice.text);
        assert_eq!(twice.text, wrapped.text);

        let restored = run(&wrapped.text, &undo(Some(text))).expect("the wrapped config is valid");
        let direct = run(text, &undo(Some(text))).expect("the original is valid");
        assert_eq!(restored.text, direct.text, "wrap then undo differs from undo alone");
        if !direct.changed {
            assert_eq!(restored.text, text, "wrap then undo did not give back the original bytes");
        }
        run(&wrapped.text, &undo(None)).expect("undo without a backup");
    }
});

/// The plan, `None` for a config the user is told is malformed.
fn run(text: &str, mode: &Mode<'_>) -> Option<Plan> {
    match plan(text, mode) {
        Ok(p) => Some(p),
        Err(e @ ConfigError::Internal(_)) => panic!("{e}"),
        Err(_) => None,
    }
}
