//! Removal of one engine instance's orphaned containers.

use gofer_core::naming::{engine_filter, LABEL_ROLE};
use gofer_core::{ContainerId, Scheduler, SchedulerError};

use crate::PodmanScheduler;

impl PodmanScheduler {
    /// Removes (forcibly) every container labelled as made by the engine instance
    /// `engine` ([`gofer_core::naming::LABEL_ENGINE`]): task containers first, then
    /// sandbox holders. Meant for a host's start-up, before it starts runs, to clear
    /// what a previous process of the same engine instance left behind. Containers of
    /// other engine instances are never touched.
    ///
    /// Returns the ids removed. A container that disappears meanwhile is not an error.
    ///
    /// # Errors
    ///
    /// The first error of listing or of a removal.
    #[tracing::instrument(skip_all, fields(scheduler = crate::NAME, engine))]
    pub async fn reap_orphans(&self, engine: &str) -> Result<Vec<ContainerId>, SchedulerError> {
        let mut found = self.list(&engine_filter(engine)).await?;
        // Tasks (and anything unlabelled by role) before holders.
        found.sort_by_key(|c| c.labels.get(LABEL_ROLE).map(String::as_str) == Some("sandbox"));
        let mut removed = Vec::with_capacity(found.len());
        for c in found {
            match self.remove(&c.id, true).await {
                Ok(()) | Err(SchedulerError::NoSuchContainer { .. }) => {
                    tracing::info!(container = %c.id, name = %c.name, "reaped orphan");
                    removed.push(c.id);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(removed)
    }
}
