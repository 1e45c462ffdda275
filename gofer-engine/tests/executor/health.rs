//! `Engine::health`: the backend reachable, the run store writable, pending removals,
//! and the task queued the longest, named with how long it has waited.

use std::sync::Arc;
use std::time::Duration;

use gofer_core::fake::{Behaviour, FakeScheduler};
use gofer_core::{Concurrency, InMemoryRunStore, Pipeline, RunOptions, Task, TaskState};
use gofer_engine::Engine;

#[tokio::test(start_paused = true)]
async fn a_healthy_engine_names_the_task_queued_the_longest() {
    let fake = FakeScheduler::new().image("forever", Behaviour::run_until_stopped());
    let engine = Engine::builder(Arc::new(fake.clone()))
        .instance_id("test")
        .log_sink(Arc::new(gofer_engine::InMemoryLogSink::new()))
        .run_store(Arc::new(InMemoryRunStore::new()))
        .build()
        .unwrap();
    engine.recover().await.unwrap();
    let h = engine.health().await;
    assert!(h.ok(), "{h:?}");
    assert_eq!(h.backend.0, "fake");
    assert!(matches!(&h.run_store, Some(Ok(_))), "{h:?}");
    assert_eq!((h.pending_removals, h.live_runs), (0, 0));
    assert!(h.oldest_queued.is_none());
    // One member holds the group; the second waits behind it.
    let p = Pipeline::new("deployer", "Deploy")
        .task(Task::new("deploy", "forever").concurrency(Concurrency::new("prod")));
    let first = engine.start_run(&p, RunOptions::new()).unwrap();
    first.wait_task("deploy", TaskState::Running).await.unwrap();
    let second = engine.start_run(&p, RunOptions::new()).unwrap();
    second
        .wait_task("deploy", TaskState::Waiting)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(30)).await;
    let h = engine.health().await;
    let q = h.oldest_queued.clone().expect("a queued task");
    assert_eq!(
        (q.pipeline.as_str(), q.run, q.task.as_str()),
        ("deployer", 2, "deploy")
    );
    assert!(q.waited >= Duration::from_secs(30), "{q:?}");
    assert_eq!(h.live_runs, 2);
    for r in [&first, &second] {
        r.cancel(Duration::from_secs(1));
    }
    first.wait().await.unwrap();
    second.wait().await.unwrap();
    assert!(engine.health().await.oldest_queued.is_none());
}

#[tokio::test]
async fn an_unreachable_backend_fails_the_check_naming_why() {
    let mut s = gofer_core::mock::MockScheduler::new();
    s.expect_name().return_const("mock");
    s.expect_capabilities()
        .return_const(gofer_core::Capabilities::default());
    s.expect_list().returning(|_| {
        Err(gofer_core::SchedulerError::Connection {
            scheduler: "mock",
            endpoint: "unix:///nowhere.sock".into(),
            source: "connection refused".into(),
        })
    });
    let engine = Engine::builder(Arc::new(s))
        .log_sink(Arc::new(gofer_engine::InMemoryLogSink::new()))
        .build()
        .unwrap();
    let h = engine.health().await;
    assert!(!h.ok());
    let why = h.backend.1.clone().unwrap_err();
    assert!(why.contains("nowhere.sock"), "{why}");
    assert!(h.run_store.is_none(), "no run store, nothing to check");
}
