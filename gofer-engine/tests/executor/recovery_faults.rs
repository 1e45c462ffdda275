//! Crash recovery on the FakeScheduler at the awkward moments: the host dies between
//! recording a task as starting and its container start, after the start reached the
//! engine, after recording an outcome but before removing the container; and a run
//! store that cannot record.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use gofer_core::fake::FakeScheduler;
use gofer_core::{
    Capabilities, ContainerId, ContainerSpec, ContainerState, ContainerSummary, ExitStatus,
    InMemoryRunStore, LogStream, Pipeline, RunOptions, RunStatus, RunStore, Scheduler,
    SchedulerError, StatusReason, TaskState, TaskStatus,
};
use gofer_engine::{Engine, InMemoryLogSink, RecoveryAction};

use crate::common::*;
use crate::recovery::{fake, host, log_text, pipeline, starts, until_task};

/// A scheduler that plays tricks around a real fake: its `start` can hang forever
/// before (or after) reaching the fake — the host dies there —, removing a slow
/// container can hang, and its `list` can
/// hide containers once (so a recovering engine meets its container only as a name
/// conflict).
#[derive(Debug)]
struct Tricky {
    fake: FakeScheduler,
    hang_before_start: AtomicBool,
    hang_after_start: AtomicBool,
    hang_remove: AtomicBool,
    hide_list: AtomicUsize,
    slow_ids: std::sync::Mutex<Vec<ContainerId>>,
}

impl Tricky {
    fn new(fake: &FakeScheduler) -> Self {
        Self {
            fake: fake.clone(),
            hang_before_start: AtomicBool::new(false),
            hang_after_start: AtomicBool::new(false),
            hang_remove: AtomicBool::new(false),
            hide_list: AtomicUsize::new(0),
            slow_ids: std::sync::Mutex::new(Vec::new()),
        }
    }
}

#[async_trait]
impl Scheduler for Tricky {
    fn name(&self) -> &'static str {
        "tricky"
    }
    fn capabilities(&self) -> Capabilities {
        self.fake.capabilities()
    }
    async fn start(&self, spec: ContainerSpec) -> Result<ContainerId, SchedulerError> {
        let slow = spec.image.starts_with("slow");
        if slow && self.hang_before_start.load(Ordering::SeqCst) {
            futures::future::pending::<()>().await;
        }
        let id = self.fake.start(spec).await?;
        if slow {
            self.slow_ids.lock().unwrap().push(id.clone());
        }
        if slow && self.hang_after_start.load(Ordering::SeqCst) {
            futures::future::pending::<()>().await;
        }
        Ok(id)
    }
    async fn wait(&self, id: &ContainerId) -> Result<ExitStatus, SchedulerError> {
        self.fake.wait(id).await
    }
    async fn state(&self, id: &ContainerId) -> Result<ContainerState, SchedulerError> {
        self.fake.state(id).await
    }
    async fn start_created(&self, id: &ContainerId) -> Result<(), SchedulerError> {
        self.fake.start_created(id).await
    }
    async fn logs(&self, id: &ContainerId) -> Result<LogStream, SchedulerError> {
        self.fake.logs(id).await
    }
    async fn stop(&self, id: &ContainerId, grace: Duration) -> Result<(), SchedulerError> {
        self.fake.stop(id, grace).await
    }
    async fn remove(&self, id: &ContainerId, force: bool) -> Result<(), SchedulerError> {
        if self.hang_remove.load(Ordering::SeqCst) && self.slow_ids.lock().unwrap().contains(id) {
            futures::future::pending::<()>().await;
        }
        self.fake.remove(id, force).await
    }
    async fn list(
        &self,
        labels: &BTreeMap<String, String>,
    ) -> Result<Vec<ContainerSummary>, SchedulerError> {
        if self
            .hide_list
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Ok(Vec::new());
        }
        self.fake.list(labels).await
    }
}

/// Waits until the store records the task as starting (container name, no id).
async fn until_recorded_starting(store: &InMemoryRunStore, task: &str) {
    loop {
        if let Ok(d) = store.get_task("crashy", 1, task).await {
            if d.execution.container.is_some() {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(start_paused = true)]
async fn crash_between_recorded_starting_and_container_start_starts_it_once() {
    let fake = fake();
    let store = InMemoryRunStore::new();
    let sink = InMemoryLogSink::new();
    let tricky = Tricky::new(&fake);
    tricky.hang_before_start.store(true, Ordering::SeqCst);
    let (a, _) = host(Arc::new(tricky), &store, &sink).await;
    let _h = a
        .engine
        .start_run(&pipeline("slow"), RunOptions::new())
        .unwrap();
    until_recorded_starting(&store, "first").await;
    a.engine.simulate_crash().await;
    let stored = store
        .get_task("crashy", 1, "first")
        .await
        .unwrap()
        .execution;
    assert_eq!(
        stored.container.as_ref().map(|c| c.id.is_none()),
        Some(true)
    );
    assert_eq!(
        starts(&fake, &cname("crashy", 1, "first")),
        0,
        "never reached the engine"
    );

    let (_b, report) = host(Arc::new(fake.clone()), &store, &sink).await;
    assert_eq!(
        report.action("crashy", 1, "first"),
        Some(RecoveryAction::Restarted)
    );
    let run = finish(&report.runs[0]).await;
    assert_eq!(run.status, RunStatus::Successful, "{run:?}");
    assert_eq!(starts(&fake, &cname("crashy", 1, "first")), 1);
    assert_eq!(log_text(&sink, 1, "first"), vec!["before", "after"]);
    assert_eq!(fake.containers(), 0);
}

#[tokio::test(start_paused = true)]
async fn container_met_as_a_name_conflict_is_adopted_not_duplicated() {
    let fake = fake();
    let store = InMemoryRunStore::new();
    let sink = InMemoryLogSink::new();
    let tricky = Tricky::new(&fake);
    // The start reaches the engine, the host dies before it learns the id.
    tricky.hang_after_start.store(true, Ordering::SeqCst);
    let (a, _) = host(Arc::new(tricky), &store, &sink).await;
    let _h = a
        .engine
        .start_run(&pipeline("slow"), RunOptions::new())
        .unwrap();
    until_recorded_starting(&store, "first").await;
    while fake.running() == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    a.engine.simulate_crash().await;

    // The recovering engine does not see the container when it looks (hidden once),
    // so it starts the task, meets the name conflict and adopts the container.
    let tricky = Tricky::new(&fake);
    tricky.hide_list.store(1, Ordering::SeqCst);
    let (_b, report) = host(Arc::new(tricky), &store, &sink).await;
    assert_eq!(
        report.action("crashy", 1, "first"),
        Some(RecoveryAction::Restarted)
    );
    let run = finish(&report.runs[0]).await;
    assert_eq!(run.status, RunStatus::Successful, "{run:?}");
    assert_eq!(log_text(&sink, 1, "first"), vec!["before", "after"]);
    assert_eq!(fake.containers(), 0);
    assert_eq!(fake.running(), 0);
}

#[tokio::test(start_paused = true)]
async fn container_of_a_task_recorded_complete_is_reaped_not_rerun() {
    let fake = fake();
    let store = InMemoryRunStore::new();
    let sink = InMemoryLogSink::new();
    let tricky = Tricky::new(&fake);
    // The host dies after recording the outcome, before removing the container.
    tricky.hang_remove.store(true, Ordering::SeqCst);
    let (a, _) = host(Arc::new(tricky), &store, &sink).await;
    let h = a
        .engine
        .start_run(&pipeline("slow"), RunOptions::new())
        .unwrap();
    until_task(&h, "first", TaskState::Complete).await;
    a.engine.simulate_crash().await;
    assert_eq!(
        store
            .get_task("crashy", 1, "first")
            .await
            .unwrap()
            .execution
            .status,
        TaskStatus::Successful
    );

    let (_b, report) = host(Arc::new(fake.clone()), &store, &sink).await;
    assert_eq!(report.action("crashy", 1, "first"), None);
    assert!(
        report.reaped.contains(&cname("crashy", 1, "first")),
        "{report:?}"
    );
    let run = finish(&report.runs[0]).await;
    assert_eq!(run.status, RunStatus::Successful, "{run:?}");
    assert_eq!(starts(&fake, &cname("crashy", 1, "first")), 1);
    assert_eq!(starts(&fake, &cname("crashy", 1, "second")), 1);
    assert_eq!(fake.containers(), 0);
}

/// A run store whose writes fail once `broken` is set.
#[derive(Debug, Default)]
struct Flaky {
    inner: InMemoryRunStore,
    broken: AtomicBool,
}

#[async_trait]
impl RunStore for Flaky {
    fn name(&self) -> &'static str {
        "flaky"
    }
    async fn apply(&self, changes: &[gofer_core::RunChange]) -> Result<(), gofer_core::StoreError> {
        if self.broken.load(Ordering::SeqCst) {
            return Err(gofer_core::StoreError::Limit {
                store: "flaky",
                message: "disk full".into(),
            });
        }
        self.inner.apply(changes).await
    }
    async fn put_pipeline(&self, p: &Pipeline) -> Result<(), gofer_core::StoreError> {
        self.inner.put_pipeline(p).await
    }
    async fn get_pipeline(&self, id: &str) -> Result<Pipeline, gofer_core::StoreError> {
        self.inner.get_pipeline(id).await
    }
    async fn list_pipelines(&self) -> Result<Vec<String>, gofer_core::StoreError> {
        self.inner.list_pipelines().await
    }
    async fn get_run(&self, p: &str, r: u64) -> Result<gofer_core::Run, gofer_core::StoreError> {
        self.inner.get_run(p, r).await
    }
    async fn list_runs(&self, p: &str) -> Result<Vec<gofer_core::Run>, gofer_core::StoreError> {
        self.inner.list_runs(p).await
    }
    async fn get_task(
        &self,
        p: &str,
        r: u64,
        t: &str,
    ) -> Result<gofer_core::TaskDetails, gofer_core::StoreError> {
        self.inner.get_task(p, r, t).await
    }
    async fn events(
        &self,
        p: &str,
        r: u64,
    ) -> Result<Vec<gofer_core::Event>, gofer_core::StoreError> {
        self.inner.events(p, r).await
    }
    async fn unfinished_runs(
        &self,
    ) -> Result<Vec<gofer_core::UnfinishedRun>, gofer_core::StoreError> {
        self.inner.unfinished_runs().await
    }
    async fn next_run_id(&self, p: &str) -> Result<u64, gofer_core::StoreError> {
        self.inner.next_run_id(p).await
    }
    async fn last_run_ids(&self) -> Result<Vec<(String, u64)>, gofer_core::StoreError> {
        self.inner.last_run_ids().await
    }
}

#[tokio::test(start_paused = true)]
async fn no_container_starts_when_the_store_cannot_record_it() {
    let fake = fake();
    let store = Arc::new(Flaky::default());
    let engine = Engine::builder(Arc::new(fake.clone()))
        .instance_id("test")
        .log_sink(Arc::new(InMemoryLogSink::new()))
        .run_store(store.clone())
        .build()
        .unwrap();
    engine.recover().await.unwrap();
    store.broken.store(true, Ordering::SeqCst);
    let run = finish(
        &engine
            .start_run(&pipeline("ok"), RunOptions::new())
            .unwrap(),
    )
    .await;
    let quick = task(&run, "quick");
    assert_eq!(quick.status, TaskStatus::Failed);
    assert_eq!(quick.reason, Some(StatusReason::SchedulerError));
    let message = quick.message.clone().unwrap();
    assert!(
        message.contains("run store") && message.contains("disk full"),
        "{message}"
    );
    assert!(fake.requests().is_empty(), "nothing started unrecorded");
    assert_eq!(run.status, RunStatus::Failed);
}
