//! The run executor on a real containerd: the seed's hello-world pipeline, the
//! environment a task sees, the run-scoped network sandbox, cancel, retries, the
//! workspace and a service — the engine checks every backend passes.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use common::IMAGE;
use gofer_core::{DynScheduler, Pipeline, RunOptions, RunStatus, StatusReason, Task};
use gofer_engine::testing;
use gofer_engine::{Engine, InMemoryLogSink};
use gofer_scheduler_containerd::ContainerdScheduler;

/// A unique engine instance id (the executor names and labels containers with it).
fn instance(case: &str) -> String {
    format!("ctest{}{case}", common::run_id().replace('-', ""))
}

/// What is set beside the contract's variables: `PATH` (which the backend gives an
/// image that sets none, as Docker does) and `HOME` (which runc sets from the user).
const ENGINE_ENV: &[&str] = &["PATH", "HOME"];

fn sched(s: &ContainerdScheduler) -> Arc<DynScheduler> {
    Arc::new(s.clone())
}

#[tokio::test]
async fn the_seed_hello_world_pipeline_prints_its_greeting() {
    let s = containerd_or_skip!();
    testing::hello_world(sched(&s), IMAGE, &instance("hello")).await;
}

#[tokio::test]
async fn a_task_sees_exactly_the_contract_variables() {
    let s = containerd_or_skip!();
    testing::exact_contract_variables(sched(&s), IMAGE, &instance("env"), ENGINE_ENV).await;
}

#[tokio::test]
async fn tasks_of_a_sandboxed_run_reach_each_other_on_localhost() {
    let s = containerd_or_skip!();
    testing::sandboxed_tasks_share_localhost(sched(&s), IMAGE, &instance("pod")).await;
}

#[tokio::test]
async fn the_sandbox_holder_is_removed_when_a_run_is_cancelled() {
    let s = containerd_or_skip!();
    testing::sandbox_removed_on_cancel(sched(&s), IMAGE, &instance("cancel")).await;
}

#[tokio::test]
async fn the_sandbox_holder_is_removed_when_a_run_fails() {
    let s = containerd_or_skip!();
    testing::sandbox_removed_on_failure(sched(&s), IMAGE, &instance("fail")).await;
}

#[tokio::test]
async fn a_run_cancelled_with_the_largest_grace_ends_and_leaves_nothing() {
    let s = containerd_or_skip!();
    testing::cancel_with_the_largest_grace(sched(&s), IMAGE, &instance("maxgrace")).await;
}

#[tokio::test]
async fn a_task_failing_twice_then_succeeding_counts_its_attempts_in_the_workspace() {
    let s = containerd_or_skip!();
    testing::retried_task_counts_attempts_in_the_workspace(sched(&s), IMAGE, &instance("retry"))
        .await;
}

#[tokio::test]
async fn caches_persist_across_runs_and_a_failure_saves_nothing() {
    let s = containerd_or_skip!();
    testing::caches_persist_across_runs(sched(&s), IMAGE, &instance("cache")).await;
}

#[tokio::test]
async fn two_tasks_share_a_file_through_the_workspace() {
    let s = containerd_or_skip!();
    testing::tasks_share_files_through_the_workspace(sched(&s), IMAGE, &instance("share")).await;
}

#[tokio::test]
async fn a_task_reaches_a_service_on_localhost_after_its_readiness() {
    let s = containerd_or_skip!();
    testing::task_reaches_a_service_on_localhost(sched(&s), IMAGE, &instance("service")).await;
}

#[tokio::test]
async fn a_task_with_a_missing_secret_creates_no_container() {
    let s = containerd_or_skip!();
    let id = instance("nosecret");
    let engine = Engine::builder(sched(&s))
        .instance_id(&id)
        .log_sink(Arc::new(InMemoryLogSink::new()))
        .build()
        .unwrap();
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
    assert!(task.container.is_none(), "{task:?}");
    testing::assert_nothing_left(&s, &id).await;
}
