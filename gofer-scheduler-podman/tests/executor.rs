//! The run executor on the real Podman service: the seed's hello-world pipeline, the
//! environment a task sees, preconditions, and the run-scoped network sandbox.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::IMAGE;
use futures::StreamExt;
use gofer_core::naming::LABEL_ENGINE;
use gofer_core::{DynScheduler, Pipeline, RunOptions, RunStatus, StatusReason, Task};
use gofer_engine::testing;
use gofer_engine::{Engine, EngineBuilder, InMemoryLogSink};
use gofer_scheduler_podman::PodmanScheduler;
use podman_api::opts::EventsOpts;

/// A unique engine instance id (the executor names and labels containers with it).
fn instance(case: &str) -> String {
    format!("ptest{}{case}", common::run_id().replace('-', ""))
}

fn builder(s: &PodmanScheduler, instance: &str) -> EngineBuilder {
    Engine::builder(Arc::new(s.clone()) as Arc<DynScheduler>)
        .instance_id(instance)
        .log_sink(Arc::new(InMemoryLogSink::new()))
}

/// Container `create` events the service saw for an engine instance since `since`.
async fn creates_seen(s: &PodmanScheduler, instance: &str, since: u64) -> usize {
    let until = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 1;
    let podman = podman_api::Podman::unix(&s.config().socket);
    let opts = EventsOpts::builder()
        .since(since.to_string())
        .until(until.to_string())
        .stream(false)
        .filters([
            ("type".to_string(), vec!["container".to_string()]),
            ("event".to_string(), vec!["create".to_string()]),
            (
                "label".to_string(),
                vec![format!("{LABEL_ENGINE}={instance}")],
            ),
        ])
        .build();
    let events: Vec<_> = podman.events(&opts).collect().await;
    let mut creates = 0;
    for event in events {
        event.unwrap();
        creates += 1;
    }
    creates
}

#[tokio::test]
async fn a_task_with_a_missing_secret_creates_no_container() {
    let s = podman_or_skip!();
    let id = instance("nosecret");
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
    let run = engine
        .start_run(&pipeline, RunOptions::new())
        .unwrap()
        .wait()
        .await
        .unwrap();
    assert_eq!(run.status, RunStatus::Failed);
    let task = run.task("needs_secret").unwrap();
    assert_eq!(task.reason, Some(StatusReason::FailedPrecondition));
    assert!(
        task.message
            .as_deref()
            .unwrap_or_default()
            .contains("no_such_key"),
        "{task:?}"
    );
    // Ask the service: it saw no create for this instance.
    assert_eq!(creates_seen(&s, &id, since).await, 0);
    // The check can see a create: a task that runs is seen.
    let ok = Pipeline::new("control", "Control").task(Task::new("runs", IMAGE).command(["true"]));
    let run = engine
        .start_run(&ok, RunOptions::new())
        .unwrap()
        .wait()
        .await
        .unwrap();
    assert_eq!(run.status, RunStatus::Successful);
    // The service writes its events file asynchronously: give the event a moment.
    let mut seen = 0;
    for _ in 0..50 {
        seen = creates_seen(&s, &id, since).await;
        if seen > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(seen, 1);
    testing::assert_nothing_left(&s, &id).await;
}

/// What the image and Podman itself set (Podman adds `container=podman`), beside the
/// contract's variables.
const ENGINE_ENV: &[&str] = &["PATH", "HOSTNAME", "HOME", "TERM", "container"];

fn sched(s: &PodmanScheduler) -> Arc<DynScheduler> {
    Arc::new(s.clone())
}

#[tokio::test]
async fn the_seed_hello_world_pipeline_prints_its_greeting() {
    let s = podman_or_skip!();
    let id = instance("hello");
    testing::hello_world(sched(&s), IMAGE, &id).await;
}

#[tokio::test]
async fn a_task_sees_exactly_the_contract_variables() {
    let s = podman_or_skip!();
    let id = instance("env");
    testing::exact_contract_variables(sched(&s), IMAGE, &id, ENGINE_ENV).await;
}

#[tokio::test]
async fn tasks_of_a_sandboxed_run_reach_each_other_on_localhost() {
    let s = podman_or_skip!();
    let id = instance("pod");
    testing::sandboxed_tasks_share_localhost(sched(&s), IMAGE, &id).await;
}

#[tokio::test]
async fn the_sandbox_holder_is_removed_when_a_run_is_cancelled() {
    let s = podman_or_skip!();
    let id = instance("cancel");
    testing::sandbox_removed_on_cancel(sched(&s), IMAGE, &id).await;
}

#[tokio::test]
async fn the_sandbox_holder_is_removed_when_a_run_fails() {
    let s = podman_or_skip!();
    let id = instance("fail");
    testing::sandbox_removed_on_failure(sched(&s), IMAGE, &id).await;
}

#[tokio::test]
async fn a_run_cancelled_with_the_largest_grace_ends_and_leaves_nothing() {
    let s = podman_or_skip!();
    let id = instance("maxgrace");
    testing::cancel_with_the_largest_grace(sched(&s), IMAGE, &id).await;
}

#[tokio::test]
async fn a_task_failing_twice_then_succeeding_counts_its_attempts_in_the_workspace() {
    let s = podman_or_skip!();
    let id = instance("retry");
    testing::retried_task_counts_attempts_in_the_workspace(sched(&s), IMAGE, &id).await;
}

#[tokio::test]
async fn caches_persist_across_runs_and_a_failure_saves_nothing() {
    let s = podman_or_skip!();
    let id = instance("cache");
    testing::caches_persist_across_runs(sched(&s), IMAGE, &id).await;
}

#[tokio::test]
async fn two_tasks_share_a_file_through_the_workspace() {
    let s = podman_or_skip!();
    let id = instance("share");
    testing::tasks_share_files_through_the_workspace(sched(&s), IMAGE, &id).await;
}

#[tokio::test]
async fn a_task_reaches_a_service_on_localhost_after_its_readiness() {
    let s = podman_or_skip!();
    let id = instance("service");
    testing::task_reaches_a_service_on_localhost(sched(&s), IMAGE, &id).await;
}
