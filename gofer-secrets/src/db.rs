//! Connection handling shared by the SQLite stores: opening a file with the shared
//! opener, and running blocking SQLite work off the async runtime.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use gofer_core::StoreError;
use rusqlite::Connection;

/// The store name used in errors and spans.
pub const SQLITE: &str = "sqlite";

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

/// Opens (creating if needed) the database at `path` with
/// [`gofer_sqlite::open`]: a new file is created whole with mode `0600`, WAL
/// is required, the schema is migrated, and a damaged file (empty, truncated, a
/// garbage header, a corrupt page) is refused with [`StoreError::Unusable`].
pub(crate) fn open(store: &'static str, path: &Path) -> Result<Connection, StoreError> {
    gofer_sqlite::open(path, &crate::sqlite_schema::SCHEMA).map_err(|e| e.into_store_error(store))
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
