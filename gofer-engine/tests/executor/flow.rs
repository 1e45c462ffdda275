//! The flow of a run: conditions, statuses, events, validation, cancellation, sandbox.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use gofer_core::fake::{Behaviour, FakeScheduler};
use gofer_core::RequiredParentStatus::{Any, Failure, Success};
use gofer_core::{
    Event, NetworkMode, Pipeline, RunOptions, RunState, RunStatus, StatusReason, Task, TaskState,
    TaskStatus,
};
use gofer_engine::{Engine, EngineError, RunError};

use crate::common::*;

fn fake() -> FakeScheduler {
    FakeScheduler::new()
        .image("ok", Behaviour::new().stdout("fine\n"))
        .image("fail", Behaviour::exit(3))
        .image("forever", Behaviour::run_until_stopped())
        .image("stubborn", Behaviour::run_until_stopped().ignore_term())
        .image("pause", Behaviour::run_until_stopped())
}

#[tokio::test(start_paused = true)]
async fn dependency_conditions_and_skip_messages() {
    let fake = fake();
    let p = Pipeline::new("deps", "deps").tasks([
        Task::new("good", "ok"),
        Task::new("bad", "fail"),
        Task::new("after_good", "ok").depends_on("good", Success),
        Task::new("needs_success", "ok").depends_on("bad", Success),
        Task::new("needs_failure", "ok").depends_on("bad", Failure),
        Task::new("failure_of_good", "ok").depends_on("good", Failure),
        Task::new("any_bad", "ok").depends_on("bad", Any),
        Task::new("any_skipped", "ok").depends_on("needs_success", Any),
        Task::new("success_skipped", "ok").depends_on("needs_success", Success),
    ]);
    let run = finish(&engine(&fake).start_run(&p, RunOptions::new()).unwrap()).await;
    let st = |id| task(&run, id).status;
    assert_eq!(st("good"), TaskStatus::Successful);
    assert_eq!(st("bad"), TaskStatus::Failed);
    assert_eq!(
        task(&run, "bad").reason,
        Some(StatusReason::AbnormalExit { code: 3 })
    );
    assert_eq!(task(&run, "bad").exit_code, Some(3));
    assert_eq!(st("after_good"), TaskStatus::Successful);
    assert_eq!(st("needs_success"), TaskStatus::Skipped);
    let msg = task(&run, "needs_success").message.clone().unwrap();
    assert!(msg.contains("\"bad\"") && msg.contains("Failed"), "{msg}");
    assert_eq!(st("needs_failure"), TaskStatus::Successful);
    assert_eq!(st("failure_of_good"), TaskStatus::Skipped);
    assert!(task(&run, "failure_of_good")
        .message
        .as_deref()
        .unwrap()
        .contains("\"good\""));
    assert_eq!(st("any_bad"), TaskStatus::Successful);
    assert_eq!(st("any_skipped"), TaskStatus::Successful);
    assert_eq!(st("success_skipped"), TaskStatus::Skipped);
    assert!(task(&run, "success_skipped")
        .message
        .as_deref()
        .unwrap()
        .contains("\"needs_success\" ended Skipped"));
    // Skipped tasks never reach the scheduler.
    assert!(fake.request(&cname("deps", 1, "needs_success")).is_none());
    assert_eq!(run.status, RunStatus::Failed);
    assert_eq!(run.state, RunState::Complete);
    assert_eq!(fake.containers(), 0);
}

#[tokio::test(start_paused = true)]
async fn run_status_is_successful_when_nothing_failed_and_ids_count_up() {
    let fake = fake();
    let e = engine(&fake);
    let p = Pipeline::new("ids", "ids").task(Task::new("one", "ok"));
    for expected in 1..=3 {
        let h = e.start_run(&p, RunOptions::new()).unwrap();
        assert_eq!(h.run_id(), expected);
        let run = finish(&h).await;
        assert_eq!(run.status, RunStatus::Successful);
        assert_eq!(run.run_id, expected);
        let t = task(&run, "one");
        assert_eq!(t.exit_code, Some(0));
        assert!(t.started.is_some() && t.ended.is_some());
        assert_eq!(
            t.container.as_ref().unwrap().name,
            cname("ids", expected, "one")
        );
    }
}

#[tokio::test(start_paused = true)]
async fn container_spec_is_deterministic() {
    let fake = fake();
    let p = Pipeline::new("spec", "spec").task(
        Task::new("build", "ok")
            .command(["sh", "-c", "make"])
            .memory_limit(64 * 1024 * 1024)
            .pull_policy(gofer_core::PullPolicy::Always),
    );
    finish(&engine(&fake).start_run(&p, RunOptions::new()).unwrap()).await;
    let req = fake.request(&cname("spec", 1, "build")).unwrap();
    assert!(req.init);
    assert_eq!(req.pull_policy, gofer_core::PullPolicy::Always);
    assert_eq!(
        req.labels,
        gofer_core::naming::task_labels("test", "spec", 1, "build")
    );
    assert_eq!(req.resources.memory_bytes, Some(64 * 1024 * 1024));
    assert_eq!(req.command.as_deref().unwrap()[2], "make");
    assert_eq!(req.network, NetworkMode::Default);
}

#[tokio::test(start_paused = true)]
async fn invalid_pipeline_or_options_start_nothing() {
    let fake = fake();
    let e = engine(&fake);
    let bad = Pipeline::new("bad", "bad").task(Task::new("a", "ok").depends_on("zzz", Any));
    assert!(matches!(
        e.start_run(&bad, RunOptions::new()),
        Err(RunError::Invalid(_))
    ));
    let good = Pipeline::new("good", "good").task(Task::new("task", "ok"));
    let err = e
        .start_run(&good, RunOptions::new().variable("BAD-KEY", "x"))
        .unwrap_err();
    assert!(err.to_string().contains("BAD-KEY"), "{err}");
    let err = e
        .start_run(&good, RunOptions::new().variable("K", "x secret{{a}}"))
        .unwrap_err();
    assert!(matches!(err, RunError::InvalidVariable { ref key, .. } if key == "K"));
    assert!(fake.requests().is_empty());
    // The failed attempts did not use up run numbers.
    let h = e.start_run(&good, RunOptions::new()).unwrap();
    assert_eq!(h.run_id(), 1);
}

#[test]
fn start_run_outside_a_runtime_is_an_error() {
    let e = engine(&fake());
    let p = Pipeline::new("rtx", "rtx").task(Task::new("task", "ok"));
    assert!(matches!(
        e.start_run(&p, RunOptions::new()),
        Err(RunError::NoRuntime)
    ));
}

#[tokio::test(start_paused = true)]
async fn scheduler_failure_fails_the_task() {
    let fake = fake();
    let p = Pipeline::new("pull", "pull")
        .task(Task::new("task", "nowhere/absent").pull_policy(gofer_core::PullPolicy::Never));
    let run = finish(&engine(&fake).start_run(&p, RunOptions::new()).unwrap()).await;
    let t = task(&run, "task");
    assert_eq!(t.status, TaskStatus::Failed);
    assert_eq!(t.reason, Some(StatusReason::SchedulerError));
    assert!(t.message.as_deref().unwrap().contains("absent"), "{t:?}");
    assert_eq!(run.status, RunStatus::Failed);
    assert_eq!(fake.containers(), 0);
}

#[tokio::test(start_paused = true)]
async fn events_are_complete_for_late_subscribers() {
    let fake = fake();
    let p = Pipeline::new("evt", "evt").tasks([
        Task::new("first", "ok"),
        Task::new("second", "ok").depends_on("first", Success),
    ]);
    let h = engine(&fake).start_run(&p, RunOptions::new()).unwrap();
    let early = tokio::spawn(h.events().collect::<Vec<_>>());
    finish(&h).await;
    let late: Vec<Event> = h.events().collect().await;
    let early = early.await.unwrap();
    assert_eq!(early, late);
    let task_states = |id: &str| {
        late.iter()
            .filter_map(|e| match e {
                Event::Task { task_id, state, .. } if &**task_id == id => Some(*state),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        task_states("second"),
        [TaskState::Waiting, TaskState::Running, TaskState::Complete]
    );
    let runs: Vec<_> = late
        .iter()
        .filter_map(|e| match e {
            Event::Run { state, status, .. } => Some((*state, *status)),
            _ => None,
        })
        .collect();
    assert_eq!(
        runs,
        [
            (RunState::Pending, RunStatus::Unknown),
            (RunState::Running, RunStatus::Unknown),
            (RunState::Complete, RunStatus::Successful)
        ]
    );
    // The child started only after its parent completed.
    let pos = |id: &str, st: TaskState| {
        late.iter()
            .position(|e| matches!(e, Event::Task { task_id, state, .. } if &**task_id == id && *state == st))
            .unwrap()
    };
    assert!(pos("first", TaskState::Complete) < pos("second", TaskState::Running));
}

#[tokio::test(start_paused = true)]
async fn cancel_stops_running_cancels_waiting_and_leaves_no_container() {
    let fake = fake();
    let p = Pipeline::new("cancel", "cancel").tasks([
        Task::new("forever", "forever"),
        Task::new("stubborn", "stubborn"),
        Task::new("later", "ok").depends_on("forever", Any),
    ]);
    let h = engine(&fake).start_run(&p, RunOptions::new()).unwrap();
    let mut events = h.events();
    let mut running = 0;
    while let Some(e) = events.next().await {
        if matches!(
            e,
            Event::Task {
                state: TaskState::Running,
                ..
            }
        ) {
            running += 1;
            if running == 2 {
                break;
            }
        }
    }
    assert_eq!(fake.running(), 2);
    h.cancel(Duration::from_secs(5));
    let run = finish(&h).await;
    assert_eq!(run.status, RunStatus::Cancelled);
    assert_eq!(run.reason, Some(StatusReason::Cancelled));
    for id in ["forever", "stubborn", "later"] {
        let t = task(&run, id);
        assert_eq!(t.status, TaskStatus::Cancelled, "{t:?}");
        assert_eq!(t.reason, Some(StatusReason::Cancelled));
    }
    assert!(fake.request(&cname("cancel", 1, "later")).is_none());
    assert_eq!(fake.containers(), 0);
}

#[tokio::test(start_paused = true)]
async fn dropping_the_handle_and_the_host_future_keeps_the_run_going_and_cleans_up() {
    let fake = fake();
    let e = engine(&fake);
    let p = Pipeline::new("drop", "drop").tasks([
        Task::new("first", "ok"),
        Task::new("second", "ok").depends_on("first", Success),
    ]);
    let host = {
        let e = e.clone();
        let p = p.clone();
        tokio::spawn(async move {
            let h = e.start_run(&p, RunOptions::new()).unwrap();
            h.wait().await
        })
    };
    tokio::task::yield_now().await;
    host.abort();
    assert!(host.await.unwrap_err().is_cancelled());
    // The run goes on: the next run of the pipeline is number 2, and the first one's
    // containers all ran and were removed.
    let h2 = e.start_run(&p, RunOptions::new()).unwrap();
    assert_eq!(h2.run_id(), 2);
    finish(&h2).await;
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(fake.request(&cname("drop", 1, "second")).is_some());
    assert_eq!(fake.containers(), 0);
}

#[tokio::test(start_paused = true)]
async fn sandbox_is_created_joined_and_removed() {
    let fake = fake();
    let e = builder(&fake).0.network_sandbox("pause").build().unwrap();
    let p = Pipeline::new("net", "net").tasks([
        Task::new("one", "ok"),
        Task::new("two", "ok").depends_on("one", Success),
    ]);
    let run = finish(&e.start_run(&p, RunOptions::new()).unwrap()).await;
    assert_eq!(run.status, RunStatus::Successful);
    let sandboxes = fake.sandbox_requests();
    assert_eq!(sandboxes.len(), 1);
    assert_eq!(
        sandboxes[0].name,
        gofer_core::naming::sandbox_container_name("test", "net", 1)
    );
    assert_eq!(
        sandboxes[0].labels,
        gofer_core::naming::sandbox_labels("test", "net", 1)
    );
    let nets: Vec<_> = fake.requests().into_iter().map(|r| r.network).collect();
    assert_eq!(nets.len(), 2);
    assert!(matches!(nets[0], NetworkMode::Sandbox(_)));
    assert_eq!(nets[0], nets[1]);
    assert_eq!(fake.containers(), 0);
}

#[tokio::test(start_paused = true)]
async fn sandbox_is_removed_on_cancel() {
    let fake = fake();
    let e = builder(&fake).0.network_sandbox("pause").build().unwrap();
    let p = Pipeline::new("netc", "netc").task(Task::new("forever", "forever"));
    let h = e.start_run(&p, RunOptions::new()).unwrap();
    let mut events = h.events();
    while let Some(ev) = events.next().await {
        if matches!(
            ev,
            Event::Task {
                state: TaskState::Running,
                ..
            }
        ) {
            break;
        }
    }
    assert_eq!(fake.containers(), 2);
    h.cancel(Duration::from_secs(1));
    assert_eq!(finish(&h).await.status, RunStatus::Cancelled);
    assert_eq!(fake.containers(), 0);
}

#[test]
fn sandbox_needs_the_capability() {
    let fake = fake().with_capabilities(gofer_core::Capabilities::none());
    let err = Engine::builder(Arc::new(fake))
        .network_sandbox("pause")
        .build()
        .unwrap_err();
    assert!(
        matches!(err, EngineError::SandboxNotSupported { scheduler: "fake" }),
        "{err}"
    );
}

#[tokio::test(start_paused = true)]
async fn memory_kill_fails_with_abnormal_exit() {
    let fake = FakeScheduler::new().image("hog", Behaviour::new().out_of_memory());
    let p = Pipeline::new("oom", "oom").task(Task::new("hog", "hog").memory_limit(8 * 1024 * 1024));
    let run = finish(&engine(&fake).start_run(&p, RunOptions::new()).unwrap()).await;
    let t = task(&run, "hog");
    assert_eq!(t.status, TaskStatus::Failed);
    assert!(matches!(t.reason, Some(StatusReason::AbnormalExit { .. })));
    assert!(t.message.as_deref().unwrap().contains("memory"));
}

#[test]
fn engine_settings_are_validated() {
    let fake = fake();
    let err = builder(&fake).0.instance_id("bad id").build().unwrap_err();
    assert!(err.to_string().contains("bad id"), "{err}");
    assert!(builder(&fake).0.network_sandbox("").build().is_err());
}
