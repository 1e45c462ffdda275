//! `gofer run list`, `gofer run get`, `gofer task get`: history from the run store.

use std::process::ExitCode;

use crate::cli::Output;
use crate::commands::{print, print_json, Ctx};
use crate::engine::Stores;
use crate::error::CliError;
use crate::orphans;
use crate::view::{self, RunView, TaskView};

async fn open(ctx: &Ctx) -> Result<Stores, CliError> {
    let stores = Stores::open(&ctx.home).await?;
    orphans::settle(&ctx.home, &stores, ctx.engine).await?;
    Ok(stores)
}

/// `gofer run list PIPELINE`.
///
/// # Errors
/// The stores.
pub async fn list(ctx: &Ctx, pipeline: &str) -> Result<ExitCode, CliError> {
    let stores = open(ctx).await?;
    let runs = stores.runs.list_runs(pipeline).await?;
    match ctx.output {
        Output::Json => print_json(
            &runs
                .iter()
                .map(|r| RunView::new(r, false))
                .collect::<Vec<_>>(),
        )?,
        Output::Text if runs.is_empty() => print(&format!("pipeline {pipeline} has no runs\n"))?,
        Output::Text => print(&view::runs_text(&runs))?,
    }
    Ok(ExitCode::SUCCESS)
}

/// `gofer run get PIPELINE RUN`.
///
/// # Errors
/// The stores; `NotFound` for an unknown run.
pub async fn get(ctx: &Ctx, pipeline: &str, run: u64) -> Result<ExitCode, CliError> {
    let stores = open(ctx).await?;
    let r = stores.runs.get_run(pipeline, run).await?;
    match ctx.output {
        Output::Json => print_json(&RunView::new(&r, true))?,
        Output::Text => print(&view::run_text(&r))?,
    }
    Ok(ExitCode::SUCCESS)
}

/// `gofer task get PIPELINE RUN TASK`.
///
/// # Errors
/// The stores; `NotFound` for an unknown run or task.
pub async fn task(ctx: &Ctx, pipeline: &str, run: u64, task: &str) -> Result<ExitCode, CliError> {
    let stores = open(ctx).await?;
    let d = stores.runs.get_task(pipeline, run, task).await?;
    match ctx.output {
        Output::Json => print_json(&TaskView::new(&d.execution, true, d.log.clone()))?,
        Output::Text => print(&view::task_text(
            pipeline,
            run,
            &d.execution,
            d.log.as_deref(),
        ))?,
    }
    Ok(ExitCode::SUCCESS)
}
