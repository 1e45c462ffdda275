//! Removal of a half-made container when starting it fails or is abandoned.

use crate::client::{segment, Api};
use crate::NAME;

/// Removes a container unless disarmed: at once with [`RemoveOnDrop::remove_now`] (a
/// failed start), or from a spawned task when dropped armed (the start's own task was
/// dropped, as when the runtime shuts down; a caller dropping its future is handled by
/// the scheduler's detached start).
pub(crate) struct RemoveOnDrop {
    api: Api,
    /// Id once known, else the unique name the create used.
    target: Option<String>,
}

impl RemoveOnDrop {
    /// A disarmed guard.
    pub(crate) fn new(api: Api) -> Self {
        Self { api, target: None }
    }

    /// Arms the guard for a container, by unique name or id.
    pub(crate) fn set_target(&mut self, target: String) {
        self.target = Some(target);
    }

    /// Keeps the container.
    pub(crate) fn disarm(&mut self) {
        self.target = None;
    }

    /// Removes the container now (best effort) and disarms.
    pub(crate) async fn remove_now(&mut self) {
        if let Some(target) = self.target.take() {
            remove(&self.api, &target).await;
        }
    }
}

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(target) = self.target.take() {
            match tokio::runtime::Handle::try_current() {
                Ok(handle) => {
                    let api = self.api.clone();
                    handle.spawn(async move { remove(&api, &target).await });
                }
                Err(_) => tracing::warn!(
                    scheduler = NAME,
                    container = %target,
                    "start abandoned outside a tokio runtime; the container may be left behind"
                ),
            }
        }
    }
}

async fn remove(api: &Api, target: &str) {
    let path = format!(
        "/containers/{}?force=true&depend=true&timeout=0",
        segment(target)
    );
    match api.delete(&path).await {
        Ok(_) => {
            tracing::debug!(scheduler = NAME, container = %target, "removed half-made container")
        }
        Err(e) if e.status() == Some(404) => {}
        Err(e) => tracing::warn!(
            scheduler = NAME,
            container = %target,
            error = %e,
            "could not remove half-made container"
        ),
    }
}
