//! Executes one run: pipeline slot, API token, network sandbox, the task graph,
//! cancellation and the run timeout, cleanup.

use std::collections::{HashMap, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures::FutureExt;
use tokio::task::JoinSet;
use tracing::{debug, warn, Instrument};

use gofer_core::{naming, ContainerState, RequiredParentStatus, SandboxSpec, TaskStatus};

use crate::durable::outcome::{decide_status, stop_outcome, stop_reason, Outcome, Phase};
use crate::durable::plan::Resume;
use crate::durable::recorder::Recorder;
use crate::run::admission::AdmissionWait;
use crate::run::container;
use crate::run::ctx::{RunCtx, Shared};
use crate::run::handle::RunHandle;
use crate::run::lifecycle::{execute_task, remove_after_flush};
use crate::run::service_state::Services;
use crate::run::services;
use crate::run::stop::{Stop, StopCause, StopWatch};
use gofer_core::{VolumeScope, VolumeSpec};

/// Marks the run aborted if the executor's future is dropped before it completed, and
/// takes the run off the engine's live runs however it ends.
struct AbortGuard {
    recorder: Arc<Recorder>,
    engine: Arc<Shared>,
    key: (String, u64),
}

impl Drop for AbortGuard {
    fn drop(&mut self) {
        self.recorder.abort();
        self.engine
            .live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&self.key);
    }
}

/// Spawns the run's executor (tracked, with a run store, so a simulated crash can
/// stop it) and returns a handle on the run.
pub(crate) fn launch(
    engine: &Arc<Shared>,
    rt: &tokio::runtime::Handle,
    ctx: RunCtx,
    wait: AdmissionWait,
) -> RunHandle {
    let recorder = ctx.recorder.clone();
    let handle = RunHandle::new(
        ctx.plan.pipeline.id.clone(),
        ctx.plan.run_id,
        recorder.clone(),
        ctx.stops.run.clone(),
        ctx.stops.tasks.clone(),
        engine.sink.clone(),
        ctx.plan
            .pipeline
            .services
            .iter()
            .map(|s| s.id.clone())
            .collect(),
    );
    engine
        .live
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .insert(
            (handle.pipeline_id().to_string(), handle.run_id()),
            handle.clone(),
        );
    let task = rt.spawn(execute_run(ctx, wait));
    if let Some(d) = &engine.durable {
        d.track(task, &recorder);
    }
    handle
}

async fn execute_run(ctx: RunCtx, wait: AdmissionWait) {
    let span = tracing::info_span!("run", pipeline = %ctx.plan.pipeline.id, run = ctx.plan.run_id);
    let guard = AbortGuard {
        recorder: ctx.recorder.clone(),
        engine: ctx.engine.clone(),
        key: (ctx.plan.pipeline.id.clone(), ctx.plan.run_id),
    };
    run_inner(ctx, wait).instrument(span).await;
    drop(guard);
}

/// Takes the run's place in its pipeline's concurrency group (see
/// [`gofer_core::Concurrency`]), waiting for a slot. `Err` with the stop that came
/// while it waited, or with why the group could not be resolved.
async fn join_run_group(
    ctx: &RunCtx,
    stop_rx: &mut crate::run::stop::StopWatch,
) -> Result<Option<crate::run::concurrency::Place>, (Option<Stop>, Option<String>)> {
    let Some(c) = &ctx.plan.pipeline.concurrency else {
        return Ok(None);
    };
    let name = c.resolve(|key| ctx.plain_run_variable(key)).map_err(|e| {
        (
            None,
            Some(format!("concurrency group of the pipeline: {e}")),
        )
    })?;
    let run = ctx.stops.run.clone();
    let grace = ctx.engine.limits.stop_grace;
    let cancel = Arc::new(move || {
        run.request(Stop {
            cause: StopCause::RunSuperseded,
            grace,
        });
    });
    let groups = &ctx.engine.groups;
    if groups.in_store() {
        // The store keeps a member while its run is recorded there.
        if let Err(e) = ctx.recorder.flush().await {
            warn!(error = %e, "the run is not recorded yet; joining its concurrency group anyway");
        }
    }
    let who = crate::run::concurrency::Joiner {
        pipeline: ctx.plan.pipeline.id.clone(),
        run: ctx.plan.run_id,
        task: None,
    };
    let mut place = groups.join(&name, who, c.limit, c.policy, cancel).await;
    tokio::select! {
        () = place.acquire() => {}
        stop = stop_rx.stopped() => return Err((Some(stop), None)),
    }
    if let Some(stop) = stop_rx.current() {
        return Err((Some(stop), None));
    }
    Ok(Some(place))
}

/// Records the end of the run, with its status decided from its tasks and its stop.
async fn complete(recorder: &Recorder, stop: Option<Stop>) {
    let status = decide_status(&recorder.task_statuses(), stop.map(|s| s.cause));
    let (reason, message) = stop.map(stop_reason).unzip();
    recorder.run_complete(status, reason, message).await;
    debug!(?status, "run complete");
}

async fn run_inner(mut ctx: RunCtx, wait: AdmissionWait) {
    let recorder = ctx.recorder.clone();
    let engine = ctx.engine.clone();
    let pipeline_id = ctx.plan.pipeline.id.clone();
    let mut stop_rx = ctx.stops.run.subscribe();

    // Pending: wait for a pipeline slot, or for a cancel.
    let _slot = match wait {
        AdmissionWait::Free => engine.admission.permit(&pipeline_id, false),
        AdmissionWait::Granted => engine.admission.permit(&pipeline_id, true),
        AdmissionWait::Queued(mut rx) => {
            tokio::select! {
                r = &mut rx => {
                    if r.is_err() {
                        // Cannot happen (the engine outlives its runs); run without a slot.
                        warn!("pipeline slot queue dropped");
                    }
                    engine.admission.permit(&pipeline_id, r.is_ok())
                }
                stop = stop_rx.stopped() => {
                    rx.close();
                    if rx.try_recv().is_ok() {
                        // A slot was handed over at the same moment: pass it on.
                        engine.admission.release(&pipeline_id);
                    }
                    for idx in 0..recorder.task_ids.len() {
                        recorder.task_complete(idx, stop_outcome(stop, Phase::NotStarted)).await;
                    }
                    complete(&recorder, Some(stop)).await;
                    return;
                }
            }
        }
    };
    // The pipeline's concurrency group, held for the whole run.
    let _group = match join_run_group(&ctx, &mut stop_rx).await {
        Ok(place) => place,
        Err((stop, why)) => {
            for idx in 0..recorder.task_ids.len() {
                let outcome = match (&stop, &why) {
                    (Some(s), _) => stop_outcome(*s, Phase::NotStarted),
                    (None, Some(why)) => Outcome::precondition(why.clone()),
                    (None, None) => stop_outcome(
                        Stop {
                            cause: StopCause::Cancelled,
                            grace: engine.limits.stop_grace,
                        },
                        Phase::NotStarted,
                    ),
                };
                recorder.task_complete(idx, outcome).await;
            }
            complete(&recorder, stop).await;
            return;
        }
    };
    recorder.run_running().await;
    let started = tokio::time::Instant::now();

    // The API token, when a task asks for one: a resumed run's own again when the
    // issuer can give it (its running containers hold it), else a new one.
    if let Some(issuer) = &engine.tokens {
        if ctx.plan.pipeline.tasks.iter().any(|t| t.inject_api_token) {
            let mut resumed = None;
            if ctx.plan.recovered {
                match issuer.resume(&pipeline_id, ctx.plan.run_id).await {
                    Ok(t) => resumed = t,
                    Err(e) => warn!(error = %e, "cannot resume the run's API token"),
                }
                let holders = ctx
                    .plan
                    .pipeline
                    .tasks
                    .iter()
                    .zip(&ctx.plan.resume)
                    .any(|(t, r)| t.inject_api_token && matches!(r, Resume::Attach { .. }));
                if resumed.is_none() && holders {
                    warn!(
                        "the token issuer cannot resume the run's API token: re-attached \
                         tasks hold one that no longer works and cannot be masked in their \
                         logs read again"
                    );
                }
            }
            let token = match resumed {
                Some(t) => Ok(t),
                None => issuer.issue(&pipeline_id, ctx.plan.run_id).await,
            };
            ctx.setup.token = Some(match token {
                Ok(t) => {
                    ctx.secrets.add([t.clone()]);
                    Ok(t)
                }
                Err(e) => Err(Arc::new(e)),
            });
        }
    }

    // The network sandbox.
    let mut sandbox_error = None;
    if let Some(image) = &engine.sandbox_image {
        let spec = SandboxSpec::new(
            naming::sandbox_container_name(&engine.instance_id, &pipeline_id, ctx.plan.run_id),
            image.clone(),
        )
        .labels(naming::sandbox_labels(
            &engine.instance_id,
            &pipeline_id,
            ctx.plan.run_id,
        ));
        match engine.containers.sandbox(spec, ctx.plan.recovered).await {
            Ok(id) => ctx.setup.sandbox = Some(id),
            Err(e) => sandbox_error = Some(format!("cannot create the run's network sandbox: {e}")),
        }
    }

    // The shared workspace, when the pipeline asks for one.
    if sandbox_error.is_none() && ctx.plan.pipeline.workspace {
        match create_workspace(&engine, &ctx).await {
            Ok(name) => ctx.setup.workspace = Some(name),
            Err(message) => sandbox_error = Some(message),
        }
    }

    // The services' channels (the tasks wait on them); started once the context is
    // shared.
    // A resumed run's tasks already complete, orphaned, or whose container exited
    // while the host was away (only collected) need none.
    let to_run = ctx
        .plan
        .pipeline
        .tasks
        .iter()
        .enumerate()
        .filter(|(i, _)| {
            !matches!(
                ctx.plan.resume.get(*i),
                Some(
                    Resume::Complete(_)
                        | Resume::Orphaned
                        | Resume::Attach {
                            state: ContainerState::Exited { .. },
                            ..
                        }
                )
            )
        })
        .map(|(_, t)| t);
    let (services, senders) = Services::channels(&ctx.plan.pipeline.services, to_run);
    ctx.setup.services = services;

    let ctx = Arc::new(ctx);
    let running = (sandbox_error.is_none()).then(|| services::start_all(&ctx, senders));
    if let Some(message) = sandbox_error {
        for idx in 0..recorder.task_ids.len() {
            recorder
                .task_complete(idx, Outcome::scheduler_error(message.clone()))
                .await;
        }
    } else {
        let timeout = ctx
            .plan
            .options
            .timeout_value()
            .or(engine.limits.run_timeout);
        // A timeout too far away to represent as an instant is no timeout.
        let deadline = timeout.and_then(|t| started.checked_add(t));
        run_graph(&ctx, &mut stop_rx, deadline).await;
    }

    // Cleanup: the services (every task has ended), the workspace (its containers are
    // removed), the sandbox, the token, the run's objects.
    if let Some(running) = running {
        services::stop_all(&ctx, running).await;
    }
    if ctx.plan.recovered {
        // A service container kept for adoption that its service never took (its
        // variables no longer resolve, the sandbox failed): removed with the run.
        services::remove_unadopted(&ctx).await;
    }
    if let Some(name) = &ctx.setup.workspace {
        engine.containers.remove_volume(name).await;
    }
    if let Some(id) = &ctx.setup.sandbox {
        engine.containers.remove(id).await;
    }
    if let (Some(issuer), Some(Ok(token))) = (&engine.tokens, &ctx.setup.token) {
        if let Err(e) = issuer
            .revoke(&pipeline_id, ctx.plan.run_id, token.clone())
            .await
        {
            warn!(error = %e, "cannot revoke the run's API token");
        }
    }
    if let Err(e) = engine
        .objects
        .run_finished(&pipeline_id, ctx.plan.run_id)
        .await
    {
        warn!(error = %e, "object store run_finished failed");
    }
    complete(&recorder, ctx.stops.run.current()).await;
}

/// Makes the run's workspace volume (a resumed run finds it made: creating it again
/// is not an error); the error is the message every task then fails with.
async fn create_workspace(engine: &Arc<Shared>, ctx: &RunCtx) -> Result<String, String> {
    let s = engine.containers.scheduler();
    let caps = s.capabilities();
    if !caps.volumes || caps.volume_scope != VolumeScope::Engine {
        return Err(format!(
            "the pipeline asks for a shared workspace, but scheduler {} {}",
            s.name(),
            if caps.volumes {
                "keeps a volume on one node (volume scope Node): tasks on other nodes would not share it"
            } else {
                "cannot make volumes (capability `volumes`)"
            }
        ));
    }
    let name =
        naming::workspace_volume_name(&engine.instance_id, &ctx.plan.pipeline.id, ctx.plan.run_id);
    let spec = VolumeSpec::new(name.clone()).labels(naming::workspace_labels(
        &engine.instance_id,
        &ctx.plan.pipeline.id,
        ctx.plan.run_id,
    ));
    match container::guarded(s, "create_volume", s.create_volume(spec)).await {
        Ok(()) => Ok(name),
        Err(e) => Err(format!("cannot create the run's workspace volume: {e}")),
    }
}

/// Why a child cannot run after its parents, naming the first unmet parent.
/// The tasks a `depends_on` key names (see `run_graph`).
fn members<'a>(index: &'a HashMap<&str, Vec<usize>>, id: &str) -> &'a [usize] {
    index.get(id).map_or(&[], Vec::as_slice)
}

/// A combination of a fail-fast matrix that failed cancels its siblings that have not
/// ended (started or not), with the engine's stop grace.
fn fail_fast(ctx: &RunCtx, i: usize, status: TaskStatus, statuses: &[Option<TaskStatus>]) {
    let tasks = &ctx.plan.pipeline.tasks;
    let Some(cell) = tasks[i].matrix_cell.as_ref().filter(|c| c.fail_fast) else {
        return;
    };
    if status != TaskStatus::Failed {
        return;
    }
    for (j, t) in tasks.iter().enumerate() {
        let sibling = t.matrix_cell.as_ref().is_some_and(|c| c.task == cell.task);
        if sibling && j != i && statuses[j].is_none() {
            ctx.stops
                .tasks
                .request_for(j, StopCause::FailFast, ctx.engine.limits.stop_grace);
        }
    }
}

fn unmet_condition(
    ctx: &RunCtx,
    idx: usize,
    statuses: &[Option<TaskStatus>],
    index: &HashMap<&str, Vec<usize>>,
) -> Option<String> {
    let task = &ctx.plan.pipeline.tasks[idx];
    for (parent, need) in &task.depends_on {
        let members: Vec<TaskStatus> = members(index, parent)
            .iter()
            .map(|&p| statuses[p].unwrap_or(TaskStatus::Unknown))
            .collect();
        let ended = |s: &TaskStatus| {
            matches!(
                s,
                TaskStatus::Successful | TaskStatus::Failed | TaskStatus::Skipped
            )
        };
        // One task, or a matrix task's combinations: Success needs every one
        // successful, Failure every one ended and one failed, Any every one ended.
        let ok = !members.is_empty()
            && match need {
                RequiredParentStatus::Any => members.iter().all(ended),
                RequiredParentStatus::Success => {
                    members.iter().all(|s| *s == TaskStatus::Successful)
                }
                RequiredParentStatus::Failure => {
                    members.iter().all(ended) && members.contains(&TaskStatus::Failed)
                }
            };
        let status = if members.len() == 1 {
            members[0].to_string()
        } else {
            let shown: Vec<String> = members.iter().map(ToString::to_string).collect();
            format!("[{}]", shown.join(", "))
        };
        if !ok {
            let need = match need {
                RequiredParentStatus::Any => "Successful, Failed or Skipped",
                RequiredParentStatus::Success => "Successful",
                RequiredParentStatus::Failure => "Failed",
            };
            return Some(format!(
                "parent task {parent:?} ended {status}; this task requires it to be {need}"
            ));
        }
    }
    None
}

/// The task graph's bookkeeping: which tasks wait on how many parents.
struct Graph {
    children: Vec<Vec<u32>>,
    pending_parents: Vec<usize>,
    statuses: Vec<Option<TaskStatus>>,
    ready: VecDeque<usize>,
    done: usize,
}

impl Graph {
    fn finish(&mut self, i: usize, status: TaskStatus) {
        self.statuses[i] = Some(status);
        self.done += 1;
        for &c in &self.children[i] {
            let c = c as usize;
            self.pending_parents[c] -= 1;
            if self.pending_parents[c] == 0 {
                self.ready.push_back(c);
            }
        }
    }
}

/// Runs the task graph to completion: each task starts when all its parents are
/// complete; the loop is driven by task completions, the stop signal and the deadline.
async fn run_graph(
    ctx: &Arc<RunCtx>,
    stop_rx: &mut StopWatch,
    deadline: Option<tokio::time::Instant>,
) {
    let tasks = &ctx.plan.pipeline.tasks;
    let n = tasks.len();
    // What a `depends_on` key names: a task, or every combination of a matrix task.
    let mut index_map: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, t) in tasks.iter().enumerate() {
        index_map.entry(t.id.as_str()).or_default().push(i);
        if let Some(cell) = &t.matrix_cell {
            index_map.entry(cell.task.as_str()).or_default().push(i);
        }
    }
    let mut g = Graph {
        children: vec![Vec::new(); n],
        pending_parents: tasks
            .iter()
            .map(|t| {
                t.depends_on
                    .keys()
                    .map(|p| members(&index_map, p).len())
                    .sum()
            })
            .collect(),
        statuses: vec![None; n],
        ready: VecDeque::new(),
        done: 0,
    };
    for (i, t) in tasks.iter().enumerate() {
        for parent in t.depends_on.keys() {
            for &p in members(&index_map, parent) {
                g.children[p].push(i as u32);
            }
        }
    }
    // A resumed run: tasks already complete count as finished.
    for (i, r) in ctx.plan.resume.iter().enumerate() {
        if let Resume::Complete(status) = r {
            g.finish(i, *status);
        }
    }
    g.ready.clear();
    g.ready
        .extend((0..n).filter(|i| g.pending_parents[*i] == 0 && g.statuses[*i].is_none()));
    // Each task's future reports its status here as soon as it is recorded, then
    // removes its container: dependents start without waiting for the removal, and the
    // run ends only once every removal is done (the set is drained below).
    let mut set: JoinSet<()> = JoinSet::new();
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel::<(usize, TaskStatus)>();
    let mut stop_seen = stop_rx.current().is_some();
    // Tasks handed to `execute_task` (which then records their end itself).
    let mut started = vec![false; n];

    while g.done < n {
        while let Some(i) = g.ready.pop_front() {
            if g.statuses[i].is_some() {
                // Ended before its parents did (its own cancel).
                continue;
            }
            if let Some(stop) = stop_rx.current().or_else(|| ctx.stops.tasks.current(i)) {
                ctx.recorder
                    .task_complete(i, stop_outcome(stop, Phase::NotStarted))
                    .await;
                g.finish(i, TaskStatus::Cancelled);
                continue;
            }
            if let Some(message) = unmet_condition(ctx, i, &g.statuses, &index_map) {
                ctx.recorder
                    .task_complete(i, Outcome::skipped(message))
                    .await;
                g.finish(i, TaskStatus::Skipped);
                continue;
            }
            let task_ctx = ctx.clone();
            started[i] = true;
            let done = done_tx.clone();
            set.spawn(
                async move {
                    let (status, left) = match AssertUnwindSafe(execute_task(task_ctx.clone(), i))
                        .catch_unwind()
                        .await
                    {
                        Ok(ended) => ended,
                        Err(_) => {
                            task_ctx
                                .recorder
                                .task_complete(i, Outcome::panicked())
                                .await;
                            (TaskStatus::Unknown, Default::default())
                        }
                    };
                    let _ = done.send((i, status));
                    remove_after_flush(&task_ctx, left).await;
                }
                // Its attempts' spans are children of the run's.
                .in_current_span(),
            );
        }
        if g.done >= n {
            break;
        }
        if set.is_empty() && g.ready.is_empty() {
            // Every future is done: what they reported is all there is.
            if let Ok((i, status)) = done_rx.try_recv() {
                g.finish(i, status);
                continue;
            }
            warn!("task graph stalled");
            break;
        }
        tokio::select! {
            ended = done_rx.recv() => match ended {
                Some((i, status)) => {
                    g.finish(i, status);
                    fail_fast(ctx, i, status, &g.statuses);
                }
                None => {
                    warn!("task graph stalled");
                    break;
                }
            },
            Some(joined) = set.join_next() => {
                if let Err(e) = joined {
                    // Cannot happen: task futures catch their own panics.
                    warn!(error = %e, "task future failed");
                }
            },
            () = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            }, if !stop_seen => {
                ctx.stops.run.request(Stop { cause: StopCause::Timeout, grace: ctx.engine.limits.stop_grace });
                stop_seen = true;
            }
            _ = stop_rx.stopped(), if !stop_seen => {
                stop_seen = true;
            }
            () = ctx.stops.tasks.requested() => {
                // A task cancelled before it started ends now, not when its parents do.
                for (i, &was_started) in started.iter().enumerate() {
                    if was_started || g.statuses[i].is_some() {
                        continue;
                    }
                    if let Some(stop) = ctx.stops.tasks.current(i) {
                        ctx.recorder
                            .task_complete(i, stop_outcome(stop, Phase::NotStarted))
                            .await;
                        g.finish(i, TaskStatus::Cancelled);
                    }
                }
            }
        }
    }
    // The removals still under way: the run ends with nothing left.
    while let Some(joined) = set.join_next().await {
        if let Err(e) = joined {
            warn!(error = %e, "task future failed");
        }
    }
}
