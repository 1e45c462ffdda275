//! [`SqliteObjectStore`]: pipeline and run objects in one SQLite file.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use gofer_core::{ObjectStore, RunObjectQuota, StoreError};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use tracing::Instrument;

use crate::db::SQLITE;
use crate::db::{self, backend, Shared};
use crate::validate::{check_key, check_pipeline, pipeline_scope, run_scope};

/// Default of [`SqliteObjectStore::max_pipeline_objects`].
pub const DEFAULT_MAX_PIPELINE_OBJECTS: usize = 50;
/// Default of [`SqliteObjectStore::keep_runs`] (as `InMemoryObjectStore`).
pub const DEFAULT_KEEP_RUNS: usize = 20;

/// A persistent [`ObjectStore`] in one SQLite file (WAL mode).
///
/// - Each pipeline keeps at most [`max_pipeline_objects`](Self::max_pipeline_objects)
///   pipeline objects; a write beyond that evicts the least recently written ones
///   (an overwrite counts as a write).
/// - Run objects of the last [`keep_runs`](Self::keep_runs) finished runs of each
///   pipeline are kept; [`ObjectStore::run_finished`] deletes older runs' objects.
///   Objects of runs never reported finished are kept.
///
/// It may share a file with a [`SqliteSecretStore`](crate::SqliteSecretStore) (the
/// tables differ). Values are stored as given, not encrypted: put secrets in the
/// secret store. Clones share one connection; methods need a Tokio runtime.
#[derive(Clone)]
pub struct SqliteObjectStore {
    shared: Shared<Connection>,
    path: Arc<PathBuf>,
    max_pipeline_objects: usize,
    keep_runs: usize,
    quota: RunObjectQuota,
}

impl fmt::Debug for SqliteObjectStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteObjectStore")
            .field("path", &self.path)
            .field("max_pipeline_objects", &self.max_pipeline_objects)
            .field("keep_runs", &self.keep_runs)
            .field("quota", &self.quota)
            .finish()
    }
}

fn run_param(pipeline: &str, run: u64) -> Result<i64, StoreError> {
    i64::try_from(run).map_err(|_| StoreError::InvalidKey {
        store: SQLITE,
        key: run.to_string(),
        message: format!(
            "run number of pipeline {pipeline:?} must be at most {}",
            i64::MAX
        ),
    })
}

fn not_found(kind: &'static str, scope: Option<String>, key: &str) -> StoreError {
    StoreError::NotFound {
        store: SQLITE,
        kind,
        scope,
        key: key.to_string(),
    }
}

impl SqliteObjectStore {
    /// Opens the store at `path`, creating the file (mode `0600`) and its tables when
    /// the file does not exist, with the default limits.
    ///
    /// # Errors
    /// [`StoreError::Unusable`] when the file exists but is damaged (empty, truncated,
    /// a garbage header or page), is not a gofer-secrets file, or has a newer schema;
    /// [`StoreError::Backend`] when it cannot be opened.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let p = path.clone();
        let conn = tokio::task::spawn_blocking(move || db::open(SQLITE, &p))
            .await
            .map_err(|e| StoreError::Backend {
                store: SQLITE,
                operation: "open",
                source: Box::new(e),
            })??;
        Ok(Self {
            shared: Arc::new(Mutex::new(conn)),
            path: Arc::new(path),
            max_pipeline_objects: DEFAULT_MAX_PIPELINE_OBJECTS,
            keep_runs: DEFAULT_KEEP_RUNS,
            quota: RunObjectQuota::default(),
        })
    }

    /// Sets how many pipeline objects each pipeline keeps (at least 1).
    #[must_use]
    pub fn max_pipeline_objects(mut self, n: usize) -> Self {
        self.max_pipeline_objects = n.max(1);
        self
    }

    /// Sets how many finished runs per pipeline keep their objects (at least 1).
    #[must_use]
    pub fn keep_runs(mut self, n: usize) -> Self {
        self.keep_runs = n.max(1);
        self
    }

    /// Sets how much one run may keep in run objects (default
    /// [`RunObjectQuota::default`]).
    #[must_use]
    pub fn run_quota(mut self, quota: RunObjectQuota) -> Self {
        self.quota = quota;
        self
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn run<T, F>(
        &self,
        operation: &'static str,
        pipeline: &str,
        key: &str,
        f: F,
    ) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let span = tracing::debug_span!("object_store", store = SQLITE, operation, pipeline, key);
        db::blocking(SQLITE, operation, &self.shared, f)
            .instrument(span)
            .await
    }
}

fn keys(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<String>, StoreError> {
    conn.prepare_cached(sql)
        .and_then(|mut st| st.query_map(params, |r| r.get(0))?.collect())
        .map_err(backend(SQLITE, "list"))
}

fn to_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[async_trait]
impl ObjectStore for SqliteObjectStore {
    async fn get_pipeline_object(&self, pipeline: &str, key: &str) -> Result<Bytes, StoreError> {
        let (p, k) = (pipeline.to_string(), key.to_string());
        self.run("get pipeline object", pipeline, key, move |conn| {
            conn.prepare_cached(
                "SELECT value FROM gofer_pipeline_objects WHERE pipeline = ?1 AND key = ?2",
            )
            .and_then(|mut st| {
                st.query_row([&p, &k], |r| r.get::<_, Vec<u8>>(0))
                    .optional()
            })
            .map_err(backend(SQLITE, "read"))?
            .map(Bytes::from)
            .ok_or_else(|| not_found("pipeline object", pipeline_scope(&p), &k))
        })
        .await
    }

    async fn put_pipeline_object(
        &self,
        pipeline: &str,
        key: &str,
        value: Bytes,
        force: bool,
    ) -> Result<(), StoreError> {
        check_pipeline(SQLITE, pipeline)?;
        check_key(SQLITE, key)?;
        let (p, k) = (pipeline.to_string(), key.to_string());
        let limit = to_i64(self.max_pipeline_objects);
        self.run("put pipeline object", pipeline, key, move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend(SQLITE, "write"))?;
            let exists = tx
                .query_row(
                    "SELECT 1 FROM gofer_pipeline_objects WHERE pipeline = ?1 AND key = ?2",
                    [&p, &k],
                    |_| Ok(()),
                )
                .optional()
                .map_err(backend(SQLITE, "write"))?
                .is_some();
            if exists && !force {
                return Err(StoreError::AlreadyExists {
                    store: SQLITE,
                    kind: "pipeline object",
                    scope: pipeline_scope(&p),
                    key: k,
                });
            }
            tx.execute(
                "INSERT INTO gofer_pipeline_objects (pipeline, key, value, seq)
                 VALUES (?1, ?2, ?3, (SELECT COALESCE(MAX(seq), 0) + 1 FROM gofer_pipeline_objects WHERE pipeline = ?1))
                 ON CONFLICT (pipeline, key) DO UPDATE SET value = excluded.value, seq = excluded.seq",
                params![p, k, &value[..]],
            )
            .map_err(backend(SQLITE, "write"))?;
            let evicted: Vec<String> = keys(
                &tx,
                "SELECT key FROM gofer_pipeline_objects WHERE pipeline = ?1 ORDER BY seq DESC LIMIT -1 OFFSET ?2",
                params![p, limit],
            )?;
            for old in &evicted {
                tx.execute(
                    "DELETE FROM gofer_pipeline_objects WHERE pipeline = ?1 AND key = ?2",
                    [&p, old],
                )
                .map_err(backend(SQLITE, "evict"))?;
            }
            tx.commit().map_err(backend(SQLITE, "write"))?;
            if !evicted.is_empty() {
                tracing::debug!(pipeline = %p, evicted = ?evicted, "evicted the oldest pipeline objects");
            }
            Ok(())
        })
        .await
    }

    async fn list_pipeline_objects(&self, pipeline: &str) -> Result<Vec<String>, StoreError> {
        let p = pipeline.to_string();
        self.run("list pipeline objects", pipeline, "", move |conn| {
            keys(
                conn,
                "SELECT key FROM gofer_pipeline_objects WHERE pipeline = ?1 ORDER BY key",
                [&p],
            )
        })
        .await
    }

    async fn delete_pipeline_object(&self, pipeline: &str, key: &str) -> Result<(), StoreError> {
        let (p, k) = (pipeline.to_string(), key.to_string());
        self.run("delete pipeline object", pipeline, key, move |conn| {
            let n = conn
                .execute(
                    "DELETE FROM gofer_pipeline_objects WHERE pipeline = ?1 AND key = ?2",
                    [&p, &k],
                )
                .map_err(backend(SQLITE, "delete"))?;
            if n == 0 {
                return Err(not_found("pipeline object", pipeline_scope(&p), &k));
            }
            Ok(())
        })
        .await
    }

    async fn get_run_object(
        &self,
        pipeline: &str,
        run: u64,
        key: &str,
    ) -> Result<Bytes, StoreError> {
        let r = run_param(pipeline, run)?;
        let (p, k) = (pipeline.to_string(), key.to_string());
        self.run("get run object", pipeline, key, move |conn| {
            conn.prepare_cached(
                "SELECT value FROM gofer_run_objects WHERE pipeline = ?1 AND run = ?2 AND key = ?3",
            )
            .and_then(|mut st| {
                st.query_row(params![p, r, k], |row| row.get::<_, Vec<u8>>(0))
                    .optional()
            })
            .map_err(backend(SQLITE, "read"))?
            .map(Bytes::from)
            .ok_or_else(|| not_found("run object", run_scope(&p, run), &k))
        })
        .await
    }

    async fn put_run_object(
        &self,
        pipeline: &str,
        run: u64,
        key: &str,
        value: Bytes,
        force: bool,
    ) -> Result<(), StoreError> {
        check_pipeline(SQLITE, pipeline)?;
        check_key(SQLITE, key)?;
        let r = run_param(pipeline, run)?;
        let (p, k) = (pipeline.to_string(), key.to_string());
        let quota = self.quota;
        self.run("put run object", pipeline, key, move |conn| {
            // Counted and written in one transaction: another process's writes cannot
            // slip between.
            let tx = conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(backend(SQLITE, "begin"))?;
            let (others, other_bytes): (i64, i64) = tx
                .query_row(
                    "SELECT COUNT(*), COALESCE(SUM(LENGTH(value)), 0) FROM gofer_run_objects
                     WHERE pipeline = ?1 AND run = ?2 AND key != ?3",
                    params![p, r, k],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .map_err(backend(SQLITE, "read"))?;
            let exists: bool = tx
                .query_row(
                    "SELECT EXISTS (SELECT 1 FROM gofer_run_objects WHERE pipeline = ?1 AND run = ?2 AND key = ?3)",
                    params![p, r, k],
                    |row| row.get(0),
                )
                .map_err(backend(SQLITE, "read"))?;
            if exists && !force {
                return Err(StoreError::AlreadyExists {
                    store: SQLITE,
                    kind: "run object",
                    scope: run_scope(&p, run),
                    key: k,
                });
            }
            quota.check(
                SQLITE,
                &p,
                run,
                usize::try_from(others).unwrap_or(usize::MAX),
                u64::try_from(other_bytes).unwrap_or(u64::MAX),
                value.len() as u64,
            )?;
            let sql = if force {
                "INSERT INTO gofer_run_objects (pipeline, run, key, value) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (pipeline, run, key) DO UPDATE SET value = excluded.value"
            } else {
                "INSERT INTO gofer_run_objects (pipeline, run, key, value) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (pipeline, run, key) DO NOTHING"
            };
            let n = tx
                .execute(sql, params![p, r, k, &value[..]])
                .map_err(backend(SQLITE, "write"))?;
            if n == 0 {
                return Err(StoreError::AlreadyExists {
                    store: SQLITE,
                    kind: "run object",
                    scope: run_scope(&p, run),
                    key: k,
                });
            }
            tx.commit().map_err(backend(SQLITE, "commit"))
        })
        .await
    }

    async fn list_run_objects(&self, pipeline: &str, run: u64) -> Result<Vec<String>, StoreError> {
        let r = run_param(pipeline, run)?;
        let p = pipeline.to_string();
        self.run("list run objects", pipeline, "", move |conn| {
            keys(
                conn,
                "SELECT key FROM gofer_run_objects WHERE pipeline = ?1 AND run = ?2 ORDER BY key",
                params![p, r],
            )
        })
        .await
    }

    async fn delete_run_object(
        &self,
        pipeline: &str,
        run: u64,
        key: &str,
    ) -> Result<(), StoreError> {
        let r = run_param(pipeline, run)?;
        let (p, k) = (pipeline.to_string(), key.to_string());
        self.run("delete run object", pipeline, key, move |conn| {
            let n = conn
                .execute(
                    "DELETE FROM gofer_run_objects WHERE pipeline = ?1 AND run = ?2 AND key = ?3",
                    params![p, r, k],
                )
                .map_err(backend(SQLITE, "delete"))?;
            if n == 0 {
                return Err(not_found("run object", run_scope(&p, run), &k));
            }
            Ok(())
        })
        .await
    }

    async fn run_finished(&self, pipeline: &str, run: u64) -> Result<(), StoreError> {
        let r = run_param(pipeline, run)?;
        let p = pipeline.to_string();
        let keep = to_i64(self.keep_runs);
        self.run("run finished", pipeline, "", move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend(SQLITE, "expire"))?;
            tx.execute(
                "INSERT INTO gofer_finished_runs (pipeline, run, seq)
                 VALUES (?1, ?2, (SELECT COALESCE(MAX(seq), 0) + 1 FROM gofer_finished_runs WHERE pipeline = ?1))
                 ON CONFLICT (pipeline, run) DO UPDATE SET seq = excluded.seq",
                params![p, r],
            )
            .map_err(backend(SQLITE, "expire"))?;
            let expired: Vec<i64> = tx
                .prepare_cached(
                    "SELECT run FROM gofer_finished_runs WHERE pipeline = ?1 ORDER BY seq DESC LIMIT -1 OFFSET ?2",
                )
                .and_then(|mut st| st.query_map(params![p, keep], |row| row.get(0))?.collect())
                .map_err(backend(SQLITE, "expire"))?;
            for old in &expired {
                tx.execute(
                    "DELETE FROM gofer_run_objects WHERE pipeline = ?1 AND run = ?2",
                    params![p, old],
                )
                .and_then(|_| {
                    tx.execute(
                        "DELETE FROM gofer_finished_runs WHERE pipeline = ?1 AND run = ?2",
                        params![p, old],
                    )
                })
                .map_err(backend(SQLITE, "expire"))?;
            }
            tx.commit().map_err(backend(SQLITE, "expire"))?;
            if !expired.is_empty() {
                tracing::debug!(pipeline = %p, runs = ?expired, "expired old runs' objects");
            }
            Ok(())
        })
        .await
    }
}
