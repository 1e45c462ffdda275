//! Two connections on one database file (two host processes sharing a data
//! directory): every write of each lands, none fails with "database is locked".

use std::sync::Arc;

use gofer_core::testing::runstore::{created, new_run};
use gofer_core::{RunChange, RunHeader, RunStore};
use gofer_store_sqlite::SqliteRunStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_connections_writing_at_once_never_fail_busy() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("runs.sqlite3");
    let a = Arc::new(SqliteRunStore::open(&path).expect("open a"));
    let b = Arc::new(SqliteRunStore::open(&path).expect("open b"));
    let write = |store: Arc<SqliteRunStore>, pipeline: &'static str| {
        tokio::spawn(async move {
            for run in 1..=20u64 {
                store.apply(&[created(pipeline, run)]).await?;
                for _ in 0..10 {
                    // Each batch reads (does the run exist?) before it writes.
                    store
                        .apply(&[RunChange::Run(RunHeader::from(&new_run(pipeline, run)))])
                        .await?;
                }
            }
            Ok::<_, gofer_core::StoreError>(())
        })
    };
    let (ra, rb) = tokio::join!(write(a.clone(), "alpha"), write(b.clone(), "beta"));
    ra.expect("task a").expect("writes of connection a");
    rb.expect("task b").expect("writes of connection b");
    assert_eq!(a.list_runs("beta").await.expect("list").len(), 20);
    assert_eq!(b.list_runs("alpha").await.expect("list").len(), 20);
}
