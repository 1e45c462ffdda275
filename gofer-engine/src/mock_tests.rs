use std::sync::Arc;

use crate::{Engine, InMemoryLogSink, RecoveryError};
use gofer_core::fake::FakeScheduler;
use gofer_core::mock::{MockRunStore, MockScheduler};
use gofer_core::{
    Capabilities, Pipeline, RunOptions, SchedulerError, StatusReason, StoreError, Task,
};

#[tokio::test]
async fn a_failing_start_fails_the_task_and_nothing_else_is_asked() {
    let mut s = MockScheduler::new();
    s.expect_name().return_const("mock");
    s.expect_capabilities()
        .return_const(Capabilities::default());
    s.expect_start()
        .times(1)
        .returning(|_| Err(SchedulerError::engine("mock", "start", "engine on fire")));
    // No expectation for remove, stop or wait: the engine must not call them, since a
    // failed start owns no container (a call would panic the mock).
    let engine = Engine::builder(Arc::new(s))
        .log_sink(Arc::new(InMemoryLogSink::new()))
        .build()
        .expect("engine");
    let p = Pipeline::new("mocked", "M").task(Task::new("one", "img"));
    let run = engine
        .start_run(&p, RunOptions::new())
        .expect("start")
        .wait()
        .await
        .expect("run");
    let t = run.task("one").expect("task");
    assert_eq!(t.reason, Some(StatusReason::SchedulerError));
    assert!(
        t.message
            .as_deref()
            .unwrap_or_default()
            .contains("engine on fire"),
        "{t:?}"
    );
}

#[tokio::test]
async fn a_run_store_that_fails_during_recovery_is_a_typed_error() {
    let mut store = MockRunStore::new();
    store.expect_name().return_const("mock");
    store.expect_keeps_groups().return_const(false);
    store
        .expect_last_run_ids()
        .returning(|| Ok(vec![("pipe".into(), 3)]));
    store.expect_unfinished_runs().times(1).returning(|| {
        Err(StoreError::Backend {
            store: "mock",
            operation: "unfinished runs",
            source: "disk gone".into(),
        })
    });
    let engine = Engine::builder(Arc::new(FakeScheduler::new()))
        .log_sink(Arc::new(InMemoryLogSink::new()))
        .run_store(Arc::new(store))
        .build()
        .expect("engine");
    let err = engine.recover().await.expect_err("store failure");
    assert!(
        matches!(
            err,
            RecoveryError::Store(StoreError::Backend { store: "mock", .. })
        ),
        "{err}"
    );
}
