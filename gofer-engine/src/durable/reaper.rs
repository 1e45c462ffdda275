//! The one reaper: removes the containers, and then the volumes, carrying a set of
//! labels, over any [`Scheduler`](gofer_core::Scheduler). Every backend and the engine's
//! recovery use it.

use std::collections::BTreeMap;

use futures::StreamExt;

use gofer_core::naming::LABEL_ROLE;
use gofer_core::{ContainerId, ContainerSummary, DynScheduler, SchedulerError, VolumeSummary};

/// How many removals [`reap`] has in flight at once.
pub const REAP_CONCURRENCY: usize = 8;

/// Why [`reap`] could not remove something.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReapError {
    /// The filter was empty: it would match every container on the engine.
    #[error("refusing to reap with an empty label filter (it matches every container)")]
    EmptyFilter,
    /// Listing the labelled containers failed; nothing was removed.
    #[error("cannot list containers labelled {labels}: {source}")]
    List {
        /// The filter, as `k=v,k=v`.
        labels: String,
        /// The cause.
        #[source]
        source: SchedulerError,
    },
    /// Removing one container failed.
    #[error("cannot remove container {name:?} ({id}): {source}")]
    Remove {
        /// The container's name.
        name: String,
        /// The container's id.
        id: ContainerId,
        /// The cause.
        #[source]
        source: SchedulerError,
    },
    /// Listing the labelled volumes failed; no volume was removed.
    #[error("cannot list volumes labelled {labels}: {source}")]
    ListVolumes {
        /// The filter, as `k=v,k=v`.
        labels: String,
        /// The cause.
        #[source]
        source: SchedulerError,
    },
    /// Removing one volume failed.
    #[error("cannot remove volume {name:?}: {source}")]
    RemoveVolume {
        /// The volume's name.
        name: String,
        /// The cause.
        #[source]
        source: SchedulerError,
    },
}

impl ReapError {
    /// Whether retrying may succeed (the engine was unreachable or hiccuped).
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::EmptyFilter => false,
            Self::List { source, .. }
            | Self::Remove { source, .. }
            | Self::ListVolumes { source, .. }
            | Self::RemoveVolume { source, .. } => source.is_retryable(),
        }
    }
}

/// What [`reap`] did.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct ReapReport {
    /// Containers removed, in the order their removal completed.
    pub removed: Vec<ContainerSummary>,
    /// Containers listed but already gone when their removal came (not an error).
    pub gone: Vec<ContainerSummary>,
    /// Volumes removed (after every container), in the order their removal completed.
    pub removed_volumes: Vec<String>,
    /// What could not be listed or removed; those containers may still exist.
    pub failed: Vec<ReapError>,
}

impl ReapReport {
    /// The names of the removed containers.
    pub fn removed_names(&self) -> Vec<String> {
        self.removed.iter().map(|c| c.name.clone()).collect()
    }

    /// Whether everything listed is gone (no failure).
    pub fn is_complete(&self) -> bool {
        self.failed.is_empty()
    }

    /// The removed containers, or the first failure.
    ///
    /// # Errors
    /// The first [`ReapError`] in [`ReapReport::failed`].
    pub fn into_result(mut self) -> Result<Vec<ContainerSummary>, ReapError> {
        if self.failed.is_empty() {
            Ok(self.removed)
        } else {
            Err(self.failed.swap_remove(0))
        }
    }
}

/// Removes, with force, every container carrying all labels in `filter` (for
/// example [`naming::engine_filter`](gofer_core::naming::engine_filter) for what an
/// engine instance left behind), at most [`REAP_CONCURRENCY`] at a time: task
/// containers first, then network sandbox holders (label
/// [`LABEL_ROLE`] = `sandbox`), so no holder goes while a task still uses its network;
/// then, on a scheduler with [`Capabilities::volumes`](gofer_core::Capabilities::volumes),
/// every volume carrying those labels (a run's workspace).
///
/// Never fails as a whole: a failed listing or removal is in [`ReapReport::failed`]
/// as a typed [`ReapError`], the other removals still happen. A container already gone
/// is in [`ReapReport::gone`]. An empty `filter` is refused
/// ([`ReapError::EmptyFilter`]) rather than reaping the whole engine.
///
/// ```
/// use gofer_core::fake::FakeScheduler;
/// use gofer_core::naming::engine_filter;
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let fake = FakeScheduler::new();
/// let report = gofer_engine::reap(&fake, &engine_filter("my-engine")).await;
/// assert!(report.is_complete() && report.removed.is_empty());
/// # }
/// ```
#[tracing::instrument(skip_all, fields(scheduler = scheduler.name(), labels = %show(filter)))]
pub async fn reap(scheduler: &DynScheduler, filter: &BTreeMap<String, String>) -> ReapReport {
    let mut report = ReapReport::default();
    if filter.is_empty() {
        report.failed.push(ReapError::EmptyFilter);
        return report;
    }
    let found = match scheduler.list(filter).await {
        Ok(found) => found,
        Err(source) => {
            tracing::warn!(error = %source, "cannot list containers to reap");
            report.failed.push(ReapError::List {
                labels: show(filter),
                source,
            });
            return report;
        }
    };
    let mut report = remove_all(scheduler, found, report).await;
    if scheduler.capabilities().volumes {
        match scheduler.list_volumes(filter).await {
            Ok(volumes) => {
                let done = reap_volumes(scheduler, volumes).await;
                report.removed_volumes.extend(done.removed_volumes);
                report.failed.extend(done.failed);
            }
            Err(source) => {
                tracing::warn!(error = %source, "cannot list volumes to reap");
                report.failed.push(ReapError::ListVolumes {
                    labels: show(filter),
                    source,
                });
            }
        }
    }
    report
}

/// Removes exactly the `volumes` given (for example those of runs a recovery found
/// finished), at most [`REAP_CONCURRENCY`] at a time, every failure reported; a volume
/// already gone is not a failure. Remove the containers that mount them first.
#[tracing::instrument(skip_all, fields(scheduler = scheduler.name(), volumes = volumes.len()))]
pub async fn reap_volumes(scheduler: &DynScheduler, volumes: Vec<VolumeSummary>) -> ReapReport {
    let mut report = ReapReport::default();
    let mut removals = futures::stream::iter(volumes)
        .map(|v| async move {
            let result = scheduler.remove_volume(&v.name).await;
            (v, result)
        })
        .buffer_unordered(REAP_CONCURRENCY);
    while let Some((v, result)) = removals.next().await {
        match result {
            Ok(()) => {
                tracing::info!(volume = %v.name, "reaped");
                report.removed_volumes.push(v.name);
            }
            Err(SchedulerError::NoSuchContainer { .. }) => {}
            Err(source) => {
                tracing::warn!(volume = %v.name, error = %source, "cannot reap volume");
                report.failed.push(ReapError::RemoveVolume {
                    name: v.name,
                    source,
                });
            }
        }
    }
    report
}

/// Removes, with force, exactly the `containers` given (for example those a recovery
/// decided are orphans), as [`reap`] does after listing: at most
/// [`REAP_CONCURRENCY`] at a time, task containers before sandbox holders, every
/// failure reported.
#[tracing::instrument(skip_all, fields(scheduler = scheduler.name(), containers = containers.len()))]
pub async fn reap_listed(
    scheduler: &DynScheduler,
    containers: Vec<ContainerSummary>,
) -> ReapReport {
    remove_all(scheduler, containers, ReapReport::default()).await
}

async fn remove_all(
    scheduler: &DynScheduler,
    found: Vec<ContainerSummary>,
    mut report: ReapReport,
) -> ReapReport {
    let (holders, tasks): (Vec<_>, Vec<_>) = found
        .into_iter()
        .partition(|c| c.labels.get(LABEL_ROLE).map(String::as_str) == Some("sandbox"));
    for phase in [tasks, holders] {
        let mut removals = futures::stream::iter(phase)
            .map(|c| async move {
                let result = scheduler.remove(&c.id, true).await;
                (c, result)
            })
            .buffer_unordered(REAP_CONCURRENCY);
        while let Some((c, result)) = removals.next().await {
            match result {
                Ok(()) => {
                    tracing::info!(container = %c.name, id = %c.id, "reaped");
                    report.removed.push(c);
                }
                Err(SchedulerError::NoSuchContainer { .. }) => report.gone.push(c),
                Err(source) => {
                    tracing::warn!(container = %c.name, id = %c.id, error = %source, "cannot reap container");
                    report.failed.push(ReapError::Remove {
                        name: c.name,
                        id: c.id,
                        source,
                    });
                }
            }
        }
    }
    report
}

fn show(filter: &BTreeMap<String, String>) -> String {
    filter
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
#[path = "reaper_tests.rs"]
mod tests;
