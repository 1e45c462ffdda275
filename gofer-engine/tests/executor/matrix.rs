//! Matrix tasks: combinations as tasks with their values as variables, dependents that
//! wait for every combination under the group conditions, and fail_fast.

use std::time::Duration;

use gofer_core::fake::{Behaviour, FakeScheduler};
use gofer_core::RequiredParentStatus::{Any, Failure, Success};
use gofer_core::{
    Matrix, Pipeline, RunOptions, RunStatus, StatusReason, Task, TaskStatus, ValidationIssue,
};
use gofer_engine::RunError;

use crate::common::*;

fn fake() -> FakeScheduler {
    FakeScheduler::new()
        .image("ok", Behaviour::new().stdout("fine\n"))
        .image("slow", Behaviour::new().sleep(Duration::from_secs(30)))
}

#[tokio::test(start_paused = true)]
async fn each_combination_runs_as_a_task_with_its_values() {
    let fake = fake();
    let p = Pipeline::new("mxp", "mx").task(
        Task::new("test", "ok").variable("OWN", "kept").matrix(
            Matrix::new([("OS", vec!["linux", "bsd"]), ("VER", vec!["1", "2"])])
                .exclude([("OS", "bsd"), ("VER", "1")]),
        ),
    );
    let run = finish(&engine(&fake).start_run(&p, RunOptions::new()).unwrap()).await;
    let ids: Vec<&str> = run.tasks.iter().map(|t| t.task_id.as_str()).collect();
    // In product order: axes by name, values as given.
    assert_eq!(
        ids,
        [
            "test_OS-linux_VER-1",
            "test_OS-linux_VER-2",
            "test_OS-bsd_VER-2"
        ]
    );
    assert_eq!(run.status, RunStatus::Successful);
    let spec = fake.request(&cname("mxp", 1, "test_OS-bsd_VER-2")).unwrap();
    let env = |k: &str| spec.env.get(k).map(|v| v.expose().to_string());
    assert_eq!(env("OS").as_deref(), Some("bsd"));
    assert_eq!(env("VER").as_deref(), Some("2"));
    assert_eq!(env("OWN").as_deref(), Some("kept"));
    assert_eq!(fake.containers(), 0);
}

/// A dependent of a matrix task: Success needs every combination successful, Failure
/// every one ended and one failed, Any every one ended.
#[tokio::test(start_paused = true)]
async fn dependents_wait_for_every_combination_under_group_conditions() {
    let fake = fake().on_name(&cname("cond", 1, "build_V-2"), Behaviour::exit(3));
    let p = Pipeline::new("cond", "cond").tasks([
        Task::new("build", "ok").matrix(Matrix::new([("V", vec!["1", "2", "3"])])),
        Task::new("on_success", "ok").depends_on("build", Success),
        Task::new("on_failure", "ok").depends_on("build", Failure),
        Task::new("on_any", "ok").depends_on("build", Any),
    ]);
    let run = finish(&engine(&fake).start_run(&p, RunOptions::new()).unwrap()).await;
    let st = |id| task(&run, id).status;
    assert_eq!(st("build_V-1"), TaskStatus::Successful);
    assert_eq!(st("build_V-2"), TaskStatus::Failed);
    assert_eq!(st("build_V-3"), TaskStatus::Successful);
    assert_eq!(st("on_success"), TaskStatus::Skipped);
    let msg = task(&run, "on_success").message.clone().unwrap();
    assert!(msg.contains("\"build\"") && msg.contains("Failed"), "{msg}");
    assert_eq!(st("on_failure"), TaskStatus::Successful);
    assert_eq!(st("on_any"), TaskStatus::Successful);

    // All successful: Success runs, Failure is skipped.
    let all_ok = self::fake();
    let run = finish(&engine(&all_ok).start_run(&p, RunOptions::new()).unwrap()).await;
    assert_eq!(task(&run, "on_success").status, TaskStatus::Successful);
    assert_eq!(task(&run, "on_failure").status, TaskStatus::Skipped);
}

#[tokio::test(start_paused = true)]
async fn a_dependent_starts_only_after_the_slowest_combination() {
    let fake = fake().on_name(
        &cname("wait", 1, "build_V-slow"),
        Behaviour::new().sleep(Duration::from_secs(30)),
    );
    let p = Pipeline::new("wait", "wait").tasks([
        Task::new("build", "ok").matrix(Matrix::new([("V", vec!["fast", "slow"])])),
        Task::new("after", "ok").depends_on("build", Success),
    ]);
    let run = finish(&engine(&fake).start_run(&p, RunOptions::new()).unwrap()).await;
    let slow_end = task(&run, "build_V-slow").ended.unwrap();
    let after_start = task(&run, "after").started.unwrap();
    assert!(
        after_start >= slow_end,
        "{after_start:?} before {slow_end:?}"
    );
    assert_eq!(run.status, RunStatus::Successful);
}

#[tokio::test(start_paused = true)]
async fn fail_fast_cancels_the_other_combinations() {
    let failing = cname("ffp", 1, "test_V-a");
    let fake = fake()
        .on_name(&failing, Behaviour::exit(1))
        .image("long", Behaviour::run_until_stopped());
    let p = |fail_fast: bool| {
        Pipeline::new("ffp", "ff").tasks([Task::new("test", "long")
            .matrix(Matrix::new([("V", vec!["a", "b", "c"])]).fail_fast(fail_fast))])
    };
    let e = engine(&fake);
    let run = finish(&e.start_run(&p(true), RunOptions::new()).unwrap()).await;
    assert_eq!(task(&run, "test_V-a").status, TaskStatus::Failed);
    for id in ["test_V-b", "test_V-c"] {
        let t = task(&run, id);
        assert_eq!(t.status, TaskStatus::Cancelled, "{t:?}");
        assert_eq!(t.reason, Some(StatusReason::Cancelled));
        assert!(t.message.as_deref().unwrap().contains("fail_fast"), "{t:?}");
    }
    assert_eq!(run.status, RunStatus::Failed);
    assert_eq!(fake.containers(), 0);

    // Without fail_fast the others run on (here: until the run's timeout).
    let run = finish(
        &e.start_run(
            &p(false),
            RunOptions::new().timeout(Duration::from_secs(60)),
        )
        .unwrap(),
    )
    .await;
    let b = task(&run, "test_V-b");
    assert_ne!(b.reason, Some(StatusReason::Cancelled), "{b:?}");
    assert_eq!(b.reason, Some(StatusReason::Timeout), "{b:?}");
}

#[tokio::test(start_paused = true)]
async fn bad_matrices_are_validation_errors_naming_the_field() {
    let fake = fake();
    let big: Vec<String> = (0..17).map(|i| i.to_string()).collect();
    let p = Pipeline::new("bad", "bad").tasks([
        Task::new("huge", "ok").matrix(Matrix::new([("A", big.clone()), ("B", big)])),
        Task::new("clash", "ok")
            .variable("V", "mine")
            .matrix(Matrix::new([("V", vec!["1"])])),
        Task::new("dups", "ok").matrix(Matrix::new([("V", vec!["1.0", "1-0"])])),
        Task::new("none", "ok").matrix(Matrix::new([("V", Vec::<&str>::new())])),
    ]);
    let Err(RunError::Invalid(errors)) = engine(&fake).start_run(&p, RunOptions::new()) else {
        panic!("an invalid matrix was accepted");
    };
    let matrix: Vec<(String, String)> = errors
        .issues
        .iter()
        .filter(|i| matches!(i, ValidationIssue::InvalidMatrix { .. }))
        .map(|i| (i.task().unwrap_or_default().to_string(), i.to_string()))
        .collect();
    let about = |t: &str| {
        matrix
            .iter()
            .find(|(task, _)| task == t)
            .map(|(_, m)| m.clone())
    };
    assert!(
        about("huge").unwrap().contains("289 combinations"),
        "{matrix:?}"
    );
    assert!(
        about("clash")
            .unwrap()
            .contains("also one of the task's variables"),
        "{matrix:?}"
    );
    assert!(
        about("dups").unwrap().contains("test") || about("dups").unwrap().contains("dups_V-1-0"),
        "{matrix:?}"
    );
    assert!(about("none").unwrap().contains("no values"), "{matrix:?}");
    assert!(errors
        .issues
        .iter()
        .all(|i| !matches!(i, ValidationIssue::InvalidMatrix { .. }) || i.field() == "matrix"));
    assert_eq!(fake.containers(), 0);
}
