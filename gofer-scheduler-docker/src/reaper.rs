//! Removing the containers an engine instance left behind.

use gofer_core::naming::engine_filter;
use gofer_core::{ContainerSummary, Scheduler, SchedulerError};

use crate::DockerScheduler;

impl DockerScheduler {
    /// Removes (with force) every container labelled as made by the engine instance
    /// `engine_id` (label [`dev.gofer.engine`](gofer_core::naming::LABEL_ENGINE)) and
    /// returns what it removed.
    ///
    /// Call it when a host starts, before it starts runs: whatever carries its engine id
    /// then is an orphan of an earlier life (a crash, a killed process). Containers
    /// already gone when their turn comes are skipped.
    ///
    /// # Errors
    ///
    /// The first error other than [`SchedulerError::NoSuchContainer`]; containers
    /// removed before it stay removed.
    #[tracing::instrument(skip_all, fields(scheduler = crate::NAME, engine = %engine_id))]
    pub async fn reap(&self, engine_id: &str) -> Result<Vec<ContainerSummary>, SchedulerError> {
        let found = self.list(&engine_filter(engine_id)).await?;
        let results =
            futures::future::join_all(found.iter().map(|c| self.remove(&c.id, true))).await;
        let mut removed = Vec::with_capacity(found.len());
        for (container, result) in found.into_iter().zip(results) {
            match result {
                Ok(()) => {
                    tracing::info!(container = %container.name, "reaped");
                    removed.push(container);
                }
                Err(SchedulerError::NoSuchContainer { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(removed)
    }
}
