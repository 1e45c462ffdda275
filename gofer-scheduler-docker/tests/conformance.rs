//! The scheduler conformance suite against the real Docker engine.
//!
//! Outside CI an unreachable engine skips every case (saying why); with `CI=true` it
//! fails them. The cases run one at a time: a few of them check how long a stop takes,
//! and on a small machine twenty containers of a neighbouring case would be measured
//! with it.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use async_trait::async_trait;
use gofer_core::testing::conformance::Workloads;
use gofer_core::{
    Capabilities, ContainerId, ContainerSpec, ContainerState, ContainerSummary, ExitStatus,
    LogStream, SandboxSpec, Scheduler, SchedulerError,
};
use gofer_scheduler_docker::DockerScheduler;
use tokio::sync::{Mutex, OwnedMutexGuard};

static ONE_AT_A_TIME: LazyLock<Arc<Mutex<()>>> = LazyLock::new(|| Arc::new(Mutex::new(())));

/// The Docker scheduler, holding the suite's lock for as long as a case uses it.
#[derive(Debug)]
struct Exclusive {
    inner: DockerScheduler,
    _turn: OwnedMutexGuard<()>,
}

async fn setup() -> Option<(Exclusive, Workloads)> {
    let turn = ONE_AT_A_TIME.clone().lock_owned().await;
    let inner = common::scheduler().await?;
    Some((
        Exclusive { inner, _turn: turn },
        Workloads::busybox(common::IMAGE),
    ))
}

gofer_core::conformance_tests!(setup());

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
}
