//! Policy files: any text either loads or is refused with diagnostics that
//! each point inside the file, and printing them never fails.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_runner_policy::from_str;

const ORIGIN: &str = "fuzz.toml";

fuzz_target!(|data: &[u8]| {
    // `load` refuses anything but UTF-8 before parsing.
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Err(error) = from_str(text, ORIGIN) else { return };
    let diagnostics = error.diagnostics();
    assert!(!diagnostics.is_empty(), "an error without a diagnostic");
    let lines: Vec<&str> = text.split('\n').collect();
    for d in diagnostics {
        assert_eq!(d.origin, ORIGIN);
        assert!(!d.message.is_empty());
        let Some(at) = d.location else { continue };
        // 1-based, and at most one past the end of its line.
        assert!(at.line >= 1 && at.line <= lines.len(), "{d}: line out of range");
        let width = lines[at.line - 1].chars().count();
        assert!(at.column >= 1 && at.column <= width + 1, "{d}: column out of range");
    }
    let shown = error.to_string();
    assert_eq!(shown.lines().count(), diagnostics.iter().map(|d| d.to_string().lines().count()).sum::<usize>());
});
