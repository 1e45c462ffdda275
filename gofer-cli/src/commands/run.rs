//! `gofer run FILE`: starts a run, shows it live, exits with its result.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use gofer_core::secrecy::SecretString;
use gofer_core::{Event, PlaceholderKind, RunOptions, RunStatus, StoreError, TaskStatus};
use gofer_engine::{LogLine, RunHandle};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

use crate::cli::RunArgs;
use crate::commands::Ctx;
use crate::engine::{self, Stores};
use crate::error::CliError;
use crate::orphans;
use crate::pipeline_file::{self, LoadedPipeline};
use crate::progress::{reason_text, Progress};
use crate::slots::{self, StartLock};

/// Exit code of a run that ended Failed (or Unknown).
pub const EXIT_FAILED: u8 = 1;
/// Exit code of a cancelled run (as a shell reports SIGINT).
pub const EXIT_CANCELLED: u8 = 130;

/// How long `gofer run` waits for its new run's first record before releasing the
/// run-number lock anyway.
const RECORD_WAIT: Duration = Duration::from_secs(30);

enum Msg {
    Event(Event),
    Log(Arc<str>, LogLine),
    LogError(Arc<str>, gofer_engine::LogError),
}

/// Runs `gofer run FILE`.
///
/// # Errors
/// [`CliError`] when the run could not be started (the file, the stores, the
/// engine); a run that started and failed is exit code 1, not an error.
pub async fn run(ctx: &Ctx, args: RunArgs) -> Result<ExitCode, CliError> {
    let Some(file) = args.file else {
        return Err(CliError::Usage("gofer run: name a pipeline file".into()));
    };
    let loaded = pipeline_file::load(&file)?;
    // A bad retention setting is said before anything runs.
    let retention = ctx.home.retention()?;
    if let Some(addr) = args.metrics_addr {
        metrics_exporter_prometheus::PrometheusBuilder::new()
            .with_http_listener(addr)
            .install()
            .map_err(|e| CliError::Usage(format!("--metrics-addr {addr}: {e}")))?;
    }
    let stores = Stores::open(&ctx.home).await?;
    check_registry_secrets(&loaded, &stores).await?;
    let scheduler = engine::connect(ctx.engine).await?;
    // Not a slot whose runs a dead process left: those are adopted below with the
    // engine and sandbox their slot recorded.
    let left: std::collections::BTreeSet<String> = stores
        .runs
        .unfinished_runs()
        .await?
        .into_iter()
        .map(|u| u.spec.engine)
        .collect();
    let mut slot =
        slots::take_free_skipping(&ctx.home.slots_dir(), &slots::prefix(ctx.home.id()), &left)?;
    let sandbox = loaded.sandbox_image.as_deref();
    slot.record_engine(&ctx.home.slots_dir(), scheduler.name(), sandbox)?;
    let engine = engine::build(
        scheduler.clone(),
        &ctx.home,
        &stores,
        &slot,
        args.grace,
        sandbox,
    )?;
    let api = engine::serve_api(&engine, &loaded.pipeline).await?;
    super::warn_system_overrides(&loaded.pipeline, &args.vars);
    let mut options = RunOptions::new().variables(args.vars);
    if let Some(t) = args.timeout {
        options = options.timeout(t);
    }

    // From here on Ctrl-C, SIGTERM and SIGHUP cancel the run instead of killing the
    // process.
    let mut sigint = signal(SignalKind::interrupt()).map_err(CliError::Output)?;
    let mut sigterm = signal(SignalKind::terminate()).map_err(CliError::Output)?;
    let mut sighup = signal(SignalKind::hangup()).map_err(CliError::Output)?;

    // Allocate the run number under the start lock: recovery reads the highest
    // number, and the lock is held until the new run is recorded.
    let dir = ctx.home.dir().to_path_buf();
    let taking = tokio::task::spawn_blocking(move || StartLock::take(&dir));
    let lock = tokio::select! {
        taken = taking => taken
            .map_err(|e| CliError::Usage(format!("waiting for the start lock: {e}")))??,
        // Nothing has started yet: an interrupt while another process holds the lock
        // just ends this one (the blocked thread ends with the process).
        _ = sigint.recv() => return Ok(ExitCode::from(EXIT_CANCELLED)),
        _ = sigterm.recv() => return Ok(ExitCode::from(EXIT_CANCELLED)),
    };
    engine.register_pipeline(&loaded.pipeline).await?;
    let own = engine.recover().await?;
    let mut cached = Some(scheduler.clone());
    let adopted = orphans::adopt(
        &ctx.home,
        &stores,
        ctx.engine,
        &mut cached,
        args.grace,
        Some(slot.id()),
    )
    .await?;
    let run = engine.start_run(&loaded.pipeline, options)?;
    wait_recorded(&stores, &run).await?;
    drop(lock);

    let mut background: Vec<RunHandle> = own.runs;
    background.extend(adopted.iter().flat_map(|a| a.runs.iter().cloned()));

    // The tasks the run executes: a matrix task's combinations.
    let tasks: Vec<String> = loaded
        .pipeline
        .expanded()
        .tasks
        .iter()
        .map(|t| t.id.clone())
        .collect();
    let progress = Progress::new(&tasks);
    progress.note(&format!(
        "run {} of pipeline {} started on {} (instance {})",
        run.run_id(),
        run.pipeline_id(),
        scheduler.name(),
        slot.id()
    ));
    for r in &background {
        progress.note(&format!(
            "also finishing run {} of pipeline {}, left by a gofer process that ended",
            r.run_id(),
            r.pipeline_id()
        ));
    }

    let (tx, mut rx) = mpsc::channel::<Msg>(256);
    let services: Vec<String> = loaded
        .pipeline
        .services
        .iter()
        .map(|s| s.id.clone())
        .collect();
    spawn_followers(&run, &tasks, &services, &tx)?;
    drop(tx);

    let mut stops = 0u32;
    loop {
        tokio::select! {
            msg = rx.recv() => match msg {
                None => break,
                Some(Msg::Event(Event::Task { task_id, state, status, reason, at, .. })) => {
                    progress.task(&task_id, state, status, reason.as_ref(), at);
                }
                Some(Msg::Event(Event::Retrying { task_id, attempt, status, reason, backoff, .. })) => {
                    let why = reason.as_ref().map(|r| format!(" ({})", reason_text(r))).unwrap_or_default();
                    let wait = if backoff.is_zero() {
                        "now".to_string()
                    } else {
                        format!("in {}", humantime::format_duration(backoff))
                    };
                    progress.note(&format!(
                        "task {task_id}: attempt {attempt} {status}{why}, retrying {wait}"
                    ));
                }
                Some(Msg::Event(_)) => {}
                Some(Msg::Log(task, line)) => progress.log(&task, &line),
                Some(Msg::LogError(task, e)) => progress.note(&format!("task {task}: cannot read its log: {e}")),
            },
            _ = sigint.recv() => stops = stop(stops, &progress, &run, &background, args.grace).await,
            _ = sigterm.recv() => stops = stop(stops, &progress, &run, &background, args.grace).await,
            _ = sighup.recv() => stops = stop(stops, &progress, &run, &background, args.grace).await,
        }
    }
    let done = loop {
        tokio::select! {
            r = run.wait() => break r?,
            _ = sigint.recv() => stops = stop(stops, &progress, &run, &background, args.grace).await,
        }
    };
    progress.finish();
    for t in &done.tasks {
        let mut line = format!("task {}: {}", t.task_id, t.status);
        if let Some(r) = &t.reason {
            line.push_str(&format!(" ({})", reason_text(r)));
        }
        if let Some(m) = &t.message {
            line.push_str(&format!(": {m}"));
        }
        if t.status != TaskStatus::Successful {
            eprintln!("{line}");
        }
    }
    println!(
        "run {} of pipeline {}: {}",
        done.run_id, done.pipeline_id, done.status
    );

    let pending: Vec<&RunHandle> = background
        .iter()
        .filter(|r| r.snapshot().state != gofer_core::RunState::Complete)
        .collect();
    if !pending.is_empty() {
        eprintln!(
            "gofer: waiting for {} resumed run(s) to finish (Ctrl-C cancels them)",
            pending.len()
        );
        let all = futures::future::join_all(pending.iter().map(|r| r.wait()));
        tokio::pin!(all);
        tokio::select! {
            _ = &mut all => {}
            _ = sigint.recv() => {
                for r in &pending { r.cancel(args.grace); }
                all.await;
            }
        }
    }
    orphans::close(adopted).await;
    engine::stop_api(api).await;
    // The data directory's retention setting, after each run: its history stays
    // bounded without anyone calling `gofer prune`. A failure here is said; the run's
    // exit code stays the run's.
    if let Some(policy) = &retention {
        match crate::commands::prune::run_policy(&ctx.home, &stores, policy).await {
            Ok(r) if r.removed.is_empty() && r.finished.is_empty() => {}
            Ok(r) => eprintln!("gofer: retention: {}", crate::commands::prune::summary(&r)),
            Err(e) => eprintln!("gofer: retention: could not prune old runs: {e}"),
        }
    }
    Ok(ExitCode::from(match done.status {
        RunStatus::Successful => 0,
        RunStatus::Cancelled => EXIT_CANCELLED,
        _ => EXIT_FAILED,
    }))
}

/// The first Ctrl-C (or SIGTERM, SIGHUP) cancels with the grace; the next stops
/// every container of this process's runs at once (a cancel with no grace).
async fn stop(
    stops: u32,
    progress: &Progress,
    run: &RunHandle,
    background: &[RunHandle],
    grace: Duration,
) -> u32 {
    if stops == 0 {
        progress.note(&format!(
            "cancelling: containers get SIGTERM, then are killed after {} (Ctrl-C again stops them now)",
            humantime::format_duration(grace)
        ));
        run.cancel(grace);
        for r in background {
            r.cancel(grace);
        }
    } else {
        progress.note("stopping every container now");
        // A second cancel with no grace shortens the stops under way: kill at once.
        run.cancel(Duration::ZERO);
        for r in background {
            r.cancel(Duration::ZERO);
        }
    }
    stops + 1
}

/// Follows the run's events, and the logs of its tasks and services (a service's
/// lines are tagged `service.<id>`, its log's key).
fn spawn_followers(
    run: &RunHandle,
    tasks: &[String],
    services: &[String],
    tx: &mpsc::Sender<Msg>,
) -> Result<(), CliError> {
    let mut events = run.events();
    let etx = tx.clone();
    tokio::spawn(async move {
        while let Some(e) = events.next().await {
            if etx.send(Msg::Event(e)).await.is_err() {
                break;
            }
        }
    });
    let mut followed = Vec::with_capacity(tasks.len() + services.len());
    for t in tasks {
        followed.push((run.logs(t)?, t.clone()));
    }
    for s in services {
        followed.push((run.service_logs(s)?, format!("service.{s}")));
    }
    for (mut logs, tag) in followed {
        let ltx = tx.clone();
        let task: Arc<str> = Arc::from(tag.as_str());
        tokio::spawn(async move {
            while let Some(line) = logs.next().await {
                let msg = match line {
                    Ok(l) => Msg::Log(task.clone(), l),
                    Err(e) => Msg::LogError(task.clone(), e),
                };
                if ltx.send(msg).await.is_err() {
                    break;
                }
            }
        });
    }
    Ok(())
}

/// Waits until the run's first record is in the run store (so another process's
/// recovery counts it when numbering its run).
async fn wait_recorded(stores: &Stores, run: &RunHandle) -> Result<(), CliError> {
    let deadline = tokio::time::Instant::now() + RECORD_WAIT;
    loop {
        match stores.runs.get_run(run.pipeline_id(), run.run_id()).await {
            Ok(_) => return Ok(()),
            Err(StoreError::NotFound { .. }) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(StoreError::NotFound { .. }) => {
                eprintln!("gofer: the run is not in the run store yet; going on");
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Checks that the secret each registry password placeholder names is there, so a
/// missing one is said before the run starts. The placeholder itself stays in the
/// pipeline: the engine looks the password up when the task starts, and the run store
/// keeps the placeholder, so a process that adopts the run after this one died
/// resumes the task with its credentials.
async fn check_registry_secrets(loaded: &LoadedPipeline, stores: &Stores) -> Result<(), CliError> {
    let pipeline = &loaded.pipeline.id;
    for (task_id, placeholder) in &loaded.registry_secrets {
        let found: Result<SecretString, _> = match placeholder.kind {
            PlaceholderKind::GlobalSecret => {
                stores
                    .secrets
                    .get_global_secret(pipeline, &placeholder.key)
                    .await
            }
            _ => {
                stores
                    .secrets
                    .get_pipeline_secret(pipeline, &placeholder.key)
                    .await
            }
        };
        found.map_err(|source| CliError::RegistrySecret {
            task: task_id.clone(),
            source,
        })?;
    }
    Ok(())
}
