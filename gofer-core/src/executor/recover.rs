//! Crash recovery: an engine built on a run store with unfinished runs picks them up
//! where the previous host left them.

use std::collections::HashMap;
use std::sync::Arc;

use tracing::{debug, info, warn};

use crate::error::{SchedulerError, StoreError};
use crate::naming::{self, LABEL_PIPELINE, LABEL_ROLE, LABEL_RUN, LABEL_TASK};
use crate::pipeline::Pipeline;
use crate::runstore::{DynRunStore, UnfinishedRun};
use crate::scheduler::{ContainerId, ContainerSpec, ContainerState, ContainerSummary, SandboxSpec};
use crate::validate::ValidationErrors;

use super::engine::{Engine, EngineInner};
use super::handle::RunHandle;
use super::model::{Event, RunState, StatusReason, TaskState, TaskStatus};
use super::recorder::{Outcome, Recorder};
use super::run::{launch, RunCtx};

/// What recovery did with one task execution that was not complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecoveryAction {
    /// Its container was still running: it is followed again (its log is rewritten
    /// whole from the engine's output, its exit recorded).
    Reattached,
    /// Its container exited while the host was away: its real exit code and full
    /// log are recorded.
    Collected,
    /// Its container is gone: the task is Failed with reason Orphaned.
    Orphaned,
    /// It was recorded as starting but its container was never created (or created
    /// and never started): it is started now, once.
    Restarted,
    /// It had not started: it runs when the dependency graph allows.
    Resumed,
}

/// One task execution recovery acted on.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecoveredTask {
    /// The pipeline.
    pub pipeline: String,
    /// The run.
    pub run: u64,
    /// The task.
    pub task: String,
    /// What was done.
    pub action: RecoveryAction,
}

/// What [`Engine::recover`] did.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct RecoveryReport {
    /// A handle on every resumed run.
    pub runs: Vec<RunHandle>,
    /// Every task execution that was not complete, and what was done with it.
    pub tasks: Vec<RecoveredTask>,
    /// Names of the containers removed: this engine's containers of no unfinished
    /// run, and containers of tasks already recorded complete.
    pub reaped: Vec<String>,
}

impl RecoveryReport {
    /// The action taken for one task, if recovery touched it.
    pub fn action(&self, pipeline: &str, run: u64, task: &str) -> Option<RecoveryAction> {
        self.tasks
            .iter()
            .find(|t| t.pipeline == pipeline && t.run == run && t.task == task)
            .map(|t| t.action)
    }
}

/// Why recovery could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecoveryError {
    /// The run store failed.
    #[error("recovery: {0}")]
    Store(#[from] StoreError),
    /// The scheduler could not list this engine's containers.
    #[error("recovery: cannot list the engine's containers: {0}")]
    Scheduler(#[from] SchedulerError),
    /// `recover` was called outside a Tokio runtime.
    #[error("recover must be called from within a Tokio runtime")]
    NoRuntime,
}

/// How a recovered task goes on.
#[derive(Debug, Clone)]
pub(crate) enum Resume {
    /// Start it (it never had a container).
    Fresh,
    /// Already complete.
    Complete(TaskStatus),
    /// Follow its existing container (running or exited).
    Attach(ContainerId),
    /// Its container is gone.
    Orphaned,
}

fn label<'a>(c: &'a ContainerSummary, key: &str) -> Option<&'a str> {
    c.labels.get(key).map(String::as_str)
}

impl Engine {
    /// The run store, when the engine has one.
    pub fn run_store(&self) -> Option<&Arc<DynRunStore>> {
        self.inner.durable.as_ref().map(|d| &d.store)
    }

    /// Registers a pipeline: validates it and keeps it in the run store (without
    /// registry credentials). Registering a pipeline with this engine also gives
    /// recovered runs of it the registry credentials the store never keeps.
    ///
    /// # Errors
    /// [`RegisterError::Invalid`] for an invalid pipeline (nothing is stored),
    /// [`RegisterError::Store`] when the run store fails.
    pub async fn register_pipeline(&self, pipeline: &Pipeline) -> Result<(), RegisterError> {
        pipeline.validate()?;
        if let Some(d) = &self.inner.durable {
            d.register(pipeline);
            d.store.put_pipeline(pipeline).await?;
        }
        Ok(())
    }

    /// Picks up this engine's unfinished runs from the run store, and reaps this
    /// engine's containers that belong to no unfinished run.
    ///
    /// Call it once, after building the engine and registering pipelines whose tasks
    /// need registry credentials, before starting runs: with a run store,
    /// [`Engine::start_run`] fails with
    /// [`RunError::NotRecovered`](super::RunError::NotRecovered) until it has run.
    /// A second call does nothing. Without a run store no run is known, so every
    /// container carrying this engine instance's label is reaped (only while the
    /// engine has started no run).
    ///
    /// For each unfinished run: a task whose container still runs is re-attached
    /// (its log rewritten whole from the engine's output, its exit recorded); one
    /// whose container exited meanwhile gets its real exit code and full log; one
    /// whose container is gone is Failed with reason Orphaned; one recorded as
    /// starting whose container was never created is started now (a container that
    /// appears under its deterministic name in the meantime is adopted, never
    /// duplicated); the others run as the dependency graph allows. Timeouts restart
    /// from the recovery.
    ///
    /// # Errors
    /// [`RecoveryError`] when the store or the scheduler fails; nothing was resumed
    /// then and the call may be retried.
    pub async fn recover(&self) -> Result<RecoveryReport, RecoveryError> {
        let rt = tokio::runtime::Handle::try_current().map_err(|_| RecoveryError::NoRuntime)?;
        let inner = &self.inner;
        let mut report = RecoveryReport::default();
        if inner.durable.as_ref().is_some_and(|d| d.recovered()) {
            return Ok(report);
        }
        let containers = inner
            .scheduler
            .list(&naming::engine_filter(&inner.instance_id))
            .await?;
        let Some(d) = &inner.durable else {
            if inner.started_any() {
                // Its own runs' containers carry the same label: leave them alone.
                return Ok(report);
            }
            for c in containers {
                reap(inner, &c, &mut report).await;
            }
            return Ok(report);
        };
        for (pipeline, last) in d.store.last_run_ids().await? {
            inner.seed_next_run(&pipeline, last);
        }
        let unfinished: Vec<UnfinishedRun> = d
            .store
            .unfinished_runs()
            .await?
            .into_iter()
            .filter(|u| u.spec.engine == inner.instance_id)
            .collect();
        let mut events = Vec::with_capacity(unfinished.len());
        for u in &unfinished {
            events.push(
                d.store
                    .events(&u.run.pipeline_id, u.run.run_id)
                    .await?
                    .into_iter()
                    .map(Event::from)
                    .collect::<Vec<_>>(),
            );
        }

        let mut by_run: HashMap<(String, u64), Vec<ContainerSummary>> = HashMap::new();
        for c in containers {
            let key = label(&c, LABEL_PIPELINE)
                .zip(label(&c, LABEL_RUN).and_then(|r| r.parse::<u64>().ok()))
                .map(|(p, r)| (p.to_string(), r));
            let known = key.as_ref().is_some_and(|k| {
                unfinished
                    .iter()
                    .any(|u| u.run.pipeline_id == k.0 && u.run.run_id == k.1)
            });
            match key {
                Some(k) if known => by_run.entry(k).or_default().push(c),
                _ => reap(inner, &c, &mut report).await,
            }
        }

        for (u, events) in unfinished.into_iter().zip(events) {
            let key = (u.run.pipeline_id.clone(), u.run.run_id);
            let mut found = by_run.remove(&key).unwrap_or_default();
            let pipeline = d.with_credentials(&u.spec);
            let mut resume = Vec::with_capacity(u.run.tasks.len());
            for t in &u.run.tasks {
                let c = found
                    .iter()
                    .position(|c| {
                        label(c, LABEL_ROLE) == Some("task")
                            && label(c, LABEL_TASK) == Some(t.task_id.as_str())
                    })
                    .map(|i| found.swap_remove(i));
                let (plan, action) = if t.state == TaskState::Complete {
                    if let Some(c) = &c {
                        reap(inner, c, &mut report).await;
                    }
                    (Resume::Complete(t.status), None)
                } else {
                    match c {
                        Some(c) => match c.state {
                            ContainerState::Created => {
                                reap(inner, &c, &mut report).await;
                                (Resume::Fresh, Some(RecoveryAction::Restarted))
                            }
                            ContainerState::Running => {
                                (Resume::Attach(c.id), Some(RecoveryAction::Reattached))
                            }
                            _ => (Resume::Attach(c.id), Some(RecoveryAction::Collected)),
                        },
                        None => match &t.container {
                            Some(r) if r.id.is_some() || t.state == TaskState::Running => {
                                (Resume::Orphaned, Some(RecoveryAction::Orphaned))
                            }
                            Some(_) => (Resume::Fresh, Some(RecoveryAction::Restarted)),
                            None => (Resume::Fresh, Some(RecoveryAction::Resumed)),
                        },
                    }
                };
                if let Some(action) = action {
                    report.tasks.push(RecoveredTask {
                        pipeline: key.0.clone(),
                        run: key.1,
                        task: t.task_id.clone(),
                        action,
                    });
                }
                resume.push(plan);
            }
            // What is left: a sandbox (adopted when the run recreates it) or
            // containers of tasks the run does not have.
            for c in found {
                let sandbox = label(&c, LABEL_ROLE) == Some("sandbox");
                if !(sandbox && inner.sandbox_image.is_some()) {
                    reap(inner, &c, &mut report).await;
                }
            }
            info!(pipeline = %key.0, run = key.1, "resuming run");
            let pending = u.run.state == RunState::Pending;
            let (journal, writer) = super::journal::Journal::new(d.store.clone());
            let recorder = Arc::new(Recorder::resumed(u.run, events, journal));
            rt.spawn(writer);
            let mut ctx = RunCtx::new(inner.clone(), pipeline, key.1, u.spec.options(), recorder);
            ctx.recovered = true;
            if !pending {
                ctx.resume = resume;
            }
            let (_, wait) = inner.take_slot(&ctx.pipeline, false);
            report.runs.push(launch(inner, &rt, ctx, wait));
        }
        d.set_recovered();
        Ok(report)
    }

    /// Stops every run's executor at once without stopping or removing any container
    /// and without recording anything more, as if the host process had died. For
    /// crash-recovery tests; the engine must not be used afterwards.
    #[doc(hidden)]
    pub async fn simulate_crash(&self) {
        if let Some(d) = &self.inner.durable {
            d.crash().await;
        }
    }
}

async fn reap(inner: &EngineInner, c: &ContainerSummary, report: &mut RecoveryReport) {
    match inner.scheduler.remove(&c.id, true).await {
        Ok(()) => report.reaped.push(c.name.clone()),
        Err(e) => warn!(container = %c.id, name = %c.name, error = %e, "cannot reap container"),
    }
}

/// Why a pipeline could not be registered.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegisterError {
    /// The pipeline is invalid.
    #[error(transparent)]
    Invalid(#[from] ValidationErrors),
    /// The run store failed.
    #[error("cannot register the pipeline: {0}")]
    Store(#[from] StoreError),
}

/// The outcome of a task whose container vanished while the host was away.
pub(crate) fn orphaned() -> Outcome {
    Outcome::new(
        TaskStatus::Failed,
        Some(StatusReason::Orphaned),
        "the task's container disappeared while the host was down".to_string(),
    )
}

/// Finds this run's container carrying `labels` (the first one listed).
async fn find_labelled(
    ctx: &RunCtx,
    labels: &std::collections::BTreeMap<String, String>,
) -> Option<ContainerId> {
    match ctx.engine.scheduler.list(labels).await {
        Ok(found) => found.into_iter().next().map(|c| c.id),
        Err(e) => {
            warn!(error = %e, "cannot list containers to adopt one");
            None
        }
    }
}

/// Starts a task's container; in a resumed run, a container that already carries the
/// task's deterministic name (a start that reached the engine just before the host
/// died) is adopted instead of failing with a conflict.
pub(crate) async fn start_or_adopt(
    ctx: &RunCtx,
    idx: usize,
    spec: ContainerSpec,
) -> Result<ContainerId, SchedulerError> {
    let labels = spec.labels.clone();
    match ctx.engine.scheduler.start(spec).await {
        Err(SchedulerError::Conflict { id, message, .. }) if ctx.recovered => {
            debug!(task = %ctx.pipeline.tasks[idx].id, "container exists; adopting it");
            find_labelled(ctx, &labels)
                .await
                .ok_or_else(|| SchedulerError::Conflict {
                    scheduler: ctx.engine.scheduler.name(),
                    id,
                    message,
                })
        }
        other => other,
    }
}

/// Creates the run's network sandbox; in a resumed run, the existing one is adopted.
pub(crate) async fn create_or_adopt_sandbox(
    ctx: &RunCtx,
    spec: SandboxSpec,
) -> Result<ContainerId, SchedulerError> {
    if ctx.recovered {
        if let Some(id) = find_labelled(ctx, &spec.labels).await {
            return Ok(id);
        }
    }
    ctx.engine.scheduler.create_sandbox(spec).await
}
