//! Retention on the fake: old complete runs go with their logs and run objects, a run
//! in progress stays, numbers are never reused, and a prune stopped at any point (a
//! kill sweep over every await of the store calls) leaves no run whose logs are gone,
//! and the next prune finishes what it left.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use gofer_core::fake::{Behaviour, FakeScheduler};
use gofer_core::{
    bytes::Bytes, InMemoryObjectStore, InMemoryRunStore, ObjectStore, Pipeline, RunOptions,
    RunStore, StoreError, Task, TaskState,
};
use gofer_engine::{Engine, InMemoryLogSink, LogKey, LogSink, RetentionError, RetentionPolicy};

/// An object store whose every call takes a millisecond (an await point the kill sweep
/// can stop at) and that fails deletes while `broken`.
#[derive(Debug, Default, Clone)]
struct Slow {
    inner: InMemoryObjectStore,
    broken: Arc<AtomicBool>,
}

impl Slow {
    async fn tick(&self) {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[async_trait]
impl ObjectStore for Slow {
    async fn get_pipeline_object(&self, p: &str, k: &str) -> Result<Bytes, StoreError> {
        self.inner.get_pipeline_object(p, k).await
    }
    async fn put_pipeline_object(
        &self,
        p: &str,
        k: &str,
        v: Bytes,
        f: bool,
    ) -> Result<(), StoreError> {
        self.inner.put_pipeline_object(p, k, v, f).await
    }
    async fn list_pipeline_objects(&self, p: &str) -> Result<Vec<String>, StoreError> {
        self.inner.list_pipeline_objects(p).await
    }
    async fn delete_pipeline_object(&self, p: &str, k: &str) -> Result<(), StoreError> {
        self.inner.delete_pipeline_object(p, k).await
    }
    async fn get_run_object(&self, p: &str, r: u64, k: &str) -> Result<Bytes, StoreError> {
        self.inner.get_run_object(p, r, k).await
    }
    async fn put_run_object(
        &self,
        p: &str,
        r: u64,
        k: &str,
        v: Bytes,
        f: bool,
    ) -> Result<(), StoreError> {
        self.inner.put_run_object(p, r, k, v, f).await
    }
    async fn list_run_objects(&self, p: &str, r: u64) -> Result<Vec<String>, StoreError> {
        self.tick().await;
        self.inner.list_run_objects(p, r).await
    }
    async fn delete_run_object(&self, p: &str, r: u64, k: &str) -> Result<(), StoreError> {
        self.tick().await;
        if self.broken.load(Ordering::SeqCst) {
            return Err(StoreError::Backend {
                store: "slow",
                operation: "delete run object",
                source: "disk full".into(),
            });
        }
        self.inner.delete_run_object(p, r, k).await
    }
}

struct Setup {
    engine: Engine,
    store: InMemoryRunStore,
    sink: InMemoryLogSink,
    objects: Slow,
}

const PIPELINE: &str = "history";

/// Six complete runs of a one-task pipeline, each with two run objects, and (when
/// `running`) a seventh still running.
async fn setup(running: bool) -> Setup {
    let fake = FakeScheduler::new()
        .image("ok", Behaviour::new().stdout("a line\n"))
        .image("forever", Behaviour::run_until_stopped());
    let store = InMemoryRunStore::new();
    let sink = InMemoryLogSink::new();
    let objects = Slow::default();
    let engine = Engine::builder(Arc::new(fake))
        .instance_id("test")
        .log_sink(Arc::new(sink.clone()))
        .run_store(Arc::new(store.clone()))
        .object_store(Arc::new(objects.clone()))
        .build()
        .unwrap();
    engine.recover().await.unwrap();
    let p = Pipeline::new(PIPELINE, "History").task(Task::new("step", "ok"));
    for run in 1..=6u64 {
        engine
            .start_run(&p, RunOptions::new())
            .unwrap()
            .wait()
            .await
            .unwrap();
        for k in ["a", "b"] {
            objects
                .put_run_object(PIPELINE, run, k, Bytes::from_static(b"x"), false)
                .await
                .unwrap();
        }
    }
    if running {
        let p = Pipeline::new(PIPELINE, "History").task(Task::new("step", "forever"));
        let h = engine.start_run(&p, RunOptions::new()).unwrap();
        h.wait_task("step", TaskState::Running).await.unwrap();
        std::mem::forget(h);
    }
    Setup {
        engine,
        store,
        sink,
        objects,
    }
}

impl Setup {
    fn has_log(&self, run: u64) -> bool {
        self.sink
            .read(&LogKey::new(PIPELINE, run, "step"), 0, 10)
            .is_ok()
    }

    async fn objects_of(&self, run: u64) -> usize {
        self.objects
            .inner
            .list_run_objects(PIPELINE, run)
            .await
            .unwrap_or_default()
            .len()
    }

    async fn listed(&self) -> Vec<u64> {
        self.store
            .list_runs(PIPELINE)
            .await
            .unwrap()
            .iter()
            .map(|r| r.run_id)
            .collect()
    }

    /// No reader trips: every run listed has its log and its objects.
    async fn consistent(&self) {
        for run in self.listed().await {
            assert!(self.has_log(run), "run {run} is listed without its log");
            if run <= 6 {
                // (The running seventh has none.)
                assert_eq!(
                    self.objects_of(run).await,
                    2,
                    "run {run} is listed without its objects"
                );
            }
        }
    }
}

#[tokio::test(start_paused = true)]
async fn old_complete_runs_go_with_their_logs_and_objects() {
    let s = setup(true).await;
    let policy = RetentionPolicy::new().keep_last(2);
    // Newest first: 7 (running), 6; then the complete 5..1 go.
    let plan: Vec<u64> = s
        .engine
        .prune_plan(&policy)
        .await
        .unwrap()
        .iter()
        .map(|r| r.run)
        .collect();
    assert_eq!(plan, [1, 2, 3, 4, 5]);
    assert_eq!(
        s.listed().await,
        [7, 6, 5, 4, 3, 2, 1],
        "a plan removes nothing"
    );
    let report = s.engine.prune(&policy).await.unwrap();
    let removed: Vec<u64> = report.removed.iter().map(|r| r.run).collect();
    assert_eq!(removed, [1, 2, 3, 4, 5]);
    assert_eq!(report.objects, 10);
    assert!(report.log_bytes >= 5 * "a line".len() as u64, "{report:?}");
    assert!(report.left.is_empty(), "{report:?}");
    assert_eq!(s.listed().await, [7, 6]);
    for run in 1..=5 {
        assert!(!s.has_log(run), "run {run}'s log is left");
        assert_eq!(s.objects_of(run).await, 0, "run {run}'s objects are left");
    }
    s.consistent().await;
    assert!(s.store.cleanups().await.unwrap().is_empty());
    // Nothing more to do; numbers are not reused.
    assert!(s.engine.prune(&policy).await.unwrap().removed.is_empty());
    assert_eq!(s.store.next_run_id(PIPELINE).await.unwrap(), 8);
    // The running one is never removed, even by a policy that keeps none by number.
    let report = s
        .engine
        .prune(&RetentionPolicy::new().keep_last(0))
        .await
        .unwrap();
    assert_eq!(
        report.removed.iter().map(|r| r.run).collect::<Vec<_>>(),
        [6]
    );
    assert_eq!(s.listed().await, [7]);
}

#[tokio::test(start_paused = true)]
async fn an_age_limit_removes_runs_that_ended_long_ago() {
    let s = setup(false).await;
    // Every run ended a moment ago: a day's limit keeps them; a limit shorter than
    // their age removes them.
    assert!(s
        .engine
        .prune(&RetentionPolicy::new().max_age(Duration::from_secs(86_400)))
        .await
        .unwrap()
        .removed
        .is_empty());
    std::thread::sleep(Duration::from_millis(20));
    let report = s
        .engine
        .prune(&RetentionPolicy::new().max_age(Duration::from_millis(5)))
        .await
        .unwrap();
    assert_eq!(report.removed.len(), 6, "{report:?}");
    assert!(s.listed().await.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_failing_object_store_leaves_a_cleanup_the_next_prune_finishes() {
    let s = setup(false).await;
    s.objects.broken.store(true, Ordering::SeqCst);
    let policy = RetentionPolicy::new().keep_last(4);
    let report = s.engine.prune(&policy).await.unwrap();
    assert_eq!(report.removed.len(), 2);
    assert_eq!(report.left.len(), 4, "{report:?}");
    assert!(report.left[0].contains("disk full"), "{report:?}");
    // The runs left every reader at once; their objects wait.
    assert_eq!(s.listed().await, [6, 5, 4, 3]);
    assert_eq!(s.store.cleanups().await.unwrap().len(), 2);
    s.objects.broken.store(false, Ordering::SeqCst);
    let report = s.engine.prune(&policy).await.unwrap();
    assert_eq!(
        report.finished,
        [(PIPELINE.to_string(), 1), (PIPELINE.to_string(), 2)]
    );
    assert!(report.removed.is_empty());
    assert_eq!(s.objects_of(1).await + s.objects_of(2).await, 0);
    assert!(s.store.cleanups().await.unwrap().is_empty());
}

/// A prune stopped after 0, 1, 2, ... ms (each object store call takes one): at every
/// point, each listed run has its log and objects; a full prune afterwards leaves
/// exactly the kept runs and nothing of the others.
#[tokio::test(start_paused = true)]
async fn a_prune_stopped_anywhere_leaves_nothing_a_reader_trips_over() {
    let policy = RetentionPolicy::new().keep_last(2);
    let mut stopped_midway = 0;
    for budget in 0..16u64 {
        let s = setup(false).await;
        let engine = s.engine.clone();
        let prune = tokio::spawn(async move { engine.prune(&policy).await });
        tokio::time::sleep(Duration::from_millis(budget)).await;
        prune.abort();
        let finished = matches!(prune.await, Ok(Ok(_)));
        s.consistent().await;
        if !finished {
            stopped_midway += 1;
        }
        let report = s.engine.prune(&policy).await.unwrap();
        assert!(report.left.is_empty(), "{report:?}");
        assert_eq!(s.listed().await, [6, 5], "after budget {budget}");
        for run in 1..=4 {
            assert!(
                !s.has_log(run) && s.objects_of(run).await == 0,
                "run {run} after budget {budget}"
            );
        }
        assert!(s.store.cleanups().await.unwrap().is_empty());
    }
    assert!(
        stopped_midway >= 8,
        "the sweep stopped only {stopped_midway} prunes midway"
    );
}

#[tokio::test]
async fn an_engine_without_a_store_or_a_policy_says_so() {
    let engine = Engine::builder(Arc::new(FakeScheduler::new()))
        .log_sink(Arc::new(InMemoryLogSink::new()))
        .build()
        .unwrap();
    let policy = RetentionPolicy::new().keep_last(1);
    assert!(matches!(
        engine.prune(&policy).await,
        Err(RetentionError::NoRunStore)
    ));
    assert!(matches!(
        engine.prune(&RetentionPolicy::new()).await,
        Err(RetentionError::EmptyPolicy)
    ));
}
