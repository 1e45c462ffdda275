//! [`Containers`]: the engine's containers as the run wing sees them — start (or adopt
//! after a crash), the run's sandbox, stop, and removal that is retried until the
//! engine answers again. It holds the scheduler and the count of removals still being
//! retried, nothing of any run: a caller passes what the call is about.
//!
//! Every backend call goes through [`guarded`]: a backend that panics gives an error
//! instead of unwinding past the cleanup that must follow.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use tracing::{debug, warn};

use gofer_core::{
    ContainerId, ContainerSpec, ContainerState, DynScheduler, SandboxSpec, SchedulerError,
};

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

/// The engine's containers: what starts, stops and removes one. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Containers {
    scheduler: Arc<DynScheduler>,
    /// Containers and volumes whose removal failed and is being retried.
    pending_removals: Arc<AtomicUsize>,
}

impl Containers {
    pub(crate) fn new(scheduler: Arc<DynScheduler>) -> Self {
        Self {
            scheduler,
            pending_removals: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// The scheduler behind them.
    pub(crate) fn scheduler(&self) -> &DynScheduler {
        &*self.scheduler
    }

    /// How many removals are being retried.
    pub(crate) fn pending_removals(&self) -> usize {
        self.pending_removals.load(Ordering::SeqCst)
    }

    /// Starts a task's container. In a resumed run a container already under the task's
    /// deterministic name (a start that reached the engine just before the host died) is
    /// adopted instead — started if it was only created — so the task never runs twice.
    pub(crate) async fn start(
        &self,
        spec: ContainerSpec,
        recovered: bool,
    ) -> Result<ContainerId, SchedulerError> {
        let s = &*self.scheduler;
        let labels = spec.labels.clone();
        let began = std::time::Instant::now();
        let started = guarded(s, "start", s.start(spec)).await;
        if started.is_ok() {
            crate::metrics::start_latency(s.name(), began.elapsed());
        }
        match started {
            Err(SchedulerError::Conflict { id, message, .. }) if recovered => {
                debug!(name = %id, "container exists; adopting it");
                let found = guarded(s, "list", s.list(&labels)).await?;
                match found.into_iter().next() {
                    Some(c) => {
                        self.adopt(&c.id, c.state).await?;
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
        &self,
        id: &ContainerId,
        state: ContainerState,
    ) -> Result<(), SchedulerError> {
        if state == ContainerState::Created {
            let s = &*self.scheduler;
            guarded(s, "start_created", s.start_created(id)).await?;
            debug!(container = %id, "started a container left created");
        }
        Ok(())
    }

    /// Creates the run's network sandbox; in a resumed run, the existing one is adopted.
    pub(crate) async fn sandbox(
        &self,
        spec: SandboxSpec,
        recovered: bool,
    ) -> Result<ContainerId, SchedulerError> {
        let s = &*self.scheduler;
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
    pub(crate) async fn stop(&self, id: &ContainerId, grace: Duration) {
        let s = &*self.scheduler;
        if let Err(e) = guarded(s, "stop", s.stop(id, grace)).await {
            warn!(container = %id, error = %e, "cannot stop the container");
        }
    }

    /// Removes a container (with force). When the engine cannot be reached the removal is
    /// retried in the background, with backoff, until the engine answers again; the
    /// engine's [`pending_removals`](crate::Engine::pending_removals) counts these.
    pub(crate) async fn remove(&self, id: &ContainerId) {
        let s = &*self.scheduler;
        match guarded(s, "remove", s.remove(id, true)).await {
            Ok(()) | Err(SchedulerError::NoSuchContainer { .. }) => {}
            Err(e) => {
                warn!(container = %id, error = %e, "cannot remove the container; retrying in the background");
                self.retry_removal(id.clone());
            }
        }
    }

    /// Retries the removal of `id` in the background (see [`Containers::remove`]).
    pub(crate) fn retry_removal(&self, id: ContainerId) {
        let what = format!("container {id}");
        self.retry_in_background(what, move |s| {
            let id = id.clone();
            async move { guarded(&*s, "remove", s.remove(&id, true)).await }.boxed()
        });
    }

    /// Removes a run's volume; a removal that fails (a container still mounting it whose
    /// own removal is being retried, an engine that does not answer) is retried in the
    /// background, as a container's is. A volume already gone is not an error.
    pub(crate) async fn remove_volume(&self, name: &str) {
        let s = &*self.scheduler;
        match guarded(s, "remove_volume", s.remove_volume(name)).await {
            Ok(()) | Err(SchedulerError::NoSuchContainer { .. }) => {}
            Err(e) => {
                warn!(volume = name, error = %e, "cannot remove the volume; retrying in the background");
                let name = name.to_string();
                self.retry_in_background(format!("volume {name}"), move |s| {
                    let name = name.clone();
                    async move { guarded(&*s, "remove_volume", s.remove_volume(&name)).await }
                        .boxed()
                });
            }
        }
    }

    /// Retries a failed removal in the background, with growing waits, until it succeeds,
    /// the thing is gone, or [`REMOVAL_RETRY_FOR`] passed (the next recovery reaps it).
    fn retry_in_background(
        &self,
        what: String,
        remove: impl Fn(Arc<DynScheduler>) -> futures::future::BoxFuture<'static, Result<(), SchedulerError>>
            + Send
            + 'static,
    ) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let pending = self.pending_removals.clone();
        let scheduler = self.scheduler.clone();
        let backend = scheduler.name();
        crate::metrics::pending_removals(backend, pending.fetch_add(1, Ordering::SeqCst) + 1);
        rt.spawn(async move {
            let started = tokio::time::Instant::now();
            let mut wait = REMOVAL_RETRY_FIRST;
            loop {
                tokio::time::sleep(wait).await;
                match remove(scheduler.clone()).await {
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
            let left = pending.fetch_sub(1, Ordering::SeqCst).saturating_sub(1);
            crate::metrics::pending_removals(backend, left);
        });
    }
}
