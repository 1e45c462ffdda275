//! The run store behaviour suite: one set of tests every [`RunStore`](crate::RunStore) must pass.
//!
//! Each case is a free function `async fn case(store: &DynRunStore)` that panics with a
//! message naming what was expected when the store misbehaves. Every case expects an
//! empty store. A store crate runs them all, one `#[tokio::test]` each, with
//! [`run_store_tests!`](crate::run_store_tests):
//!
//! ```ignore
//! gofer_core::run_store_tests!(async { gofer_core::InMemoryRunStore::new() });
//! ```
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::error::StoreError;
use crate::interpolate::PlaceholderKind;
use crate::pipeline::Pipeline;
use crate::run::{
    ContainerRef, Event, InjectedVariable, Run, RunHeader, RunOptions, RunState, RunStatus,
    StatusReason, TaskExecution, TaskState, TaskStatus,
};
use crate::runstore::{DynRunStore, RunChange, RunSpec};
use crate::task::Task;
use crate::variable::{VariableSource, MASK};

/// A two-task pipeline (`build`, then `test`).
pub fn pipeline(id: &str) -> Pipeline {
    Pipeline::new(id, "Store suite")
        .task(Task::new("build", "busybox").command(["echo", "build"]))
        .task(
            Task::new("test", "busybox").depends_on("build", crate::RequiredParentStatus::Success),
        )
}

/// A fresh, pending run of [`pipeline`].
pub fn new_run(pipeline_id: &str, run_id: u64) -> Run {
    let p = pipeline(pipeline_id);
    Run {
        pipeline_id: pipeline_id.to_string(),
        run_id,
        state: RunState::Pending,
        status: RunStatus::Unknown,
        reason: None,
        message: None,
        started: None,
        ended: None,
        tasks: p
            .tasks
            .iter()
            .map(|t| TaskExecution::new(&t.id, &t.image))
            .collect(),
    }
}

/// The `Created` change of [`new_run`].
pub fn created(pipeline_id: &str, run_id: u64) -> RunChange {
    let options = RunOptions::new()
        .variable("MODE", "fast")
        .variable("TOKEN", "secret{{deploy}}")
        .timeout(Duration::from_secs(90));
    RunChange::Created {
        run: new_run(pipeline_id, run_id),
        spec: RunSpec::new("engine1", &pipeline(pipeline_id), &options),
    }
}

fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::new(1_700_000_000 + secs, 123_456_789)
}

fn is_not_found(r: Result<impl std::fmt::Debug, StoreError>, kind: &str) -> bool {
    matches!(r, Err(StoreError::NotFound { kind: k, .. }) if k == kind)
}

/// Created runs read back equal; listing is newest first; run numbers continue from the
/// highest recorded; unknown runs are `NotFound`.
pub async fn create_get_and_list(store: &DynRunStore) {
    assert_eq!(store.next_run_id("alpha").await.unwrap(), 1);
    assert!(store.list_runs("alpha").await.unwrap().is_empty());
    store
        .apply(&[created("alpha", 1), created("alpha", 2), created("beta", 7)])
        .await
        .unwrap();
    store.apply(&[created("alpha", 3)]).await.unwrap();
    assert_eq!(
        store.get_run("alpha", 2).await.unwrap(),
        new_run("alpha", 2)
    );
    let listed: Vec<u64> = store
        .list_runs("alpha")
        .await
        .unwrap()
        .iter()
        .map(|r| r.run_id)
        .collect();
    assert_eq!(listed, vec![3, 2, 1], "runs newest first");
    assert_eq!(store.next_run_id("alpha").await.unwrap(), 4);
    assert_eq!(store.next_run_id("beta").await.unwrap(), 8);
    assert_eq!(store.next_run_id("gamma").await.unwrap(), 1);
    assert_eq!(
        store.last_run_ids().await.unwrap(),
        vec![("alpha".to_string(), 3), ("beta".to_string(), 7)]
    );
    assert!(is_not_found(store.get_run("alpha", 9).await, "run"));
    assert!(is_not_found(store.get_run("gamma", 1).await, "run"));
    assert!(is_not_found(store.events("alpha", 9).await, "run"));
}

/// A run number that is taken gives `AlreadyExists`, and the first run is untouched.
pub async fn duplicate_run_is_already_exists(store: &DynRunStore) {
    store.apply(&[created("alpha", 1)]).await.unwrap();
    let mut other = new_run("alpha", 1);
    other.message = Some("second".into());
    let r = store
        .apply(&[RunChange::Created {
            run: other,
            spec: RunSpec::new("engine1", &pipeline("alpha"), &RunOptions::new()),
        }])
        .await;
    assert!(
        matches!(r, Err(StoreError::AlreadyExists { kind: "run", .. })),
        "expected AlreadyExists, got {r:?}"
    );
    assert_eq!(store.get_run("alpha", 1).await.unwrap().message, None);
}

fn detailed_task() -> TaskExecution {
    let mut t = TaskExecution::new("build", "busybox");
    t.state = TaskState::Complete;
    t.status = TaskStatus::Failed;
    t.reason = Some(StatusReason::AbnormalExit { code: 3 });
    t.message = Some("container exited with code 3".into());
    t.exit_code = Some(3);
    t.started = Some(at(1));
    t.ended = Some(at(2));
    t.container = Some(ContainerRef {
        name: "gofer-engine1-alpha-1-build".into(),
        id: Some("c0ffee".into()),
    });
    t.variables = vec![
        InjectedVariable {
            key: "GOFER_RUN_ID".into(),
            value: "1".into(),
            source: VariableSource::System,
            placeholder: None,
            masked: false,
        },
        InjectedVariable {
            key: "PASSWORD".into(),
            value: MASK.into(),
            source: VariableSource::PipelineConfig,
            placeholder: Some(PlaceholderKind::PipelineSecret),
            masked: true,
        },
        InjectedVariable {
            key: "MODE".into(),
            value: "fast".into(),
            source: VariableSource::RunOptions,
            placeholder: None,
            masked: false,
        },
    ];
    t
}

/// Task changes replace the execution whole; details carry every variable with its
/// source, the container and the log location; unknown tasks are `NotFound`.
pub async fn task_details_round_trip(store: &DynRunStore) {
    store.apply(&[created("alpha", 1)]).await.unwrap();
    let mut starting = TaskExecution::new("build", "busybox");
    starting.state = TaskState::Waiting;
    starting.container = Some(ContainerRef {
        name: "gofer-engine1-alpha-1-build".into(),
        id: None,
    });
    store
        .apply(&[RunChange::Task {
            pipeline: "alpha".into(),
            run: 1,
            task: Arc::new(starting.clone()),
        }])
        .await
        .unwrap();
    let d = store.get_task("alpha", 1, "build").await.unwrap();
    assert_eq!(
        d.execution, starting,
        "container name recorded before start"
    );
    assert_eq!(d.log, None);

    let t = detailed_task();
    store
        .apply(&[
            RunChange::Task {
                pipeline: "alpha".into(),
                run: 1,
                task: Arc::new(t.clone()),
            },
            RunChange::Log {
                pipeline: "alpha".into(),
                run: 1,
                task: "build".into(),
                location: "/logs/alpha/1/build.log".into(),
            },
        ])
        .await
        .unwrap();
    let d = store.get_task("alpha", 1, "build").await.unwrap();
    assert_eq!(d.execution, t);
    assert_eq!(d.pipeline, "alpha");
    assert_eq!(d.run, 1);
    assert_eq!(d.log.as_deref(), Some("/logs/alpha/1/build.log"));
    let run = store.get_run("alpha", 1).await.unwrap();
    assert_eq!(run.tasks[0], t);
    assert_eq!(
        run.tasks[1],
        TaskExecution::new("test", "busybox"),
        "other task untouched"
    );
    assert!(is_not_found(
        store.get_task("alpha", 1, "nope").await,
        "task execution"
    ));
    assert!(is_not_found(
        store.get_task("alpha", 2, "build").await,
        "run"
    ));
}

/// A `Run` change updates run-level fields only, never the task executions.
pub async fn run_change_keeps_tasks(store: &DynRunStore) {
    store.apply(&[created("alpha", 1)]).await.unwrap();
    let t = detailed_task();
    store
        .apply(&[RunChange::Task {
            pipeline: "alpha".into(),
            run: 1,
            task: Arc::new(t.clone()),
        }])
        .await
        .unwrap();
    let mut run = new_run("alpha", 1);
    run.state = RunState::Complete;
    run.status = RunStatus::Cancelled;
    run.reason = Some(StatusReason::Cancelled);
    run.message = Some("run was cancelled".into());
    run.started = Some(at(1));
    run.ended = Some(at(5));
    run.tasks.clear();
    store
        .apply(&[RunChange::Run(RunHeader::from(&run))])
        .await
        .unwrap();
    let got = store.get_run("alpha", 1).await.unwrap();
    assert_eq!(got.status, RunStatus::Cancelled);
    assert_eq!(got.reason, Some(StatusReason::Cancelled));
    assert_eq!(got.message, run.message);
    assert_eq!((got.started, got.ended), (run.started, run.ended));
    assert_eq!(got.tasks.len(), 2);
    assert_eq!(got.tasks[0], t);
}

/// Events come back in the order they were appended, per run.
pub async fn events_in_order(store: &DynRunStore) {
    store
        .apply(&[created("alpha", 1), created("alpha", 2)])
        .await
        .unwrap();
    let events: Vec<Event> = (0..40)
        .map(|i| {
            if i % 3 == 0 {
                Event::Run {
                    state: RunState::Running,
                    status: RunStatus::Unknown,
                    at: at(i),
                }
            } else {
                Event::Task {
                    task_id: if i % 2 == 0 { "build" } else { "test" }.into(),
                    state: TaskState::Complete,
                    status: TaskStatus::Failed,
                    reason: Some(StatusReason::Orphaned),
                    attempt: 1,
                    at: at(i),
                }
            }
        })
        .collect();
    for chunk in events.chunks(7) {
        let changes: Vec<RunChange> = chunk
            .iter()
            .map(|e| RunChange::Event {
                pipeline: "alpha".into(),
                run: 1,
                event: e.clone(),
            })
            .collect();
        store.apply(&changes).await.unwrap();
    }
    assert_eq!(store.events("alpha", 1).await.unwrap(), events);
    assert!(store.events("alpha", 2).await.unwrap().is_empty());
}

/// Unfinished runs come back with their specification; complete ones do not.
pub async fn unfinished_runs_with_spec(store: &DynRunStore) {
    store
        .apply(&[created("beta", 1), created("alpha", 2), created("alpha", 1)])
        .await
        .unwrap();
    let mut done = new_run("alpha", 2);
    done.state = RunState::Complete;
    done.status = RunStatus::Successful;
    store
        .apply(&[RunChange::Run(RunHeader::from(&done))])
        .await
        .unwrap();
    let unfinished = store.unfinished_runs().await.unwrap();
    let keys: Vec<(String, u64)> = unfinished
        .iter()
        .map(|u| (u.run.pipeline_id.clone(), u.run.run_id))
        .collect();
    assert_eq!(keys, vec![("alpha".into(), 1), ("beta".into(), 1)]);
    let RunChange::Created { spec, .. } = created("alpha", 1) else {
        unreachable!()
    };
    assert_eq!(unfinished[0].spec, spec);
    assert_eq!(unfinished[0].run, new_run("alpha", 1));
    let options = unfinished[0].spec.options();
    assert_eq!(
        options,
        RunOptions::new()
            .variable("MODE", "fast")
            .variable("TOKEN", "secret{{deploy}}")
            .timeout(Duration::from_secs(90))
    );
}

/// A batch with one bad change applies nothing.
pub async fn batch_is_all_or_nothing(store: &DynRunStore) {
    store.apply(&[created("alpha", 1)]).await.unwrap();
    let r = store
        .apply(&[
            created("alpha", 2),
            RunChange::Task {
                pipeline: "alpha".into(),
                run: 1,
                task: Arc::new(detailed_task()),
            },
            RunChange::Log {
                pipeline: "alpha".into(),
                run: 1,
                task: "missing".into(),
                location: "x".into(),
            },
        ])
        .await;
    assert!(is_not_found(r, "task execution"));
    assert!(
        is_not_found(store.get_run("alpha", 2).await, "run"),
        "created run rolled back"
    );
    assert_eq!(
        store.get_run("alpha", 1).await.unwrap(),
        new_run("alpha", 1),
        "task change rolled back"
    );
    let r = store
        .apply(&[RunChange::Event {
            pipeline: "nope".into(),
            run: 1,
            event: Event::Run {
                state: RunState::Running,
                status: RunStatus::Unknown,
                at: at(0),
            },
        }])
        .await;
    assert!(is_not_found(r, "run"));
}

/// Pipelines are registered without registry credentials, replaced by id, listed.
pub async fn pipelines_registered_without_credentials(store: &DynRunStore) {
    assert!(is_not_found(store.get_pipeline("alpha").await, "pipeline"));
    let private = pipeline("alpha").task(
        Task::new("deploy", "localhost:5001/private/busybox")
            .registry_auth("gofer", "s3cret-registry-pw"),
    );
    store.put_pipeline(&private).await.unwrap();
    store.put_pipeline(&pipeline("beta")).await.unwrap();
    let got = store.get_pipeline("alpha").await.unwrap();
    assert_eq!(got.tasks.len(), 3);
    assert!(
        got.tasks[2].registry_auth.is_none(),
        "credentials not stored"
    );
    assert!(!format!("{got:?}").contains("s3cret-registry-pw"));
    let replaced = pipeline("alpha").description("v2");
    store.put_pipeline(&replaced).await.unwrap();
    assert_eq!(store.get_pipeline("alpha").await.unwrap(), replaced);
    assert_eq!(
        store.list_pipelines().await.unwrap(),
        vec!["alpha".to_string(), "beta".to_string()]
    );
    // A run's spec keeps its pipeline without credentials too, naming the tasks.
    let spec = RunSpec::new("engine1", &private, &RunOptions::new());
    assert_eq!(spec.credentials_removed, vec!["deploy".to_string()]);
    store
        .apply(&[RunChange::Created {
            run: new_run("alpha", 1),
            spec: spec.clone(),
        }])
        .await
        .unwrap();
    let unfinished = store.unfinished_runs().await.unwrap();
    assert_eq!(unfinished[0].spec, spec);
    assert!(unfinished[0].spec.registry_placeholders.is_empty());
    // A placeholder password is no secret: the run's spec keeps it (a literal never).
    let by_placeholder = pipeline("gamma")
        .task(
            Task::new("deploy", "localhost:5001/private/busybox")
                .registry_auth("gofer", "secret{{registry_pw}}"),
        )
        .task(
            Task::new("publish", "localhost:5001/private/busybox")
                .registry_auth("gofer", "s3cret-registry-pw"),
        );
    let spec = RunSpec::new("engine1", &by_placeholder, &RunOptions::new());
    store
        .apply(&[RunChange::Created {
            run: new_run("gamma", 1),
            spec: spec.clone(),
        }])
        .await
        .unwrap();
    let unfinished = store.unfinished_runs().await.unwrap();
    let kept = &unfinished
        .iter()
        .find(|u| u.run.pipeline_id == "gamma")
        .expect("the gamma run")
        .spec;
    assert_eq!(kept, &spec);
    assert_eq!(kept.credentials_removed, ["deploy", "publish"]);
    let placeholders: Vec<(&str, &str, &str)> = kept
        .registry_placeholders
        .iter()
        .map(|r| {
            (
                r.task.as_str(),
                r.username.as_str(),
                r.password_placeholder.as_str(),
            )
        })
        .collect();
    assert_eq!(placeholders, [("deploy", "gofer", "secret{{registry_pw}}")]);
    assert!(!format!("{kept:?}").contains("s3cret-registry-pw"));
}

/// Many writers at once: every change lands.
pub async fn concurrent_writers(store: &DynRunStore) {
    let writes = (1..=24u64).map(|i| async move {
        store.apply(&[created("alpha", i)]).await.unwrap();
        let mut t = detailed_task();
        t.exit_code = Some(i as i64);
        store
            .apply(&[RunChange::Task {
                pipeline: "alpha".into(),
                run: i,
                task: Arc::new(t),
            }])
            .await
            .unwrap();
    });
    futures::future::join_all(writes).await;
    assert_eq!(store.list_runs("alpha").await.unwrap().len(), 24);
    for i in 1..=24u64 {
        let d = store.get_task("alpha", i, "build").await.unwrap();
        assert_eq!(d.execution.exit_code, Some(i as i64));
    }
    assert_eq!(store.next_run_id("alpha").await.unwrap(), 25);
}

fn member(run: u64, task: Option<&str>, policy: crate::ConcurrencyPolicy) -> crate::GroupEntry {
    crate::GroupEntry {
        group: "deploy-prod".into(),
        pipeline: "alpha".into(),
        run,
        task: task.map(str::to_string),
        limit: 1,
        policy,
    }
}

fn complete(pipeline: &str, run: u64) -> RunChange {
    let mut done = new_run(pipeline, run);
    done.state = RunState::Complete;
    done.status = RunStatus::Successful;
    RunChange::Run(RunHeader::from(&done))
}

/// A store that keeps groups gives slots in arrival order, keeps a member's place when
/// it enters again (as a recovered run does), names who is ahead, gives the slot on
/// when the holder leaves or its run completes, and lets a leave of nobody pass.
/// (A store that keeps none says so, and is not asked.)
pub async fn groups_hold_in_order_and_free_on_leave_or_completion(store: &DynRunStore) {
    if !store.keeps_groups() {
        return;
    }
    use crate::ConcurrencyPolicy::Queue;
    store
        .apply(&[
            created("alpha", 1),
            created("alpha", 2),
            created("alpha", 3),
        ])
        .await
        .unwrap();
    assert!(
        store
            .enter_group(&member(1, None, Queue))
            .await
            .unwrap()
            .holds
    );
    let second = store.enter_group(&member(2, None, Queue)).await.unwrap();
    assert!(!second.holds && !second.superseded, "{second:?}");
    assert_eq!(second.ahead, ["alpha/1"]);
    let third = store.enter_group(&member(3, None, Queue)).await.unwrap();
    assert_eq!(third.ahead, ["alpha/1", "alpha/2"]);
    // Entering again (a recovered run) keeps the place.
    assert!(
        store
            .enter_group(&member(1, None, Queue))
            .await
            .unwrap()
            .holds
    );
    assert!(
        !store
            .enter_group(&member(3, None, Queue))
            .await
            .unwrap()
            .holds
    );
    store.leave_group("deploy-prod", "alpha/1").await.unwrap();
    store.leave_group("deploy-prod", "alpha/1").await.unwrap();
    // The third asks first; the second, ahead of it, gets the slot.
    assert!(
        !store
            .enter_group(&member(3, None, Queue))
            .await
            .unwrap()
            .holds
    );
    assert!(
        store
            .enter_group(&member(2, None, Queue))
            .await
            .unwrap()
            .holds
    );
    // The second's run completes without leaving (its host died after the end): the
    // slot is free again.
    store.apply(&[complete("alpha", 2)]).await.unwrap();
    let t = store.enter_group(&member(3, None, Queue)).await.unwrap();
    assert!(t.holds && t.ahead.is_empty(), "{t:?}");
    // Groups are apart; a task is a member of its own.
    assert!(
        store
            .enter_group(&crate::GroupEntry {
                group: "deploy-staging".into(),
                ..member(1, Some("deploy"), Queue)
            })
            .await
            .unwrap()
            .holds
    );
}

/// Under cancel-in-progress a newcomer supersedes the waiting members and the oldest
/// holder, who keeps its slot until it leaves; a member whose run is not in the store
/// holds no place.
pub async fn groups_cancel_in_progress_supersedes(store: &DynRunStore) {
    if !store.keeps_groups() {
        return;
    }
    use crate::ConcurrencyPolicy::CancelInProgress;
    store
        .apply(&[
            created("alpha", 1),
            created("alpha", 2),
            created("alpha", 3),
        ])
        .await
        .unwrap();
    assert!(
        store
            .enter_group(&member(1, Some("deploy"), CancelInProgress))
            .await
            .unwrap()
            .holds
    );
    store
        .enter_group(&member(2, Some("deploy"), CancelInProgress))
        .await
        .unwrap();
    let third = store
        .enter_group(&member(3, Some("deploy"), CancelInProgress))
        .await
        .unwrap();
    assert!(!third.holds);
    assert_eq!(third.ahead, ["alpha/1/deploy"]);
    let first = store
        .enter_group(&member(1, Some("deploy"), CancelInProgress))
        .await
        .unwrap();
    assert!(first.holds && first.superseded, "{first:?}");
    let second = store
        .enter_group(&member(2, Some("deploy"), CancelInProgress))
        .await
        .unwrap();
    assert!(!second.holds && second.superseded, "{second:?}");
    store
        .leave_group("deploy-prod", "alpha/1/deploy")
        .await
        .unwrap();
    let third = store
        .enter_group(&member(3, Some("deploy"), CancelInProgress))
        .await
        .unwrap();
    assert!(third.holds && !third.superseded, "{third:?}");
    // Run 9 was never created: its member is dropped by the next entry.
    store
        .enter_group(&crate::GroupEntry {
            group: "other".into(),
            ..member(9, None, crate::ConcurrencyPolicy::Queue)
        })
        .await
        .unwrap();
    let t = store
        .enter_group(&crate::GroupEntry {
            group: "other".into(),
            ..member(3, None, crate::ConcurrencyPolicy::Queue)
        })
        .await
        .unwrap();
    assert!(t.holds, "{t:?}");
}

/// A complete run is deleted whole (run, tasks, events), awaits cleanup until told it
/// is done, and its number is never handed out again; an unfinished run is refused
/// and kept. (A store that deletes nothing says `NotSupported`, and is not asked.)
pub async fn delete_run_removes_it_whole_and_keeps_its_number(store: &DynRunStore) {
    store
        .apply(&[created("alpha", 1), created("alpha", 2), created("beta", 1)])
        .await
        .unwrap();
    match store.delete_run("alpha", 1).await {
        Err(StoreError::NotSupported { .. }) => return,
        Err(StoreError::RunNotComplete { pipeline, run, .. }) => {
            assert_eq!((pipeline.as_str(), run), ("alpha", 1));
        }
        other => panic!("an unfinished run deleted: {other:?}"),
    }
    assert!(
        store.get_run("alpha", 1).await.is_ok(),
        "the refused run is kept"
    );
    store
        .apply(&[
            complete("alpha", 1),
            complete("alpha", 2),
            RunChange::Event {
                pipeline: "alpha".into(),
                run: 2,
                event: Event::Run {
                    state: RunState::Complete,
                    status: RunStatus::Successful,
                    at: at(3),
                },
            },
        ])
        .await
        .unwrap();
    store.delete_run("alpha", 2).await.unwrap();
    assert!(is_not_found(store.get_run("alpha", 2).await, "run"));
    assert!(is_not_found(store.events("alpha", 2).await, "run"));
    assert!(store.get_task("alpha", 2, "build").await.is_err());
    assert!(is_not_found(store.delete_run("alpha", 2).await, "run"));
    let left: Vec<u64> = store
        .list_runs("alpha")
        .await
        .unwrap()
        .iter()
        .map(|r| r.run_id)
        .collect();
    assert_eq!(left, [1]);
    // The newest number was deleted: it is not handed out again.
    assert_eq!(store.next_run_id("alpha").await.unwrap(), 3);
    store.delete_run("alpha", 1).await.unwrap();
    assert_eq!(store.next_run_id("alpha").await.unwrap(), 3);
    assert_eq!(
        store.last_run_ids().await.unwrap(),
        [("alpha".to_string(), 2), ("beta".to_string(), 1)]
    );
    assert_eq!(
        store.cleanups().await.unwrap(),
        [("alpha".to_string(), 2), ("alpha".to_string(), 1)]
    );
    store.cleanup_done("alpha", 2).await.unwrap();
    store.cleanup_done("alpha", 9).await.unwrap();
    assert_eq!(store.cleanups().await.unwrap(), [("alpha".to_string(), 1)]);
    // Another pipeline is untouched, and a new run takes the next number.
    assert!(store.get_run("beta", 1).await.is_ok());
    store.apply(&[created("alpha", 3)]).await.unwrap();
    assert_eq!(store.next_run_id("alpha").await.unwrap(), 4);
}

/// What a store setup expression of [`run_store_tests!`](crate::run_store_tests) gives:
/// any [`RunStore`](crate::RunStore), or a fixture that owns a store and what it needs
/// (a temporary directory removed on drop).
pub trait StoreFixture {
    /// The store under test.
    fn store(&self) -> &DynRunStore;
}

impl<T: crate::RunStore> StoreFixture for T {
    fn store(&self) -> &DynRunStore {
        self
    }
}

/// Generates one `#[tokio::test]` per behaviour case, each on a fresh store made by
/// `$make` (an expression giving a future of a [`StoreFixture`]).
#[macro_export]
macro_rules! run_store_tests {
    ($make:expr) => {
        $crate::run_store_tests!(@cases $make;
            create_get_and_list,
            duplicate_run_is_already_exists,
            task_details_round_trip,
            run_change_keeps_tasks,
            events_in_order,
            unfinished_runs_with_spec,
            batch_is_all_or_nothing,
            pipelines_registered_without_credentials,
            concurrent_writers,
            groups_hold_in_order_and_free_on_leave_or_completion,
            groups_cancel_in_progress_supersedes,
            delete_run_removes_it_whole_and_keeps_its_number,
        );
    };
    (@cases $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[::tokio::test]
            async fn $case() {
                let fixture = $make.await;
                $crate::testing::runstore::$case(
                    $crate::testing::runstore::StoreFixture::store(&fixture),
                )
                .await;
            }
        )*
    };
}
