//! Retention: [`Engine::prune`] removes old complete runs with everything they left —
//! their rows in the run store, their logs in the log sink and their run objects —
//! so a host that runs for months keeps a bounded history.
//!
//! **What goes** ([`RetentionPolicy`]): a complete run beyond the newest `keep_last`
//! runs of its pipeline (counted over all its runs, unfinished ones included), or one
//! that ended longer than `max_age` ago. Either condition removes a run (as Jenkins'
//! "discard old builds" does); a run that is not complete is never removed.
//!
//! **Order, for crashes.** A run's rows go first, in one transaction
//! ([`RunStore::delete_run`](gofer_core::RunStore::delete_run)), which also records
//! the run as awaiting cleanup; then its logs, then its run objects; then the cleanup
//! is recorded done. A reader that lists runs never finds one whose logs are gone: the
//! run leaves every query before anything else of it does. A crash (or a failing sink
//! or object store) between the steps leaves only files and objects nobody points at,
//! and the next prune removes them first ([`RetentionReport::finished`]). The run's
//! number stays taken, so a later run never reuses a removed run's logs or tokens.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use gofer_core::{DynObjectStore, DynRunStore, RunState, StoreError};
use tracing::{debug, info, warn};

use crate::engine::Engine;
use crate::logs::sink::LogSink;

/// Which complete runs [`Engine::prune`] removes (see the module documentation).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionPolicy {
    keep_last: Option<u32>,
    max_age: Option<Duration>,
}

impl RetentionPolicy {
    /// A policy that removes nothing until told what to keep.
    pub fn new() -> Self {
        Self::default()
    }

    /// Keeps the newest `n` runs of each pipeline; older complete ones go.
    #[must_use]
    pub fn keep_last(mut self, n: u32) -> Self {
        self.keep_last = Some(n);
        self
    }

    /// Removes complete runs that ended longer than `age` ago.
    #[must_use]
    pub fn max_age(mut self, age: Duration) -> Self {
        self.max_age = Some(age);
        self
    }

    /// The newest runs kept per pipeline, when set.
    pub fn kept_runs(&self) -> Option<u32> {
        self.keep_last
    }

    /// The age beyond which complete runs go, when set.
    pub fn age_limit(&self) -> Option<Duration> {
        self.max_age
    }

    /// Whether the policy removes nothing (neither limit set).
    pub fn is_empty(&self) -> bool {
        self.keep_last.is_none() && self.max_age.is_none()
    }

    /// Whether the run at `index` (0 = the pipeline's newest) goes: complete, and
    /// beyond the kept number or older than the age limit at `now`.
    fn removes(
        &self,
        index: usize,
        complete: bool,
        ended: Option<SystemTime>,
        now: SystemTime,
    ) -> bool {
        if !complete {
            return false;
        }
        let beyond = self
            .keep_last
            .is_some_and(|n| index >= usize::try_from(n).unwrap_or(usize::MAX));
        let old = self
            .max_age
            .is_some_and(|age| ended.is_some_and(|e| now.duration_since(e).is_ok_and(|d| d > age)));
        beyond || old
    }
}

/// A run [`Engine::prune`] removed (or, in a plan, would remove).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PrunedRun {
    /// The pipeline.
    pub pipeline: String,
    /// The run number.
    pub run: u64,
    /// When it ended.
    pub ended: Option<SystemTime>,
}

/// What [`Engine::prune`] did.
#[derive(Debug, Default, Clone)]
#[non_exhaustive]
pub struct RetentionReport {
    /// The runs removed, by pipeline, oldest first.
    pub removed: Vec<PrunedRun>,
    /// Runs removed earlier whose logs or objects were left (a crash, a failure) and
    /// are gone now.
    pub finished: Vec<(String, u64)>,
    /// The bytes of logs freed.
    pub log_bytes: u64,
    /// The run objects removed.
    pub objects: usize,
    /// What could not be removed now (the log sink or object store failed); it is
    /// tried again by the next prune.
    pub left: Vec<String>,
}

/// Why [`Engine::prune`] could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RetentionError {
    /// The engine has no run store: there is no history to prune.
    #[error("the engine has no run store: there is no run history to prune")]
    NoRunStore,
    /// The policy sets neither a number of runs to keep nor an age.
    #[error("the retention policy keeps everything: set keep_last or max_age")]
    EmptyPolicy,
    /// The run store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A background pruner ([`Engine::start_pruner`]); dropping it stops it.
#[derive(Debug)]
pub struct Pruner {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Pruner {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Engine {
    /// The runs `policy` would remove now, by pipeline, oldest first; removes nothing
    /// (`gofer prune --dry-run`).
    ///
    /// # Errors
    /// [`RetentionError`].
    pub async fn prune_plan(
        &self,
        policy: &RetentionPolicy,
    ) -> Result<Vec<PrunedRun>, RetentionError> {
        let store = self.retention_store(policy)?;
        plan(&*store, policy).await
    }

    /// Removes the complete runs `policy` says go, with their logs and run objects
    /// (see the [module documentation](crate::retention) for what goes and in which
    /// order); first finishes what an earlier prune left.
    ///
    /// # Errors
    /// [`RetentionError`]; a log sink or object store failure is not an error (it is
    /// in [`RetentionReport::left`] and tried again next time).
    pub async fn prune(&self, policy: &RetentionPolicy) -> Result<RetentionReport, RetentionError> {
        let store = self.retention_store(policy)?;
        prune_history(&*store, self.log_sink(), &**self.object_store(), policy).await
    }

    /// Prunes by `policy` every `period` in the background (the first time after one
    /// period), until the returned [`Pruner`] is dropped. A failed prune is logged and
    /// tried again the next period.
    ///
    /// # Errors
    /// [`RetentionError::NoRunStore`], [`RetentionError::EmptyPolicy`].
    ///
    /// # Panics
    /// Outside a Tokio runtime.
    pub fn start_pruner(
        &self,
        policy: RetentionPolicy,
        period: Duration,
    ) -> Result<Pruner, RetentionError> {
        self.retention_store(&policy)?;
        let engine = self.clone();
        let period = period.max(Duration::from_millis(1));
        let task = tokio::spawn(async move {
            loop {
                tokio::time::sleep(period).await;
                if let Err(e) = engine.prune(&policy).await {
                    warn!(error = %e, "retention: prune failed; trying again next period");
                }
            }
        });
        Ok(Pruner { task })
    }

    fn retention_store(
        &self,
        policy: &RetentionPolicy,
    ) -> Result<Arc<DynRunStore>, RetentionError> {
        if policy.is_empty() {
            return Err(RetentionError::EmptyPolicy);
        }
        self.run_store().cloned().ok_or(RetentionError::NoRunStore)
    }
}

/// [`Engine::prune`] over the stores themselves, for a host that prunes without an
/// engine (the `gofer prune` command needs no container engine).
///
/// # Errors
/// As [`Engine::prune`].
pub async fn prune_history(
    store: &DynRunStore,
    sink: &Arc<dyn LogSink>,
    objects: &DynObjectStore,
    policy: &RetentionPolicy,
) -> Result<RetentionReport, RetentionError> {
    if policy.is_empty() {
        return Err(RetentionError::EmptyPolicy);
    }
    let mut report = RetentionReport::default();
    for (pipeline, run) in store.cleanups().await? {
        if clean(store, sink, objects, &pipeline, run, &mut report).await {
            report.finished.push((pipeline, run));
        }
    }
    for victim in plan(store, policy).await? {
        match store.delete_run(&victim.pipeline, victim.run).await {
            Ok(()) => {}
            // Gone since the plan (another process pruned), or not complete after
            // all: nothing of it to remove here.
            Err(StoreError::NotFound { .. } | StoreError::RunNotComplete { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
        debug!(pipeline = %victim.pipeline, run = victim.run, "run removed");
        clean(
            store,
            sink,
            objects,
            &victim.pipeline,
            victim.run,
            &mut report,
        )
        .await;
        report.removed.push(victim);
    }
    if !report.removed.is_empty() || !report.finished.is_empty() {
        info!(
            runs = report.removed.len(),
            log_bytes = report.log_bytes,
            objects = report.objects,
            "retention: old runs removed"
        );
    }
    Ok(report)
}

/// The runs `policy` removes now from `store`, by pipeline, oldest first
/// ([`Engine::prune_plan`] over the store itself).
///
/// # Errors
/// [`RetentionError::EmptyPolicy`]; the store's.
pub async fn plan(
    store: &DynRunStore,
    policy: &RetentionPolicy,
) -> Result<Vec<PrunedRun>, RetentionError> {
    if policy.is_empty() {
        return Err(RetentionError::EmptyPolicy);
    }
    let now = SystemTime::now();
    let mut out = Vec::new();
    for (pipeline, _) in store.last_run_ids().await? {
        // Newest first.
        let runs = store.list_runs(&pipeline).await?;
        let mut victims: Vec<PrunedRun> = runs
            .iter()
            .enumerate()
            .filter(|(i, r)| {
                policy.removes(
                    *i,
                    r.state == RunState::Complete,
                    r.ended.or(r.started),
                    now,
                )
            })
            .map(|(_, r)| PrunedRun {
                pipeline: pipeline.clone(),
                run: r.run_id,
                ended: r.ended,
            })
            .collect();
        victims.reverse();
        out.extend(victims);
    }
    Ok(out)
}

/// Removes a deleted run's logs and run objects, then records its cleanup done;
/// whether all of it went.
async fn clean(
    store: &DynRunStore,
    sink: &Arc<dyn LogSink>,
    objects: &DynObjectStore,
    pipeline: &str,
    run: u64,
    report: &mut RetentionReport,
) -> bool {
    let mut whole = true;
    let removed = if sink.may_block() {
        let (sink, p) = (sink.clone(), pipeline.to_string());
        tokio::task::spawn_blocking(move || sink.remove_run(&p, run))
            .await
            .unwrap_or_else(|e| {
                Err(crate::logs::sink::LogError::Io {
                    sink: "log sink",
                    operation: "remove",
                    source: Box::new(e),
                })
            })
    } else {
        sink.remove_run(pipeline, run)
    };
    match removed {
        Ok(bytes) => report.log_bytes += bytes,
        Err(e) => {
            whole = false;
            report.left.push(format!(
                "the logs of run {run} of pipeline {pipeline:?}: {e}"
            ));
        }
    }
    match objects.list_run_objects(pipeline, run).await {
        Ok(keys) => {
            for key in keys {
                match objects.delete_run_object(pipeline, run, &key).await {
                    Ok(()) | Err(StoreError::NotFound { .. }) => report.objects += 1,
                    Err(e) => {
                        whole = false;
                        report.left.push(format!(
                            "run object {key:?} of run {run} of pipeline {pipeline:?}: {e}"
                        ));
                    }
                }
            }
        }
        Err(StoreError::NotFound { .. }) => {}
        Err(e) => {
            whole = false;
            report.left.push(format!(
                "the run objects of run {run} of pipeline {pipeline:?}: {e}"
            ));
        }
    }
    if whole {
        if let Err(e) = store.cleanup_done(pipeline, run).await {
            report.left.push(format!(
                "the cleanup record of run {run} of pipeline {pipeline:?}: {e}"
            ));
            return false;
        }
    }
    whole
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_goes_when_beyond_the_kept_number_or_too_old_and_complete() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let day = Duration::from_secs(86_400);
        let keep = RetentionPolicy::new().keep_last(2);
        assert!(!keep.removes(1, true, Some(now), now));
        assert!(keep.removes(2, true, Some(now), now));
        assert!(
            !keep.removes(5, false, Some(now), now),
            "an unfinished run stays"
        );
        let young = RetentionPolicy::new().max_age(day);
        assert!(!young.removes(9, true, Some(now - day / 2), now));
        assert!(young.removes(0, true, Some(now - day * 2), now));
        assert!(!young.removes(0, true, None, now), "no end time: kept");
        let both = keep.max_age(day);
        assert!(both.removes(0, true, Some(now - day * 2), now));
        assert!(both.removes(3, true, Some(now), now));
        assert!(RetentionPolicy::new().is_empty());
    }
}
