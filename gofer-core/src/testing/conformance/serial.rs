//! Running the cases one at a time.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{Mutex, OwnedMutexGuard};

use crate::error::SchedulerError;
use crate::scheduler::{
    Capabilities, ContainerId, ContainerSpec, ContainerState, ContainerSummary, DynScheduler,
    ExitStatus, LogStream, SandboxSpec, Scheduler,
};

static TURN: std::sync::LazyLock<Arc<Mutex<()>>> =
    std::sync::LazyLock::new(|| Arc::new(Mutex::new(())));

/// Waits for this process's turn to run a conformance case; the turn lasts as long as
/// the guard lives. Works across test runtimes (each `#[tokio::test]` has its own).
pub async fn one_at_a_time() -> OwnedMutexGuard<()> {
    Arc::clone(&TURN).lock_owned().await
}

/// A scheduler that holds a turn from [`one_at_a_time`] for as long as it lives and
/// forwards every call to the scheduler inside.
#[derive(Debug)]
pub struct Exclusive {
    inner: Box<DynScheduler>,
    _turn: OwnedMutexGuard<()>,
}

impl Exclusive {
    /// Wraps `inner`, holding `turn`.
    pub fn new(inner: Box<DynScheduler>, turn: OwnedMutexGuard<()>) -> Self {
        Self { inner, _turn: turn }
    }
}

#[async_trait]
impl Scheduler for Exclusive {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    async fn start(&self, spec: ContainerSpec) -> Result<ContainerId, SchedulerError> {
        self.inner.start(spec).await
    }
    async fn wait(&self, id: &ContainerId) -> Result<ExitStatus, SchedulerError> {
        self.inner.wait(id).await
    }
    async fn state(&self, id: &ContainerId) -> Result<ContainerState, SchedulerError> {
        self.inner.state(id).await
    }
    async fn start_created(&self, id: &ContainerId) -> Result<(), SchedulerError> {
        self.inner.start_created(id).await
    }
    async fn logs(&self, id: &ContainerId) -> Result<LogStream, SchedulerError> {
        self.inner.logs(id).await
    }
    async fn stop(&self, id: &ContainerId, grace: Duration) -> Result<(), SchedulerError> {
        self.inner.stop(id, grace).await
    }
    async fn remove(&self, id: &ContainerId, force: bool) -> Result<(), SchedulerError> {
        self.inner.remove(id, force).await
    }
    async fn list(
        &self,
        labels: &BTreeMap<String, String>,
    ) -> Result<Vec<ContainerSummary>, SchedulerError> {
        self.inner.list(labels).await
    }
    async fn create_sandbox(&self, spec: SandboxSpec) -> Result<ContainerId, SchedulerError> {
        self.inner.create_sandbox(spec).await
    }
    async fn create_volume(&self, spec: crate::VolumeSpec) -> Result<(), SchedulerError> {
        self.inner.create_volume(spec).await
    }
    async fn remove_volume(&self, name: &str) -> Result<(), SchedulerError> {
        self.inner.remove_volume(name).await
    }
    async fn list_volumes(
        &self,
        labels: &BTreeMap<String, String>,
    ) -> Result<Vec<crate::VolumeSummary>, SchedulerError> {
        self.inner.list_volumes(labels).await
    }
}
