//! A task's container on the scheduler: start (or adopt after a crash), the run's
//! sandbox, stop, and removal that is retried until the engine answers again.
//!
//! Every backend call goes through [`guarded`]: a backend that panics gives an error
//! instead of unwinding past the cleanup that must follow.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use tracing::{debug, warn};

use gofer_core::{
    ContainerId, ContainerSpec, ContainerState, DynScheduler, SandboxSpec, SchedulerError,
};

use crate::run::ctx::Shared;

/// First wait before a failed removal is tried again; doubled up to
/// [`REMOVAL_RETRY_MAX`].
const REMOVAL_RETRY_FIRST: Duration = Duration::from_secs(1);
/// Longest wait between two tries of a failed removal.
const REMOVAL_RETRY_MAX: Duration = Duration::from_secs(60);
/// A failed removal is retried for this long (then left to the next recovery).
const REMOVAL_RETRY_FOR: Duration = Duration::from_secs(24 * 3600);

/// Runs a backend call; a panic in it becomes an error.
pub(crate) async fn guarded<T>(
    scheduler: &DynScheduler,
    operation: &'static str,
    call: impl std::future::Future<Output = Result<T, SchedulerError>>,
) -> Result<T, SchedulerError> {
    match AssertUnwindSafe(call).catch_unwind().await {
        Ok(r) => r,
        Err(_) => {
            warn!(
                scheduler = scheduler.name(),
                operation, "the backend panicked"
            );
            Err(SchedulerError::engine(
                scheduler.name(),
                operation,
                "the backend panicked",
            ))
        }
    }
}

/// Starts a task's container. In a resumed run a container already under the task's
/// deterministic name (a start that reached the engine just before the host died) is
/// adopted instead — started if it was only created — so the task never runs twice.
pub(crate) async fn start(
    engine: &Shared,
    spec: ContainerSpec,
    recovered: bool,
) -> Result<ContainerId, SchedulerError> {
    let s = &*engine.scheduler;
    let labels = spec.labels.clone();
    match guarded(s, "start", s.start(spec)).await {
        Err(SchedulerError::Conflict { id, message, .. }) if recovered => {
            debug!(name = %id, "container exists; adopting it");
            let found = guarded(s, "list", s.list(&labels)).await?;
            match found.into_iter().next() {
                Some(c) => {
                    adopt(engine, &c.id, c.state).await?;
                    Ok(c.id)
                }
                None => Err(SchedulerError::Conflict {
                    scheduler: s.name(),
                    id,
                    message,
                }),
            }
        }
        other => other,
    }
}

/// Makes an existing container of a task run: one left `Created` by a host that died
/// is started (at most once); a running or exited one is followed as it is.
pub(crate) async fn adopt(
    engine: &Shared,
    id: &ContainerId,
    state: ContainerState,
) -> Result<(), SchedulerError> {
    if state == ContainerState::Created {
        let s = &*engine.scheduler;
        guarded(s, "start_created", s.start_created(id)).await?;
        debug!(container = %id, "started a container left created");
    }
    Ok(())
}

/// Creates the run's network sandbox; in a resumed run, the existing one is adopted.
pub(crate) async fn sandbox(
    engine: &Shared,
    spec: SandboxSpec,
    recovered: bool,
) -> Result<ContainerId, SchedulerError> {
    let s = &*engine.scheduler;
    if recovered {
        match guarded(s, "list", s.list(&spec.labels)).await {
            Ok(found) => {
                if let Some(c) = found.into_iter().next() {
                    return Ok(c.id);
                }
            }
            Err(e) => warn!(error = %e, "cannot list containers to adopt the sandbox"),
        }
    }
    guarded(s, "create_sandbox", s.create_sandbox(spec)).await
}

/// Stops a container: SIGTERM, `grace`, kill.
pub(crate) async fn stop(engine: &Shared, id: &ContainerId, grace: Duration) {
    let s = &*engine.scheduler;
    if let Err(e) = guarded(s, "stop", s.stop(id, grace)).await {
        warn!(container = %id, error = %e, "cannot stop the container");
    }
}

/// Removes a container (with force). When the engine cannot be reached the removal is
/// retried in the background, with backoff, until the engine answers again; the
/// engine's [`pending_removals`](crate::Engine::pending_removals) counts these.
pub(crate) async fn remove(engine: &Arc<Shared>, id: &ContainerId) {
    let s = &*engine.scheduler;
    match guarded(s, "remove", s.remove(id, true)).await {
        Ok(()) | Err(SchedulerError::NoSuchContainer { .. }) => {}
        Err(e) => {
            warn!(container = %id, error = %e, "cannot remove the container; retrying in the background");
            retry_removal(engine.clone(), id.clone());
        }
    }
}

pub(crate) fn retry_removal(engine: Arc<Shared>, id: ContainerId) {
    let what = format!("container {id}");
    retry_in_background(engine, what, move |s| {
        let id = id.clone();
        async move { guarded(&*s, "remove", s.remove(&id, true)).await }.boxed()
    });
}

/// Removes a run's volume; a removal that fails (a container still mounting it whose
/// own removal is being retried, an engine that does not answer) is retried in the
/// background, as a container's is. A volume already gone is not an error.
pub(crate) async fn remove_volume(engine: &Arc<Shared>, name: &str) {
    let s = &*engine.scheduler;
    match guarded(s, "remove_volume", s.remove_volume(name)).await {
        Ok(()) | Err(SchedulerError::NoSuchContainer { .. }) => {}
        Err(e) => {
            warn!(volume = name, error = %e, "cannot remove the volume; retrying in the background");
            let name = name.to_string();
            retry_in_background(engine.clone(), format!("volume {name}"), move |s| {
                let name = name.clone();
                async move { guarded(&*s, "remove_volume", s.remove_volume(&name)).await }.boxed()
            });
        }
    }
}

/// Retries a failed removal in the background, with growing waits, until it succeeds,
/// the thing is gone, or [`REMOVAL_RETRY_FOR`] passed (the next recovery reaps it).
fn retry_in_background(
    engine: Arc<Shared>,
    what: String,
    remove: impl Fn(Arc<DynScheduler>) -> futures::future::BoxFuture<'static, Result<(), SchedulerError>>
        + Send
        + 'static,
) {
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let pending = engine.pending_removals.clone();
    pending.fetch_add(1, Ordering::SeqCst);
    rt.spawn(async move {
        let started = tokio::time::Instant::now();
        let mut wait = REMOVAL_RETRY_FIRST;
        loop {
            tokio::time::sleep(wait).await;
            match remove(engine.scheduler.clone()).await {
                Ok(()) | Err(SchedulerError::NoSuchContainer { .. }) => {
                    debug!(what, "removed after a retry");
                    break;
                }
                Err(e) if started.elapsed() >= REMOVAL_RETRY_FOR => {
                    warn!(what, error = %e, "giving up removing it; the next recovery reaps it");
                    break;
                }
                Err(e) => debug!(what, error = %e, "removal failed again"),
            }
            wait = wait.saturating_mul(2).min(REMOVAL_RETRY_MAX);
        }
        pending.fetch_sub(1, Ordering::SeqCst);
    });
}
