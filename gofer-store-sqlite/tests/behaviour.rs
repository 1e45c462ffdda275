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

#[cfg(unix)]
#[tokio::test]
async fn the_file_and_its_wal_are_created_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new();
    let store = SqliteRunStore::open_dir(&dir.0).unwrap();
    store.put_pipeline(&suite::pipeline("alpha")).await.unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(
        mode(store.path()),
        0o600,
        "the run store holds every run's details"
    );
    let wal = PathBuf::from(format!("{}-wal", store.path().display()));
    assert_eq!(mode(&wal), 0o600);
}

fn raw_set(path: &std::path::Path, sql: &str) {
    let c = rusqlite::Connection::open(path).unwrap();
    c.execute_batch(sql).unwrap();
}

#[tokio::test]
async fn a_newer_schema_is_refused_with_a_typed_error() {
    let dir = TempDir::new();
    let path = dir.0.join("runs.db");
    drop(SqliteRunStore::open(&path).unwrap());
    raw_set(&path, "PRAGMA user_version = 99;");
    let err = SqliteRunStore::open(&path).unwrap_err();
    let gofer_core::StoreError::Unusable { source, .. } = &err else {
        panic!("not Unusable: {err}");
    };
    let open = source
        .downcast_ref::<gofer_sqlite::OpenError>()
        .expect("an OpenError");
    assert!(
        matches!(
            open,
            gofer_sqlite::OpenError::NewerSchema {
                found: 99,
                supported: 5,
                ..
            }
        ),
        "{open}"
    );
}

/// The store's id is made with the file and kept by it; a file made again in the same
/// place (the old one deleted) has another.
#[tokio::test]
async fn the_store_id_is_the_files_own() {
    let dir = TempDir::new();
    let path = dir.0.join("runs.db");
    let first = SqliteRunStore::open(&path).unwrap().id().to_string();
    assert_eq!(first.len(), 32, "{first:?}");
    assert!(first.bytes().all(|b| b.is_ascii_hexdigit()), "{first:?}");
    assert_eq!(SqliteRunStore::open(&path).unwrap().id(), first);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let again = SqliteRunStore::open(&path).unwrap().id().to_string();
    assert_eq!(again.len(), 32);
    assert_ne!(again, first);
}

#[tokio::test]
async fn a_file_from_before_application_ids_keeps_its_runs() {
    let dir = TempDir::new();
    let path = dir.0.join("runs.db");
    {
        let store = SqliteRunStore::open(&path).unwrap();
        store.put_pipeline(&suite::pipeline("alpha")).await.unwrap();
    }
    // What the earlier code wrote: user_version 1, no application id.
    raw_set(&path, "PRAGMA application_id = 0;");
    let store = SqliteRunStore::open(&path).unwrap();
    assert!(store.get_pipeline("alpha").await.is_ok());
}

#[tokio::test]
async fn an_empty_or_truncated_file_is_not_an_empty_store() {
    let dir = TempDir::new();
    let path = dir.0.join("runs.db");
    std::fs::write(&path, b"").unwrap();
    let err = SqliteRunStore::open(&path).unwrap_err();
    assert!(
        matches!(err, gofer_core::StoreError::Unusable { .. }),
        "{err}"
    );
    assert!(!err.is_retryable());
}
