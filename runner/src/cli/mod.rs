//! The command line: argument definitions, dispatch, and the one place that
//! turns errors into a message and an exit code.

mod args;
mod doctor;
mod gc;
mod policy_check;
mod policy_source;
mod run;
mod share;
mod status;
mod stop;
mod systemd_unit;
mod wrap;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

pub use args::{Cli, Command};

use crate::exit;
use crate::logging::{self, LogLevel};

/// An error on its way out, with the exit code it maps to.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub error: anyhow::Error,
}

/// Attaches an exit code to an error.
pub trait OrExit<T> {
    fn or_exit(self, code: u8) -> Result<T, Failure>;
}

impl<T, E: Into<anyhow::Error>> OrExit<T> for Result<T, E> {
    fn or_exit(self, code: u8) -> Result<T, Failure> {
        self.map_err(|e| Failure { code, error: e.into() })
    }
}

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { ExitCode::from(exit::USAGE) } else { ExitCode::SUCCESS };
        }
    };
    logging::init(cli.log_level.unwrap_or(LogLevel::Warn));
    match dispatch(cli) {
        Ok(code) => code,
        Err(f) => {
            // Never panic on a closed stderr: the client may be gone.
            let _ = writeln!(std::io::stderr(), "mcp-runner: error: {:#}", f.error);
            ExitCode::from(f.code)
        }
    }
}

fn dispatch(cli: Cli) -> Result<ExitCode, Failure> {
    match cli.command {
        Command::Run(a) => run::run(a),
        Command::Status(a) => status::status(a),
        Command::Stop { target } => stop::stop(&target),
        Command::PoolHost(a) => share::pool_host(a),
        Command::Doctor => doctor::doctor(),
        Command::Gc(a) => gc::gc(a),
        Command::Wrap(a) => wrap::wrap(a),
        Command::Policy { command: args::PolicyCommand::Check { file } } => policy_check::check(file.as_deref()),
        Command::Systemd { command } => {
            let (install, which) = match command {
                args::SystemdCommand::Install(w) => (true, w),
                args::SystemdCommand::Uninstall(w) => (false, w),
            };
            let manager = match (which.user, which.system) {
                (true, _) => systemd_unit::Manager::User,
                (_, true) => systemd_unit::Manager::System,
                _ => systemd_unit::default_manager(),
            };
            if install { systemd_unit::install(manager) } else { systemd_unit::uninstall(manager) }
        }
    }
}
