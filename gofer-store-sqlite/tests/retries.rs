//! Retried tasks in the SQLite run store: each finished attempt is a row of its own
//! (with its container and log), read back into the task's record; a file of schema
//! version 1 is migrated in place and keeps its runs.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use gofer_core::fake::{Behaviour, FakeScheduler};
use gofer_core::naming::task_container_name_attempt;
use gofer_core::{Pipeline, RetryPolicy, RunOptions, RunStatus, RunStore, Task, TaskStatus};
use gofer_engine::{Engine, FileLogSink, LogKey, LogSink};
use gofer_store_sqlite::SqliteRunStore;

struct DataDir(PathBuf);

impl Drop for DataDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn data_dir(name: &str) -> DataDir {
    let d = std::env::temp_dir().join(format!("gofer-sqlite-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    DataDir(d)
}

#[tokio::test]
async fn each_attempt_is_a_row_with_its_container_and_log() {
    let dir = data_dir("attempts");
    let name = |n| task_container_name_attempt("sqlretry", "retried", 1, "flaky", n);
    let fake = FakeScheduler::new()
        .image("flaky", Behaviour::new().stdout("no\n").exit_code(2))
        .on_name(&name(3), Behaviour::new().stdout("yes\n"));
    let store = SqliteRunStore::open_dir(&dir.0).unwrap();
    let sink = FileLogSink::new(dir.0.join("logs"));
    let engine = Engine::builder(Arc::new(fake.clone()))
        .instance_id("sqlretry")
        .log_sink(Arc::new(sink.clone()))
        .run_store(Arc::new(store.clone()))
        .build()
        .unwrap();
    let p = Pipeline::new("retried", "retried").task(Task::new("flaky", "flaky").retry(
        RetryPolicy::new(3).backoff(Duration::from_millis(10), 2.0, Duration::from_millis(50)),
    ));
    engine.recover().await.unwrap();
    engine.register_pipeline(&p).await.unwrap();
    let run = engine
        .start_run(&p, RunOptions::new())
        .unwrap()
        .wait()
        .await
        .unwrap();
    assert_eq!(run.status, RunStatus::Successful);
    drop(engine);

    // Read back through a new connection: the same record, attempts included.
    let again = SqliteRunStore::open_dir(&dir.0).unwrap();
    let stored = again.get_run("retried", 1).await.unwrap();
    assert_eq!(stored, run);
    let t = again.get_task("retried", 1, "flaky").await.unwrap();
    assert_eq!((t.execution.attempt, t.execution.attempts.len()), (3, 2));
    assert_eq!(t.execution.status, TaskStatus::Successful);
    // One row per finished attempt, with its container and its own log.
    let c = rusqlite::Connection::open(again.path()).unwrap();
    let rows: Vec<(u32, String, Option<String>)> = c
        .prepare("SELECT attempt, container_name, log FROM task_attempts ORDER BY attempt")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(rows.len(), 2);
    for (i, (attempt, container, log)) in rows.iter().enumerate() {
        let n = i as u32 + 1;
        assert_eq!((*attempt, container.as_str()), (n, name(n).as_str()));
        let key = LogKey::attempt("retried", 1, "flaky", n);
        assert_eq!(log.as_deref(), sink.locate(&key).as_deref());
        let (lines, _) = sink.read(&key, 0, 10).unwrap();
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].text(), "no");
    }
    let current: u32 = c
        .query_row("SELECT attempt FROM tasks WHERE task = 'flaky'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(current, 3);
    assert_eq!(fake.containers(), 0);
}

#[tokio::test]
async fn a_version_1_file_is_migrated_and_keeps_its_runs() {
    let dir = data_dir("migrate");
    let path = dir.0.join("runs.db");
    {
        let store = SqliteRunStore::open(&path).unwrap();
        let fake = FakeScheduler::new().image("ok", Behaviour::new().stdout("fine\n"));
        let engine = Engine::builder(Arc::new(fake))
            .instance_id("sqlmig")
            .run_store(Arc::new(store))
            .build()
            .unwrap();
        let p = Pipeline::new("old", "old").task(Task::new("only", "ok"));
        engine.recover().await.unwrap();
        engine.register_pipeline(&p).await.unwrap();
        let h = engine.start_run(&p, RunOptions::new()).unwrap();
        h.wait().await.unwrap();
    }
    // Make it a version 1 file: what the code before attempts wrote.
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch(
            "DROP TABLE store; DROP TABLE task_attempts; ALTER TABLE tasks DROP COLUMN attempt; PRAGMA user_version = 1;",
        )
        .unwrap();
    }
    let store = SqliteRunStore::open(&path).unwrap();
    let run = store.get_run("old", 1).await.unwrap();
    assert_eq!(run.status, RunStatus::Successful);
    assert_eq!((run.tasks[0].attempt, run.tasks[0].attempts.len()), (1, 0));
    let c = rusqlite::Connection::open(&path).unwrap();
    let version: u32 = c
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 5);
    // It held runs: the empty id, so nothing derived from the store changes.
    assert_eq!(store.id(), "");
    let attempt: u32 = c
        .query_row("SELECT attempt FROM tasks", [], |r| r.get(0))
        .unwrap();
    assert_eq!(attempt, 1);
}
