//! [`SqliteRunStore`]: the [`RunStore`] over one SQLite database file.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use gofer_core::without_credentials;
use gofer_core::{
    Event, GroupEntry, GroupMember, GroupTurn, Pipeline, Run, RunChange, RunSpec, RunState,
    RunStore, StoreError, TaskDetails, TaskExecution, UnfinishedRun,
};
use rusqlite::{params, Connection, OptionalExtension, Transaction};

use crate::schema;

/// The store name used in errors.
pub const NAME: &str = "sqlite";

/// The file name [`SqliteRunStore::open_dir`] uses inside a data directory.
pub const FILE_NAME: &str = "gofer-runs.sqlite3";

/// Run history in an embedded SQLite database (one file, write-ahead log,
/// `synchronous = FULL`): a change is on stable storage when
/// [`RunStore::apply`] returns.
///
/// Database work runs on Tokio's blocking pool, never on the async workers. Cheap to
/// clone; clones share the connection.
#[derive(Clone)]
pub struct SqliteRunStore {
    conn: Arc<Mutex<Connection>>,
    path: PathBuf,
    id: String,
}

impl std::fmt::Debug for SqliteRunStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteRunStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn backend(
    operation: &'static str,
    e: impl std::error::Error + Send + Sync + 'static,
) -> StoreError {
    StoreError::Backend {
        store: NAME,
        operation,
        source: Box::new(e),
    }
}

fn db_run(operation: &'static str, run: u64) -> Result<i64, StoreError> {
    i64::try_from(run).map_err(|e| backend(operation, e))
}

fn to_json<T: serde::Serialize + ?Sized>(
    operation: &'static str,
    v: &T,
) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| backend(operation, e))
}

fn from_json<T: serde::de::DeserializeOwned>(
    operation: &'static str,
    s: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(s).map_err(|e| backend(operation, e))
}

impl SqliteRunStore {
    /// Opens (or creates) the database at `path`, creating its parent directory,
    /// with [`gofer_sqlite::open`]: a new file is created whole with mode
    /// `0600`, WAL is required, and the schema is migrated to this build's version.
    ///
    /// Blocking: call it at start-up, or from `spawn_blocking`.
    ///
    /// # Errors
    /// [`StoreError::Unusable`] when the file is damaged (empty, truncated), is not a
    /// run store, or has a newer schema than this build; [`StoreError::Backend`] when
    /// it cannot be opened or created (the source is a
    /// [`gofer_sqlite::OpenError`]).
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| backend("create directory", e))?;
        }
        let conn =
            gofer_sqlite::open(&path, &schema::SCHEMA).map_err(|e| e.into_store_error(NAME))?;
        let id = conn
            .query_row("SELECT id FROM store", [], |r| r.get(0))
            .map_err(|e| backend("read the store id", e))?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
            path,
            id,
        })
    }

    /// Opens (or creates) [`FILE_NAME`] inside the data directory `dir`.
    ///
    /// # Errors
    /// As [`SqliteRunStore::open`].
    pub fn open_dir(dir: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open(dir.as_ref().join(FILE_NAME))
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// This store's id: 32 random hex digits made when the file was created, so a
    /// store made again in the same place (after the file was deleted) has another.
    /// What is unique per run only within one store (a run number) is unique
    /// everywhere with it. Empty for a file that already held runs when it was
    /// migrated to this build's schema.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Runs `f` on the connection on the blocking pool.
    async fn with<T, F>(&self, operation: &'static str, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let conn = self.conn.clone();
        let span = tracing::debug_span!("sqlite_run_store", operation);
        tokio::task::spawn_blocking(move || {
            let _entered = span.enter();
            let mut c = conn
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            f(&mut c)
        })
        .await
        .map_err(|e| backend(operation, e))?
    }
}

fn run_exists_in(tx: &Transaction<'_>, pipeline: &str, run: i64) -> Result<bool, StoreError> {
    tx.query_row(
        "SELECT 1 FROM runs WHERE pipeline = ?1 AND run = ?2",
        params![pipeline, run],
        |_| Ok(()),
    )
    .optional()
    .map(|o| o.is_some())
    .map_err(|e| backend("apply", e))
}

fn apply_one(
    tx: &Transaction<'_>,
    known: &mut HashSet<(String, u64)>,
    c: &RunChange,
) -> Result<(), StoreError> {
    let (pipeline, run_id) = c.run_key();
    let run = db_run("apply", run_id)?;
    let sql = |e| backend("apply", e);
    if let RunChange::Created { run: r, spec } = c {
        if run_exists_in(tx, pipeline, run)? {
            return Err(StoreError::run_exists(NAME, pipeline, run_id));
        }
        let mut head = r.clone();
        head.tasks.clear();
        tx.execute(
            "INSERT INTO runs (pipeline, run, complete, body, spec) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                pipeline,
                run,
                r.state == RunState::Complete,
                to_json("apply", &head)?,
                to_json("apply", spec)?
            ],
        )
        .map_err(sql)?;
        for (i, t) in r.tasks.iter().enumerate() {
            tx.execute(
                "INSERT INTO tasks (pipeline, run, position, task, body, container_name, container_id, attempt)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    pipeline,
                    run,
                    i as i64,
                    t.task_id,
                    to_json("apply", &current_attempt(t))?,
                    t.container.as_ref().map(|c| c.name.as_str()),
                    t.container.as_ref().and_then(|c| c.id.as_deref()),
                    t.attempt,
                ],
            )
            .map_err(sql)?;
            write_attempts(tx, pipeline, run, t)?;
        }
        known.insert((pipeline.to_string(), run_id));
        return Ok(());
    }
    if !known.contains(&(pipeline.to_string(), run_id)) {
        if !run_exists_in(tx, pipeline, run)? {
            return Err(StoreError::run_not_found(NAME, pipeline, run_id));
        }
        known.insert((pipeline.to_string(), run_id));
    }
    let updated = match c {
        RunChange::Run(head) => {
            tx.execute(
                "UPDATE runs SET complete = ?3, body = ?4 WHERE pipeline = ?1 AND run = ?2",
                params![
                    pipeline,
                    run,
                    head.state == RunState::Complete,
                    to_json("apply", head)?
                ],
            )
            .map_err(sql)?;
            return Ok(());
        }
        RunChange::Task { task: t, .. } => {
            // Finished attempts first: each takes the log location the task row still
            // holds for it.
            write_attempts(tx, pipeline, run, t)?;
            tx.execute(
                "UPDATE tasks SET body = ?4, container_name = ?5, container_id = ?6, attempt = ?7
                 WHERE pipeline = ?1 AND run = ?2 AND task = ?3",
                params![
                    pipeline,
                    run,
                    t.task_id,
                    to_json("apply", &current_attempt(t))?,
                    t.container.as_ref().map(|c| c.name.as_str()),
                    t.container.as_ref().and_then(|c| c.id.as_deref()),
                    t.attempt,
                ],
            )
            .map_err(sql)
            .map(|n| (n, t.task_id.as_str()))?
        }
        RunChange::Log { task, location, .. } => tx
            .execute(
                "UPDATE tasks SET log = ?4 WHERE pipeline = ?1 AND run = ?2 AND task = ?3",
                params![pipeline, run, task, location],
            )
            .map_err(sql)
            .map(|n| (n, task.as_str()))?,
        RunChange::Event { event, .. } => {
            tx.execute(
                "INSERT INTO events (pipeline, run, seq, body) VALUES (?1, ?2,
                 (SELECT COALESCE(MAX(seq), 0) + 1 FROM events WHERE pipeline = ?1 AND run = ?2), ?3)",
                params![pipeline, run, to_json("apply", event)?],
            )
            .map_err(sql)?;
            return Ok(());
        }
        // `RunChange` is non-exhaustive: a change this build does not know is refused.
        RunChange::Created { .. } | _ => {
            return Err(StoreError::NotSupported {
                store: NAME,
                operation: "apply (unknown change)",
            })
        }
    };
    match updated {
        (0, task) => Err(StoreError::task_not_found(NAME, pipeline, run_id, task)),
        _ => Ok(()),
    }
}

/// A task execution without its earlier attempts: what the `tasks` row keeps (the
/// attempts are rows of `task_attempts`).
fn current_attempt(t: &TaskExecution) -> TaskExecution {
    let mut t = t.clone();
    t.attempts.clear();
    t
}

/// Writes the task's finished attempts not yet written (a finished attempt never
/// changes), each with the log location the task row holds for it then.
fn write_attempts(
    tx: &Transaction<'_>,
    pipeline: &str,
    run: i64,
    t: &TaskExecution,
) -> Result<(), StoreError> {
    for a in &t.attempts {
        tx.execute(
            "INSERT OR IGNORE INTO task_attempts
                 (pipeline, run, task, attempt, body, container_name, container_id, log)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7,
                 (SELECT log FROM tasks WHERE pipeline = ?1 AND run = ?2 AND task = ?3 AND attempt = ?4))",
            params![
                pipeline,
                run,
                t.task_id,
                a.attempt,
                to_json("apply", a)?,
                a.container.as_ref().map(|c| c.name.as_str()),
                a.container.as_ref().and_then(|c| c.id.as_deref()),
            ],
        )
        .map_err(|e| backend("apply", e))?;
    }
    Ok(())
}

/// Puts each task's finished attempts (rows of `task_attempts`) back in its record.
fn load_attempts(
    conn: &Connection,
    pipeline: &str,
    run: i64,
    tasks: &mut [TaskExecution],
) -> Result<(), StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT task, body FROM task_attempts WHERE pipeline = ?1 AND run = ?2
             ORDER BY task, attempt",
        )
        .map_err(|e| backend("read task attempts", e))?;
    let rows = stmt
        .query_map(params![pipeline, run], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })
        .and_then(Iterator::collect::<Result<Vec<(String, String)>, _>>)
        .map_err(|e| backend("read task attempts", e))?;
    for (task, body) in rows {
        if let Some(t) = tasks.iter_mut().find(|t| t.task_id == task) {
            t.attempts.push(from_json("read task attempts", &body)?);
        }
    }
    Ok(())
}

fn load_tasks(
    conn: &Connection,
    pipeline: &str,
    run: i64,
) -> Result<Vec<TaskExecution>, StoreError> {
    let mut stmt = conn
        .prepare_cached("SELECT body FROM tasks WHERE pipeline = ?1 AND run = ?2 ORDER BY position")
        .map_err(|e| backend("read tasks", e))?;
    let bodies = stmt
        .query_map(params![pipeline, run], |r| r.get::<_, String>(0))
        .and_then(Iterator::collect::<Result<Vec<String>, _>>)
        .map_err(|e| backend("read tasks", e))?;
    let mut tasks = bodies
        .iter()
        .map(|b| from_json("read tasks", b))
        .collect::<Result<Vec<TaskExecution>, _>>()?;
    load_attempts(conn, pipeline, run, &mut tasks)?;
    Ok(tasks)
}

fn load_run(conn: &Connection, pipeline: &str, run_id: u64) -> Result<Run, StoreError> {
    let run = db_run("get run", run_id)?;
    let body: Option<String> = conn
        .query_row(
            "SELECT body FROM runs WHERE pipeline = ?1 AND run = ?2",
            params![pipeline, run],
            |r| r.get(0),
        )
        .optional()
        .map_err(|e| backend("get run", e))?;
    let body = body.ok_or_else(|| StoreError::run_not_found(NAME, pipeline, run_id))?;
    let mut r: Run = from_json("get run", &body)?;
    r.tasks = load_tasks(conn, pipeline, run)?;
    Ok(r)
}

#[async_trait]
impl RunStore for SqliteRunStore {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn apply(&self, changes: &[RunChange]) -> Result<(), StoreError> {
        if changes.is_empty() {
            return Ok(());
        }
        let changes = changes.to_vec();
        self.with("apply", move |conn| {
            // IMMEDIATE: the batch reads before it writes, and a deferred transaction whose
            // snapshot another connection wrote past fails at once with SQLITE_BUSY
            // (the busy timeout does not apply to that upgrade).
            let tx = conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(|e| backend("apply", e))?;
            let mut known = HashSet::new();
            for c in &changes {
                apply_one(&tx, &mut known, c)?;
            }
            tx.commit().map_err(|e| backend("commit", e))
        })
        .await
    }

    async fn put_pipeline(&self, pipeline: &Pipeline) -> Result<(), StoreError> {
        let (p, _) = without_credentials(pipeline);
        let body = to_json("put pipeline", &p)?;
        self.with("put pipeline", move |conn| {
            conn.execute(
                "INSERT INTO pipelines (id, body) VALUES (?1, ?2)
                 ON CONFLICT (id) DO UPDATE SET body = excluded.body",
                params![p.id, body],
            )
            .map(drop)
            .map_err(|e| backend("put pipeline", e))
        })
        .await
    }

    async fn get_pipeline(&self, id: &str) -> Result<Pipeline, StoreError> {
        let id = id.to_string();
        self.with("get pipeline", move |conn| {
            let body: Option<String> = conn
                .query_row("SELECT body FROM pipelines WHERE id = ?1", [&id], |r| {
                    r.get(0)
                })
                .optional()
                .map_err(|e| backend("get pipeline", e))?;
            from_json(
                "get pipeline",
                &body.ok_or_else(|| StoreError::pipeline_not_found(NAME, &id))?,
            )
        })
        .await
    }

    async fn list_pipelines(&self) -> Result<Vec<String>, StoreError> {
        self.with("list pipelines", |conn| {
            let mut stmt = conn
                .prepare("SELECT id FROM pipelines ORDER BY id")
                .map_err(|e| backend("list pipelines", e))?;
            stmt.query_map([], |r| r.get(0))
                .and_then(Iterator::collect)
                .map_err(|e| backend("list pipelines", e))
        })
        .await
    }

    async fn get_run(&self, pipeline: &str, run: u64) -> Result<Run, StoreError> {
        let pipeline = pipeline.to_string();
        self.with("get run", move |conn| load_run(conn, &pipeline, run))
            .await
    }

    async fn list_runs(&self, pipeline: &str) -> Result<Vec<Run>, StoreError> {
        let pipeline = pipeline.to_string();
        self.with("list runs", move |conn| {
            let mut stmt = conn
                .prepare("SELECT run, body FROM runs WHERE pipeline = ?1 ORDER BY run DESC")
                .map_err(|e| backend("list runs", e))?;
            let rows: Vec<(i64, String)> = stmt
                .query_map([&pipeline], |r| Ok((r.get(0)?, r.get(1)?)))
                .and_then(Iterator::collect)
                .map_err(|e| backend("list runs", e))?;
            rows.into_iter()
                .map(|(run, body)| {
                    let mut r: Run = from_json("list runs", &body)?;
                    r.tasks = load_tasks(conn, &pipeline, run)?;
                    Ok(r)
                })
                .collect()
        })
        .await
    }

    async fn get_task(
        &self,
        pipeline: &str,
        run: u64,
        task: &str,
    ) -> Result<TaskDetails, StoreError> {
        let (pipeline, task) = (pipeline.to_string(), task.to_string());
        self.with("get task", move |conn| {
            let r = db_run("get task", run)?;
            let row: Option<(String, Option<String>)> = conn
                .query_row(
                    "SELECT body, log FROM tasks WHERE pipeline = ?1 AND run = ?2 AND task = ?3",
                    params![pipeline, r, task],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()
                .map_err(|e| backend("get task", e))?;
            match row {
                Some((body, log)) => {
                    let mut t = [from_json("get task", &body)?];
                    load_attempts(conn, &pipeline, r, &mut t)?;
                    let [t] = t;
                    Ok(TaskDetails::new(pipeline, run, t, log))
                }
                None => {
                    let exists: Option<i64> = conn
                        .query_row(
                            "SELECT 1 FROM runs WHERE pipeline = ?1 AND run = ?2",
                            params![pipeline, r],
                            |row| row.get(0),
                        )
                        .optional()
                        .map_err(|e| backend("get task", e))?;
                    Err(match exists {
                        Some(_) => StoreError::task_not_found(NAME, &pipeline, run, &task),
                        None => StoreError::run_not_found(NAME, &pipeline, run),
                    })
                }
            }
        })
        .await
    }

    async fn events(&self, pipeline: &str, run: u64) -> Result<Vec<Event>, StoreError> {
        let pipeline = pipeline.to_string();
        self.with("events", move |conn| {
            let r = db_run("events", run)?;
            let exists = conn
                .query_row(
                    "SELECT 1 FROM runs WHERE pipeline = ?1 AND run = ?2",
                    params![pipeline, r],
                    |_| Ok(()),
                )
                .optional()
                .map_err(|e| backend("events", e))?;
            if exists.is_none() {
                return Err(StoreError::run_not_found(NAME, &pipeline, run));
            }
            let mut stmt = conn
                .prepare_cached(
                    "SELECT body FROM events WHERE pipeline = ?1 AND run = ?2 ORDER BY seq",
                )
                .map_err(|e| backend("events", e))?;
            let bodies: Vec<String> = stmt
                .query_map(params![pipeline, r], |row| row.get(0))
                .and_then(Iterator::collect)
                .map_err(|e| backend("events", e))?;
            bodies.iter().map(|b| from_json("events", b)).collect()
        })
        .await
    }

    async fn unfinished_runs(&self) -> Result<Vec<UnfinishedRun>, StoreError> {
        self.with("unfinished runs", |conn| {
            let mut stmt = conn
                .prepare(
                    "SELECT pipeline, run, body, spec FROM runs WHERE complete = 0
                     ORDER BY pipeline, run",
                )
                .map_err(|e| backend("unfinished runs", e))?;
            let rows: Vec<(String, i64, String, String)> = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
                .and_then(Iterator::collect)
                .map_err(|e| backend("unfinished runs", e))?;
            rows.into_iter()
                .map(|(pipeline, run, body, spec)| {
                    let mut r: Run = from_json("unfinished runs", &body)?;
                    r.tasks = load_tasks(conn, &pipeline, run)?;
                    let spec: RunSpec = from_json("unfinished runs", &spec)?;
                    Ok(UnfinishedRun::new(r, spec))
                })
                .collect()
        })
        .await
    }

    async fn next_run_id(&self, pipeline: &str) -> Result<u64, StoreError> {
        let pipeline = pipeline.to_string();
        self.with("next run id", move |conn| {
            let max: Option<i64> = conn
                .query_row(
                    "SELECT MAX(r) FROM (SELECT run AS r FROM runs WHERE pipeline = ?1
                     UNION ALL SELECT highest FROM run_numbers WHERE pipeline = ?1)",
                    [&pipeline],
                    |r| r.get(0),
                )
                .map_err(|e| backend("next run id", e))?;
            Ok(max.map_or(1, |m| m.unsigned_abs() + 1))
        })
        .await
    }

    async fn last_run_ids(&self) -> Result<Vec<(String, u64)>, StoreError> {
        self.with("last run ids", |conn| {
            let mut stmt = conn
                .prepare(
                    "SELECT pipeline, MAX(r) FROM (SELECT pipeline, run AS r FROM runs
                     UNION ALL SELECT pipeline, highest FROM run_numbers)
                     GROUP BY pipeline ORDER BY pipeline",
                )
                .map_err(|e| backend("last run ids", e))?;
            let rows: Vec<(String, i64)> = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .and_then(Iterator::collect)
                .map_err(|e| backend("last run ids", e))?;
            Ok(rows
                .into_iter()
                .map(|(p, r)| (p, r.unsigned_abs()))
                .collect())
        })
        .await
    }

    async fn delete_run(&self, pipeline: &str, run: u64) -> Result<(), StoreError> {
        let pipeline = pipeline.to_string();
        self.with("delete run", move |conn| {
            let r = db_run("delete run", run)?;
            let tx = conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(|e| backend("delete run", e))?;
            let complete: Option<bool> = tx
                .query_row(
                    "SELECT complete FROM runs WHERE pipeline = ?1 AND run = ?2",
                    params![pipeline, r],
                    |row| row.get(0),
                )
                .optional()
                .map_err(|e| backend("delete run", e))?;
            match complete {
                None => return Err(StoreError::run_not_found(NAME, &pipeline, run)),
                Some(false) => {
                    return Err(StoreError::RunNotComplete {
                        store: NAME,
                        pipeline,
                        run,
                    })
                }
                Some(true) => {}
            }
            // Its tasks, attempts and events go with it (`ON DELETE CASCADE`, foreign
            // keys on); group members have no key to it.
            for sql in [
                "DELETE FROM group_members WHERE pipeline = ?1 AND run = ?2",
                "DELETE FROM runs WHERE pipeline = ?1 AND run = ?2",
                "INSERT INTO run_numbers (pipeline, highest) VALUES (?1, ?2)
                 ON CONFLICT (pipeline) DO UPDATE SET highest = max(highest, excluded.highest)",
                "INSERT OR IGNORE INTO run_cleanups (pipeline, run) VALUES (?1, ?2)",
            ] {
                tx.execute(sql, params![pipeline, r])
                    .map_err(|e| backend("delete run", e))?;
            }
            tx.commit().map_err(|e| backend("commit", e))
        })
        .await
    }

    async fn cleanups(&self) -> Result<Vec<(String, u64)>, StoreError> {
        self.with("cleanups", |conn| {
            let mut stmt = conn
                .prepare("SELECT pipeline, run FROM run_cleanups ORDER BY seq")
                .map_err(|e| backend("cleanups", e))?;
            let rows: Vec<(String, i64)> = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .and_then(Iterator::collect)
                .map_err(|e| backend("cleanups", e))?;
            Ok(rows
                .into_iter()
                .map(|(p, r)| (p, r.unsigned_abs()))
                .collect())
        })
        .await
    }

    async fn cleanup_done(&self, pipeline: &str, run: u64) -> Result<(), StoreError> {
        let pipeline = pipeline.to_string();
        self.with("cleanup done", move |conn| {
            conn.execute(
                "DELETE FROM run_cleanups WHERE pipeline = ?1 AND run = ?2",
                params![pipeline, db_run("cleanup done", run)?],
            )
            .map(drop)
            .map_err(|e| backend("cleanup done", e))
        })
        .await
    }

    async fn probe_write(&self) -> Result<(), StoreError> {
        self.with("probe write", |conn| {
            // The write lock, as a write takes it; then nothing written.
            let tx = conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(|e| backend("probe write", e))?;
            tx.execute(
                "CREATE TEMP TABLE IF NOT EXISTS gofer_probe (x INTEGER)",
                [],
            )
            .map_err(|e| backend("probe write", e))?;
            tx.rollback().map_err(|e| backend("probe write", e))
        })
        .await
    }

    fn keeps_groups(&self) -> bool {
        true
    }

    async fn enter_group(&self, entry: &GroupEntry) -> Result<GroupTurn, StoreError> {
        let entry = entry.clone();
        self.with("enter group", move |conn| {
            let tx = conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(|e| backend("enter group", e))?;
            let mut members = load_group(&tx, &entry.group)?;
            let mut live = std::collections::HashMap::new();
            for m in &members {
                if let std::collections::hash_map::Entry::Vacant(e) =
                    live.entry((m.pipeline.clone(), m.run))
                {
                    e.insert(run_unfinished(&tx, &m.pipeline, m.run)?);
                }
            }
            let mut before = members.clone();
            before.sort_by_key(|m| m.seq);
            let turn = gofer_core::enter_group(&mut members, &entry, |p, r| {
                live.get(&(p.to_string(), r)).copied().unwrap_or(true)
            });
            if members == before {
                // Nothing changed (a member polling): no write, no sync.
                return Ok(turn);
            }
            tx.execute(
                "DELETE FROM group_members WHERE grp = ?1",
                params![entry.group],
            )
            .map_err(|e| backend("enter group", e))?;
            for m in &members {
                tx.execute(
                    "INSERT INTO group_members (grp, member, pipeline, run, seq, holds, superseded, lim)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    params![
                        entry.group,
                        m.member,
                        m.pipeline,
                        db_run("enter group", m.run)?,
                        db_run("enter group", m.seq)?,
                        m.holds,
                        m.superseded,
                        m.limit
                    ],
                )
                .map_err(|e| backend("enter group", e))?;
            }
            tx.commit().map_err(|e| backend("commit", e))?;
            Ok(turn)
        })
        .await
    }

    async fn leave_group(&self, group: &str, member: &str) -> Result<(), StoreError> {
        let (group, member) = (group.to_string(), member.to_string());
        self.with("leave group", move |conn| {
            conn.execute(
                "DELETE FROM group_members WHERE grp = ?1 AND member = ?2",
                params![group, member],
            )
            .map(drop)
            .map_err(|e| backend("leave group", e))
        })
        .await
    }
}

/// Every member of `group`.
fn load_group(tx: &Transaction<'_>, group: &str) -> Result<Vec<GroupMember>, StoreError> {
    let mut stmt = tx
        .prepare(
            "SELECT member, pipeline, run, seq, holds, superseded, lim FROM group_members WHERE grp = ?1",
        )
        .map_err(|e| backend("enter group", e))?;
    stmt.query_map(params![group], |r| {
        Ok(GroupMember {
            member: r.get(0)?,
            pipeline: r.get(1)?,
            run: r.get::<_, i64>(2)?.unsigned_abs(),
            seq: r.get::<_, i64>(3)?.unsigned_abs(),
            holds: r.get(4)?,
            superseded: r.get(5)?,
            limit: r.get(6)?,
        })
    })
    .and_then(Iterator::collect)
    .map_err(|e| backend("enter group", e))
}

/// Whether the run is in the store and not complete.
fn run_unfinished(tx: &Transaction<'_>, pipeline: &str, run: u64) -> Result<bool, StoreError> {
    tx.query_row(
        "SELECT complete FROM runs WHERE pipeline = ?1 AND run = ?2",
        params![pipeline, db_run("enter group", run)?],
        |r| r.get::<_, bool>(0),
    )
    .optional()
    .map(|c| c == Some(false))
    .map_err(|e| backend("enter group", e))
}
