//! Executes one task: resolve variables, start the container, stream its logs, wait
//! for its exit (or stop it), remove it, record the outcome.

use std::sync::Arc;
use std::time::SystemTime;

use futures::StreamExt;
use tracing::{debug, warn, Instrument};

use crate::interpolate::{parse_placeholder, PlaceholderKind};
use crate::naming;
use crate::scheduler::{ContainerId, ContainerSpec, Env, ExitStatus, NetworkMode, OutputStream};
use crate::store::{DynObjectStore, DynSecretStore};
use crate::variable::{
    merge_variables, system_variables, EnvValue, Variable, VariableSource, MASK,
};

use super::logs::{LineFramer, LogKey, LogLine};
use super::mask::{mask_str, MaskPatterns, Masker};
use super::model::{InjectedVariable, StatusReason, TaskState, TaskStatus};
use super::recorder::{LogState, Outcome, StopCause};
use super::recover::{self, Resume};
use super::run::{stop_outcome as not_started, stopped, RunCtx};

/// How long the output may go on after the container exited.
const LOG_DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

pub(crate) async fn execute_task(ctx: Arc<RunCtx>, idx: usize) -> TaskStatus {
    let task = &ctx.pipeline.tasks[idx];
    let span = tracing::debug_span!("task", task = %task.id);
    // The container slot is held until the completion is recorded, so that recorded
    // Running tasks never exceed the engine's cap; it is released before the exited
    // container is removed, so the next task's start overlaps that removal.
    let mut permit = None;
    let mut container = None;
    let mut outcome = run_task(&ctx, idx, &mut permit, &mut container)
        .instrument(span)
        .await;
    // Messages quote backend errors: mask any secret value a backend might echo.
    if let Some(message) = outcome.message.as_mut() {
        let secrets = ctx.secrets();
        if !secrets.is_empty() {
            *message = mask_str(&MaskPatterns::new(secrets.iter()), message);
        }
    }
    let status = outcome.status;
    ctx.recorder.task_complete(idx, outcome);
    drop(permit);
    // The container is removed only once its outcome is durable: a host that dies in
    // between finds it on recovery and collects it again.
    if let Some(id) = container {
        if let Err(e) = ctx.recorder.flush().await {
            warn!(container = %id, error = %e, "outcome not recorded; container kept");
        } else if let Err(e) = ctx.engine.scheduler.remove(&id, true).await {
            warn!(container = %id, error = %e, "cannot remove the container");
        }
    }
    status
}

fn precondition(message: String) -> Outcome {
    Outcome::new(
        TaskStatus::Failed,
        Some(StatusReason::FailedPrecondition),
        message,
    )
}

async fn run_task(
    ctx: &Arc<RunCtx>,
    idx: usize,
    permit: &mut Option<tokio::sync::OwnedSemaphorePermit>,
    container: &mut Option<ContainerId>,
) -> Outcome {
    let task = &ctx.pipeline.tasks[idx];
    let engine = &ctx.engine;
    let mut stop_rx = ctx.recorder.stop.subscribe();

    // A resumed run: the task's container may already exist, or be gone.
    let attach = match ctx.resume.get(idx) {
        Some(Resume::Orphaned) => return recover::orphaned(),
        Some(Resume::Attach(id)) => Some(id.clone()),
        _ => None,
    };

    // Variables, substituted now that the parents are done (for an existing
    // container, only to know the secret values its log must be masked with).
    let name =
        naming::task_container_name(&engine.instance_id, &ctx.pipeline.id, ctx.run_id, &task.id);
    let env = match (resolve(ctx, idx).await, &attach) {
        (Ok((env, shown)), None) => {
            let log = engine.sink.locate(&LogKey::new(
                ctx.pipeline.id.clone(),
                ctx.run_id,
                task.id.clone(),
            ));
            ctx.recorder.task_prepared(idx, shown, name.clone(), log);
            env
        }
        (Ok((env, _)), Some(_)) => env,
        (Err(message), None) => return precondition(message),
        (Err(message), Some(_)) => {
            warn!(%message, "cannot resolve the variables again; log masking may be incomplete");
            Env::new()
        }
    };

    // A container slot.
    *permit = match &engine.containers {
        None => None,
        Some(sem) => tokio::select! {
            p = sem.clone().acquire_owned() => p.ok(),
            stop = stopped(&mut stop_rx) => return not_started(stop, "before the task started"),
        },
    };
    let stop_now = *stop_rx.borrow();
    if let Some(stop) = stop_now {
        if attach.is_none() {
            return not_started(stop, "before the task started");
        }
    }

    let mut spec = ContainerSpec::new(name, task.image.clone())
        .pull_policy(task.pull_policy)
        .registry_auth(task.registry_auth.clone())
        .env(env)
        .labels(naming::task_labels(
            &engine.instance_id,
            &ctx.pipeline.id,
            ctx.run_id,
            &task.id,
        ))
        .resources(task.resources)
        .init(true);
    spec.entrypoint = task.entrypoint.clone();
    spec.command = task.command.clone();
    if let Some(sandbox) = &ctx.sandbox {
        spec = spec.network(NetworkMode::Sandbox(sandbox.clone()));
    }
    let id = match attach {
        Some(id) => {
            debug!(container = %id, "re-attached");
            if ctx.recorder.snapshot_task_state(idx) != TaskState::Running {
                ctx.recorder.task_running(idx, &id.0);
            }
            id
        }
        None => {
            // Recorded as starting, durably, before the container exists.
            if let Err(message) = ctx.recorder.flush().await {
                return Outcome::new(
                    TaskStatus::Failed,
                    Some(StatusReason::SchedulerError),
                    message,
                );
            }
            let id = match recover::start_or_adopt(ctx, idx, spec).await {
                Ok(id) => id,
                Err(e) => {
                    return Outcome::new(
                        TaskStatus::Failed,
                        Some(StatusReason::SchedulerError),
                        format!("cannot start the container: {e}"),
                    )
                }
            };
            debug!(container = %id, "started");
            ctx.recorder.task_running(idx, &id.0);
            id
        }
    };
    // Removed by the caller, once the outcome is durable.
    *container = Some(id.clone());

    // Logs flow while the exit is awaited; once the container has exited its output
    // ends too, but a backend that never ends the stream cannot hold the task forever.
    let mut pump = std::pin::pin!(pump_logs(ctx, idx, &id));
    let mut pump_done = false;
    let ended = {
        let mut exit = std::pin::pin!(watch_exit(ctx, idx, &id, &mut stop_rx));
        loop {
            tokio::select! {
                () = &mut pump, if !pump_done => pump_done = true,
                o = &mut exit => break o,
            }
        }
    };
    if !pump_done
        && tokio::time::timeout(LOG_DRAIN_TIMEOUT, &mut pump)
            .await
            .is_err()
    {
        warn!(container = %id, "the container's output did not end after its exit; log closed");
    }
    ended
}

fn stop_outcome(cause: StopCause) -> Outcome {
    match cause {
        StopCause::Cancelled => Outcome::new(
            TaskStatus::Cancelled,
            Some(StatusReason::Cancelled),
            "run was cancelled".to_string(),
        ),
        StopCause::Timeout => Outcome::new(
            TaskStatus::Failed,
            Some(StatusReason::Timeout),
            "run timed out".to_string(),
        ),
    }
}

/// Waits for the container's exit, stopping it on a timeout or a stop of the run.
async fn watch_exit(
    ctx: &RunCtx,
    idx: usize,
    id: &ContainerId,
    stop_rx: &mut tokio::sync::watch::Receiver<Option<crate::executor::recorder::Stop>>,
) -> Outcome {
    let task = &ctx.pipeline.tasks[idx];
    let scheduler = &ctx.engine.scheduler;
    let timeout = async {
        match task.timeout {
            Some(t) => tokio::time::sleep(t).await,
            None => futures::future::pending().await,
        }
    };
    let (grace, outcome) = tokio::select! {
        exit = scheduler.wait(id) => match exit {
            Err(e) => (
                ctx.engine.limits.stop_grace,
                exit_outcome(Err(e)),
            ),
            ok => return exit_outcome(ok),
        },
        () = timeout => (
            ctx.engine.limits.stop_grace,
            Outcome::new(
                TaskStatus::Failed,
                Some(StatusReason::Timeout),
                format!("task ran longer than its timeout of {}", humantime::format_duration(task.timeout.unwrap_or_default())),
            ),
        ),
        stop = stopped(stop_rx) => (stop.grace, stop_outcome(stop.cause)),
    };
    if let Err(e) = scheduler.stop(id, grace).await {
        warn!(container = %id, error = %e, "cannot stop the container");
    }
    outcome
}

fn exit_outcome(exit: Result<ExitStatus, crate::SchedulerError>) -> Outcome {
    match exit {
        Ok(ExitStatus::Exited { code: 0 }) => {
            let mut o = Outcome::new(TaskStatus::Successful, None, None);
            o.exit_code = Some(0);
            o
        }
        Ok(ExitStatus::Exited { code }) => {
            let mut o = Outcome::new(
                TaskStatus::Failed,
                Some(StatusReason::AbnormalExit { code }),
                format!("container exited with code {code}"),
            );
            o.exit_code = Some(code);
            o
        }
        Ok(ExitStatus::OutOfMemory { code }) => {
            let mut o = Outcome::new(
                TaskStatus::Failed,
                Some(StatusReason::AbnormalExit { code }),
                format!("container was killed for exceeding its memory limit (exit code {code})"),
            );
            o.exit_code = Some(code);
            o
        }
        Ok(_) => Outcome::new(
            TaskStatus::Unknown,
            Some(StatusReason::Orphaned),
            "container was removed before it reported an exit".to_string(),
        ),
        Err(e) => Outcome::new(
            TaskStatus::Unknown,
            Some(StatusReason::SchedulerError),
            format!("cannot wait for the container: {e}"),
        ),
    }
}

/// Streams the container's output through the masker and the line framer into the
/// log sink, until the output ends.
async fn pump_logs(ctx: &RunCtx, idx: usize, id: &ContainerId) {
    let task = &ctx.pipeline.tasks[idx];
    let key = LogKey::new(ctx.pipeline.id.clone(), ctx.run_id, task.id.clone());
    let mut writer = match ctx.engine.sink.open(&key) {
        Ok(w) => w,
        Err(e) => {
            warn!(error = %e, "cannot open the task's log; its output is not kept");
            return;
        }
    };
    ctx.recorder.log_state_changed(idx, LogState::Open);
    let patterns = MaskPatterns::new(ctx.secrets().iter());
    let mut maskers = [Masker::new(patterns.clone()), Masker::new(patterns)];
    let mut framers = [
        LineFramer::new(OutputStream::Stdout),
        LineFramer::new(OutputStream::Stderr),
    ];
    let mut masked = Vec::new();
    let mut lines: Vec<LogLine> = Vec::new();
    let mut write = |lines: &mut Vec<LogLine>| {
        if lines.is_empty() {
            return;
        }
        if let Err(e) = writer.write(lines) {
            warn!(error = %e, "cannot write the task's log");
        }
        lines.clear();
        ctx.recorder.log_written();
    };
    let mut last = SystemTime::now();
    match ctx.engine.scheduler.logs(id).await {
        Ok(mut stream) => {
            while let Some(chunk) = stream.next().await {
                match chunk {
                    Ok(chunk) => {
                        let s = usize::from(chunk.stream == OutputStream::Stderr);
                        masked.clear();
                        maskers[s].push(&chunk.data, &mut masked);
                        framers[s].push(&masked, chunk.timestamp, &mut lines);
                        last = chunk.timestamp;
                        write(&mut lines);
                    }
                    Err(e) => {
                        warn!(error = %e, "the container's log stream failed");
                        break;
                    }
                }
            }
        }
        Err(e) => warn!(error = %e, "cannot read the container's logs"),
    }
    for s in 0..2 {
        masked.clear();
        maskers[s].finish(&mut masked);
        framers[s].push(&masked, last, &mut lines);
        framers[s].finish(last, &mut lines);
    }
    write(&mut lines);
    // The log is marked complete when the task's completion is recorded.
}

/// Merges the task's variables by precedence and substitutes store placeholders in
/// the winners of source PipelineConfig and RunOptions (never System). Returns the
/// environment and the injected variables for display (secrets masked), and feeds
/// secret values to the run's masker.
async fn resolve(ctx: &RunCtx, idx: usize) -> Result<(Env, Vec<InjectedVariable>), String> {
    let task = &ctx.pipeline.tasks[idx];
    let pipeline = ctx.pipeline.id.as_str();
    let token = match (&ctx.token, task.inject_api_token) {
        (Some(Err(e)), true) => {
            return Err(format!(
                "cannot issue the GOFER_API_TOKEN for this run: {e}"
            ))
        }
        (Some(Ok(t)), _) => Some(t),
        _ => None,
    };
    let mut vars = system_variables(
        pipeline,
        ctx.run_id,
        &task.id,
        &task.image,
        task.inject_api_token,
        token,
    );
    vars.extend(
        ctx.options
            .variables
            .iter()
            .map(|(k, v)| Variable::new(k.clone(), v.clone(), VariableSource::RunOptions)),
    );
    vars.extend(
        task.variables
            .iter()
            .map(|(k, v)| Variable::new(k.clone(), v.clone(), VariableSource::PipelineConfig)),
    );
    let merged = merge_variables(vars);
    let mut env = Env::new();
    let mut shown = Vec::with_capacity(merged.len());
    let mut secrets = Vec::new();
    if let Some(auth) = &task.registry_auth {
        secrets.push(auth.password.clone());
    }
    for var in merged {
        // Only values holding `{{` can be placeholders (parsing allocates).
        let placeholder =
            if var.source == VariableSource::System || !var.value.expose().contains("{{") {
                None
            } else {
                parse_placeholder(var.value.expose())
                    .map_err(|e| format!("variable {:?}: {e}", var.key))?
            };
        let (value, kind) = match placeholder {
            None => (var.value, None),
            Some(p) => (
                lookup(
                    &*ctx.engine.secrets,
                    &*ctx.engine.objects,
                    pipeline,
                    ctx.run_id,
                    p.kind,
                    &p.key,
                )
                .await
                .map_err(|e| {
                    format!(
                        "variable {:?}: cannot substitute `{}{{{{{}}}}}`: {e}",
                        var.key,
                        p.kind.prefix(),
                        p.key
                    )
                })?,
                Some(p.kind),
            ),
        };
        if let EnvValue::Secret(s) = &value {
            secrets.push(s.clone());
        }
        shown.push(InjectedVariable {
            key: var.key.clone(),
            value: if value.is_secret() {
                MASK.to_string()
            } else {
                value.expose().to_string()
            },
            source: var.source,
            placeholder: kind,
            masked: value.is_secret(),
        });
        env.insert(var.key, value);
    }
    ctx.add_secrets(secrets);
    Ok((env, shown))
}

async fn lookup(
    secrets: &DynSecretStore,
    objects: &DynObjectStore,
    pipeline: &str,
    run: u64,
    kind: PlaceholderKind,
    key: &str,
) -> Result<EnvValue, String> {
    let text = |bytes: bytes::Bytes| {
        String::from_utf8(bytes.to_vec())
            .map(EnvValue::Plain)
            .map_err(|_| format!("object {key:?} is not UTF-8 text"))
    };
    match kind {
        PlaceholderKind::PipelineSecret => secrets
            .get_pipeline_secret(pipeline, key)
            .await
            .map(EnvValue::Secret)
            .map_err(|e| e.to_string()),
        PlaceholderKind::GlobalSecret => secrets
            .get_global_secret(pipeline, key)
            .await
            .map(EnvValue::Secret)
            .map_err(|e| e.to_string()),
        PlaceholderKind::PipelineObject => text(
            objects
                .get_pipeline_object(pipeline, key)
                .await
                .map_err(|e| e.to_string())?,
        ),
        PlaceholderKind::RunObject => text(
            objects
                .get_run_object(pipeline, run, key)
                .await
                .map_err(|e| e.to_string())?,
        ),
    }
}
