//! Crash recovery, the act: [`Engine::recover`] picks up this engine's unfinished runs
//! from the run store where the previous host left them, following the plan of
//! [`crate::durable::plan`].

use std::collections::BTreeSet;
use std::sync::Arc;

use tracing::{info, warn};

use gofer_core::{
    naming, ContainerSummary, Pipeline, RunState, StoreError, TaskState, ValidationErrors,
};
use gofer_core::{DynRunStore, UnfinishedRun};

use crate::durable::journal::Journal;
use crate::durable::plan::RecoveryError;
use crate::durable::plan::{group_by_run, plan_run, RecoveredTask, RecoveryAction};
use crate::durable::recorder::Recorder;
use crate::engine::{BuildError, Engine, EngineBuilder};
use crate::run::container::guarded;
use crate::run::ctx::{RunCtx, Shared};
use crate::run::handle::RunHandle;
use crate::run::runner::launch;

/// What [`Engine::recover`](Engine::recover) did.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct RecoveryReport {
    /// A handle on every resumed run.
    pub runs: Vec<RunHandle>,
    /// Every task execution that was not complete, and what was done with it.
    pub tasks: Vec<RecoveredTask>,
    /// Names of the containers removed: this engine's containers of no unfinished
    /// run, and containers of tasks already recorded complete; then the names of this
    /// engine's volumes (run workspaces) of no unfinished run.
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

impl EngineBuilder {
    /// Builds the engine and runs [`Engine::recover`] on it, so it can start runs at
    /// once (with or without a run store).
    ///
    /// # Errors
    /// [`BuildError`] with the setting or the recovery that failed.
    pub async fn build_and_recover(self) -> Result<(Engine, RecoveryReport), BuildError> {
        let engine = self.build()?;
        let report = engine.recover().await?;
        Ok((engine, report))
    }
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
    /// need registry credentials, before starting runs (or build with
    /// [`EngineBuilder::build_and_recover`](crate::EngineBuilder::build_and_recover)):
    /// with a run store, [`Engine::start_run`] fails with
    /// [`RunError::NotRecovered`](crate::RunError::NotRecovered) until it has run.
    /// A second call does nothing. Without a run store no run is known, so every
    /// container carrying this engine instance's label is reaped (only while the
    /// engine has started no run).
    ///
    /// For each unfinished run: a task whose container still runs is re-attached
    /// (its log rewritten whole from the engine's output, its exit recorded); one
    /// whose container exited meanwhile gets its real exit code and full log; one
    /// whose container is gone is Failed with reason Orphaned; one recorded as
    /// starting whose container the engine holds unstarted (`Created`) has that
    /// container started, and one whose container the engine does not have is
    /// started now — a task runs at most once, whatever moment the host died at
    /// (a container that appears under its deterministic name meanwhile is adopted,
    /// never duplicated); the others run as the dependency graph allows. Timeouts
    /// restart from the recovery.
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
        let s = inner.containers.scheduler();
        let filter = naming::engine_filter(&inner.instance_id);
        let containers = guarded(s, "list", s.list(&filter)).await?;
        let Some(d) = &inner.durable else {
            if inner.admission.started_any() {
                // Its own runs' containers carry the same label: leave them alone.
                return Ok(report);
            }
            reap(inner, containers, &mut report).await;
            reap_volumes(inner, &[], &mut report).await;
            return Ok(report);
        };
        for (pipeline, last) in d.store.last_run_ids().await? {
            inner.admission.seed_next_run(&pipeline, last);
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
            events.push(d.store.events(&u.run.pipeline_id, u.run.run_id).await?);
        }
        let keys: Vec<(String, u64)> = unfinished
            .iter()
            .map(|u| (u.run.pipeline_id.clone(), u.run.run_id))
            .collect();
        let (mut by_run, strays) = group_by_run(containers, &keys);
        reap(inner, strays, &mut report).await;
        reap_volumes(inner, &keys, &mut report).await;

        for ((u, events), key) in unfinished.into_iter().zip(events).zip(keys) {
            let found = by_run.remove(&key).unwrap_or_default();
            let pipeline = d.with_credentials(&u.spec);
            // The services that tasks still to run need (adopted, not restarted).
            let needed: BTreeSet<&str> = pipeline
                .tasks
                .iter()
                .filter(|t| {
                    u.run
                        .task(&t.id)
                        .is_none_or(|r| r.state != TaskState::Complete)
                })
                .flat_map(|t| t.services.iter().map(String::as_str))
                .collect();
            let plan = plan_run(&u.run, found, inner.sandbox_image.is_some(), &needed);
            drop(needed);
            reap(inner, plan.reap, &mut report).await;
            report.tasks.extend(
                plan.actions
                    .into_iter()
                    .map(|(task, action)| RecoveredTask {
                        pipeline: key.0.clone(),
                        run: key.1,
                        task,
                        action,
                    }),
            );
            info!(pipeline = %key.0, run = key.1, "resuming run");
            let pending = u.run.state == RunState::Pending;
            let (journal, writer) = Journal::new(d.store.clone());
            let metrics = crate::metrics::RunMetrics::new(
                &u.run.pipeline_id,
                inner.containers.scheduler().name(),
            );
            let recorder = Arc::new(Recorder::resumed(
                u.run,
                events,
                journal,
                inner.clock,
                metrics,
            ));
            rt.spawn(writer);
            let mut ctx = RunCtx::new(inner.clone(), pipeline, key.1, u.spec.options(), recorder);
            ctx.plan.recovered = true;
            if !pending {
                ctx.plan.resume = plan.resume;
            }
            let (_, wait) = inner.admission.take(&ctx.plan.pipeline, false);
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
        self.inner.groups.play_dead();
        if let Some(d) = &self.inner.durable {
            d.crash().await;
            // As a dead process writes nothing: the aborted runs' log writers are gone.
            self.inner.log_writers.idle().await;
        }
    }
}

/// Removes this engine's volumes (run workspaces) of no run in `keep` (the one
/// reaper), after their containers went, noting what it removed. A volume that cannot
/// be removed now is left for the next recovery, reported in the log.
async fn reap_volumes(inner: &Arc<Shared>, keep: &[(String, u64)], report: &mut RecoveryReport) {
    let s = inner.containers.scheduler();
    if !s.capabilities().volumes {
        return;
    }
    let filter = naming::engine_filter(&inner.instance_id);
    let volumes = match guarded(s, "list_volumes", s.list_volumes(&filter)).await {
        Ok(v) => v,
        Err(e) => {
            warn!(error = %e, "cannot list this engine's volumes; the next recovery reaps them");
            return;
        }
    };
    let stale: Vec<_> = volumes
        .into_iter()
        .filter(|v| {
            let run = v.labels.get(naming::LABEL_PIPELINE).zip(
                v.labels
                    .get(naming::LABEL_RUN)
                    .and_then(|r| r.parse::<u64>().ok()),
            );
            !run.is_some_and(|(p, r)| keep.iter().any(|(kp, kr)| kp == p && *kr == r))
        })
        .collect();
    if stale.is_empty() {
        return;
    }
    let done = crate::durable::reaper::reap_volumes(s, stale).await;
    report.reaped.extend(done.removed_volumes);
    for failure in done.failed {
        warn!(error = %failure, "cannot reap a volume; the next recovery tries again");
    }
}

/// Removes containers recovery does not need (the one reaper), noting what it
/// removed; a removal that failed is retried in the background until the engine
/// answers again.
async fn reap(inner: &Arc<Shared>, containers: Vec<ContainerSummary>, report: &mut RecoveryReport) {
    if containers.is_empty() {
        return;
    }
    let done = crate::durable::reaper::reap_listed(inner.containers.scheduler(), containers).await;
    report.reaped.extend(done.removed_names());
    for failure in done.failed {
        warn!(error = %failure, "cannot reap a container; retrying in the background");
        if let crate::durable::reaper::ReapError::Remove { id, .. } = failure {
            inner.containers.retry_removal(id);
        }
    }
}
