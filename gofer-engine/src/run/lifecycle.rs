//! One task's life: resolve its variables, wait for a container slot, start (or adopt)
//! its container, pump its log while awaiting its exit, record the outcome, remove the
//! container.
//!
//! What a task may touch, through its run's [`RunCtx`]: it reads `plan` (the pipeline,
//! its options and placeholders, how a resumed run goes on) and `setup` (the token,
//! sandbox, workspace and services the runner prepared); it writes only its own
//! record (`recorder`, by its index) and adds the secret values it resolved to
//! `secrets`; it watches its stops (`task_stop`); of the engine it uses the containers
//! (`engine.containers`, `engine.container_slots`), the stores its variables are
//! looked up in, and the log output (`output()`).

use std::sync::Arc;

use tokio::sync::oneshot;
use tracing::{debug, warn, Instrument};

use gofer_core::{
    naming, ContainerId, ContainerSpec, Env, Mount, NetworkMode, RegistryAuth, RetryOn,
    RetryPolicy, StatusReason, TaskState, TaskStatus, API_MOUNT_DIR, WORKSPACE_PATH,
};

use crate::durable::outcome::{exit_outcome, stop_outcome, Outcome, Phase};
use crate::durable::plan::Resume;
use crate::logs::sink::LogKey;
use crate::run::cache::{self, TaskCaches};
use crate::run::container;
use crate::run::ctx::RunCtx;
use crate::run::pump::pump;
use crate::run::resolve::{resolve, Lookup};
use crate::run::stop::StopWatch;

/// Runs task `idx` of the run to completion, attempt after attempt as its retry
/// policy allows, and returns its status (its last attempt's).
///
/// Returns the task's status and what its last attempt left (its container, its cache
/// volumes, the caches to save), which the caller finishes ([`remove_after_flush`])
/// once it has told the task's dependents, so that neither a removal nor a cache save
/// is ever between a parent's end and its children's start.
pub(crate) async fn execute_task(ctx: Arc<RunCtx>, idx: usize) -> (TaskStatus, Leftover) {
    let task = &ctx.plan.pipeline.tasks[idx];
    // Free to start: its queue wait (a metric) runs from here.
    ctx.recorder.task_ready(idx);
    // Its concurrency group's slot, held through every attempt.
    let _place = match join_group(&ctx, idx).await {
        Ok(place) => place,
        Err(outcome) => {
            let status = outcome.status;
            ctx.recorder.task_complete(idx, outcome).await;
            return (status, Leftover::default());
        }
    };
    // A resumed run goes on with the attempt it recorded (its container, if any, is
    // adopted); later attempts start afresh.
    let mut resumed = true;
    loop {
        let attempt = ctx.recorder.attempt(idx);
        // The container slot is held until the completion is recorded, so that
        // recorded Running tasks never exceed the engine's cap; it is released before
        // the exited container is removed, so the next task's start overlaps that
        // removal.
        let mut permit = None;
        // One span per attempt, the parent of its start, wait and cleanup: with an
        // OpenTelemetry layer a run reads as a waterfall.
        let span = tracing::info_span!(
            "attempt",
            pipeline = %ctx.plan.pipeline.id,
            run = ctx.plan.run_id,
            task = %task.id,
            attempt,
            backend = ctx.engine.containers.scheduler().name(),
            container = tracing::field::Empty,
        );
        let mut left = Leftover {
            span: span.clone(),
            ..Leftover::default()
        };
        let mut outcome = run_task(&ctx, idx, resumed, &mut permit, &mut left)
            .instrument(span.clone())
            .await;
        // Caches are saved only from an attempt that succeeded (one re-attached after
        // a crash has nothing to save: its keys are not known again).
        left.save = outcome.status == TaskStatus::Successful;
        resumed = false;
        // Messages quote backend errors: mask any secret value a backend might echo.
        if let Some(message) = outcome.message.as_mut() {
            *message = ctx.secrets.mask(message);
        }
        let status = outcome.status;
        let stop = ctx.task_stop(idx);
        let retry = task
            .retry
            .as_ref()
            .filter(|p| attempt < p.attempts && stop.current().is_none() && retried(p, &outcome));
        let backoff = retry.map(|p| p.backoff_after(attempt));
        match backoff {
            Some(backoff) => {
                debug!(attempt, ?backoff, "attempt failed; retrying");
                ctx.recorder.attempt_failed(idx, outcome, backoff).await;
            }
            None => ctx.recorder.task_complete(idx, outcome).await,
        }
        drop(permit);
        let Some(backoff) = backoff else {
            return (status, left);
        };
        remove_after_flush(&ctx, left).await;
        // The backoff; a cancel of the run or of the task ends it, and the task.
        let mut stop = stop;
        tokio::select! {
            // `sleep` saturates a deadline too far away to represent.
            () = tokio::time::sleep(backoff) => {}
            s = stop.stopped() => {
                let o = stop_outcome(s, Phase::NotStarted);
                let status = o.status;
                ctx.recorder.task_complete(idx, o).await;
                return (status, Leftover::default());
            }
        }
        ctx.recorder.task_ready(idx);
    }
}

/// What an attempt leaves when it ends: its container, its cache volumes, and whether
/// its caches are saved (it succeeded).
#[derive(Debug)]
pub(crate) struct Leftover {
    pub(crate) container: Option<ContainerId>,
    pub(crate) caches: TaskCaches,
    pub(crate) save: bool,
    /// The attempt's span, the parent of the cleanup's.
    pub(crate) span: tracing::Span,
}

impl Default for Leftover {
    fn default() -> Self {
        Self {
            container: None,
            caches: TaskCaches::default(),
            save: false,
            span: tracing::Span::none(),
        }
    }
}

/// Takes the task's place in its concurrency group, if it names one (see
/// [`gofer_core::Concurrency`]), waiting for a slot; the task's outcome instead when
/// the group cannot be resolved or the task is stopped while it waits.
async fn join_group(
    ctx: &Arc<RunCtx>,
    idx: usize,
) -> Result<Option<crate::run::concurrency::Place>, Outcome> {
    let task = &ctx.plan.pipeline.tasks[idx];
    let Some(c) = &task.concurrency else {
        return Ok(None);
    };
    let name = c
        .resolve(|key| plain_variable(ctx, idx, key))
        .map_err(|e| Outcome::precondition(format!("concurrency group: {e}")))?;
    let stopper = ctx.clone();
    let grace = ctx.engine.limits.stop_grace;
    let cancel = Arc::new(move || {
        stopper
            .stops
            .tasks
            .request_for(idx, crate::durable::outcome::StopCause::Superseded, grace);
    });
    let groups = &ctx.engine.groups;
    if groups.in_store() {
        // The store keeps a member while its run is recorded there.
        if let Err(e) = ctx.recorder.flush().await {
            warn!(error = %e, "the run is not recorded yet; joining the concurrency group anyway");
        }
    }
    let who = crate::run::concurrency::Joiner {
        pipeline: ctx.plan.pipeline.id.clone(),
        run: ctx.plan.run_id,
        task: Some(task.id.clone()),
    };
    let mut place = groups.join(&name, who, c.limit, c.policy, cancel).await;
    let mut stop = ctx.task_stop(idx);
    let queued = place.waiting();
    if queued {
        debug!(group = %name, "waiting for the concurrency group");
        ctx.recorder
            .task_queued(idx, Some(format!("waiting for concurrency group {name:?}")))
            .await;
    }
    tokio::select! {
        () = place.acquire() => {}
        s = stop.stopped() => return Err(stop_outcome(s, Phase::NotStarted)),
    }
    if let Some(s) = stop.current() {
        return Err(stop_outcome(s, Phase::NotStarted));
    }
    if queued {
        ctx.recorder.task_queued(idx, None).await;
    }
    Ok(Some(place))
}

/// Finishes what an attempt left once its outcome is durable (a host that dies in
/// between finds the container on recovery and collects it again): saves its caches if
/// it succeeded, removes its container, then its cache volumes.
pub(crate) async fn remove_after_flush(ctx: &RunCtx, left: Leftover) {
    if left.container.is_none() && !left.save && left.caches.mounts.is_empty() {
        return;
    }
    let span = tracing::info_span!(parent: &left.span, "cleanup");
    cleanup(ctx, left).instrument(span).await;
}

async fn cleanup(ctx: &RunCtx, left: Leftover) {
    if left.save {
        cache::save(ctx, &left.caches).await;
    }
    if let Some(id) = &left.container {
        if let Err(e) = ctx.recorder.flush().await {
            warn!(container = %id, error = %e, "outcome not recorded; container kept");
            return;
        }
        ctx.engine.containers.remove(id).await;
    }
    for v in left.caches.volumes() {
        ctx.engine.containers.remove_volume(&v).await;
    }
}

/// A plain value (no placeholder: a secret never names a group or a cache) of task
/// `idx`'s variable `key`: its own, the run's, or `GOFER_PIPELINE_ID`.
fn plain_variable(ctx: &RunCtx, idx: usize, key: &str) -> Option<String> {
    ctx.plan.pipeline.tasks[idx]
        .variables
        .get(key)
        .filter(|v| crate::run::ctx::is_plain(v))
        .cloned()
        .or_else(|| ctx.plain_run_variable(key))
}

/// Whether `policy` retries an attempt that ended with `o`.
fn retried(policy: &RetryPolicy, o: &Outcome) -> bool {
    if !matches!(o.status, TaskStatus::Failed | TaskStatus::Unknown) {
        return false;
    }
    match (&policy.retry_on, o.reason) {
        (_, Some(StatusReason::FailedPrecondition | StatusReason::Cancelled)) => false,
        (RetryOn::ExitCodes(codes), Some(StatusReason::AbnormalExit { code })) => {
            codes.contains(&code)
        }
        (RetryOn::ExitCodes(_), _) => false,
        (RetryOn::SchedulerErrors, reason) => reason == Some(StatusReason::SchedulerError),
        // `RetryOn` is non-exhaustive: `AnyFailure` and what may come.
        (_, _) => true,
    }
}

/// The container spec of task `idx`.
fn container_spec(
    ctx: &RunCtx,
    idx: usize,
    name: String,
    env: Env,
    registry_auth: Option<RegistryAuth>,
    attempt: u32,
    caches: &TaskCaches,
) -> ContainerSpec {
    let task = &ctx.plan.pipeline.tasks[idx];
    let engine = &ctx.engine;
    let mut spec = ContainerSpec::new(name, task.image.clone())
        .pull_policy(task.pull_policy)
        .registry_auth(registry_auth)
        .env(env)
        .labels(naming::task_attempt_labels(
            &engine.instance_id,
            &ctx.plan.pipeline.id,
            ctx.plan.run_id,
            &task.id,
            attempt,
        ))
        .resources(task.resources)
        .init(true)
        .stop_grace(engine.limits.stop_grace)
        // The log pump opens the output right after the start and reads it as it
        // comes. (Services are followed through the engine's logs, which hold their
        // output from the start, and probes are never read: neither is attached, as an
        // unread attach can hold a container.)
        .attach_output(true);
    spec.entrypoint = task.entrypoint.clone();
    spec.command = task.command.clone();
    if let Some(sandbox) = &ctx.setup.sandbox {
        spec = spec.network(NetworkMode::Sandbox(sandbox.clone()));
    }
    // The host's API socket directory, for a task given a token.
    if let (true, Some(Ok(_)), Some(dir)) = (
        task.inject_api_token,
        &ctx.setup.token,
        &engine.api_socket_dir,
    ) {
        spec = spec.mount(Mount::bind(dir.clone(), API_MOUNT_DIR));
    }
    if let Some(volume) = &ctx.setup.workspace {
        spec = spec.mount(Mount::volume(volume.clone(), WORKSPACE_PATH));
    }
    for m in &caches.mounts {
        spec = spec.mount(m.clone());
    }
    spec
}

async fn run_task(
    ctx: &Arc<RunCtx>,
    idx: usize,
    resumed: bool,
    permit: &mut Option<tokio::sync::OwnedSemaphorePermit>,
    left: &mut Leftover,
) -> Outcome {
    let task = &ctx.plan.pipeline.tasks[idx];
    let engine = &ctx.engine;
    let mut stop = ctx.task_stop(idx);

    // A resumed run: the task's container may already exist, or be gone.
    let attach = match ctx.plan.resume.get(idx).filter(|_| resumed) {
        Some(Resume::Orphaned) => return Outcome::orphaned(),
        Some(Resume::Attach { id, state }) => Some((id.clone(), *state)),
        _ => None,
    };

    // Variables, substituted now that the parents are done (for an existing
    // container, only to know the secret values its log must be masked with).
    let attempt = ctx.recorder.attempt(idx);
    let name = naming::task_container_name_attempt(
        &engine.instance_id,
        &ctx.plan.pipeline.id,
        ctx.plan.run_id,
        &task.id,
        attempt,
    );
    let lookup = Lookup {
        secrets: &*engine.secrets,
        objects: &*engine.objects,
        pipeline: &ctx.plan.pipeline.id,
        run: ctx.plan.run_id,
        options: &ctx.plan.options,
        placeholders: &ctx.plan.placeholders,
        token: ctx.setup.token.as_ref(),
        api_socket: engine.api_socket_dir.is_some(),
        attempt: Some(attempt),
    };
    let (env, registry_auth) = match (resolve(&lookup, idx, task).await, &attach) {
        (Ok(r), None) => {
            ctx.secrets.add(r.secrets);
            let log = engine.sink.locate(&LogKey::attempt(
                ctx.plan.pipeline.id.clone(),
                ctx.plan.run_id,
                &task.id,
                ctx.recorder.attempt(idx),
            ));
            ctx.recorder
                .task_prepared(idx, r.shown, name.clone(), log)
                .await;
            (r.env, r.registry_auth)
        }
        (Ok(r), Some(_)) => {
            ctx.secrets.add(r.secrets);
            (Env::new(), None)
        }
        (Err(e), None) => return Outcome::precondition(e.to_string()),
        (Err(e), Some(_)) => {
            warn!(error = %e, "cannot resolve the variables again; log masking may be incomplete");
            (Env::new(), None)
        }
    };

    // The services it needs, ready (not for a container that already exists).
    if attach.is_none() && !task.services.is_empty() {
        tokio::select! {
            r = ctx.setup.services.ready(&task.services) => {
                if let Err(why) = r {
                    return Outcome::service_unavailable(why);
                }
            }
            s = stop.stopped() => return stop_outcome(s, Phase::NotStarted),
        }
    }

    // A container slot.
    *permit = match &engine.container_slots {
        None => None,
        Some(sem) => tokio::select! {
            p = sem.clone().acquire_owned() => p.ok(),
            s = stop.stopped() => return stop_outcome(s, Phase::NotStarted),
        },
    };
    if let Some(s) = stop.current() {
        if attach.is_none() {
            return stop_outcome(s, Phase::NotStarted);
        }
    }

    // Its caches, restored (an existing container has its volumes already).
    if !task.caches.is_empty() {
        if attach.is_some() {
            left.caches = TaskCaches::existing(&name, &task.caches);
        } else if let Err(why) = cache::prepare(
            ctx,
            idx,
            &name,
            registry_auth.as_ref(),
            &|key| plain_variable(ctx, idx, key),
            &mut left.caches,
        )
        .await
        {
            return Outcome::precondition(why);
        }
        if let Some(s) = stop.current() {
            if attach.is_none() {
                return stop_outcome(s, Phase::NotStarted);
            }
        }
    }

    let id = match attach {
        Some((id, state)) => {
            if let Err(e) = engine.containers.adopt(&id, state).await {
                return Outcome::scheduler_error(format!("cannot start the container: {e}"));
            }
            debug!(container = %id, "re-attached");
            if ctx.recorder.task_state(idx) != TaskState::Running {
                ctx.recorder.task_running(idx, &id.0).await;
            }
            id
        }
        None => {
            // Recorded as starting, durably, before the container exists.
            if let Err(e) = ctx.recorder.flush().await {
                return Outcome::scheduler_error(e.to_string());
            }
            tracing::Span::current().record("container", name.as_str());
            let spec = container_spec(ctx, idx, name, env, registry_auth, attempt, &left.caches);
            let id = match engine
                .containers
                .start(spec, ctx.plan.recovered)
                .instrument(tracing::info_span!("start"))
                .await
            {
                Ok(id) => id,
                Err(e) => {
                    ctx.recorder.container_not_made(idx).await;
                    return Outcome::scheduler_error(format!("cannot start the container: {e}"));
                }
            };
            debug!(container = %id, "started");
            ctx.recorder.task_running(idx, &id.0).await;
            id
        }
    };
    // Removed by the caller, once the outcome is durable.
    left.container = Some(id.clone());

    // The log flows while the exit is awaited, and for as long as it takes after.
    let (exited_tx, exited_rx) = oneshot::channel();
    let exit = async {
        let o = watch_exit(ctx, idx, &id, &mut stop)
            .instrument(tracing::info_span!("wait"))
            .await;
        let _ = exited_tx.send(());
        o
    };
    let (incomplete, mut outcome) = tokio::join!(pump_logs(ctx, idx, &id, exited_rx), exit);
    if let Some(why) = incomplete {
        ctx.recorder.log_incomplete(idx, why.clone()).await;
        if engine.fail_on_incomplete_log {
            outcome = outcome.fail_incomplete_log(&why);
        }
    }
    outcome
}

/// Waits for the container's exit, stopping it on the task's timeout or a stop of
/// the run.
async fn watch_exit(ctx: &RunCtx, idx: usize, id: &ContainerId, stop: &mut StopWatch) -> Outcome {
    let task = &ctx.plan.pipeline.tasks[idx];
    let engine = &ctx.engine;
    let s = engine.containers.scheduler();
    let timeout = async {
        match task.timeout {
            // `sleep` saturates a deadline too far away to represent.
            Some(t) => tokio::time::sleep(t).await,
            None => std::future::pending().await,
        }
    };
    let (grace, outcome) = tokio::select! {
        // An exit already there (a container that ended while the host was away)
        // is the outcome, whatever else is ready too.
        biased;
        exit = container::guarded(s, "wait", s.wait(id)) => match exit {
            Err(e) => (engine.limits.stop_grace, exit_outcome(Err(e))),
            ok => return exit_outcome(ok),
        },
        () = timeout => (
            engine.limits.stop_grace,
            Outcome::task_timeout(task.timeout.unwrap_or_default()),
        ),
        st = stop.stopped() => (st.grace, stop_outcome(st, Phase::Running)),
        why = ctx.setup.services.failed(&task.services) => (
            engine.limits.stop_grace,
            Outcome::service_unavailable(why),
        ),
    };
    // A stop asked for later with a shorter grace (a second cancel) cuts this one
    // short: the container is stopped again with that grace.
    let mut grace = grace;
    loop {
        tokio::select! {
            () = engine.containers.stop(id, grace) => break,
            st = stop.shortened(grace) => grace = st.grace,
        }
    }
    outcome
}

/// Streams the container's output into the task's log until the output ends; returns
/// why the log is incomplete, when it is.
pub(crate) async fn pump_logs(
    ctx: &RunCtx,
    idx: usize,
    id: &ContainerId,
    exited: oneshot::Receiver<()>,
) -> Option<String> {
    let task = &ctx.plan.pipeline.tasks[idx];
    let key = LogKey::attempt(
        ctx.plan.pipeline.id.clone(),
        ctx.plan.run_id,
        &task.id,
        ctx.recorder.attempt(idx),
    );
    let recorder = ctx.recorder.clone();
    let notify: Arc<dyn Fn() + Send + Sync> = Arc::new(move || recorder.log_written());
    pump(
        ctx.output(),
        key,
        notify,
        || ctx.recorder.log_opened(idx),
        id,
        exited,
    )
    .await
}
