//! Backend faults: a scripted wrapper around the fake for the executor's edge cases.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use gofer_core::fake::{Behaviour, FakeScheduler};
use gofer_core::{
    Capabilities, ContainerId, ContainerSpec, ContainerState, ContainerSummary, ExitStatus,
    LogStream, Pipeline, RunOptions, RunStatus, Scheduler, SchedulerError, StatusReason, Task,
    TaskStatus,
};
use gofer_engine::{Engine, InMemoryLogSink, LogKey};

use crate::common::*;

/// The fake, with a wait that fails or a log stream that never ends.
#[derive(Debug)]
struct Faulty {
    inner: FakeScheduler,
    fail_wait: bool,
    endless_logs: bool,
}

#[async_trait]
impl Scheduler for Faulty {
    fn name(&self) -> &'static str {
        "faulty"
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    async fn start(&self, spec: ContainerSpec) -> Result<ContainerId, SchedulerError> {
        self.inner.start(spec).await
    }
    async fn wait(&self, id: &ContainerId) -> Result<ExitStatus, SchedulerError> {
        if self.fail_wait {
            return Err(SchedulerError::engine("faulty", "wait", "connection reset"));
        }
        self.inner.wait(id).await
    }
    async fn state(&self, id: &ContainerId) -> Result<ContainerState, SchedulerError> {
        self.inner.state(id).await
    }
    async fn start_created(&self, id: &ContainerId) -> Result<(), SchedulerError> {
        self.inner.start_created(id).await
    }
    async fn logs(&self, id: &ContainerId) -> Result<LogStream, SchedulerError> {
        let logs = self.inner.logs(id).await?;
        if self.endless_logs {
            Ok(logs.chain(futures::stream::pending()).boxed())
        } else {
            Ok(logs)
        }
    }
    async fn stop(&self, id: &ContainerId, grace: Duration) -> Result<(), SchedulerError> {
        self.inner.stop(id, grace).await
    }
    async fn remove(&self, id: &ContainerId, force: bool) -> Result<(), SchedulerError> {
        self.inner.remove(id, force).await
    }
    async fn list(
        &self,
        labels: &BTreeMap<String, String>,
    ) -> Result<Vec<ContainerSummary>, SchedulerError> {
        self.inner.list(labels).await
    }
}

fn engine_over(faulty: Faulty) -> (Engine, InMemoryLogSink) {
    let sink = InMemoryLogSink::new();
    let e = Engine::builder(Arc::new(faulty))
        .instance_id("test")
        .log_sink(Arc::new(sink.clone()))
        .build()
        .unwrap();
    (e, sink)
}

/// A stream that never ends after the container exited cannot hold the task: the
/// engine reads the output again, then says the log is incomplete (and, by default,
/// fails the task) instead of hanging or cutting the log silently.
#[tokio::test(start_paused = true)]
async fn output_that_never_ends_does_not_hold_the_task() {
    for fail in [true, false] {
        let fake = FakeScheduler::new().image("hello", Behaviour::new().stdout("hi\n"));
        let sink = InMemoryLogSink::new();
        let e = Engine::builder(Arc::new(Faulty {
            inner: fake.clone(),
            fail_wait: false,
            endless_logs: true,
        }))
        .instance_id("test")
        .log_sink(Arc::new(sink.clone()))
        .fail_on_incomplete_log(fail)
        .build()
        .unwrap();
        let p = Pipeline::new("endless", "endless").task(Task::new("greet", "hello"));
        let h = e.start_run(&p, RunOptions::new()).unwrap();
        let run = finish(&h).await;
        let t = task(&run, "greet");
        assert_eq!(t.exit_code, Some(0));
        let why = t.log_incomplete.as_deref().unwrap();
        assert!(why.contains("silent"), "{why}");
        if fail {
            assert_eq!(run.status, RunStatus::Failed);
            assert_eq!(t.reason, Some(StatusReason::IncompleteLog));
        } else {
            assert_eq!(run.status, RunStatus::Successful);
        }
        // What was read is kept once, not repeated by the re-reads.
        let lines = sink.lines(&LogKey::new("endless", 1, "greet"));
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].text(), "hi");
        // The live log ends with an error rather than a normal end.
        let mut live = h.logs("greet").unwrap();
        assert_eq!(live.next().await.unwrap().unwrap().text(), "hi");
        assert!(matches!(
            live.next().await,
            Some(Err(gofer_engine::LogError::Incomplete { .. }))
        ));
        assert!(live.next().await.is_none());
        assert_eq!(fake.containers(), 0);
    }
}

#[tokio::test(start_paused = true)]
async fn failed_wait_stops_and_removes_the_container() {
    let fake = FakeScheduler::new().image("forever", Behaviour::run_until_stopped());
    let (e, _) = engine_over(Faulty {
        inner: fake.clone(),
        fail_wait: true,
        endless_logs: false,
    });
    let p = Pipeline::new("waitfail", "waitfail").task(Task::new("task", "forever"));
    let run = finish(&e.start_run(&p, RunOptions::new()).unwrap()).await;
    let t = task(&run, "task");
    assert_eq!(t.status, TaskStatus::Unknown);
    assert_eq!(t.reason, Some(StatusReason::SchedulerError));
    assert!(t.message.as_deref().unwrap().contains("connection reset"));
    assert_eq!(run.status, RunStatus::Failed);
    assert_eq!(fake.containers(), 0);
}

#[tokio::test(start_paused = true)]
async fn sandbox_failure_fails_the_tasks_without_containers() {
    // The wrapper declares the fake's capabilities but does not forward
    // `create_sandbox`, so creating the sandbox fails.
    let fake = FakeScheduler::new().image("hello", Behaviour::new());
    let e = Engine::builder(Arc::new(Faulty {
        inner: fake.clone(),
        fail_wait: false,
        endless_logs: false,
    }))
    .log_sink(Arc::new(InMemoryLogSink::new()))
    .network_sandbox("pause")
    .build()
    .unwrap();
    let p = Pipeline::new("nosb", "nosb").task(Task::new("one", "hello"));
    let run = finish(&e.start_run(&p, RunOptions::new()).unwrap()).await;
    let t = task(&run, "one");
    assert_eq!(t.status, TaskStatus::Failed);
    assert_eq!(t.reason, Some(StatusReason::SchedulerError));
    assert!(t.message.as_deref().unwrap().contains("sandbox"), "{t:?}");
    assert_eq!(run.status, RunStatus::Failed);
    assert!(fake.requests().is_empty());
    assert_eq!(fake.containers(), 0);
}

/// A task whose container was never made (its pull failed) records no container, so
/// `task get` shows none, as for a task that failed a precondition.
#[tokio::test(start_paused = true)]
async fn a_failed_start_records_no_container() {
    let fake = gofer_core::fake::FakeScheduler::new().image(
        "unpullable",
        gofer_core::fake::Behaviour::new().fail_pull(gofer_core::fake::PullFailure::NoSuchImage),
    );
    let p = gofer_core::Pipeline::new("nopull", "No pull").task(
        gofer_core::Task::new("task", "unpullable").pull_policy(gofer_core::PullPolicy::Always),
    );
    let run = finish(
        &engine(&fake)
            .start_run(&p, gofer_core::RunOptions::new())
            .unwrap(),
    )
    .await;
    let t = &run.tasks[0];
    assert_eq!(t.status, gofer_core::TaskStatus::Failed, "{t:?}");
    assert!(t.container.is_none(), "{t:?}");
    assert!(
        t.message.as_deref().unwrap().contains("unpullable"),
        "{t:?}"
    );
}
