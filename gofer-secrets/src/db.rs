//! Connection handling shared by the SQLite stores: opening a file in WAL mode and
//! running blocking SQLite work off the async runtime.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use gofer_core::StoreError;
use rusqlite::{Connection, OpenFlags};

/// How long a connection waits for another connection's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// Turns a SQLite error into a [`StoreError::Backend`]. SQLite errors name tables and
/// columns, never bound values.
pub(crate) fn backend(
    store: &'static str,
    operation: &'static str,
) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |e| StoreError::Backend {
        store,
        operation,
        source: Box::new(e),
    }
}

/// Opens (creating if needed) the database at `path` in WAL mode. A new file is
/// created with mode `0600` on Unix; SQLite gives its `-wal` and `-shm` files the
/// same mode.
pub(crate) fn open(store: &'static str, path: &Path) -> Result<Connection, StoreError> {
    create_private(path).map_err(|e| StoreError::Backend {
        store,
        operation: "open",
        source: Box::new(std::io::Error::new(
            e.kind(),
            format!("cannot create {}: {e}", path.display()),
        )),
    })?;
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(backend(store, "open"))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(backend(store, "open"))?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .map_err(backend(store, "open"))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Backend {
            store,
            operation: "open",
            source: format!("cannot switch {} to WAL mode (got {mode})", path.display()).into(),
        });
    }
    // FULL: a write the caller saw succeed survives a power cut.
    conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;")
        .map_err(backend(store, "open"))?;
    Ok(conn)
}

fn create_private(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// State shared by the handles of one store: a connection plus whatever else must
/// change atomically with it.
pub(crate) type Shared<S> = Arc<Mutex<S>>;

pub(crate) fn lock<S>(m: &Mutex<S>) -> MutexGuard<'_, S> {
    // A panic mid-operation leaves no open transaction behind (rusqlite rolls back on
    // drop), so the state stays usable.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs `f` on a blocking thread with the store's state locked. Dropping the returned
/// future does not abort `f`; each `f` is one transaction, so it completes or rolls
/// back as a whole.
pub(crate) async fn blocking<S, T, F>(
    store: &'static str,
    operation: &'static str,
    shared: &Shared<S>,
    f: F,
) -> Result<T, StoreError>
where
    S: Send + 'static,
    T: Send + 'static,
    F: FnOnce(&mut S) -> Result<T, StoreError> + Send + 'static,
{
    let shared = Arc::clone(shared);
    // Keep the caller's span (store, operation, ids) on what the closure logs.
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || {
        let _entered = span.enter();
        f(&mut lock(&shared))
    })
    .await
    .map_err(|e| StoreError::Backend {
        store,
        operation,
        source: Box::new(e),
    })?
}

/// Reads a text setting from the `gofer_meta` table.
pub(crate) fn meta_get(conn: &Connection, name: &str) -> rusqlite::Result<Option<String>> {
    use rusqlite::OptionalExtension;
    conn.query_row(
        "SELECT value FROM gofer_meta WHERE name = ?1",
        [name],
        |r| r.get(0),
    )
    .optional()
}

/// Writes a text setting to the `gofer_meta` table.
pub(crate) fn meta_set(conn: &Connection, name: &str, value: &str) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO gofer_meta (name, value) VALUES (?1, ?2)
         ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        [name, value],
    )
    .map(drop)
}

/// Creates the `gofer_meta` table.
pub(crate) const META_SCHEMA: &str =
    "CREATE TABLE IF NOT EXISTS gofer_meta (name TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL);";

/// Checks and records a table set's schema version in `gofer_meta`.
pub(crate) fn check_schema(
    store: &'static str,
    conn: &Connection,
    name: &str,
    version: u32,
) -> Result<(), StoreError> {
    match meta_get(conn, name).map_err(backend(store, "open"))? {
        None => meta_set(conn, name, &version.to_string()).map_err(backend(store, "open")),
        Some(v) if v == version.to_string() => Ok(()),
        Some(v) => Err(StoreError::Backend {
            store,
            operation: "open",
            source: format!(
                "the database has {name} version {v}; this build reads version {version}"
            )
            .into(),
        }),
    }
}
