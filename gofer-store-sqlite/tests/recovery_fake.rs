//! Crash recovery through a SQLite file and a file log sink, on the FakeScheduler:
//! the first host dies mid-run, a second one opens the same data directory.
//!
//! The first task runs until the test stops it (it traps the stop, prints `after` and
//! exits 0), so it is still running when the second host recovers however slow the
//! machine is: the fake's containers keep real time, and a task that ended on a timer
//! while the second host was still opening the file was collected instead of
//! re-attached on a loaded machine.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use gofer_core::fake::{Behaviour, FakeScheduler};
use gofer_core::naming::engine_filter;
use gofer_core::{
    Event, Pipeline, RunOptions, RunState, RunStatus, RunStore, Scheduler, Task, TaskState,
};
use gofer_engine::{Engine, FileLogSink, LogKey, LogSink, RecoveryAction};
use gofer_store_sqlite::SqliteRunStore;

struct DataDir(PathBuf);

impl Drop for DataDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn engine(fake: &FakeScheduler, dir: &Path) -> (Engine, SqliteRunStore, FileLogSink) {
    let store = SqliteRunStore::open_dir(dir).unwrap();
    let sink = FileLogSink::new(dir.join("logs"));
    let engine = Engine::builder(Arc::new(fake.clone()))
        .instance_id("sqlfake")
        .log_sink(Arc::new(sink.clone()))
        .run_store(Arc::new(store.clone()))
        .build()
        .unwrap();
    (engine, store, sink)
}

#[tokio::test]
async fn a_run_survives_its_host_through_the_sqlite_file() {
    let dir =
        DataDir(std::env::temp_dir().join(format!("gofer-sqlite-recovery-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&dir.0);
    let fake = FakeScheduler::new()
        .image(
            "held",
            Behaviour::new()
                .stdout("before\n")
                .then_run_until_stopped()
                .trap_term(Behaviour::new().stdout("after\n").exit_code(0)),
        )
        .image(
            "quick",
            Behaviour::new().stdout("before\n").stdout("after\n"),
        );
    let pipeline = Pipeline::new("durable", "durable").tasks([
        Task::new("first", "held"),
        Task::new("second", "quick").depends_on("first", gofer_core::RequiredParentStatus::Success),
    ]);

    {
        let (a, store, _) = engine(&fake, &dir.0);
        a.recover().await.unwrap();
        a.register_pipeline(&pipeline).await.unwrap();
        let h = a.start_run(&pipeline, RunOptions::new()).unwrap();
        let mut events = h.events();
        while let Some(e) = events.next().await {
            if matches!(&e, Event::Task { task_id, state: TaskState::Running, .. } if &**task_id == "first")
            {
                break;
            }
        }
        a.simulate_crash().await;
        drop(store);
    }

    let (b, store, sink) = engine(&fake, &dir.0);
    let report = b.recover().await.unwrap();
    assert_eq!(
        report.action("durable", 1, "first"),
        Some(RecoveryAction::Reattached)
    );
    // Re-attached: now the first task may end (its trap prints the rest of its log).
    let held = fake.list(&engine_filter("sqlfake")).await.unwrap();
    assert_eq!(held.len(), 1, "only the first task's container: {held:?}");
    fake.stop(&held[0].id, Duration::from_secs(10))
        .await
        .unwrap();
    let run = report.runs[0].wait().await.unwrap();
    assert_eq!(run.status, RunStatus::Successful, "{run:?}");
    let key = LogKey::new("durable", 1, "first");
    let (lines, _) = sink.read(&key, 0, 100).unwrap();
    let text: Vec<_> = lines.iter().map(|l| l.text().into_owned()).collect();
    assert_eq!(text, ["before", "after"]);
    assert_eq!(fake.containers(), 0);

    // A third host sees the finished run, with where its logs live.
    drop((b, store));
    let store = SqliteRunStore::open_dir(&dir.0).unwrap();
    let stored = store.get_run("durable", 1).await.unwrap();
    assert_eq!(
        (stored.state, stored.status),
        (RunState::Complete, RunStatus::Successful)
    );
    let d = store.get_task("durable", 1, "second").await.unwrap();
    assert_eq!(
        d.log.as_deref(),
        Some(
            sink.path(&LogKey::new("durable", 1, "second"))
                .display()
                .to_string()
                .as_str()
        )
    );
    assert_eq!(store.get_pipeline("durable").await.unwrap(), pipeline);
    assert!(store.unfinished_runs().await.unwrap().is_empty());
    assert_eq!(store.next_run_id("durable").await.unwrap(), 2);
}
