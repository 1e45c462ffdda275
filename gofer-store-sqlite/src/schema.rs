//! The database schema and its migrations.

use gofer_sqlite::Schema;
use rusqlite::Connection;

/// Version 1: runs, their tasks and events.
const SCHEMA_V1: &str = "
CREATE TABLE IF NOT EXISTS pipelines (
    id   TEXT PRIMARY KEY NOT NULL,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    pipeline TEXT NOT NULL,
    run      INTEGER NOT NULL,
    complete INTEGER NOT NULL,
    body     TEXT NOT NULL,
    spec     TEXT NOT NULL,
    PRIMARY KEY (pipeline, run)
);
CREATE INDEX IF NOT EXISTS runs_unfinished ON runs (complete, pipeline, run);
CREATE TABLE IF NOT EXISTS tasks (
    pipeline       TEXT NOT NULL,
    run            INTEGER NOT NULL,
    position       INTEGER NOT NULL,
    task           TEXT NOT NULL,
    body           TEXT NOT NULL,
    container_name TEXT,
    container_id   TEXT,
    log            TEXT,
    PRIMARY KEY (pipeline, run, task),
    FOREIGN KEY (pipeline, run) REFERENCES runs (pipeline, run) ON DELETE CASCADE
);
CREATE TABLE IF NOT EXISTS events (
    pipeline TEXT NOT NULL,
    run      INTEGER NOT NULL,
    seq      INTEGER NOT NULL,
    body     TEXT NOT NULL,
    PRIMARY KEY (pipeline, run, seq),
    FOREIGN KEY (pipeline, run) REFERENCES runs (pipeline, run) ON DELETE CASCADE
);
";

/// Version 2: each finished attempt of a retried task is a row of its own (its
/// container and log with it); `tasks` keeps the current attempt and its number.
const SCHEMA_V2: &str = "
ALTER TABLE tasks ADD COLUMN attempt INTEGER NOT NULL DEFAULT 1;
CREATE TABLE IF NOT EXISTS task_attempts (
    pipeline       TEXT NOT NULL,
    run            INTEGER NOT NULL,
    task           TEXT NOT NULL,
    attempt        INTEGER NOT NULL,
    body           TEXT NOT NULL,
    container_name TEXT,
    container_id   TEXT,
    log            TEXT,
    PRIMARY KEY (pipeline, run, task, attempt),
    FOREIGN KEY (pipeline, run) REFERENCES runs (pipeline, run) ON DELETE CASCADE
);
";

/// Version 3: the store's own random id (see `SqliteRunStore::id`). A file that
/// already holds runs when it is migrated gets the empty id, so what was derived from
/// the store before (the `gofer` command's run-token key) stays as it was.
const SCHEMA_V3: &str = "
CREATE TABLE IF NOT EXISTS store (id TEXT NOT NULL);
INSERT INTO store (id)
    SELECT CASE WHEN EXISTS (SELECT 1 FROM runs) THEN '' ELSE lower(hex(randomblob(16))) END
    WHERE NOT EXISTS (SELECT 1 FROM store);
";

/// Version 4: the members of concurrency groups (see `RunStore::enter_group`), one
/// row each, shared by every process on the file. No foreign key: a member whose run
/// is gone or complete is dropped by the next entry into its group.
const SCHEMA_V4: &str = "
CREATE TABLE IF NOT EXISTS group_members (
    grp        TEXT NOT NULL,
    member     TEXT NOT NULL,
    pipeline   TEXT NOT NULL,
    run        INTEGER NOT NULL,
    seq        INTEGER NOT NULL,
    holds      INTEGER NOT NULL,
    superseded INTEGER NOT NULL,
    lim        INTEGER NOT NULL,
    PRIMARY KEY (grp, member)
);
";

/// Version 5: retention. `run_numbers` keeps each pipeline's highest run number once
/// its runs are deleted (a number is never handed out twice); `run_cleanups` lists the
/// deleted runs whose logs and objects may still be there.
const SCHEMA_V5: &str = "
CREATE TABLE IF NOT EXISTS run_numbers (
    pipeline TEXT PRIMARY KEY NOT NULL,
    highest  INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS run_cleanups (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    pipeline TEXT NOT NULL,
    run      INTEGER NOT NULL,
    UNIQUE (pipeline, run)
);
";

/// The run store's schema for [`gofer_sqlite::open`]: the file mode, WAL,
/// busy timeout, versioning and migrations are the opener's, shared with the secret
/// store.
///
/// Durability: the journal is a write-ahead log and `synchronous = FULL`, so every
/// committed transaction is flushed to stable storage (fsync of the WAL) before the
/// commit returns: a committed change survives the host process being killed and the
/// machine losing power. (`NORMAL` would only survive the process being killed.)
pub(crate) const SCHEMA: Schema =
    Schema::new("gofer run store", APPLICATION_ID, MIGRATIONS).legacy(legacy_version);

/// `PRAGMA application_id` of a run store file ("goRS").
pub(crate) const APPLICATION_ID: i32 = 0x676f_5253;

/// Migration steps; step *i* takes the file from version *i* to *i + 1*.
const MIGRATIONS: &[&str] = &[SCHEMA_V1, SCHEMA_V2, SCHEMA_V3, SCHEMA_V4, SCHEMA_V5];

/// Files written before `application_id` was set: `user_version` was already the
/// schema version (1), with the `runs` table present.
fn legacy_version(conn: &Connection) -> rusqlite::Result<Option<u32>> {
    let version: u32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let runs: i64 = conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'runs'",
        [],
        |r| r.get(0),
    )?;
    Ok((version >= 1 && runs == 1).then_some(version))
}
