//! `gofer logs PIPELINE RUN TASK [--follow] [--streams S]`: a task's stored log (every
//! attempt's in order, or `TASK.<n>` for attempt *n*), or a service's
//! (`service.<id>`); `--streams` picks the output streams and where they go
//! ([`Streams`]).
//!
//! The log is read from the file log sink by position. With `--follow`, when no new
//! line is there, the run store is asked every [`POLL`] whether the log is over (the
//! engine finishes a task's log before it records the task complete, a service's
//! before the run completes), so a task running in another `gofer run` process is
//! followed to its end.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use gofer_core::{OutputStream, RunState, TaskState};

use gofer_engine::{FileLogSink, LogError, LogKey, LogSink, RunError};

use crate::cli::Streams;
use crate::commands::Ctx;
use crate::engine::Stores;
use crate::error::CliError;
use crate::orphans;

/// How often `--follow` polls the run store while no new line arrives.
pub const POLL: Duration = Duration::from_millis(250);

/// Whose log `gofer logs` prints, from its TASK argument, spelled like the log's key
/// ([`LogKey::attempt`], [`LogKey::service`]): `<task>` (every attempt, in order),
/// `<task>.<n>` (attempt *n*), `service.<id>` (a service's).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    Task(String),
    Attempt(String, u32),
    Service(String),
}

fn target(arg: &str) -> Result<Target, CliError> {
    if let Some(s) = arg.strip_prefix("service.") {
        return Ok(Target::Service(s.to_string()));
    }
    if let Some((task, n)) = arg.rsplit_once('.') {
        // Task ids hold no `.`: what follows one is an attempt number.
        return match n.parse::<u32>() {
            Ok(n @ 1..) => Ok(Target::Attempt(task.to_string(), n)),
            _ => Err(CliError::NoLog(format!(
                "{arg:?}: after the `.` comes an attempt number, counted from 1 (`{task}.1`)"
            ))),
        };
    }
    Ok(Target::Task(arg.to_string()))
}

/// Why a task has no log to print: it never made a container (skipped, cancelled
/// before its start, a missing precondition).
fn never_ran(task: &str, run: u64, t: &gofer_core::TaskExecution) -> Option<CliError> {
    (t.state == TaskState::Complete && t.container.is_none() && t.attempts.is_empty()).then(|| {
        let why = t
            .message
            .as_deref()
            .map(|m| format!(": {m}"))
            .unwrap_or_default();
        CliError::NoLog(format!(
            "task {task} of run {run} has no log: it never ran (it ended {}{why})",
            t.status
        ))
    })
}

/// `gofer logs`.
///
/// # Errors
/// The stores; `NotFound` for an unknown task execution, `UnknownService` for a
/// service the pipeline does not have; the log sink.
pub async fn logs(
    ctx: &Ctx,
    pipeline: &str,
    run: u64,
    task: &str,
    follow: bool,
    streams: Streams,
) -> Result<ExitCode, CliError> {
    let printer = Printer::new(streams);
    let stores = Stores::open(&ctx.home).await?;
    let grace = Duration::from_secs(10);
    // A run left by a dead process is resumed here, so its log goes on growing.
    let adopted = orphans::adopt(&ctx.home, &stores, ctx.engine, &mut None, grace, None).await?;
    let sink = ctx.home.log_sink();
    match target(task)? {
        Target::Service(service) => {
            stores.runs.get_run(pipeline, run).await?;
            let key = LogKey::service(pipeline, run, &service);
            // The pipeline as registered now, or a log the run left (a service the
            // file has dropped since).
            let known = stores.runs.get_pipeline(pipeline).await?;
            if !known.services.iter().any(|s| s.id == service) && !sink.path(&key).exists() {
                return Err(RunError::UnknownService {
                    pipeline: pipeline.to_string(),
                    run,
                    service,
                }
                .into());
            }
            print_log(&sink, &key, &printer, follow, || async {
                // A service's output ends before its run completes.
                Ok(stores.runs.get_run(pipeline, run).await?.state == RunState::Complete)
            })
            .await?;
        }
        Target::Attempt(task, n) => {
            let t = stores.runs.get_task(pipeline, run, &task).await?.execution;
            if let Some(e) = never_ran(&task, run, &t) {
                return Err(e);
            }
            if n > t.attempt {
                return Err(CliError::NoLog(format!(
                    "task {task} of run {run} has no attempt {n}: it has made {} so far",
                    t.attempt
                )));
            }
            let key = LogKey::attempt(pipeline, run, &task, n);
            print_log(&sink, &key, &printer, follow, || {
                attempt_over(&stores, pipeline, run, &task, n)
            })
            .await?;
        }
        Target::Task(task) => {
            let t = stores.runs.get_task(pipeline, run, &task).await?.execution;
            if let Some(e) = never_ran(&task, run, &t) {
                return Err(e);
            }
            let mut n = 1;
            loop {
                if n > 1 {
                    eprintln!("gofer: attempt {n} of task {task}");
                }
                let key = LogKey::attempt(pipeline, run, &task, n);
                print_log(&sink, &key, &printer, follow, || {
                    attempt_over(&stores, pipeline, run, &task, n)
                })
                .await?;
                let current = stores.runs.get_task(pipeline, run, &task).await?;
                if current.execution.attempt <= n {
                    break;
                }
                n += 1;
            }
        }
    }
    orphans::finish(&adopted, grace).await;
    orphans::close(adopted).await;
    Ok(ExitCode::SUCCESS)
}

/// Whether attempt `n` of the task writes no more to its log: a later attempt began,
/// or the task is complete (the engine finishes a log before it records the task
/// complete).
async fn attempt_over(
    stores: &Stores,
    pipeline: &str,
    run: u64,
    task: &str,
    n: u32,
) -> Result<bool, CliError> {
    let t = stores.runs.get_task(pipeline, run, task).await?.execution;
    Ok(t.attempt > n || t.state == TaskState::Complete)
}

/// Prints the log of `key`; with `follow`, until `over` says nothing more is written
/// (or Ctrl-C).
async fn print_log<F, Fut>(
    sink: &FileLogSink,
    key: &LogKey,
    printer: &Printer,
    follow: bool,
    over: F,
) -> Result<(), CliError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<bool, CliError>>,
{
    let path = sink.path(key);
    let mut cursor = 0u64;
    let mut printed = 0u64;
    let mut skip = 0u64;
    let mut last_round = !follow;
    loop {
        // A recovery that re-attaches a task (or adopts a service) rewrites its log
        // from the start: go back and skip what was already printed.
        let len = std::fs::metadata(&path).map_or(0, |m| m.len());
        if len < FileLogSink::cursor_offset(cursor) {
            cursor = 0;
            skip = printed;
        }
        let mut got = false;
        match sink.read(key, cursor, 1024) {
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
                    printer
                        .line(&mut out, l.stream, &l.text())
                        .map_err(CliError::Output)?;
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
            return Ok(());
        }
        if over().await? {
            last_round = true; // one more read: the log is whole now
            continue;
        }
        tokio::select! {
            () = tokio::time::sleep(POLL) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}

/// Prints log lines as `--streams` asks.
#[derive(Debug, Clone, Copy)]
struct Printer {
    streams: Streams,
    /// Stderr lines in red instead of prefixed (stdout is a terminal, no `NO_COLOR`).
    colour: bool,
}

/// The mark of a stderr line in `--streams both` off a terminal.
const STDERR_PREFIX: &str = "[stderr] ";

impl Printer {
    fn new(streams: Streams) -> Self {
        Self {
            streams,
            colour: std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
        }
    }

    /// Writes one line of `stream` (stdout lines to `out`).
    fn line(&self, out: &mut impl Write, stream: OutputStream, text: &str) -> std::io::Result<()> {
        let err = stream == OutputStream::Stderr;
        match (self.streams, err) {
            (Streams::Split, true) => writeln!(std::io::stderr(), "{text}"),
            (Streams::Split | Streams::Both | Streams::Stdout, false) | (Streams::Stderr, true) => {
                writeln!(out, "{text}")
            }
            (Streams::Both, true) if self.colour => writeln!(out, "\x1b[31m{text}\x1b[0m"),
            (Streams::Both, true) => writeln!(out, "{STDERR_PREFIX}{text}"),
            (Streams::Stdout, true) | (Streams::Stderr, false) => Ok(()),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn streams_pick_and_mark_the_lines() {
        let print = |streams, colour| {
            let p = Printer { streams, colour };
            let mut out = Vec::new();
            p.line(&mut out, OutputStream::Stdout, "out").unwrap();
            p.line(&mut out, OutputStream::Stderr, "err").unwrap();
            String::from_utf8(out).unwrap()
        };
        assert_eq!(print(Streams::Both, false), "out\n[stderr] err\n");
        assert_eq!(print(Streams::Both, true), "out\n\x1b[31merr\x1b[0m\n");
        assert_eq!(print(Streams::Stdout, false), "out\n");
        assert_eq!(print(Streams::Stderr, false), "err\n");
        // Split: the stderr line goes to the process's stderr, not here.
        assert_eq!(print(Streams::Split, false), "out\n");
    }

    #[test]
    fn the_task_argument_is_spelled_like_the_logs_key() {
        let t = |a: &str| target(a).ok();
        assert_eq!(t("build"), Some(Target::Task("build".into())));
        assert_eq!(t("build.3"), Some(Target::Attempt("build".into(), 3)));
        assert_eq!(t("service.db"), Some(Target::Service("db".into())));
        // Task ids hold no `.`: anything else after one is a wrong attempt number.
        for bad in ["build.0", "build.x", "build.99999999999"] {
            let e = target(bad).unwrap_err().to_string();
            assert!(e.contains("counted from 1"), "{bad}: {e}");
        }
    }
}
