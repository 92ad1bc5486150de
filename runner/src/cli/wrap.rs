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
use crate::wrap::{self, Action, Backup, ConfigError, EditError, Edited};

/// Lines of context around each change in the `--dry-run` diff.
const DIFF_CONTEXT: usize = 3;

pub fn wrap(a: WrapArgs) -> Result<ExitCode, Failure> {
    let config = a.config.as_path();
    let runner = a.runner.as_deref().map(utf8).transpose().or_exit(exit::USAGE)?;
    let default;
    let action = match (a.undo, runner) {
        (true, runner) => Action::Undo { runner },
        (false, Some(runner)) => Action::Wrap { runner },
        (false, None) => {
            default = this_binary()?;
            Action::Wrap { runner: &default }
        }
    };
    let edited =
        wrap::edit(&mut file::ConfigFile::new(config), action, !a.dry_run).map_err(|e| edit_failure(config, e))?;

    let plan = &edited.plan;
    let mut report: String = plan.entries.iter().map(|e| format!("{e}\n")).collect();
    if plan.entries.is_empty() {
        report.push_str(&format!("no mcpServers in {}\n", config.display()));
    }
    if a.dry_run {
        // The diff alone on stdout, so that it can go to a file or `patch`.
        let label = config.display().to_string();
        emit(&mut io::stdout(), &wrap::unified_diff(&edited.original, &plan.text, &label, &label, DIFF_CONTEXT))?;
        report.push_str(&format!("dry run: {} was not changed\n", config.display()));
        emit(&mut io::stderr(), &report)?;
        return Ok(ExitCode::SUCCESS);
    }
    report.push_str(&outcome(a.undo, config, &edited));
    emit(&mut io::stdout(), &report)?;
    Ok(ExitCode::SUCCESS)
}

/// What happened to the config and to its backup.
fn outcome(undo: bool, config: &Path, edited: &Edited) -> String {
    let backup = file::backup_path(config);
    let (config_shown, backup_shown) = (config.display(), backup.display());
    if !edited.plan.changed {
        return match (undo, edited.backup) {
            (false, _) => format!("nothing to change in {config_shown}\n"),
            (true, Backup::None) => format!("nothing to undo in {config_shown}\n"),
            (true, _) => format!("nothing to undo in {config_shown}; the backup is still at {backup_shown}\n"),
        };
    }
    let mut out = String::new();
    if edited.attempts > 1 {
        out.push_str(&format!(
            "{config_shown} changed while wrap was editing it: its new version was read and edited \
             (attempt {} of {})\n",
            edited.attempts,
            wrap::MAX_ATTEMPTS
        ));
    }
    out.push_str(&format!("wrote {config_shown}\n"));
    match (undo, edited.backup) {
        (true, Backup::None) => {
            out.push_str("no backup was found; the servers were unwrapped from the config itself\n")
        }
        (true, _) => out.push_str(&format!("the backup from before the first wrap is still at {backup_shown}\n")),
        (false, backup) => {
            let note = if backup == Backup::Created { "" } else { " (kept from an earlier run)" };
            out.push_str(&format!("backup: {backup_shown}{note}; undo with: mcp-runner wrap --undo {config_shown}\n"));
        }
    }
    out
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
        FileError::Changed { .. } | FileError::Owner { .. } | FileError::Io { .. } => exit::RUNNER_FAILED,
    };
    Failure { code, error: e.into() }
}

/// An edit's error with its exit code.
fn edit_failure(config: &Path, e: EditError) -> Failure {
    match e {
        // Whatever keeps the config from being read is the caller's to fix.
        EditError::Read(e) => Failure { code: exit::USAGE, error: e.into() },
        EditError::Config(e) => located(config, e),
        EditError::File(e) => file_failure(e),
        e @ EditError::KeptChanging { .. } => {
            Failure { code: exit::RUNNER_FAILED, error: anyhow!("{}: {e}", config.display()) }
        }
    }
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
