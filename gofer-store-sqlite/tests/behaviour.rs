//! The run store behaviour suite against a SQLite file, plus what only a file store
//! can show: reopening keeps everything, secrets never reach the file.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use gofer_core::testing::runstore as suite;
use gofer_core::{RunChange, RunStore};
use gofer_store_sqlite::SqliteRunStore;

/// A fresh directory under the system temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "gofer-store-sqlite-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A store on a fresh file, with its directory (removed on drop).
struct Fixture {
    store: SqliteRunStore,
    _dir: TempDir,
}

impl suite::StoreFixture for Fixture {
    fn store(&self) -> &gofer_core::DynRunStore {
        &self.store
    }
}

async fn fresh() -> Fixture {
    let dir = TempDir::new();
    Fixture {
        store: SqliteRunStore::open_dir(&dir.0).unwrap(),
        _dir: dir,
    }
}

mod suite_on_sqlite {
    use super::*;
    gofer_core::run_store_tests!(fresh());
}

#[tokio::test]
async fn reopening_keeps_everything() {
    let dir = TempDir::new();
    {
        let store = SqliteRunStore::open_dir(&dir.0).unwrap();
        store
            .apply(&[suite::created("alpha", 1), suite::created("alpha", 2)])
            .await
            .unwrap();
        store.put_pipeline(&suite::pipeline("alpha")).await.unwrap();
    }
    let store = SqliteRunStore::open_dir(&dir.0).unwrap();
    assert_eq!(store.next_run_id("alpha").await.unwrap(), 3);
    assert_eq!(
        store.get_run("alpha", 1).await.unwrap(),
        suite::new_run("alpha", 1)
    );
    assert_eq!(store.unfinished_runs().await.unwrap().len(), 2);
    assert_eq!(
        store.get_pipeline("alpha").await.unwrap(),
        suite::pipeline("alpha")
    );
}

#[tokio::test]
async fn registry_password_never_reaches_the_file() {
    let dir = TempDir::new();
    let store = SqliteRunStore::open_dir(&dir.0).unwrap();
    let p = suite::pipeline("alpha").task(
        gofer_core::Task::new("deploy", "localhost:5001/private/busybox")
            .registry_auth("gofer", "pw-must-not-be-stored"),
    );
    store.put_pipeline(&p).await.unwrap();
    store
        .apply(&[RunChange::Created {
            run: suite::new_run("alpha", 1),
            spec: gofer_core::RunSpec::new("engine1", &p, &gofer_core::RunOptions::new()),
        }])
        .await
        .unwrap();
    drop(store);
    for entry in std::fs::read_dir(&dir.0).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        assert!(
            !bytes.windows(21).any(|w| w == b"pw-must-not-be-stored"),
            "password found in the database files"
        );
    }
}

#[tokio::test]
async fn open_reports_the_failing_path() {
    let dir = TempDir::new();
    let file = dir.0.join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let err = SqliteRunStore::open(file.join("db.sqlite3")).unwrap_err();
    assert!(
        matches!(
            err,
            gofer_core::StoreError::Backend {
                store: "sqlite",
                ..
            }
        ),
        "{err}"
    );
}
