//! Executes one run: pipeline slot, API token, network sandbox, the task graph,
//! cancellation and the run timeout, cleanup.

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};

use futures::FutureExt;
use secrecy::SecretString;
use tokio::task::JoinSet;
use tracing::{debug, warn, Instrument};

use crate::naming;
use crate::pipeline::Pipeline;
use crate::scheduler::{ContainerId, SandboxSpec};
use crate::task::RequiredParentStatus;

use super::engine::{EngineInner, RunOptions, SlotPermit, SlotWait};
use super::model::{StatusReason, TaskStatus};
use super::recorder::{Outcome, Recorder, Stop, StopCause};
use super::task::execute_task;

/// Everything the tasks of one run share.
pub(crate) struct RunCtx {
    pub(crate) engine: Arc<EngineInner>,
    pub(crate) pipeline: Pipeline,
    pub(crate) run_id: u64,
    pub(crate) options: RunOptions,
    pub(crate) recorder: Arc<Recorder>,
    /// The run's API token: `None` when none was asked for, `Err` when issuing failed.
    pub(crate) token: Option<Result<SecretString, String>>,
    /// The run's network sandbox.
    pub(crate) sandbox: Option<ContainerId>,
    /// Every secret value the run has seen, for its log masker.
    pub(crate) secrets: Mutex<Vec<SecretString>>,
}

impl RunCtx {
    pub(crate) fn new(
        engine: Arc<EngineInner>,
        pipeline: Pipeline,
        run_id: u64,
        options: RunOptions,
        recorder: Arc<Recorder>,
    ) -> Self {
        Self {
            engine,
            pipeline,
            run_id,
            options,
            recorder,
            token: None,
            sandbox: None,
            secrets: Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn add_secrets(&self, values: impl IntoIterator<Item = SecretString>) {
        self.secrets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend(values);
    }

    pub(crate) fn secrets(&self) -> Vec<SecretString> {
        self.secrets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// Marks the run aborted if the executor's future is dropped before it completed.
struct AbortGuard(Arc<Recorder>);

impl Drop for AbortGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Waits until the run is asked to stop.
pub(crate) async fn stopped(rx: &mut tokio::sync::watch::Receiver<Option<Stop>>) -> Stop {
    let found = rx.wait_for(Option::is_some).await.ok().and_then(|s| *s);
    match found {
        Some(stop) => stop,
        // The recorder (which owns the sender) outlives every task of the run.
        None => futures::future::pending().await,
    }
}

pub(crate) fn stop_outcome(stop: Stop, what: &str) -> Outcome {
    match stop.cause {
        StopCause::Cancelled => Outcome::new(
            TaskStatus::Cancelled,
            Some(StatusReason::Cancelled),
            format!("run was cancelled {what}"),
        ),
        StopCause::Timeout => Outcome::new(
            TaskStatus::Cancelled,
            Some(StatusReason::Timeout),
            format!("run timed out {what}"),
        ),
    }
}

pub(crate) async fn execute_run(ctx: RunCtx, wait: SlotWait) {
    let span = tracing::info_span!("run", pipeline = %ctx.pipeline.id, run = ctx.run_id);
    let guard = AbortGuard(ctx.recorder.clone());
    run_inner(ctx, wait).instrument(span).await;
    drop(guard);
}

async fn run_inner(mut ctx: RunCtx, wait: SlotWait) {
    let recorder = ctx.recorder.clone();
    let engine = ctx.engine.clone();
    let pipeline_id = ctx.pipeline.id.clone();
    let mut stop_rx = recorder.stop.subscribe();

    // Pending: wait for a pipeline slot, or for a cancel.
    let _slot = match wait {
        SlotWait::Free => SlotPermit::new(None, pipeline_id.clone()),
        SlotWait::Granted => SlotPermit::new(Some(engine.clone()), pipeline_id.clone()),
        SlotWait::Queued(mut rx) => {
            tokio::select! {
                r = &mut rx => {
                    if r.is_ok() {
                        SlotPermit::new(Some(engine.clone()), pipeline_id.clone())
                    } else {
                        // Cannot happen (the engine outlives its runs); run without a slot.
                        warn!("pipeline slot queue dropped");
                        SlotPermit::new(None, pipeline_id.clone())
                    }
                }
                stop = stopped(&mut stop_rx) => {
                    rx.close();
                    if rx.try_recv().is_ok() {
                        // A slot was handed over at the same moment: pass it on.
                        engine.release_slot(&pipeline_id);
                    }
                    for idx in 0..recorder.task_ids.len() {
                        recorder.task_complete(idx, stop_outcome(stop, "before it started"));
                    }
                    recorder.run_complete(recorder.decide_status(), Some(reason_of(stop)), Some(message_of(stop)));
                    return;
                }
            }
        }
    };
    recorder.run_running();
    let started = tokio::time::Instant::now();

    // The API token, when a task asks for one.
    if let Some(issuer) = &engine.tokens {
        if ctx.pipeline.tasks.iter().any(|t| t.inject_api_token) {
            ctx.token = Some(match issuer.issue(&pipeline_id, ctx.run_id).await {
                Ok(t) => {
                    ctx.add_secrets([t.clone()]);
                    Ok(t)
                }
                Err(e) => Err(e.to_string()),
            });
        }
    }

    // The network sandbox.
    let mut sandbox_error = None;
    if let Some(image) = &engine.sandbox_image {
        let spec = SandboxSpec::new(
            naming::sandbox_container_name(&engine.instance_id, &pipeline_id, ctx.run_id),
            image.clone(),
        )
        .labels(naming::sandbox_labels(
            &engine.instance_id,
            &pipeline_id,
            ctx.run_id,
        ));
        match engine.scheduler.create_sandbox(spec).await {
            Ok(id) => ctx.sandbox = Some(id),
            Err(e) => sandbox_error = Some(format!("cannot create the run's network sandbox: {e}")),
        }
    }

    let ctx = Arc::new(ctx);
    if let Some(message) = sandbox_error {
        for idx in 0..recorder.task_ids.len() {
            recorder.task_complete(
                idx,
                Outcome::new(
                    TaskStatus::Failed,
                    Some(StatusReason::SchedulerError),
                    message.clone(),
                ),
            );
        }
    } else {
        let timeout = ctx.options.timeout.or(engine.limits.run_timeout);
        run_graph(&ctx, &mut stop_rx, timeout.map(|t| started + t)).await;
    }

    // Cleanup: the sandbox, the token, the run's objects.
    if let Some(id) = &ctx.sandbox {
        if let Err(e) = engine.scheduler.remove(id, true).await {
            warn!(sandbox = %id, error = %e, "cannot remove the run's network sandbox");
        }
    }
    if let (Some(issuer), Some(Ok(token))) = (&engine.tokens, &ctx.token) {
        if let Err(e) = issuer.revoke(&pipeline_id, ctx.run_id, token.clone()).await {
            warn!(error = %e, "cannot revoke the run's API token");
        }
    }
    if let Err(e) = engine.objects.run_finished(&pipeline_id, ctx.run_id).await {
        warn!(error = %e, "object store run_finished failed");
    }
    let status = recorder.decide_status();
    let stop = *recorder.stop.borrow();
    recorder.run_complete(status, stop.map(reason_of), stop.map(message_of));
    debug!(?status, "run complete");
}

fn reason_of(stop: Stop) -> StatusReason {
    match stop.cause {
        StopCause::Cancelled => StatusReason::Cancelled,
        StopCause::Timeout => StatusReason::Timeout,
    }
}

fn message_of(stop: Stop) -> String {
    match stop.cause {
        StopCause::Cancelled => "run was cancelled".into(),
        StopCause::Timeout => "run timed out".into(),
    }
}

/// Why a child cannot run after its parents, naming the first unmet parent.
fn unmet_condition(
    ctx: &RunCtx,
    idx: usize,
    statuses: &[Option<TaskStatus>],
    index: &dyn Fn(&str) -> usize,
) -> Option<String> {
    let task = &ctx.pipeline.tasks[idx];
    for (parent, need) in &task.depends_on {
        let status = statuses[index(parent)].unwrap_or(TaskStatus::Unknown);
        let ok = match need {
            RequiredParentStatus::Any => matches!(
                status,
                TaskStatus::Successful | TaskStatus::Failed | TaskStatus::Skipped
            ),
            RequiredParentStatus::Success => status == TaskStatus::Successful,
            RequiredParentStatus::Failure => status == TaskStatus::Failed,
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

/// Runs the task graph to completion: each task starts when all its parents are
/// complete; the loop is driven by task completions, the stop signal and the deadline.
async fn run_graph(
    ctx: &Arc<RunCtx>,
    stop_rx: &mut tokio::sync::watch::Receiver<Option<Stop>>,
    deadline: Option<tokio::time::Instant>,
) {
    let tasks = &ctx.pipeline.tasks;
    let n = tasks.len();
    let index_map: std::collections::HashMap<&str, usize> = tasks
        .iter()
        .enumerate()
        .map(|(i, t)| (t.id.as_str(), i))
        .collect();
    let index = |id: &str| index_map.get(id).copied().unwrap_or(0);
    let mut pending_parents: Vec<usize> = tasks.iter().map(|t| t.depends_on.len()).collect();
    let mut children: Vec<Vec<u32>> = vec![Vec::new(); n];
    for (i, t) in tasks.iter().enumerate() {
        for parent in t.depends_on.keys() {
            children[index(parent)].push(i as u32);
        }
    }
    let mut statuses: Vec<Option<TaskStatus>> = vec![None; n];
    let mut ready: VecDeque<usize> = (0..n).filter(|i| pending_parents[*i] == 0).collect();
    let mut set: JoinSet<(usize, TaskStatus)> = JoinSet::new();
    let mut done = 0usize;
    let mut stop_seen = stop_rx.borrow().is_some();

    let finish = |i: usize,
                  status: TaskStatus,
                  statuses: &mut Vec<Option<TaskStatus>>,
                  pending: &mut Vec<usize>,
                  ready: &mut VecDeque<usize>| {
        statuses[i] = Some(status);
        for &c in &children[i] {
            let c = c as usize;
            pending[c] -= 1;
            if pending[c] == 0 {
                ready.push_back(c);
            }
        }
    };

    while done < n {
        while let Some(i) = ready.pop_front() {
            if let Some(stop) = *stop_rx.borrow() {
                ctx.recorder
                    .task_complete(i, stop_outcome(stop, "before the task started"));
                done += 1;
                finish(
                    i,
                    TaskStatus::Cancelled,
                    &mut statuses,
                    &mut pending_parents,
                    &mut ready,
                );
                continue;
            }
            if let Some(message) = unmet_condition(ctx, i, &statuses, &index) {
                ctx.recorder
                    .task_complete(i, Outcome::new(TaskStatus::Skipped, None, message));
                done += 1;
                finish(
                    i,
                    TaskStatus::Skipped,
                    &mut statuses,
                    &mut pending_parents,
                    &mut ready,
                );
                continue;
            }
            let task_ctx = ctx.clone();
            set.spawn(async move {
                let status = AssertUnwindSafe(execute_task(task_ctx.clone(), i))
                    .catch_unwind()
                    .await
                    .unwrap_or_else(|_| {
                        task_ctx.recorder.task_complete(
                            i,
                            Outcome::new(
                                TaskStatus::Unknown,
                                None,
                                "the executor panicked".to_string(),
                            ),
                        );
                        TaskStatus::Unknown
                    });
                (i, status)
            });
        }
        if done >= n {
            break;
        }
        tokio::select! {
            joined = set.join_next() => match joined {
                Some(Ok((i, status))) => {
                    done += 1;
                    finish(i, status, &mut statuses, &mut pending_parents, &mut ready);
                }
                Some(Err(e)) => {
                    // Cannot happen: task futures catch their own panics.
                    warn!(error = %e, "task future failed");
                }
                None => {
                    warn!("task graph stalled");
                    break;
                }
            },
            () = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => futures::future::pending().await,
                }
            }, if !stop_seen => {
                ctx.recorder.stop.send_if_modified(|s| {
                    if s.is_none() {
                        *s = Some(Stop { cause: StopCause::Timeout, grace: ctx.engine.limits.stop_grace });
                        true
                    } else {
                        false
                    }
                });
                stop_seen = true;
            }
            _ = stopped(stop_rx), if !stop_seen => {
                stop_seen = true;
            }
        }
    }
}
