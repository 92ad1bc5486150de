//! `mcp-runner policy check [FILE]`.

use std::path::Path;
use std::process::ExitCode;

use mcp_runner_policy::HostMemory;

use super::policy_source;
use super::{Failure, OrExit};
use crate::{exit, host};

pub fn check(file: Option<&Path>) -> Result<ExitCode, Failure> {
    let source = policy_source::locate(file);
    let policy = policy_source::load(&source).or_exit(exit::USAGE)?;
    let report = policy.report(&HostMemory { physical_bytes: host::physical_memory() }).or_exit(exit::USAGE)?;
    println!("{report}");
    Ok(ExitCode::SUCCESS)
}
