//! The scheduler conformance suite against the real Podman service.
//!
//! Outside CI an unreachable service skips every case (saying why); with `CI=true` it
//! fails them. The cases run one at a time: some of them check how long a stop takes,
//! and on a small machine the twenty containers of a neighbouring case would be
//! measured with it.
#![allow(clippy::unwrap_used)]

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
use gofer_scheduler_podman::PodmanScheduler;
use tokio::sync::{Mutex, OwnedMutexGuard};

static ONE_AT_A_TIME: LazyLock<Arc<Mutex<()>>> = LazyLock::new(|| Arc::new(Mutex::new(())));

/// The Podman scheduler, holding the suite's turn for as long as a case uses it.
#[derive(Debug)]
struct Exclusive {
    inner: PodmanScheduler,
    _turn: OwnedMutexGuard<()>,
}

async fn setup() -> Option<(Exclusive, Workloads)> {
    let turn = ONE_AT_A_TIME.clone().lock_owned().await;
    let inner = common::podman().await?;
    let mut workloads = Workloads::busybox(common::IMAGE);
    if cgroup_v1(&inner).await {
        // Podman 4.3.1 on cgroup v1 never sets State.OOMKilled: conmon does not see the
        // kernel's OOM kill there, so the container reads as killed (137), not OOM.
        println!("out-of-memory case skipped: Podman does not report OOM kills on cgroup v1");
        workloads.oom = None;
    }
    Some((Exclusive { inner, _turn: turn }, workloads))
}

/// Whether the service runs on cgroup v1 (from `podman info`).
async fn cgroup_v1(s: &PodmanScheduler) -> bool {
    let podman = podman_api::Podman::unix(&s.config().socket);
    match podman.info().await {
        Ok(info) => info.host.and_then(|h| h.cgroup_version).as_deref() == Some("v1"),
        Err(_) => false,
    }
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
