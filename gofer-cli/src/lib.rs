#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub(crate) mod cli;
pub(crate) mod commands;
pub(crate) mod engine;
pub(crate) mod error;
pub(crate) mod home;
pub(crate) mod logging;
pub(crate) mod orphans;
pub(crate) mod pipeline_file;
pub(crate) mod progress;
pub(crate) mod slots;
pub(crate) mod view;

pub use cli::{command, parse as parse_args, Cli, EngineChoice};
pub use commands::run::{EXIT_CANCELLED, EXIT_FAILED};
pub use engine::connect as connect_engine;
pub use error::CliError;
pub use pipeline_file::parse::Format as PipelineFormat;

/// Exit code of a command that could not do its job (a bad file, no engine, a store
/// error).
pub const EXIT_ERROR: u8 = 2;

/// Runs `gofer` with these arguments on a new Tokio runtime; returns the exit code.
pub fn main_with(cli: Cli) -> std::process::ExitCode {
    if let Err(e) = logging::init(cli.verbose, cli.log_file.as_deref()) {
        eprintln!("gofer: {}", error_chain(&e));
        return std::process::ExitCode::from(EXIT_ERROR);
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("gofer: cannot start the async runtime: {e}");
            return std::process::ExitCode::from(EXIT_ERROR);
        }
    };
    let result = rt.block_on(commands::dispatch(cli));
    // Background work (a run store writer, a blocking read) must not keep the
    // process alive once the command is done.
    rt.shutdown_timeout(std::time::Duration::from_secs(5));
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("gofer: {}", error_chain(&e));
            std::process::ExitCode::from(EXIT_ERROR)
        }
    }
}

/// An error with its causes, `a: b: c` (a cause already in the message is not
/// repeated).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let t = s.to_string();
        if !text.contains(&t) {
            text.push_str(": ");
            text.push_str(&t);
        }
        source = s.source();
    }
    text
}
