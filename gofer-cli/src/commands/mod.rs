//! The commands, one file each.

mod cache;
mod doctor;
mod history;
mod logs;
pub(crate) mod prune;
pub(crate) mod run;
mod secret;

use std::io::Write;
use std::process::ExitCode;

use crate::cli::{Cli, Command, EngineChoice, Output, RunHistory, TaskCommand};
use crate::error::CliError;
use crate::home::Home;
use crate::pipeline_file;

/// What every command gets.
#[derive(Debug)]
pub struct Ctx {
    /// The data directory.
    pub home: Home,
    /// The engine choice.
    pub engine: EngineChoice,
    /// The output format.
    pub output: Output,
}

/// Runs the parsed command line.
///
/// # Errors
/// [`CliError`]; the caller prints it and exits 2.
pub async fn dispatch(cli: Cli) -> Result<ExitCode, CliError> {
    // Commands that need no data directory.
    match &cli.command {
        Command::Validate { file } => return validate(file),
        Command::Schema => {
            print(&format!("{}\n", pipeline_file::json_schema()))?;
            return Ok(ExitCode::SUCCESS);
        }
        Command::Completions { shell } => {
            let mut cmd = crate::cli::command();
            clap_complete::generate(*shell, &mut cmd, "gofer", &mut std::io::stdout());
            return Ok(ExitCode::SUCCESS);
        }
        _ => {}
    }
    let engine = cli.engine_choice().map_err(CliError::Usage)?;
    let ctx = Ctx {
        home: Home::open(cli.home)?,
        engine,
        output: cli.output,
    };
    match cli.command {
        Command::Run(args) => match args.history {
            Some(RunHistory::List { pipeline }) => history::list(&ctx, &pipeline).await,
            Some(RunHistory::Get { pipeline, run }) => history::get(&ctx, &pipeline, run).await,
            None => run::run(&ctx, args).await,
        },
        Command::Task(TaskCommand::Get {
            pipeline,
            run,
            task,
        }) => history::task(&ctx, &pipeline, run, &task).await,
        Command::Logs {
            pipeline,
            run,
            task,
            follow,
            streams,
        } => logs::logs(&ctx, &pipeline, run, &task, follow, streams).await,
        Command::Secret(cmd) => secret::secret(&ctx, cmd).await,
        Command::Cache(cmd) => cache::cache(&ctx, cmd).await,
        Command::Doctor => doctor::doctor(&ctx).await,
        Command::Prune {
            keep,
            older_than,
            dry_run,
        } => prune::prune(&ctx, keep, older_than, dry_run).await,
        Command::Validate { .. } | Command::Schema | Command::Completions { .. } => {
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Warns, on stderr, of each task variable and each `--var` that replaces a value the
/// engine sets itself (`GOFER_RUN_ID` and the like): the container then sees the given
/// value, as the precedence says, which is seldom what was meant.
pub(crate) fn warn_system_overrides(pipeline: &gofer_core::Pipeline, vars: &[(String, String)]) {
    for t in &pipeline.tasks {
        for key in t
            .variables
            .keys()
            .filter(|k| gofer_core::SYSTEM_KEYS.contains(&k.as_str()))
        {
            eprintln!(
                "gofer: warning: variable {key} of task {} replaces the value gofer sets (source: pipeline config)",
                t.id
            );
        }
    }
    for (key, _) in vars
        .iter()
        .filter(|(k, _)| gofer_core::SYSTEM_KEYS.contains(&k.as_str()))
    {
        eprintln!("gofer: warning: --var {key} replaces the value gofer sets in every task (source: run options)");
    }
}

fn validate(file: &std::path::Path) -> Result<ExitCode, CliError> {
    let loaded = pipeline_file::load(file)?;
    warn_system_overrides(&loaded.pipeline, &[]);
    let tasks = loaded.pipeline.tasks.len();
    let runs_as = loaded.pipeline.expanded().tasks.len();
    let plural = |n: usize| if n == 1 { "" } else { "s" };
    let expanded = if runs_as == tasks {
        String::new()
    } else {
        format!(", {runs_as} with the matrix combinations")
    };
    print(&format!(
        "{}: pipeline {} is valid ({tasks} task{}{expanded})\n",
        file.display(),
        loaded.pipeline.id,
        plural(tasks),
    ))?;
    Ok(ExitCode::SUCCESS)
}

/// Writes to standard output.
pub(crate) fn print(text: &str) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(CliError::Output)
}

/// Writes a value as pretty JSON to standard output.
pub(crate) fn print_json<T: serde::Serialize>(value: &T) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| CliError::Output(std::io::Error::other(e)))?;
    print(&format!("{text}\n"))
}
