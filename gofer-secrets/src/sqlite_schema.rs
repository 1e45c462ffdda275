//! The schema of a gofer-secrets SQLite file and its migrations.

use gofer_sqlite::Schema;
use rusqlite::Connection;

/// The schema of a gofer-secrets file. The secret and the object store share it, so
/// that both may live in one file; each table set is created by the same migration.
pub(crate) const SCHEMA: Schema = Schema::new("gofer secrets", APPLICATION_ID, MIGRATIONS)
    .legacy(legacy_version)
    // The file is small and precious: a damaged page is found on open, not when a
    // task needs the secret.
    .check_on_open(true);

/// `PRAGMA application_id` of a gofer-secrets file ("goSS").
const APPLICATION_ID: i32 = 0x676f_5353;

/// Migration steps; step *i* takes the file from version *i* to *i + 1*.
const MIGRATIONS: &[&str] = &[
    // 1: the tables. `IF NOT EXISTS`: files from before `user_version` (which kept
    // their version in `gofer_meta`) are adopted at version 0 and pass through it.
    "
CREATE TABLE IF NOT EXISTS gofer_meta (name TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL);
-- the secret store
CREATE TABLE IF NOT EXISTS gofer_secrets (
    kind       TEXT NOT NULL,
    pipeline   TEXT NOT NULL,
    key        TEXT NOT NULL,
    allow      TEXT NOT NULL,
    key_id     TEXT NOT NULL,
    nonce      BLOB NOT NULL,
    ciphertext BLOB NOT NULL,
    PRIMARY KEY (kind, pipeline, key)
) WITHOUT ROWID;
-- the object store
CREATE TABLE IF NOT EXISTS gofer_pipeline_objects (
    pipeline TEXT    NOT NULL,
    key      TEXT    NOT NULL,
    value    BLOB    NOT NULL,
    seq      INTEGER NOT NULL,
    PRIMARY KEY (pipeline, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS gofer_pipeline_objects_seq ON gofer_pipeline_objects (pipeline, seq);
CREATE TABLE IF NOT EXISTS gofer_run_objects (
    pipeline TEXT    NOT NULL,
    run      INTEGER NOT NULL,
    key      TEXT    NOT NULL,
    value    BLOB    NOT NULL,
    PRIMARY KEY (pipeline, run, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS gofer_finished_runs (
    pipeline TEXT    NOT NULL,
    run      INTEGER NOT NULL,
    seq      INTEGER NOT NULL,
    PRIMARY KEY (pipeline, run)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS gofer_finished_runs_seq ON gofer_finished_runs (pipeline, seq);",
    // 2: the version lives in `user_version` now.
    "DELETE FROM gofer_meta WHERE name IN ('secrets_schema', 'objects_schema');",
];

/// A file from before `user_version`: it has `gofer_meta`, whose
/// `secrets_schema`/`objects_schema` rows (when present) say version 1.
fn legacy_version(conn: &Connection) -> rusqlite::Result<Option<u32>> {
    let meta: i64 = conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'gofer_meta'",
        [],
        |r| r.get(0),
    )?;
    if meta == 0 {
        return Ok(None);
    }
    let newer: i64 = conn.query_row(
        "SELECT count(*) FROM gofer_meta
         WHERE name IN ('secrets_schema', 'objects_schema') AND value <> '1'",
        [],
        |r| r.get(0),
    )?;
    Ok((newer == 0).then_some(0))
}
