//! Removing containers that a failed or abandoned start left behind.

use bollard::query_parameters::RemoveContainerOptions;
use bollard::Docker;

fn force() -> Option<RemoveContainerOptions> {
    Some(RemoveContainerOptions {
        force: true,
        v: true,
        ..Default::default()
    })
}

/// Removes with force and forgets any error (cleanup of a half-made container).
pub(crate) async fn discard(docker: &Docker, id: &str) {
    if let Err(e) = docker.remove_container(id, force()).await {
        tracing::warn!(container = %id, error = %e, "cannot remove a half-made container");
    }
}

/// Removes a created container when the `start` that made it is dropped before it
/// finished (a caller that gave up owns no container). Disarm it by taking `id`.
pub(crate) struct HalfMade {
    pub(crate) docker: Docker,
    pub(crate) id: Option<String>,
}

impl Drop for HalfMade {
    fn drop(&mut self) {
        let (Some(id), Ok(rt)) = (self.id.take(), tokio::runtime::Handle::try_current()) else {
            return;
        };
        let docker = self.docker.clone();
        rt.spawn(async move { discard(&docker, &id).await });
    }
}
