//! The `gofer` command.

use clap::Parser;

fn main() -> std::process::ExitCode {
    gofer_cli::main_with(gofer_cli::Cli::parse())
}
