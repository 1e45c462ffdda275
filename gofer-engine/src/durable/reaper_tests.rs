use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use super::*;
use gofer_core::fake::FakeScheduler;
use gofer_core::naming::{engine_filter, sandbox_labels, task_labels};
use gofer_core::{
    Capabilities, ContainerSpec, ContainerState, ExitStatus, LogStream, SandboxSpec, Scheduler,
};

/// The fake, with removals recorded and some of them (or the listing) failing.
#[derive(Debug)]
struct Faulty {
    inner: FakeScheduler,
    fail_remove: Vec<String>,
    fail_list: bool,
    removed: Arc<Mutex<Vec<String>>>,
}

impl Faulty {
    fn new(inner: FakeScheduler) -> Self {
        Self {
            inner,
            fail_remove: Vec::new(),
            fail_list: false,
            removed: Arc::default(),
        }
    }
}

#[async_trait]
impl Scheduler for Faulty {
    fn name(&self) -> &'static str {
        "faulty"
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
        assert!(force, "the reaper removes with force");
        let listed = self.inner.list(&BTreeMap::new()).await?;
        let name = listed
            .iter()
            .find(|c| &c.id == id)
            .map(|c| c.name.clone())
            .unwrap_or_default();
        if self.fail_remove.contains(&name) {
            return Err(SchedulerError::engine("faulty", "remove", "engine said no"));
        }
        self.inner.remove(id, force).await?;
        self.removed.lock().expect("lock").push(name);
        Ok(())
    }
    async fn list(
        &self,
        labels: &BTreeMap<String, String>,
    ) -> Result<Vec<ContainerSummary>, SchedulerError> {
        if self.fail_list {
            return Err(SchedulerError::engine("faulty", "list", "engine down"));
        }
        self.inner.list(labels).await
    }
    async fn create_sandbox(&self, spec: SandboxSpec) -> Result<ContainerId, SchedulerError> {
        self.inner.create_sandbox(spec).await
    }
    async fn create_volume(&self, spec: gofer_core::VolumeSpec) -> Result<(), SchedulerError> {
        self.inner.create_volume(spec).await
    }
    async fn remove_volume(&self, name: &str) -> Result<(), SchedulerError> {
        if self.fail_remove.iter().any(|n| n == name) {
            return Err(SchedulerError::engine(
                "faulty",
                "remove_volume",
                "engine down",
            ));
        }
        self.inner.remove_volume(name).await
    }
    async fn list_volumes(
        &self,
        labels: &BTreeMap<String, String>,
    ) -> Result<Vec<gofer_core::VolumeSummary>, SchedulerError> {
        self.inner.list_volumes(labels).await
    }
}

#[tokio::test(start_paused = true)]
async fn labelled_volumes_go_after_the_containers_and_failures_are_typed() {
    use gofer_core::naming::{workspace_labels, workspace_volume_name};
    let fake = populated().await;
    for (engine, run) in [("mine", 1), ("mine", 2), ("theirs", 1)] {
        let spec = gofer_core::VolumeSpec::new(workspace_volume_name(engine, "p", run))
            .labels(workspace_labels(engine, "p", run));
        fake.create_volume(spec).await.expect("volume");
    }
    let mut s = Faulty::new(fake);
    s.fail_remove = vec![workspace_volume_name("mine", "p", 2)];
    let report = reap(&s, &engine_filter("mine")).await;
    assert_eq!(
        report.removed_volumes,
        [workspace_volume_name("mine", "p", 1)]
    );
    assert!(
        matches!(
            &report.failed[..],
            [ReapError::RemoveVolume { name, .. }] if *name == workspace_volume_name("mine", "p", 2)
        ),
        "{:?}",
        report.failed
    );
    assert_eq!(
        s.inner.volumes(),
        [
            workspace_volume_name("mine", "p", 2),
            workspace_volume_name("theirs", "p", 1)
        ]
    );
}

async fn populated() -> FakeScheduler {
    let fake = FakeScheduler::new()
        .local_image("img")
        .default_behaviour(gofer_core::fake::Behaviour::run_until_stopped());
    for (engine, n) in [("mine", 12u64), ("theirs", 2)] {
        for run in 0..n {
            let spec = ContainerSpec::new(format!("{engine}-task-{run}"), "img")
                .labels(task_labels(engine, "p", run, "t"));
            fake.start(spec).await.expect("start");
        }
        let holder = SandboxSpec::new(format!("{engine}-holder"), "img")
            .labels(sandbox_labels(engine, "p", 0));
        fake.create_sandbox(holder).await.expect("holder");
    }
    fake
}

#[tokio::test(start_paused = true)]
async fn removes_every_labelled_container_tasks_before_holders_and_nothing_else() {
    let s = Faulty::new(populated().await);
    let report = reap(&s, &engine_filter("mine")).await;
    assert!(report.is_complete(), "{:?}", report.failed);
    let mut names = report.removed_names();
    names.sort();
    let mut expected: Vec<String> = (0..12).map(|r| format!("mine-task-{r}")).collect();
    expected.push("mine-holder".into());
    expected.sort();
    assert_eq!(names, expected);
    let order = s.removed.lock().expect("lock").clone();
    assert_eq!(
        order.last().map(String::as_str),
        Some("mine-holder"),
        "{order:?}"
    );
    let left = s.inner.list(&engine_filter("theirs")).await.expect("list");
    assert_eq!(left.len(), 3, "another engine's containers are left alone");
    assert!(s
        .inner
        .list(&engine_filter("mine"))
        .await
        .expect("list")
        .is_empty());
    // Nothing left: a second reap removes nothing.
    assert!(reap(&s, &engine_filter("mine")).await.removed.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_failed_removal_is_reported_typed_and_the_rest_still_go() {
    let mut s = Faulty::new(populated().await);
    s.fail_remove = vec!["mine-task-3".into()];
    let report = reap(&s, &engine_filter("mine")).await;
    assert_eq!(report.removed.len(), 12);
    assert_eq!(report.failed.len(), 1);
    match &report.failed[0] {
        ReapError::Remove { name, source, .. } => {
            assert_eq!(name, "mine-task-3");
            assert!(source.is_retryable());
        }
        other => panic!("{other}"),
    }
    assert!(report.failed[0].to_string().contains("mine-task-3"));
    assert!(!report.is_complete());
    assert!(report.into_result().is_err());
}

#[tokio::test(start_paused = true)]
async fn a_failed_listing_and_an_empty_filter_are_typed_failures() {
    let mut s = Faulty::new(populated().await);
    s.fail_list = true;
    let report = reap(&s, &engine_filter("mine")).await;
    assert!(report.removed.is_empty());
    assert!(
        matches!(&report.failed[..], [ReapError::List { labels, .. }] if labels == "dev.gofer.engine=mine"),
        "{:?}",
        report.failed
    );
    s.fail_list = false;
    let report = reap(&s, &BTreeMap::new()).await;
    assert!(matches!(&report.failed[..], [ReapError::EmptyFilter]));
    assert!(
        s.removed.lock().expect("lock").is_empty(),
        "nothing removed"
    );
}

#[tokio::test(start_paused = true)]
async fn reap_listed_removes_exactly_the_containers_given() {
    let s = Faulty::new(populated().await);
    let mine = s.inner.list(&engine_filter("mine")).await.expect("list");
    let chosen: Vec<_> = mine
        .into_iter()
        .filter(|c| c.name == "mine-task-1" || c.name == "mine-holder")
        .collect();
    let report = reap_listed(&s, chosen).await;
    assert!(report.is_complete(), "{:?}", report.failed);
    assert_eq!(
        report.removed_names(),
        vec!["mine-task-1".to_string(), "mine-holder".to_string()],
        "the task before the holder"
    );
    assert_eq!(
        s.inner
            .list(&engine_filter("mine"))
            .await
            .expect("list")
            .len(),
        11
    );
    // Listed again after removal: gone, not a failure.
    let stale = ContainerSummary::new(
        ContainerId("no-such".into()),
        "stale",
        BTreeMap::new(),
        ContainerState::Created,
    );
    let report = reap_listed(&s, vec![stale]).await;
    assert!(report.is_complete() && report.removed.is_empty());
    assert_eq!(report.gone.len(), 1);
}
