fn main() -> std::process::ExitCode {
    mcp_runner::cli::main()
}
