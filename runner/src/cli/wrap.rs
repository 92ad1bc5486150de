//! `mcp-runner wrap CONFIG [--dry-run | --undo] [--runner PATH]`: routes
//! the stdio servers of a client config through the runner, or back. The
//! transform is `crate::wrap`; this file decides what to print and when to
//! write.

use std::io::{self, Write};
use std::path::Path;
use std::process::ExitCode;

use anyhow::anyhow;

use super::args::WrapArgs;
use super::{Failure, OrExit};
use crate::exit;
use crate::wrap::file::{self, FileError};
use crate::wrap::{self, ConfigError, Mode, Plan};

/// Lines of context around each change in the `--dry-run` diff.
const DIFF_CONTEXT: usize = 3;

pub fn wrap(a: WrapArgs) -> Result<ExitCode, Failure> {
    let config = a.config.as_path();
    let text = file::read(config).or_exit(exit::USAGE)?;
    let backup = file::backup_path(config);
    let runner = a.runner.as_deref().map(utf8).transpose().or_exit(exit::USAGE)?;
    let plan = if a.undo {
        let saved = match file::read_backup(&backup) {
            Ok(saved) => saved,
            Err(e @ FileError::NotABackup { .. }) => return Err(file_failure(e)),
            // The backup only tells which servers had no `args`: unreadable,
            // it is no reason to refuse.
            Err(_) => None,
        };
        wrap::plan(&text, &Mode::Undo { runner, backup: saved.as_deref() })
    } else {
        let default;
        let runner = match runner {
            Some(r) => r,
            None => {
                default = this_binary()?;
                &default
            }
        };
        wrap::plan(&text, &Mode::Wrap { runner })
    }
    .map_err(|e| located(config, e))?;

    let mut report: String = plan.entries.iter().map(|e| format!("{e}\n")).collect();
    if plan.entries.is_empty() {
        report.push_str(&format!("no mcpServers in {}\n", config.display()));
    }
    if a.dry_run {
        // The diff alone on stdout, so that it can go to a file or `patch`.
        let label = config.display().to_string();
        emit(&mut io::stdout(), &wrap::unified_diff(&text, &plan.text, &label, &label, DIFF_CONTEXT))?;
        report.push_str(&format!("dry run: {} was not changed\n", config.display()));
        emit(&mut io::stderr(), &report)?;
        return Ok(ExitCode::SUCCESS);
    }
    report.push_str(&finish(&a, config, &backup, &text, &plan)?);
    emit(&mut io::stdout(), &report)?;
    Ok(ExitCode::SUCCESS)
}

/// Writes the config if it changes, and says what happened to it and to
/// its backup.
fn finish(a: &WrapArgs, config: &Path, backup: &Path, text: &str, plan: &Plan) -> Result<String, Failure> {
    let (config_shown, backup_shown) = (config.display(), backup.display());
    if !plan.changed {
        return Ok(match (a.undo, backup.exists()) {
            (false, _) => format!("nothing to change in {config_shown}\n"),
            (true, true) => format!("nothing to undo in {config_shown}; the backup is still at {backup_shown}\n"),
            (true, false) => format!("nothing to undo in {config_shown}\n"),
        });
    }
    if a.undo {
        file::write_atomic(config, &plan.text).map_err(file_failure)?;
        let kept = if backup.exists() {
            format!("the backup from before the first wrap is still at {backup_shown}")
        } else {
            "no backup was found; the servers were unwrapped from the config itself".to_owned()
        };
        return Ok(format!("wrote {config_shown}\n{kept}\n"));
    }
    // The backup first: if it cannot be saved, the config stays untouched.
    let created = file::ensure_backup(config, text).map_err(file_failure)?;
    file::write_atomic(config, &plan.text).map_err(file_failure)?;
    let note = if created { "" } else { " (kept from an earlier run)" };
    Ok(format!(
        "wrote {config_shown}\nbackup: {backup_shown}{note}; undo with: mcp-runner wrap --undo {config_shown}\n"
    ))
}

/// The runner's own absolute path: GUI clients do not search the user's
/// `PATH`, so a bare `mcp-runner` would not be found there.
fn this_binary() -> Result<String, Failure> {
    let exe = std::env::current_exe()
        .map_err(|e| anyhow!("cannot find the path of this binary ({e}); give one with --runner"))
        .or_exit(exit::RUNNER_FAILED)?;
    utf8(&exe).map(str::to_owned).or_exit(exit::RUNNER_FAILED)
}

/// A path written into a JSON config must be text.
fn utf8(path: &Path) -> Result<&str, anyhow::Error> {
    path.to_str().ok_or_else(|| anyhow!("{} is not valid UTF-8, so it cannot go into a JSON config", path.display()))
}

/// A file error with its exit code: what the user has to fix is a usage
/// error, anything else a failure of the runner.
fn file_failure(e: FileError) -> Failure {
    let code = match e {
        FileError::NotFound { .. } | FileError::NotABackup { .. } => exit::USAGE,
        FileError::Owner { .. } | FileError::Io { .. } => exit::RUNNER_FAILED,
    };
    Failure { code, error: e.into() }
}

/// A config error as `FILE:LINE:COLUMN: message`, with its exit code.
fn located(config: &Path, e: ConfigError) -> Failure {
    if e.is_internal() {
        return Failure { code: exit::RUNNER_FAILED, error: anyhow!("{}: {e}", config.display()) };
    }
    Failure { code: exit::USAGE, error: anyhow!("{}:{e}; nothing was changed", config.display()) }
}

/// Prints `text`; a reader that went away (`| head`) is not an error.
fn emit(out: &mut impl Write, text: &str) -> Result<(), Failure> {
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(e).or_exit(exit::RUNNER_FAILED),
        _ => Ok(()),
    }
}
