//! Why a config cannot be wrapped. Positions are 1-based line:column; the
//! caller prefixes the file name.

/// A config this command refuses to touch.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{line}:{column}: {message}")]
    Syntax { line: usize, column: usize, message: String },
    #[error("{line}:{column}: {}", shape_message(.path, .expected, .found))]
    Shape { line: usize, column: usize, path: String, expected: &'static str, found: &'static str },
    /// A bug in this module, caught before anything was written.
    #[error("internal error: {0}; nothing was written (please report this, with the config)")]
    Internal(String),
}

fn shape_message(path: &str, expected: &str, found: &str) -> String {
    if path.is_empty() {
        format!("the config must be a JSON object, found {found}")
    } else {
        format!("{path}: expected {expected}, found {found}")
    }
}

impl ConfigError {
    pub(super) fn syntax(e: &serde_json::Error) -> ConfigError {
        // serde_json's message ends with its own " at line L column C".
        let full = e.to_string();
        let suffix = format!(" at line {} column {}", e.line(), e.column());
        let message = full.strip_suffix(&suffix).unwrap_or(&full).to_owned();
        ConfigError::Syntax { line: e.line(), column: e.column(), message }
    }

    pub fn is_internal(&self) -> bool {
        matches!(self, ConfigError::Internal(_))
    }
}
