//! Concurrency groups: members past the limit queue in arrival order (saying what they
//! wait for), or the newest cancels the one in progress; groups resolve from variables.

use std::time::Duration;

use gofer_core::fake::{Behaviour, FakeScheduler};
use gofer_core::{
    Concurrency, ConcurrencyPolicy, Pipeline, RunOptions, StatusReason, Task, TaskState, TaskStatus,
};

use crate::common::*;

fn fake() -> FakeScheduler {
    FakeScheduler::new()
        .image("deploy", Behaviour::new().sleep(Duration::from_secs(10)))
        .image("forever", Behaviour::run_until_stopped())
}

fn deploy(image: &str, c: Concurrency) -> Pipeline {
    Pipeline::new("deployer", "Deploy").task(Task::new("deploy", image).concurrency(c))
}

fn env(v: &str) -> RunOptions {
    RunOptions::new().variable("ENV", v)
}

#[tokio::test(start_paused = true)]
async fn members_past_the_limit_queue_in_order_and_say_what_they_wait_for() {
    let fake = fake();
    let e = engine(&fake);
    let p = deploy("deploy", Concurrency::new("deploy-{{ENV}}"));
    let first = e.start_run(&p, env("prod")).unwrap();
    first.wait_task("deploy", TaskState::Running).await.unwrap();
    let second = e.start_run(&p, env("prod")).unwrap();
    let third = e.start_run(&p, env("prod")).unwrap();
    let other = e.start_run(&p, env("staging")).unwrap();
    // Another group's member runs at once.
    other.wait_task("deploy", TaskState::Running).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let waiting = second.snapshot().tasks[0].clone();
    assert_eq!(waiting.state, TaskState::Waiting);
    assert_eq!(
        waiting.message.as_deref(),
        Some("waiting for concurrency group \"deploy-prod\"")
    );
    let (a, b, c) = (
        finish(&first).await,
        finish(&second).await,
        finish(&third).await,
    );
    let (a, b, c) = (&a.tasks[0], &b.tasks[0], &c.tasks[0]);
    for t in [a, b, c] {
        assert_eq!(t.status, TaskStatus::Successful, "{t:?}");
        assert_eq!(t.message, None, "{t:?}");
    }
    // One at a time, in the order they arrived.
    assert!(b.started.unwrap() >= a.ended.unwrap());
    assert!(c.started.unwrap() >= b.ended.unwrap());
    let o = finish(&other).await;
    assert!(o.tasks[0].ended.unwrap() < b.started.unwrap() + Duration::from_secs(10));
    assert_eq!(fake.containers(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_limit_of_two_lets_two_run() {
    let fake = fake();
    let e = engine(&fake);
    let p = deploy("deploy", Concurrency::new("pool").limit(2));
    let runs: Vec<_> = (0..3)
        .map(|_| e.start_run(&p, RunOptions::new()).unwrap())
        .collect();
    let mut done = Vec::new();
    for r in &runs {
        done.push(finish(r).await.tasks[0].clone());
    }
    let starts: Vec<_> = done.iter().map(|t| t.started.unwrap()).collect();
    let first_end = done.iter().map(|t| t.ended.unwrap()).min().unwrap();
    let early = starts.iter().filter(|s| **s < first_end).count();
    assert_eq!(early, 2, "{done:?}");
}

#[tokio::test(start_paused = true)]
async fn cancel_in_progress_replaces_the_running_member() {
    let fake = fake();
    let e = engine(&fake);
    let p = deploy(
        "forever",
        Concurrency::new("deploy-{{ENV}}").policy(ConcurrencyPolicy::CancelInProgress),
    );
    let old = e.start_run(&p, env("prod")).unwrap();
    old.wait_task("deploy", TaskState::Running).await.unwrap();
    let new = e.start_run(&p, env("prod")).unwrap();
    let old_run = finish(&old).await;
    let t = &old_run.tasks[0];
    assert_eq!(t.status, TaskStatus::Cancelled, "{t:?}");
    assert_eq!(t.reason, Some(StatusReason::Cancelled));
    assert!(
        t.message.as_deref().unwrap().contains("cancel_in_progress"),
        "{t:?}"
    );
    new.wait_task("deploy", TaskState::Running).await.unwrap();
    new.cancel(Duration::from_secs(1));
    finish(&new).await;
    assert_eq!(fake.containers(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_group_naming_an_unset_variable_fails_the_task_naming_it() {
    let fake = fake();
    let p = deploy("deploy", Concurrency::new("deploy-{{REGION}}"));
    let run = finish(&engine(&fake).start_run(&p, RunOptions::new()).unwrap()).await;
    let t = &run.tasks[0];
    assert_eq!(t.status, TaskStatus::Failed);
    assert_eq!(t.reason, Some(StatusReason::FailedPrecondition));
    assert!(
        t.message.as_deref().unwrap().contains("\"REGION\""),
        "{t:?}"
    );
    assert!(fake.requests().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_pipeline_group_holds_whole_runs() {
    let fake = fake();
    let e = engine(&fake);
    let p = Pipeline::new("release", "Release")
        .task(Task::new("build", "deploy"))
        .task(
            Task::new("ship", "deploy")
                .depends_on("build", gofer_core::RequiredParentStatus::Success),
        )
        .concurrency(Concurrency::new("release-{{ENV}}"));
    let first = e.start_run(&p, env("prod")).unwrap();
    first.wait_task("build", TaskState::Running).await.unwrap();
    let second = e.start_run(&p, env("prod")).unwrap();
    let (a, b) = (finish(&first).await, finish(&second).await);
    assert_eq!(a.status, gofer_core::RunStatus::Successful);
    assert_eq!(b.status, gofer_core::RunStatus::Successful);
    // The second run's first task starts after the first run's last task ended.
    assert!(
        b.tasks[0].started.unwrap() >= a.tasks[1].ended.unwrap(),
        "{a:?}\n{b:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_newer_run_cancels_the_run_in_progress() {
    let fake = fake();
    let e = engine(&fake);
    let p = Pipeline::new("release", "Release")
        .task(Task::new("long", "forever"))
        .concurrency(Concurrency::new("release").policy(ConcurrencyPolicy::CancelInProgress));
    let old = e.start_run(&p, RunOptions::new()).unwrap();
    old.wait_task("long", TaskState::Running).await.unwrap();
    let new = e.start_run(&p, RunOptions::new()).unwrap();
    let old_run = finish(&old).await;
    assert_eq!(
        old_run.status,
        gofer_core::RunStatus::Cancelled,
        "{old_run:?}"
    );
    assert!(
        old_run
            .message
            .as_deref()
            .unwrap()
            .contains("concurrency group"),
        "{old_run:?}"
    );
    assert_eq!(old_run.tasks[0].status, TaskStatus::Cancelled);
    new.wait_task("long", TaskState::Running).await.unwrap();
    new.cancel(Duration::from_secs(1));
    finish(&new).await;
    assert_eq!(fake.containers(), 0);
}
