//! Concurrency groups: members past the limit queue in arrival order (saying what they
//! wait for), or the newest cancels the one in progress; groups resolve from variables.
//! Every case runs twice: groups in the engine's memory (no run store), and kept by the
//! run store (`stored`), as engines sharing one store keep them. Engines sharing a store
//! share its groups, and a crash keeps a group's order.

use std::time::Duration;

use gofer_core::fake::{Behaviour, FakeScheduler};
use std::sync::Arc;

use gofer_core::{
    Concurrency, ConcurrencyPolicy, InMemoryRunStore, Pipeline, RunOptions, StatusReason, Task,
    TaskState, TaskStatus,
};
use gofer_engine::Engine;

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

/// An engine over `fake`: with `stored`, on `store` (recovered), whose groups it keeps.
async fn engine_on(fake: &FakeScheduler, stored: Option<(&InMemoryRunStore, &str)>) -> Engine {
    match stored {
        None => engine(fake),
        Some((store, instance)) => {
            let e = builder(fake)
                .0
                .instance_id(instance)
                .run_store(Arc::new(store.clone()))
                .build()
                .unwrap();
            e.recover().await.unwrap();
            e
        }
    }
}

async fn any_engine(fake: &FakeScheduler, stored: bool) -> Engine {
    let store = InMemoryRunStore::new();
    engine_on(fake, stored.then_some((&store, "test"))).await
}

/// Each case once with groups in memory, once kept by a run store.
macro_rules! both {
    ($($case:ident),* $(,)?) => {
        mod in_memory {
            $(#[tokio::test(start_paused = true)]
            async fn $case() {
                super::$case(false).await;
            })*
        }
        mod stored {
            $(#[tokio::test(start_paused = true)]
            async fn $case() {
                super::$case(true).await;
            })*
        }
    };
}

both!(
    members_past_the_limit_queue_in_order_and_say_what_they_wait_for,
    a_limit_of_two_lets_two_run,
    cancel_in_progress_replaces_the_running_member,
    a_group_naming_an_unset_variable_fails_the_task_naming_it,
    a_pipeline_group_holds_whole_runs,
    a_newer_run_cancels_the_run_in_progress,
);

async fn members_past_the_limit_queue_in_order_and_say_what_they_wait_for(stored: bool) {
    let fake = fake();
    let e = any_engine(&fake, stored).await;
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

async fn a_limit_of_two_lets_two_run(stored: bool) {
    let fake = fake();
    let e = any_engine(&fake, stored).await;
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

async fn cancel_in_progress_replaces_the_running_member(stored: bool) {
    let fake = fake();
    let e = any_engine(&fake, stored).await;
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

async fn a_group_naming_an_unset_variable_fails_the_task_naming_it(stored: bool) {
    let fake = fake();
    let p = deploy("deploy", Concurrency::new("deploy-{{REGION}}"));
    let e = any_engine(&fake, stored).await;
    let run = finish(&e.start_run(&p, RunOptions::new()).unwrap()).await;
    let t = &run.tasks[0];
    assert_eq!(t.status, TaskStatus::Failed);
    assert_eq!(t.reason, Some(StatusReason::FailedPrecondition));
    assert!(
        t.message.as_deref().unwrap().contains("\"REGION\""),
        "{t:?}"
    );
    assert!(fake.requests().is_empty());
}

async fn a_pipeline_group_holds_whole_runs(stored: bool) {
    let fake = fake();
    let e = any_engine(&fake, stored).await;
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

async fn a_newer_run_cancels_the_run_in_progress(stored: bool) {
    let fake = fake();
    let e = any_engine(&fake, stored).await;
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

/// Two engines on one run store (two processes of the `gofer` command): one group,
/// one limit, one order; the newest of another engine cancels the one in progress.
#[tokio::test(start_paused = true)]
async fn engines_sharing_a_store_share_its_groups() {
    let fake = fake();
    let store = InMemoryRunStore::new();
    let a = engine_on(&fake, Some((&store, "hosta"))).await;
    let b = engine_on(&fake, Some((&store, "hostb"))).await;
    let p = deploy("deploy", Concurrency::new("deploy-{{ENV}}"));
    let first = a.start_run(&p, env("prod")).unwrap();
    first.wait_task("deploy", TaskState::Running).await.unwrap();
    // Run numbers come from each engine: the store's record keeps them apart.
    let p2 = Pipeline::new("deployer2", "Deploy too")
        .task(Task::new("deploy", "deploy").concurrency(Concurrency::new("deploy-{{ENV}}")));
    let second = b.start_run(&p2, env("prod")).unwrap();
    second
        .wait_task("deploy", TaskState::Waiting)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let waiting = second.snapshot().tasks[0].clone();
    assert_eq!(waiting.state, TaskState::Waiting, "{waiting:?}");
    assert_eq!(
        waiting.message.as_deref(),
        Some("waiting for concurrency group \"deploy-prod\"")
    );
    let (x, y) = (finish(&first).await, finish(&second).await);
    assert_eq!(y.tasks[0].status, TaskStatus::Successful, "{y:?}");
    assert!(y.tasks[0].started.unwrap() >= x.tasks[0].ended.unwrap());

    // cancel-in-progress across the engines.
    let p = deploy(
        "forever",
        Concurrency::new("release").policy(ConcurrencyPolicy::CancelInProgress),
    );
    let p2 = Pipeline::new("deployer2", "Deploy too").task(
        Task::new("deploy", "forever")
            .concurrency(Concurrency::new("release").policy(ConcurrencyPolicy::CancelInProgress)),
    );
    let old = a.start_run(&p, RunOptions::new()).unwrap();
    old.wait_task("deploy", TaskState::Running).await.unwrap();
    let new = b.start_run(&p2, RunOptions::new()).unwrap();
    let old_run = finish(&old).await;
    assert_eq!(
        old_run.tasks[0].status,
        TaskStatus::Cancelled,
        "{old_run:?}"
    );
    assert_eq!(old_run.tasks[0].reason, Some(StatusReason::Cancelled));
    new.wait_task("deploy", TaskState::Running).await.unwrap();
    new.cancel(Duration::from_secs(1));
    finish(&new).await;
    assert_eq!(fake.containers(), 0);
}

/// An engine dies with one member of a group running and one waiting; the engine that
/// recovers its runs keeps their order: the waiting one runs next, before a member
/// that arrived after the crash.
#[tokio::test(start_paused = true)]
async fn a_crash_keeps_the_groups_order() {
    let fake = FakeScheduler::new().image(
        "deploy",
        Behaviour::new()
            .stdout("up\n")
            .sleep(Duration::from_secs(10)),
    );
    let store = InMemoryRunStore::new();
    let p = deploy("deploy", Concurrency::new("deploy-{{ENV}}"));
    let a = engine_on(&fake, Some((&store, "test"))).await;
    let first = a.start_run(&p, env("prod")).unwrap();
    first.wait_task("deploy", TaskState::Running).await.unwrap();
    let second = a.start_run(&p, env("prod")).unwrap();
    second
        .wait_task("deploy", TaskState::Waiting)
        .await
        .unwrap();
    a.simulate_crash().await;
    // Another engine on the store starts a member while the runs are orphaned: it
    // waits behind both.
    let other = engine_on(&fake, Some((&store, "other"))).await;
    let late = other.start_run(&p, env("prod")).unwrap();
    late.wait_task("deploy", TaskState::Waiting).await.unwrap();
    let b = engine_on(&fake, Some((&store, "test"))).await;
    let (one, two) = (
        b.run("deployer", first.run_id()).unwrap(),
        b.run("deployer", second.run_id()).unwrap(),
    );
    let (one, two, three) = (finish(&one).await, finish(&two).await, finish(&late).await);
    for r in [&one, &two, &three] {
        assert_eq!(r.tasks[0].status, TaskStatus::Successful, "{r:?}");
    }
    assert!(
        two.tasks[0].started.unwrap() >= one.tasks[0].ended.unwrap(),
        "{one:?}\n{two:?}"
    );
    assert!(
        three.tasks[0].started.unwrap() >= two.tasks[0].ended.unwrap(),
        "{two:?}\n{three:?}"
    );
    // The first run's container was adopted, not started again.
    assert_eq!(fake.containers(), 0);
}
