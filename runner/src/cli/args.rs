//! What the user typed, validated only: nothing here reads files or probes
//! the host.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::logging::LogLevel;

#[derive(Debug, Parser)]
#[command(
    name = "mcp-runner",
    version,
    about = "Runs MCP stdio servers under a memory/process budget and leaves nothing behind",
    long_about = "Runs MCP stdio servers under a memory/process budget and leaves nothing behind.\n\n\
        In a client config, replace `\"command\": \"npx\", \"args\": [...]` with\n\
        `\"command\": \"mcp-runner\", \"args\": [\"run\", \"--name\", \"NAME\", \"--\", \"npx\", ...]`."
)]
pub struct Cli {
    /// Log level of the runner's own messages (stderr): off, error, warn, info, debug, trace.
    #[arg(long, global = true, env = "MCP_RUNNER_LOG", value_enum, value_name = "LEVEL")]
    pub log_level: Option<LogLevel>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one MCP server under its budget.
    ///
    /// The server inherits stdin and stdout: the runner adds no copy and no
    /// latency. It ends with the session: stdin closed, the client gone, or
    /// SIGTERM/SIGINT/SIGHUP, after a grace period; nothing of its process
    /// tree survives.
    Run(RunArgs),
    /// Show what runs and what it costs: sessions, servers, memory, processes, events.
    Status(StatusArgs),
    /// Stop a session's servers, or one server, the way a session close does.
    ///
    /// TARGET is a session id, a server name, or a runner or server pid.
    Stop { target: String },
    /// The host of a shared server's pool (started by `run`, not by hand).
    #[command(hide = true)]
    PoolHost(PoolHostArgs),
    /// Show what this host offers and which enforcement driver runs.
    Doctor,
    /// Kill what dead runners left behind and remove their records.
    Gc(GcArgs),
    /// Policy files.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Install or remove mcp-runner.slice, the systemd slice that carries the global cap.
    Systemd {
        #[command(subcommand)]
        command: SystemdCommand,
    },
    /// Route the stdio servers of a client config through mcp-runner.
    ///
    /// Rewrites the mcpServers of a Claude Desktop, Claude Code (.mcp.json,
    /// ~/.claude.json) or Cursor config so that each local server runs as
    /// `mcp-runner run --name=NAME -- COMMAND ARGS...`. Remote servers are
    /// left alone, a second run changes nothing, the first change saves
    /// CONFIG.mcp-runner.bak, and --undo turns the servers back.
    Wrap(WrapArgs),
}

#[derive(Debug, Subcommand)]
pub enum SystemdCommand {
    /// Write mcp-runner.slice with the policy's global cap and reload systemd.
    ///
    /// Installing again rewrites the file only if the cap changed.
    Install(ManagerChoice),
    /// Remove mcp-runner.slice (only a file this command wrote) and reload systemd.
    Uninstall(ManagerChoice),
}

#[derive(Debug, clap::Args)]
#[group(multiple = false)]
pub struct ManagerChoice {
    /// For this user's systemd manager (~/.config/systemd/user; the default for non-root).
    #[arg(long)]
    pub user: bool,
    /// For the system manager (/etc/systemd/system; the default for root).
    #[arg(long)]
    pub system: bool,
}

#[derive(Debug, clap::Args)]
pub struct GcArgs {
    /// Wait for end of file on this descriptor first (macOS's crash guard:
    /// the runner holds the other end).
    #[arg(long, hide = true, value_name = "FD")]
    pub after_eof: Option<i32>,
    /// Start the guard detached from the runner and return at once.
    #[arg(long, hide = true, requires = "after_eof")]
    pub detach: bool,
}

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Print JSON (schema: README, "status --json").
    #[arg(long)]
    pub json: bool,
    /// Refresh in place every second until interrupted.
    #[arg(long)]
    pub watch: bool,
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Validate a policy file and print the effective budgets.
    ///
    /// Without FILE, checks the policy `run` would use.
    Check { file: Option<PathBuf> },
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The server's name: selects its [server.NAME] entry in the policy.
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,

    /// Policy file (default: $MCP_RUNNER_POLICY, ~/.config/mcp-runner/policy.toml,
    /// /etc/mcp-runner/policy.toml, then built-in defaults).
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,

    /// Session this server belongs to (default: the client process).
    #[arg(long, env = "MCP_RUNNER_SESSION", value_name = "ID")]
    pub session: Option<String>,

    /// Force an enforcement driver instead of the policy's choice.
    #[arg(long, value_enum, value_name = "DRIVER")]
    pub driver: Option<DriverArg>,

    /// This run is an instance of a shared server's pool (POOL:N): the pool
    /// host starts it, and it runs unshared in session "shared".
    #[arg(long, hide = true, value_name = "POOL:N")]
    pub pool_instance: Option<String>,

    /// The server command and its arguments (after `--`).
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true, value_name = "COMMAND")]
    pub command: Vec<OsString>,
}

#[derive(Debug, clap::Args)]
pub struct PoolHostArgs {
    /// The second stage: detach and serve (the first stage starts it and exits).
    #[arg(long, hide = true)]
    pub detached: bool,

    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DriverArg {
    Auto,
    Systemd,
    Cgroupfs,
    Userland,
}

#[derive(Debug, clap::Args)]
pub struct WrapArgs {
    /// The client config: claude_desktop_config.json, Cursor's mcp.json, .mcp.json or ~/.claude.json.
    #[arg(value_name = "CONFIG")]
    pub config: PathBuf,

    /// Print the change as a unified diff and write nothing.
    #[arg(long, conflicts_with = "undo")]
    pub dry_run: bool,

    /// Turn every wrapped server back into its own command (the backup stays).
    #[arg(long)]
    pub undo: bool,

    /// The runner command to write (default: the absolute path of this mcp-runner).
    #[arg(long, value_name = "PATH")]
    pub runner: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("mcp-runner").chain(args.iter().copied()))
    }

    fn run_args(args: &[&str]) -> RunArgs {
        match parse(args).expect("parses").command {
            Command::Run(r) => r,
            other => panic!("not run: {other:?}"),
        }
    }

    #[test]
    fn run_takes_everything_after_dashdash() {
        let r = run_args(&["run", "--name", "gh", "--", "npx", "-y", "--name", "x"]);
        assert_eq!(r.name.as_deref(), Some("gh"));
        assert_eq!(r.command, ["npx", "-y", "--name", "x"].map(OsString::from));
    }

    #[test]
    fn issue_9_a_name_in_one_argument_is_never_a_flag() {
        // See: issue 9, finding 5
        let r = run_args(&["run", "--name=--policy=/x", "--", "node"]);
        assert_eq!(r.name.as_deref(), Some("--policy=/x"));
        assert_eq!(r.policy, None);
        assert_eq!(run_args(&["run", "--name=--", "--", "node"]).name.as_deref(), Some("--"));
    }

    #[test]
    fn wrap_knows_every_run_option_that_takes_a_value() {
        // `wrap --undo` skips these options' values to find the `--` before
        // the server's command (`crate::wrap`, RUN_OPTIONS_WITH_VALUE).
        use clap::CommandFactory;
        let cli = Cli::command();
        let run = cli.find_subcommand("run").expect("run");
        let mut taking: Vec<String> = run
            .get_arguments()
            .chain(cli.get_arguments().filter(|a| a.is_global_set()))
            .filter(|a| a.get_long().is_some() && a.get_action().takes_values())
            .filter_map(|a| a.get_long().map(|l| format!("--{l}")))
            .collect();
        taking.sort();
        let mut known = crate::wrap::RUN_OPTIONS_WITH_VALUE.map(str::to_owned).to_vec();
        known.sort();
        assert_eq!(taking, known);
    }

    #[test]
    fn run_takes_a_name_that_starts_with_a_dash_in_one_argument() {
        // What `wrap` writes for such names.
        let r = run_args(&["run", "--name=--", "--", "npx"]);
        assert_eq!(r.name.as_deref(), Some("--"));
        assert_eq!(r.command, ["npx"].map(OsString::from));
    }

    #[test]
    fn run_command_may_start_without_dashdash() {
        let r = run_args(&["run", "node", "server.js", "--port", "1"]);
        assert_eq!(r.command, ["node", "server.js", "--port", "1"].map(OsString::from));
    }

    #[test]
    fn run_needs_a_command() {
        let e = parse(&["run", "--name", "x"]).expect_err("no command");
        assert_eq!(e.kind(), clap::error::ErrorKind::MissingRequiredArgument);
    }

    #[test]
    fn policy_flag() {
        assert_eq!(run_args(&["run", "--policy", "/p.toml", "--", "x"]).policy, Some(PathBuf::from("/p.toml")));
    }

    #[test]
    fn session_flag() {
        assert_eq!(run_args(&["run", "--session", "s1", "--", "x"]).session.as_deref(), Some("s1"));
    }

    #[test]
    fn driver_flag() {
        assert_eq!(run_args(&["run", "--driver", "userland", "--", "x"]).driver, Some(DriverArg::Userland));
        assert!(parse(&["run", "--driver", "docker", "--", "x"]).is_err());
    }

    #[test]
    fn log_level_is_global() {
        let cli = parse(&["run", "--log-level", "debug", "--", "x"]).expect("parses");
        assert_eq!(cli.log_level, Some(LogLevel::Debug));
        assert!(parse(&["--log-level", "loud", "doctor"]).is_err());
    }

    #[test]
    fn policy_check_file_is_optional() {
        assert!(matches!(
            parse(&["policy", "check"]).expect("parses").command,
            Command::Policy { command: PolicyCommand::Check { file: None } }
        ));
    }

    #[test]
    fn systemd_install_flags_exclude_each_other() {
        assert!(matches!(
            parse(&["systemd", "install", "--user"]).expect("parses").command,
            Command::Systemd { command: SystemdCommand::Install(ManagerChoice { user: true, system: false }) }
        ));
        assert!(parse(&["systemd", "uninstall", "--user", "--system"]).is_err());
    }

    #[test]
    fn status_flags() {
        assert!(matches!(
            parse(&["status", "--json"]).expect("parses").command,
            Command::Status(StatusArgs { json: true, watch: false })
        ));
    }

    #[test]
    fn stop_takes_one_target() {
        assert!(matches!(parse(&["stop", "s1"]).expect("parses").command, Command::Stop { target } if target == "s1"));
        assert!(parse(&["stop"]).is_err());
    }

    fn wrap_args(args: &[&str]) -> WrapArgs {
        match parse(args).expect("parses").command {
            Command::Wrap(w) => w,
            other => panic!("not wrap: {other:?}"),
        }
    }

    #[test]
    fn wrap_takes_one_config() {
        let w = wrap_args(&["wrap", "/c.json"]);
        assert_eq!(w.config, PathBuf::from("/c.json"));
        assert!(!w.dry_run && !w.undo && w.runner.is_none());
        assert!(parse(&["wrap"]).is_err());
    }

    #[test]
    fn wrap_dry_run_flag() {
        assert!(wrap_args(&["wrap", "--dry-run", "c.json"]).dry_run);
    }

    #[test]
    fn wrap_undo_flag_excludes_dry_run() {
        assert!(wrap_args(&["wrap", "c.json", "--undo"]).undo);
        assert!(parse(&["wrap", "c.json", "--undo", "--dry-run"]).is_err());
    }

    #[test]
    fn wrap_runner_flag() {
        let w = wrap_args(&["wrap", "c.json", "--runner", "/usr/local/bin/mcp-runner"]);
        assert_eq!(w.runner, Some(PathBuf::from("/usr/local/bin/mcp-runner")));
        assert!(wrap_args(&["wrap", "c.json", "--undo", "--runner", "/r"]).undo);
    }

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
