//! Scale: many runs at once, a large graph, no deadlock.

use std::time::Duration;

use gofer_core::fake::{Behaviour, FakeScheduler};
use gofer_core::RequiredParentStatus::{Any, Success};
use gofer_core::{Pipeline, RunOptions, RunStatus, Task, TaskStatus};
use gofer_engine::Limits;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_runs_finish() {
    let fake = FakeScheduler::new().image("ok", Behaviour::new().stdout("hi\n"));
    let e = builder(&fake)
        .0
        .limits(Limits::default().max_running_containers(64))
        .build()
        .unwrap();
    let p = Pipeline::new("many", "many").parallelism(500).tasks([
        Task::new("first", "ok"),
        Task::new("second", "ok").depends_on("first", Success),
        Task::new("third", "ok").depends_on("first", Any),
    ]);
    let handles: Vec<_> = (0..1000)
        .map(|_| e.start_run(&p, RunOptions::new()).unwrap())
        .collect();
    for h in &handles {
        let run = h.wait().await.unwrap();
        assert_eq!(run.status, RunStatus::Successful);
    }
    assert_eq!(fake.requests().len(), 3000);
    assert_eq!(fake.containers(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ten_thousand_task_graph_finishes() {
    let fake = FakeScheduler::new().image("ok", Behaviour::new());
    let e = engine(&fake);
    // A binary tree: task i depends on task (i - 1) / 2.
    let tasks = (0..10_000usize).map(|i| {
        let t = Task::new(format!("t{i:05}"), "ok");
        if i == 0 {
            t
        } else {
            t.depends_on(format!("t{:05}", (i - 1) / 2), Success)
        }
    });
    let p = Pipeline::new("big", "big").tasks(tasks);
    let run = e
        .start_run(&p, RunOptions::new())
        .unwrap()
        .wait()
        .await
        .unwrap();
    assert_eq!(run.status, RunStatus::Successful);
    assert_eq!(run.tasks.len(), 10_000);
    assert!(run.tasks.iter().all(|t| t.status == TaskStatus::Successful));
    assert_eq!(fake.containers(), 0);
}

#[tokio::test(start_paused = true)]
async fn cancelled_big_run_leaves_zero_containers() {
    let fake = FakeScheduler::new().image("forever", Behaviour::run_until_stopped());
    let e = engine(&fake);
    let p = Pipeline::new("bigc", "bigc")
        .tasks((0..200).map(|i| Task::new(format!("t{i:03}"), "forever")));
    let h = e.start_run(&p, RunOptions::new()).unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(fake.running() > 0);
    h.cancel(Duration::from_secs(3));
    let run = h.wait().await.unwrap();
    assert_eq!(run.status, RunStatus::Cancelled);
    assert_eq!(fake.containers(), 0);
}
