//! The database schema and the connection settings (WAL, synchronous FULL).

use rusqlite::Connection;

/// The schema version this crate writes (`PRAGMA user_version`).
pub(crate) const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
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

/// Sets the connection up and creates the schema when missing.
///
/// Durability: the journal is a write-ahead log and `synchronous = FULL`, so every
/// committed transaction is flushed to stable storage (fsync of the WAL) before the
/// commit returns: a committed change survives the host process being killed and the
/// machine losing power. (`NORMAL` would only survive the process being killed.)
pub(crate) fn prepare(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!(mode = %mode, "sqlite run store: WAL journal not available");
    }
    conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;")?;
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(rusqlite::Error::InvalidParameterName(format!(
            "database schema version {version} is newer than this build supports ({SCHEMA_VERSION})"
        )));
    }
    conn.execute_batch(SCHEMA)?;
    conn.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION}"))?;
    Ok(())
}
