//! `gofer logs PIPELINE RUN TASK [--follow]`: a task's stored log.
//!
//! The log is read from the file log sink by position. With `--follow`, when no new
//! line is there, the run store is asked every [`POLL`] whether the task is complete
//! (the engine finishes a task's log before it records the task complete), so a task
//! running in another `gofer run` process is followed to its end.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use gofer_core::{FileLogSink, LogError, LogKey, LogSink, OutputStream, TaskState};

use crate::commands::Ctx;
use crate::engine::Stores;
use crate::error::CliError;
use crate::orphans;

/// How often `--follow` polls the run store while no new line arrives.
pub const POLL: Duration = Duration::from_millis(250);

/// `gofer logs`.
///
/// # Errors
/// The stores; `NotFound` for an unknown task execution; the log sink.
pub async fn logs(
    ctx: &Ctx,
    pipeline: &str,
    run: u64,
    task: &str,
    follow: bool,
) -> Result<ExitCode, CliError> {
    let stores = Stores::open(&ctx.home).await?;
    let grace = Duration::from_secs(10);
    // A run left by a dead process is resumed here, so its log goes on growing.
    let adopted = orphans::adopt(&ctx.home, &stores, ctx.engine, &mut None, grace, None).await?;
    stores.runs.get_task(pipeline, run, task).await?;
    let sink = ctx.home.log_sink();
    let key = LogKey::new(pipeline, run, task);
    let path = sink.path(&key);
    let mut cursor = 0u64;
    let mut printed = 0u64;
    let mut skip = 0u64;
    let mut last_round = !follow;
    loop {
        // A recovery that re-attaches a task rewrites its log from the start: go back
        // and skip what was already printed.
        let len = std::fs::metadata(&path).map_or(0, |m| m.len());
        if len < FileLogSink::cursor_offset(cursor) {
            cursor = 0;
            skip = printed;
        }
        let mut got = false;
        match sink.read(&key, cursor, 1024) {
            Ok((lines, next)) => {
                cursor = next;
                got = !lines.is_empty();
                let mut out = std::io::stdout().lock();
                for l in lines {
                    if skip > 0 {
                        skip -= 1;
                        continue;
                    }
                    printed += 1;
                    let r = if l.stream == OutputStream::Stderr {
                        writeln!(std::io::stderr(), "{}", l.text())
                    } else {
                        writeln!(out, "{}", l.text())
                    };
                    r.map_err(CliError::Output)?;
                }
                out.flush().map_err(CliError::Output)?;
            }
            Err(LogError::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        if got {
            continue;
        }
        if last_round {
            break;
        }
        let details = stores.runs.get_task(pipeline, run, task).await?;
        if details.execution.state == TaskState::Complete {
            last_round = true; // one more read: the log is whole now
            continue;
        }
        tokio::select! {
            () = tokio::time::sleep(POLL) => {}
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    orphans::finish(&adopted, grace).await;
    Ok(ExitCode::SUCCESS)
}
