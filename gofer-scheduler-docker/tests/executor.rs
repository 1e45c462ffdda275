//! The run executor on the real Docker engine: the seed's hello-world pipeline, the
//! environment a task sees, preconditions, and the run-scoped network sandbox.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bollard::query_parameters::EventsOptions;
use common::*;
use futures::StreamExt;
use gofer_core::naming::engine_filter;
use gofer_core::{
    DynScheduler, Pipeline, RunOptions, RunStatus, Scheduler, StatusReason, Task, TaskStatus,
};
use gofer_engine::testing;
use gofer_engine::{Engine, EngineBuilder, InMemoryLogSink};
use gofer_scheduler_docker::DockerScheduler;

/// A unique engine instance id (the executor labels its containers with it).
fn instance() -> String {
    let u = unique("x");
    // gofer-test-x-<pid>-<nanos>-<n> → keep it short and valid.
    format!(
        "dtest{}",
        u.rsplit('-').take(3).collect::<Vec<_>>().join("")
    )
}

fn builder(s: &DockerScheduler, instance: &str) -> EngineBuilder {
    Engine::builder(Arc::new(s.clone()) as Arc<DynScheduler>)
        .instance_id(instance)
        .log_sink(Arc::new(InMemoryLogSink::new()))
}

/// Container `create` events the engine saw for an engine instance between two times.
async fn creates_seen(s: &DockerScheduler, instance: &str, since: u64) -> usize {
    let until = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 1;
    let options = EventsOptions {
        since: Some(since.to_string()),
        until: Some(until.to_string()),
        filters: Some(HashMap::from([
            ("type".to_string(), vec!["container".to_string()]),
            ("event".to_string(), vec!["create".to_string()]),
            (
                "label".to_string(),
                vec![format!("{}={instance}", gofer_core::naming::LABEL_ENGINE)],
            ),
        ])),
    };
    let events: Vec<_> = s.client().events(Some(options)).collect().await;
    let mut creates = 0;
    for event in events {
        event.unwrap();
        creates += 1;
    }
    creates
}

#[tokio::test]
async fn a_task_with_a_missing_secret_creates_no_container() {
    let Some(s) = scheduler().await else { return };
    let id = instance();
    let engine = builder(&s, &id).build().unwrap();
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 1;
    let pipeline = Pipeline::new("nosecret", "Missing secret").task(
        Task::new("needs_secret", IMAGE)
            .command(["true"])
            .variable("PASSWORD", "secret{{no_such_key}}"),
    );
    let h = engine.start_run(&pipeline, RunOptions::new()).unwrap();
    let run = h.wait().await.unwrap();
    assert_eq!(run.status, RunStatus::Failed);
    let task = run.task("needs_secret").unwrap();
    assert_eq!(task.status, TaskStatus::Failed);
    assert_eq!(task.reason, Some(StatusReason::FailedPrecondition));
    assert!(
        task.message
            .as_deref()
            .unwrap_or_default()
            .contains("no_such_key"),
        "{task:?}"
    );
    // Ask the engine: it saw no create for this instance, and holds nothing of it.
    assert_eq!(creates_seen(&s, &id, since).await, 0);
    assert!(s.list(&engine_filter(&id)).await.unwrap().is_empty());
    // The check itself can see a create: a task that runs is seen.
    let ok =
        Pipeline::new("withcontainer", "Control").task(Task::new("runs", IMAGE).command(["true"]));
    let run = engine
        .start_run(&ok, RunOptions::new())
        .unwrap()
        .wait()
        .await
        .unwrap();
    assert_eq!(run.status, RunStatus::Successful);
    assert_eq!(creates_seen(&s, &id, since).await, 1);
    testing::assert_nothing_left(&s, &id).await;
}

/// What the image and the engine itself set, beside the contract's variables.
const ENGINE_ENV: &[&str] = &["PATH", "HOSTNAME", "HOME"];

fn sched(s: &DockerScheduler) -> Arc<DynScheduler> {
    Arc::new(s.clone())
}

#[tokio::test]
async fn the_seed_hello_world_pipeline_prints_its_greeting() {
    let Some(s) = scheduler().await else { return };
    let id = instance();
    testing::hello_world(sched(&s), IMAGE, &id).await;
}

#[tokio::test]
async fn a_task_sees_exactly_the_contract_variables() {
    let Some(s) = scheduler().await else { return };
    let id = instance();
    testing::exact_contract_variables(sched(&s), IMAGE, &id, ENGINE_ENV).await;
}

#[tokio::test]
async fn tasks_of_a_sandboxed_run_reach_each_other_on_localhost() {
    let Some(s) = scheduler().await else { return };
    let id = instance();
    testing::sandboxed_tasks_share_localhost(sched(&s), IMAGE, &id).await;
}

#[tokio::test]
async fn the_sandbox_holder_is_removed_when_a_run_is_cancelled() {
    let Some(s) = scheduler().await else { return };
    let id = instance();
    testing::sandbox_removed_on_cancel(sched(&s), IMAGE, &id).await;
}

#[tokio::test]
async fn the_sandbox_holder_is_removed_when_a_run_fails() {
    let Some(s) = scheduler().await else { return };
    let id = instance();
    testing::sandbox_removed_on_failure(sched(&s), IMAGE, &id).await;
}

#[tokio::test]
async fn a_run_cancelled_with_the_largest_grace_ends_and_leaves_nothing() {
    let Some(s) = scheduler().await else { return };
    let id = instance();
    testing::cancel_with_the_largest_grace(sched(&s), IMAGE, &id).await;
}

#[tokio::test]
async fn a_task_failing_twice_then_succeeding_counts_its_attempts_in_the_workspace() {
    let Some(s) = scheduler().await else { return };
    let id = instance();
    testing::retried_task_counts_attempts_in_the_workspace(sched(&s), IMAGE, &id).await;
}

#[tokio::test]
async fn caches_persist_across_runs_and_a_failure_saves_nothing() {
    let Some(s) = scheduler().await else { return };
    let id = instance();
    testing::caches_persist_across_runs(sched(&s), IMAGE, &id).await;
}

#[tokio::test]
async fn two_tasks_share_a_file_through_the_workspace() {
    let Some(s) = scheduler().await else { return };
    let id = instance();
    testing::tasks_share_files_through_the_workspace(sched(&s), IMAGE, &id).await;
}

#[tokio::test]
async fn a_task_reaches_a_service_on_localhost_after_its_readiness() {
    let Some(s) = scheduler().await else { return };
    let id = instance();
    testing::task_reaches_a_service_on_localhost(sched(&s), IMAGE, &id).await;
}
