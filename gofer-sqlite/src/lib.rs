#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use gofer_core::StoreError;

/// Re-exported so stores use the same `rusqlite` as the opener.
pub use rusqlite;

/// How long a connection waits for another connection's lock before a statement
/// fails with `SQLITE_BUSY`. Long enough for any single gofer transaction (they are
/// small) from another process, short enough that a stuck peer shows as an error.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// Reads what a pre-`user_version` file holds: given an existing file with
/// `application_id = 0` and tables in it, returns how many of the schema's
/// migrations its content equals (`Some(0)` = apply all; the first step must then
/// be idempotent, `CREATE ... IF NOT EXISTS`), or `None` when it is not this
/// schema's file.
pub type LegacyVersion = fn(&Connection) -> rusqlite::Result<Option<u32>>;

/// A database schema: who owns the file and how to bring it up to date.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Schema {
    /// Name used in errors (`"gofer run store"`).
    pub name: &'static str,
    /// Stored in `PRAGMA application_id`; unique per schema. Not 0.
    pub application_id: i32,
    /// Ordered migration steps; `migrations.len()` is the version this code writes.
    pub migrations: &'static [&'static str],
    /// How to adopt a file written before this scheme (see [`LegacyVersion`]).
    pub legacy: Option<LegacyVersion>,
    /// Run `PRAGMA quick_check` on every open (cost grows with the file: use it for
    /// small, precious files such as a secret store).
    pub check_on_open: bool,
}

impl Schema {
    /// A schema with no legacy adoption and no check on open.
    pub const fn new(
        name: &'static str,
        application_id: i32,
        migrations: &'static [&'static str],
    ) -> Self {
        Self {
            name,
            application_id,
            migrations,
            legacy: None,
            check_on_open: false,
        }
    }

    /// Adopts files written before `application_id`/`user_version` were used.
    #[must_use]
    pub const fn legacy(mut self, legacy: LegacyVersion) -> Self {
        self.legacy = Some(legacy);
        self
    }

    /// Runs `PRAGMA quick_check` on every open.
    #[must_use]
    pub const fn check_on_open(mut self, check: bool) -> Self {
        self.check_on_open = check;
        self
    }

    /// The version this code writes: the number of migrations.
    pub fn version(&self) -> u32 {
        u32::try_from(self.migrations.len()).unwrap_or(u32::MAX)
    }
}

/// Why [`open`] refused or failed. Every variant names the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// A file system call failed.
    #[error("{operation} {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What was done (`"create"`, `"read"`, ...).
        operation: &'static str,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// SQLite failed (a busy database, a read error).
    #[error("sqlite {operation} on {}: {source}", path.display())]
    Sqlite {
        /// The file.
        path: PathBuf,
        /// What was done.
        operation: &'static str,
        /// The cause.
        #[source]
        source: rusqlite::Error,
    },
    /// The file exists but is not a whole SQLite database (empty, truncated, a
    /// garbage header, corrupt pages). It is never opened as an empty store.
    #[error("{} is damaged: {reason}", path.display())]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The file belongs to another application or another gofer schema.
    #[error("{} is not a {schema} database (application id {found:#x}, expected {expected:#x})", path.display())]
    OtherApplication {
        /// The file.
        path: PathBuf,
        /// The schema asked for.
        schema: &'static str,
        /// The id in the file.
        found: i32,
        /// The schema's id.
        expected: i32,
    },
    /// The file was written by newer code.
    #[error("{} has {schema} schema version {found}; this build knows versions up to {supported}", path.display())]
    NewerSchema {
        /// The file.
        path: PathBuf,
        /// The schema.
        schema: &'static str,
        /// The version in the file.
        found: u32,
        /// The newest version this code knows.
        supported: u32,
    },
    /// SQLite cannot use a write-ahead log for this file.
    #[error("cannot switch {} to WAL mode (journal mode is {mode})", path.display())]
    NoWal {
        /// The file.
        path: PathBuf,
        /// The journal mode SQLite kept.
        mode: String,
    },
    /// A migration step failed; the file stays at `version`.
    #[error("{schema} migration from version {version} failed on {}: {source}", path.display())]
    Migration {
        /// The file.
        path: PathBuf,
        /// The schema.
        schema: &'static str,
        /// The version the step starts from.
        version: u32,
        /// The cause.
        #[source]
        source: rusqlite::Error,
    },
}

impl OpenError {
    /// Whether retrying may help (a busy database, an I/O hiccup), as opposed to a
    /// file that will be refused again.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Io { .. } | Self::Sqlite { .. })
    }

    /// As a [`StoreError`] of `store`: [`StoreError::Backend`] when retrying may
    /// help, [`StoreError::Unusable`] otherwise. The source is this error.
    pub fn into_store_error(self, store: &'static str) -> StoreError {
        if self.is_retryable() {
            StoreError::Backend {
                store,
                operation: "open",
                source: Box::new(self),
            }
        } else {
            StoreError::Unusable {
                store,
                source: Box::new(self),
            }
        }
    }
}

/// Opens the database at `path` for `schema`, creating it when the file does not
/// exist, and migrates it to [`Schema::version`]. See the [module docs](self) for
/// what every open guarantees. The parent directory must exist.
///
/// Blocking: call it at start-up or from `spawn_blocking`.
///
/// # Errors
/// See [`OpenError`]: damage, another application's file, a newer schema, no WAL, a
/// failed migration, or an I/O or SQLite failure.
pub fn open(path: &Path, schema: &Schema) -> Result<Connection, OpenError> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => create(path, schema)?,
        Err(source) => {
            return Err(OpenError::Io {
                path: path.to_path_buf(),
                operation: "stat",
                source,
            })
        }
        Ok(_) => {}
    }
    check_file(path)?;
    let conn = connect(path)?;
    check_content(&conn, path, schema)?;
    migrate(&conn, path, schema)?;
    Ok(conn)
}

fn sqlite_err(path: &Path, operation: &'static str) -> impl FnOnce(rusqlite::Error) -> OpenError {
    let path = path.to_path_buf();
    move |source| classify(path, operation, source)
}

/// Corruption codes become [`OpenError::Damaged`]; the rest stay SQLite errors.
fn classify(path: PathBuf, operation: &'static str, source: rusqlite::Error) -> OpenError {
    use rusqlite::ErrorCode;
    match source.sqlite_error_code() {
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => OpenError::Damaged {
            path,
            reason: source.to_string(),
        },
        _ => OpenError::Sqlite {
            path,
            operation,
            source,
        },
    }
}

fn connect(path: &Path) -> Result<Connection, OpenError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sqlite_err(path, "open"))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(sqlite_err(path, "open"))?;
    require_wal(&conn, path)?;
    conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;")
        .map_err(sqlite_err(path, "open"))?;
    Ok(conn)
}

/// Switches to WAL; SQLite answers with the mode it kept when it cannot.
fn require_wal(conn: &Connection, path: &Path) -> Result<(), OpenError> {
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .map_err(sqlite_err(path, "open"))?;
    if mode.eq_ignore_ascii_case("wal") {
        Ok(())
    } else {
        Err(OpenError::NoWal {
            path: path.to_path_buf(),
            mode,
        })
    }
}

/// Checks that the file holds `schema` (adopting a legacy file) and is not newer.
fn check_content(conn: &Connection, path: &Path, schema: &Schema) -> Result<(), OpenError> {
    let err = || sqlite_err(path, "read schema");
    if schema.check_on_open {
        let verdict: String = conn
            .query_row("PRAGMA quick_check(1)", [], |r| r.get(0))
            .map_err(err())?;
        if verdict != "ok" {
            return Err(OpenError::Damaged {
                path: path.to_path_buf(),
                reason: format!("integrity check: {verdict}"),
            });
        }
    }
    let app: i32 = conn
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .map_err(err())?;
    if app == schema.application_id {
        return Ok(());
    }
    let other = || OpenError::OtherApplication {
        path: path.to_path_buf(),
        schema: schema.name,
        found: app,
        expected: schema.application_id,
    };
    if app != 0 {
        return Err(other());
    }
    let tables: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
            [],
            |r| r.get(0),
        )
        .map_err(err())?;
    if tables == 0 {
        // Files are created whole, with their schema: an empty one is damage.
        return Err(OpenError::Damaged {
            path: path.to_path_buf(),
            reason: "the database has no tables (a gofer database is created with its schema)"
                .into(),
        });
    }
    let Some(legacy) = schema.legacy else {
        return Err(other());
    };
    let Some(version) = legacy(conn).map_err(err())? else {
        return Err(other());
    };
    if version > schema.version() {
        return Err(OpenError::NewerSchema {
            path: path.to_path_buf(),
            schema: schema.name,
            found: version,
            supported: schema.version(),
        });
    }
    let tx = conn
        .unchecked_transaction()
        .map_err(sqlite_err(path, "adopt"))?;
    tx.pragma_update(None, "application_id", schema.application_id)
        .and_then(|()| tx.pragma_update(None, "user_version", version))
        .and_then(|()| tx.commit())
        .map_err(sqlite_err(path, "adopt"))?;
    tracing::info!(path = %path.display(), schema = schema.name, version, "adopted a database written before schema versioning");
    Ok(())
}

/// Applies the missing migrations, each in its own immediate transaction that
/// re-reads the version (another process may have migrated meanwhile).
fn migrate(conn: &Connection, path: &Path, schema: &Schema) -> Result<(), OpenError> {
    let version = |c: &Connection| -> rusqlite::Result<u32> {
        c.query_row("PRAGMA user_version", [], |r| r.get(0))
    };
    let current = version(conn).map_err(sqlite_err(path, "read schema"))?;
    if current > schema.version() {
        return Err(OpenError::NewerSchema {
            path: path.to_path_buf(),
            schema: schema.name,
            found: current,
            supported: schema.version(),
        });
    }
    for (from, step) in (0u32..).zip(schema.migrations.iter()) {
        if from < current {
            continue;
        }
        let failed = |source| OpenError::Migration {
            path: path.to_path_buf(),
            schema: schema.name,
            version: from,
            source,
        };
        let tx = rusqlite::Transaction::new_unchecked(conn, TransactionBehavior::Immediate)
            .map_err(failed)?;
        if version(&tx).map_err(failed)? > from {
            continue;
        }
        tx.execute_batch(step)
            .and_then(|()| tx.pragma_update(None, "user_version", from + 1))
            .and_then(|()| tx.commit())
            .map_err(failed)?;
        tracing::debug!(path = %path.display(), schema = schema.name, version = from + 1, "migrated");
    }
    Ok(())
}

mod file;
use file::{check_file, create};

#[cfg(test)]
mod tests;
