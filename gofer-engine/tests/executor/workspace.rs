//! The shared workspace on the FakeScheduler: one labelled volume per run, mounted at
//! the documented path in every task, removed with the run whatever the end, reaped by
//! recovery.

use std::sync::Arc;
use std::time::Duration;

use gofer_core::fake::{Behaviour, FakeScheduler};
use gofer_core::naming::{workspace_labels, workspace_volume_name};
use gofer_core::RequiredParentStatus::Success;
use gofer_core::{
    Capabilities, InMemoryRunStore, MountSource, Pipeline, RunOptions, RunStatus, Scheduler,
    StatusReason, Task, TaskState, TaskStatus, VolumeScope, VolumeSpec, WORKSPACE_PATH,
};
use gofer_engine::InMemoryLogSink;

use crate::common::*;
use crate::recovery::host;

fn fake() -> FakeScheduler {
    FakeScheduler::new()
        .image("ok", Behaviour::new().stdout("fine\n"))
        .image("fail", Behaviour::exit(3))
        .image("slow", Behaviour::new().sleep(Duration::from_secs(10)))
        .image("forever", Behaviour::run_until_stopped())
}

fn pipeline(first: &str) -> Pipeline {
    Pipeline::new("wsp", "wsp").workspace(true).tasks([
        Task::new("build", first),
        Task::new("test", "ok").depends_on("build", Success),
    ])
}

#[tokio::test(start_paused = true)]
async fn every_task_mounts_the_runs_volume_which_goes_with_the_run() {
    let fake = fake();
    let h = engine(&fake)
        .start_run(&pipeline("ok"), RunOptions::new())
        .unwrap();
    h.wait_task("build", TaskState::Running).await.unwrap();
    let volume = workspace_volume_name("test", "wsp", 1);
    assert_eq!(fake.volumes(), std::slice::from_ref(&volume));
    let run = finish(&h).await;
    assert_eq!(run.status, RunStatus::Successful);
    for t in ["build", "test"] {
        let spec = fake.request(&cname("wsp", 1, t)).unwrap();
        assert_eq!(spec.mounts.len(), 1, "{t}");
        let m = &spec.mounts[0];
        assert_eq!(m.target, WORKSPACE_PATH);
        assert!(!m.read_only);
        assert!(
            matches!(&m.source, MountSource::Volume(v) if *v == volume),
            "{m:?}"
        );
    }
    assert!(fake.volumes().is_empty(), "removed with the run");
    assert_eq!(fake.containers(), 0);
    // A pipeline without a workspace mounts nothing and makes no volume.
    let p = Pipeline::new("nows", "nows").task(Task::new("only", "ok"));
    finish(&engine(&fake).start_run(&p, RunOptions::new()).unwrap()).await;
    assert!(fake
        .request(&cname("nows", 1, "only"))
        .unwrap()
        .mounts
        .is_empty());
    assert!(fake.volumes().is_empty());
}

#[tokio::test(start_paused = true)]
async fn the_volume_is_removed_on_failure_and_on_cancel() {
    let fake = fake();
    let e = engine(&fake);
    let run = finish(&e.start_run(&pipeline("fail"), RunOptions::new()).unwrap()).await;
    assert_eq!(run.status, RunStatus::Failed);
    assert!(fake.volumes().is_empty());
    let h = e
        .start_run(&pipeline("forever"), RunOptions::new())
        .unwrap();
    h.wait_task("build", TaskState::Running).await.unwrap();
    assert_eq!(fake.volumes().len(), 1);
    h.cancel(Duration::from_secs(1));
    assert_eq!(finish(&h).await.status, RunStatus::Cancelled);
    assert!(fake.volumes().is_empty());
    assert_eq!(fake.containers(), 0);
}

#[tokio::test(start_paused = true)]
async fn without_the_capability_or_with_node_local_volumes_the_tasks_fail_naming_it() {
    for (caps, needle) in [
        (
            Capabilities::none().with_mounts(true),
            "capability `volumes`",
        ),
        (
            Capabilities::none()
                .with_mounts(true)
                .with_volumes(true)
                .with_volume_scope(VolumeScope::Node),
            "one node",
        ),
    ] {
        let fake = fake().with_capabilities(caps);
        let run = finish(
            &engine(&fake)
                .start_run(&pipeline("ok"), RunOptions::new())
                .unwrap(),
        )
        .await;
        assert_eq!(run.status, RunStatus::Failed);
        for t in &run.tasks {
            assert_eq!(
                (t.status, t.reason),
                (TaskStatus::Failed, Some(StatusReason::SchedulerError))
            );
            assert!(t.message.as_deref().unwrap().contains(needle), "{t:?}");
        }
        assert!(fake.requests().is_empty(), "no container started");
    }
}

#[tokio::test(start_paused = true)]
async fn recovery_keeps_an_unfinished_runs_volume_and_reaps_a_finished_runs() {
    let fake = fake();
    let store = InMemoryRunStore::new();
    let sink = InMemoryLogSink::new();
    let (a, _) = host(Arc::new(fake.clone()), &store, &sink).await;
    let h = a
        .engine
        .start_run(&pipeline("slow"), RunOptions::new())
        .unwrap();
    h.wait_task("build", TaskState::Running).await.unwrap();
    a.engine.simulate_crash().await;
    // A volume a host left behind for a run that is over (its removal was lost).
    fake.create_volume(
        VolumeSpec::new(workspace_volume_name("test", "old", 9))
            .labels(workspace_labels("test", "old", 9)),
    )
    .await
    .unwrap();
    let unfinished = workspace_volume_name("test", "wsp", 1);
    let (_b, report) = host(Arc::new(fake.clone()), &store, &sink).await;
    assert!(
        report
            .reaped
            .contains(&workspace_volume_name("test", "old", 9)),
        "{:?}",
        report.reaped
    );
    assert_eq!(
        fake.volumes(),
        std::slice::from_ref(&unfinished),
        "the resumed run keeps its workspace"
    );
    let run = finish(&report.runs[0]).await;
    assert_eq!(run.status, RunStatus::Successful, "{run:?}");
    assert!(fake.volumes().is_empty());
    assert_eq!(fake.containers(), 0);
}
