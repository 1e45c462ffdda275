//! The ObjectStore behaviour suite against the in-memory store of gofer-core and
//! the SQLite store of this crate.

use gofer_core::testing::stores as testing;
use gofer_core::{DynObjectStore, InMemoryObjectStore};
use gofer_secrets::SqliteObjectStore;
use tempfile::TempDir;

const KEEP_RUNS: usize = 3;
const MAX_OBJECTS: usize = 5;

type Made = (Box<DynObjectStore>, Option<TempDir>, Option<usize>);

async fn memory() -> Made {
    (
        Box::new(InMemoryObjectStore::new().keep_runs(KEEP_RUNS)),
        None,
        None,
    )
}

async fn sqlite() -> Made {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteObjectStore::open(dir.path().join("objects.db"))
        .await
        .expect("open")
        .keep_runs(KEEP_RUNS)
        .max_pipeline_objects(MAX_OBJECTS);
    (Box::new(store), Some(dir), Some(MAX_OBJECTS))
}

macro_rules! object_suite {
    ($name:ident, $make:path) => {
        mod $name {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn pipeline_objects() {
                let (store, _dir, _) = $make().await;
                testing::pipeline_objects(&*store).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn run_objects() {
                let (store, _dir, _) = $make().await;
                testing::run_objects(&*store).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn object_errors() {
                let (store, _dir, _) = $make().await;
                testing::object_errors(&*store).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn run_expiry() {
                let (store, _dir, _) = $make().await;
                testing::run_expiry(&*store, KEEP_RUNS).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn pipeline_object_limit() {
                let (store, _dir, limit) = $make().await;
                testing::pipeline_object_limit(&*store, limit).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn concurrent_access() {
                let (store, _dir, _) = $make().await;
                testing::object_concurrent_access(&*store).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn all_cases_share_one_store() {
                let (store, _dir, limit) = $make().await;
                testing::pipeline_objects(&*store).await;
                testing::run_objects(&*store).await;
                testing::run_expiry(&*store, KEEP_RUNS).await;
                testing::pipeline_object_limit(&*store, limit).await;
                testing::object_concurrent_access(&*store).await;
            }
        }
    };
}

object_suite!(memory_store, memory);
object_suite!(sqlite_store, sqlite);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_object_quota_in_memory() {
    let store = InMemoryObjectStore::new().run_quota(gofer_core::RunObjectQuota::new(3, 10));
    testing::run_object_quota(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_object_quota_in_sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteObjectStore::open(dir.path().join("objects.db"))
        .await
        .expect("open")
        .run_quota(gofer_core::RunObjectQuota::new(3, 10));
    testing::run_object_quota(&store).await;
}
