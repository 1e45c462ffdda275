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

/// Two connections entering one concurrency group at once (two `gofer run` processes):
/// every entry lands, exactly one member holds the slot, and the others follow in
/// arrival order as each holder leaves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_connections_share_one_concurrency_group() {
    use gofer_core::{ConcurrencyPolicy, GroupEntry};
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("runs.sqlite3");
    let a = Arc::new(SqliteRunStore::open(&path).expect("open a"));
    let b = Arc::new(SqliteRunStore::open(&path).expect("open b"));
    let entry = |pipeline: &str, run: u64| GroupEntry {
        group: "deploy".into(),
        pipeline: pipeline.into(),
        run,
        task: None,
        limit: 1,
        policy: ConcurrencyPolicy::Queue,
    };
    for run in 1..=10 {
        a.apply(&[created("alpha", run)]).await.expect("alpha run");
        b.apply(&[created("beta", run)]).await.expect("beta run");
    }
    let enter_all = |store: Arc<SqliteRunStore>, pipeline: &'static str| {
        tokio::spawn(async move {
            let mut held = 0;
            for run in 1..=10 {
                if store.enter_group(&entry(pipeline, run)).await?.holds {
                    held += 1;
                }
            }
            Ok::<_, gofer_core::StoreError>(held)
        })
    };
    let (ha, hb) = tokio::join!(enter_all(a.clone(), "alpha"), enter_all(b.clone(), "beta"));
    let held =
        ha.expect("task a").expect("entries of a") + hb.expect("task b").expect("entries of b");
    assert_eq!(held, 1, "one slot, one holder");
    // Hand the slot on 19 times: each time exactly one member holds it.
    let mut order = Vec::new();
    for _ in 0..20 {
        let mut holder = None;
        for (store, pipeline) in [(&a, "alpha"), (&b, "beta")] {
            for run in 1..=10 {
                let t = store
                    .enter_group(&entry(pipeline, run))
                    .await
                    .expect("enter");
                if t.holds {
                    assert!(holder.is_none(), "two holders");
                    holder = Some(gofer_core::member_name(pipeline, run, None));
                }
            }
        }
        let holder = holder.expect("a holder");
        b.leave_group("deploy", &holder).await.expect("leave");
        order.push(holder);
    }
    order.sort();
    order.dedup();
    assert_eq!(order.len(), 20, "every member held the slot once");
}
