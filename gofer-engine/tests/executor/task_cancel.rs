//! `RunHandle::cancel_task`: one task ends Cancelled, the rest of the run goes on.

use std::time::Duration;

use gofer_core::fake::{Behaviour, FakeScheduler};
use gofer_core::RequiredParentStatus::{Any, Success};
use gofer_core::{Pipeline, RunOptions, RunStatus, StatusReason, Task, TaskState, TaskStatus};
use gofer_engine::RunError;

use crate::common::*;

fn fake() -> FakeScheduler {
    FakeScheduler::new()
        .image("ok", Behaviour::new().stdout("fine\n"))
        .image("forever", Behaviour::run_until_stopped())
        .image("stubborn", Behaviour::run_until_stopped().ignore_term())
}

#[tokio::test(start_paused = true)]
async fn a_running_task_is_stopped_and_its_dependents_apply_their_conditions() {
    let fake = fake();
    let p = Pipeline::new("tcancel", "tcancel").tasks([
        Task::new("forever", "forever"),
        Task::new("other", "ok"),
        Task::new("needs_success", "ok").depends_on("forever", Success),
        Task::new("needs_any", "ok").depends_on("forever", Any),
    ]);
    let h = engine(&fake).start_run(&p, RunOptions::new()).unwrap();
    h.wait_task("forever", TaskState::Running).await.unwrap();
    h.cancel_task("forever", Duration::from_secs(5)).unwrap();
    let run = finish(&h).await;
    let t = task(&run, "forever");
    assert_eq!(t.status, TaskStatus::Cancelled, "{t:?}");
    assert_eq!(t.reason, Some(StatusReason::Cancelled));
    assert_eq!(task(&run, "other").status, TaskStatus::Successful);
    for id in ["needs_success", "needs_any"] {
        let t = task(&run, id);
        assert_eq!(t.status, TaskStatus::Skipped, "{t:?}");
        assert!(fake.request(&cname("tcancel", 1, id)).is_none());
    }
    // A task's own cancel is not the run's.
    assert_eq!(run.status, RunStatus::Successful);
    assert_eq!(fake.containers(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_task_not_yet_started_never_starts_and_ends_at_once() {
    let fake = fake();
    let p = Pipeline::new("tcancel", "tcancel").tasks([
        Task::new("first", "forever"),
        Task::new("waiting", "ok").depends_on("first", Any),
    ]);
    let h = engine(&fake).start_run(&p, RunOptions::new()).unwrap();
    h.wait_task("first", TaskState::Running).await.unwrap();
    h.cancel_task("waiting", Duration::from_secs(1)).unwrap();
    // It ends while its parent still runs.
    let t = h.wait_task("waiting", TaskState::Complete).await.unwrap();
    assert_eq!(t.status, TaskStatus::Cancelled);
    assert!(
        t.message
            .as_deref()
            .unwrap_or("")
            .contains("before the task started"),
        "{t:?}"
    );
    assert_eq!(
        h.snapshot().task("first").unwrap().state,
        TaskState::Running
    );
    h.cancel_task("first", Duration::ZERO).unwrap();
    let run = finish(&h).await;
    assert_eq!(task(&run, "first").status, TaskStatus::Cancelled);
    assert!(fake.request(&cname("tcancel", 1, "waiting")).is_none());
    assert_eq!(fake.containers(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_shorter_grace_kills_a_task_that_ignores_sigterm_and_a_done_task_is_untouched() {
    let fake = fake();
    let p = Pipeline::new("tcancel", "tcancel")
        .tasks([Task::new("stubborn", "stubborn"), Task::new("quick", "ok")]);
    let h = engine(&fake).start_run(&p, RunOptions::new()).unwrap();
    h.wait_task("quick", TaskState::Complete).await.unwrap();
    h.cancel_task("quick", Duration::ZERO).unwrap();
    h.wait_task("stubborn", TaskState::Running).await.unwrap();
    h.cancel_task("stubborn", Duration::from_secs(3600))
        .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        h.snapshot().task("stubborn").unwrap().state,
        TaskState::Running
    );
    h.cancel_task("stubborn", Duration::ZERO).unwrap();
    let run = finish(&h).await;
    assert_eq!(task(&run, "stubborn").status, TaskStatus::Cancelled);
    assert_eq!(task(&run, "quick").status, TaskStatus::Successful);
    assert_eq!(run.status, RunStatus::Successful);
}

#[tokio::test(start_paused = true)]
async fn an_unknown_task_id_is_a_typed_error() {
    let fake = fake();
    let p = Pipeline::new("tcancel", "tcancel").tasks([Task::new("quick", "ok")]);
    let h = engine(&fake).start_run(&p, RunOptions::new()).unwrap();
    match h.cancel_task("nope", Duration::ZERO) {
        Err(RunError::UnknownTask { task, run, .. }) => {
            assert_eq!(task, "nope");
            assert_eq!(run, 1);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(finish(&h).await.status, RunStatus::Successful);
}
