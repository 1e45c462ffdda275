//! The run executor on the real Podman service: the seed's hello-world pipeline, the
//! environment a task sees, preconditions, and the run-scoped network sandbox.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::IMAGE;
use futures::StreamExt;
use gofer_core::naming::{engine_filter, LABEL_ENGINE};
use gofer_core::{
    DynScheduler, Engine, EngineBuilder, Event, InMemoryLogSink, Pipeline, RunHandle, RunOptions,
    RunStatus, Scheduler, StatusReason, Task, TaskState, TaskStatus,
};
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

async fn log_of(h: &RunHandle, task: &str) -> Vec<String> {
    h.logs(task)
        .unwrap()
        .map(|l| l.unwrap().text().into_owned())
        .collect()
        .await
}

/// Asserts the engine instance left no container behind (and removes any it did).
async fn assert_nothing_left(s: &PodmanScheduler, instance: &str) {
    let left = s.list(&engine_filter(instance)).await.unwrap();
    for c in &left {
        let _ = s.remove(&c.id, true).await;
    }
    let names: Vec<_> = left.iter().map(|c| c.name.clone()).collect();
    assert!(names.is_empty(), "left behind: {names:?}");
}

#[tokio::test]
async fn the_seed_hello_world_pipeline_prints_its_greeting() {
    let s = podman_or_skip!();
    let id = instance("hello");
    let engine = builder(&s, &id).build().unwrap();
    let pipeline = Pipeline::new("hello", "Hello world").task(
        Task::new("simple_task", IMAGE)
            .description("This task simply prints our hello-world message and exists!")
            .command(["echo", "Hello from Gofer!"]),
    );
    let h = engine.start_run(&pipeline, RunOptions::new()).unwrap();
    let run = h.wait().await.unwrap();
    assert_eq!(run.status, RunStatus::Successful, "{run:?}");
    let task = run.task("simple_task").unwrap();
    assert_eq!(task.status, TaskStatus::Successful);
    assert_eq!(task.exit_code, Some(0));
    assert_eq!(log_of(&h, "simple_task").await, ["Hello from Gofer!"]);
    assert_nothing_left(&s, &id).await;
}

#[tokio::test]
async fn a_task_sees_exactly_the_contract_variables() {
    let s = podman_or_skip!();
    let id = instance("env");
    let engine = builder(&s, &id).build().unwrap();
    let pipeline = Pipeline::new("envcheck", "Environment").task(
        Task::new("print_env", IMAGE)
            .command(["env"])
            .variable("OWN_VAR", "own value")
            .variable("GOFER_TASK_IMAGE", "overridden by the task"),
    );
    let h = engine
        .start_run(
            &pipeline,
            RunOptions::new().variable("FROM_RUN", "run value"),
        )
        .unwrap();
    let run = h.wait().await.unwrap();
    assert_eq!(run.status, RunStatus::Successful, "{run:?}");
    let env: BTreeMap<String, String> = log_of(&h, "print_env")
        .await
        .into_iter()
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap();
            (k.to_string(), v.to_string())
        })
        .collect();
    // What the image and Podman itself set (Podman adds `container=podman`).
    let from_engine = ["PATH", "HOSTNAME", "HOME", "TERM", "container"];
    let ours: BTreeMap<&str, &str> = env
        .iter()
        .filter(|(k, _)| !from_engine.contains(&k.as_str()))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let expected = BTreeMap::from([
        ("GOFER_PIPELINE_ID", "envcheck"),
        ("GOFER_RUN_ID", "1"),
        ("GOFER_TASK_ID", "print_env"),
        ("GOFER_TASK_IMAGE", "overridden by the task"),
        ("OWN_VAR", "own value"),
        ("FROM_RUN", "run value"),
    ]);
    assert_eq!(ours, expected);
    assert_eq!(env.get("PATH").map(String::as_str), Some("/bin"));
    assert_nothing_left(&s, &id).await;
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
    assert_nothing_left(&s, &id).await;
}

fn sandboxed(s: &PodmanScheduler, instance: &str) -> Engine {
    builder(s, instance).network_sandbox(IMAGE).build().unwrap()
}

#[tokio::test]
async fn tasks_of_a_sandboxed_run_reach_each_other_on_localhost() {
    let s = podman_or_skip!();
    let id = instance("pod");
    let engine = sandboxed(&s, &id);
    let pipeline = Pipeline::new("pod", "Sandbox")
        // busybox `nc -l` ends when its own stdin ends, which can be before the peer's
        // data is read: keep nc's stdin open and print what it got once it has it.
        .task(Task::new("server", IMAGE).command([
            "sh",
            "-c",
            "sleep 120 | nc -l -p 7777 > /tmp/got & while [ ! -s /tmp/got ]; do sleep 0.05; done; cat /tmp/got",
        ]))
        .task(Task::new("client", IMAGE).command([
            "sh",
            "-c",
            "i=0; while [ $i -lt 200 ]; do echo 'hello over localhost' | nc 127.0.0.1 7777 && exit 0; sleep 0.1; i=$((i+1)); done; exit 1",
        ]));
    let h = engine.start_run(&pipeline, RunOptions::new()).unwrap();
    let run = h.wait().await.unwrap();
    assert_eq!(run.status, RunStatus::Successful, "{run:?}");
    assert_eq!(log_of(&h, "server").await, ["hello over localhost"]);
    // The holder went with the run.
    assert_nothing_left(&s, &id).await;
}

/// Waits until `task` of the run is running.
async fn until_running(h: &RunHandle, task: &str) {
    let mut events = h.events();
    while let Some(e) = events.next().await {
        if let Event::Task {
            task_id,
            state: TaskState::Running,
            ..
        } = e
        {
            if &*task_id == task {
                return;
            }
        }
    }
    panic!("task {task} never ran");
}

#[tokio::test]
async fn the_sandbox_holder_is_removed_when_a_run_is_cancelled() {
    let s = podman_or_skip!();
    let id = instance("cancel");
    let engine = sandboxed(&s, &id);
    let pipeline = Pipeline::new("cancelme", "Cancelled")
        .task(Task::new("sleeper", IMAGE).command(["sleep", "600"]));
    let h = engine.start_run(&pipeline, RunOptions::new()).unwrap();
    until_running(&h, "sleeper").await;
    // While it runs, the service holds the task and its holder.
    let live = s.list(&engine_filter(&id)).await.unwrap();
    assert_eq!(live.len(), 2, "{live:?}");
    h.cancel(Duration::from_secs(1));
    let run = h.wait().await.unwrap();
    assert_eq!(run.status, RunStatus::Cancelled);
    assert_nothing_left(&s, &id).await;
}

#[tokio::test]
async fn the_sandbox_holder_is_removed_when_a_run_fails() {
    let s = podman_or_skip!();
    let id = instance("fail");
    let engine = sandboxed(&s, &id);
    let pipeline = Pipeline::new("failme", "Failed")
        .task(Task::new("fails", IMAGE).command(["sh", "-c", "exit 4"]));
    let run = engine
        .start_run(&pipeline, RunOptions::new())
        .unwrap()
        .wait()
        .await
        .unwrap();
    assert_eq!(run.status, RunStatus::Failed);
    assert_eq!(
        run.task("fails").unwrap().reason,
        Some(StatusReason::AbnormalExit { code: 4 })
    );
    assert_nothing_left(&s, &id).await;
}
