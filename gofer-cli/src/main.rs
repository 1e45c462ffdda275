//! The `gofer` command.

fn main() -> std::process::ExitCode {
    gofer_cli::main_with(gofer_cli::parse_args())
}
