use super::*;

const V1: &[&str] = &["CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT NOT NULL);"];
const V2: &[&str] = &[
    "CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT NOT NULL);",
    "ALTER TABLE t ADD COLUMN extra TEXT NOT NULL DEFAULT 'x';",
];
const APP: i32 = 0x7465_7374;

fn schema(m: &'static [&'static str]) -> Schema {
    Schema::new("test", APP, m)
}

fn version(c: &Connection) -> u32 {
    c.query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("version")
}

#[cfg(unix)]
fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).expect("stat").permissions().mode() & 0o777
}

#[test]
fn a_new_file_is_private_in_wal_mode_and_at_the_latest_version() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("db");
    let c = open(&path, &schema(V2)).expect("open");
    assert_eq!(version(&c), 2);
    let jm: String = c
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .expect("mode");
    assert_eq!(jm, "wal");
    let app: i32 = c
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .expect("app");
    assert_eq!(app, APP);
    c.execute("INSERT INTO t (body) VALUES ('a')", [])
        .expect("write");
    #[cfg(unix)]
    {
        assert_eq!(mode(&path), 0o600);
        let wal = PathBuf::from(format!("{}-wal", path.display()));
        let shm = PathBuf::from(format!("{}-shm", path.display()));
        assert_eq!(mode(&wal), 0o600, "the WAL gets the file's mode");
        assert_eq!(mode(&shm), 0o600, "the shm gets the file's mode");
    }
    // No temporary file is left beside it.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .expect("ls")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert!(
        names.iter().all(|n| !n.to_string_lossy().contains(".new-")),
        "{names:?}"
    );
}

#[cfg(unix)]
#[test]
fn an_existing_file_readable_by_others_is_tightened() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("db");
    drop(open(&path, &schema(V1)).expect("create"));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    drop(open(&path, &schema(V1)).expect("reopen"));
    assert_eq!(mode(&path), 0o600);
}

#[test]
fn migrations_run_in_order_from_the_file_version() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("db");
    let c = open(&path, &schema(V1)).expect("v1");
    c.execute("INSERT INTO t (body) VALUES ('kept')", [])
        .expect("write");
    drop(c);
    let c = open(&path, &schema(V2)).expect("v2");
    assert_eq!(version(&c), 2);
    let (body, extra): (String, String) = c
        .query_row("SELECT body, extra FROM t", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .expect("row migrated");
    assert_eq!((body.as_str(), extra.as_str()), ("kept", "x"));
    drop(c);
    // Reopening at the same version applies nothing again.
    let c = open(&path, &schema(V2)).expect("again");
    assert_eq!(version(&c), 2);
}

#[test]
fn a_failed_migration_leaves_the_file_at_its_version() {
    const BAD: &[&str] = &[
        "CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT NOT NULL);",
        "CREATE TABLE u (a TEXT); THIS IS NOT SQL;",
    ];
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("db");
    drop(open(&path, &schema(V1)).expect("v1"));
    let e = open(&path, &schema(BAD)).expect_err("bad step");
    assert!(matches!(e, OpenError::Migration { version: 1, .. }), "{e}");
    let c = open(&path, &schema(V1)).expect("still v1");
    assert_eq!(version(&c), 1);
    let u: i64 = c
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name = 'u'",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(u, 0, "the failed step rolled back as a whole");
}

#[test]
fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("db");
    drop(open(&path, &schema(V2)).expect("v2"));
    let e = open(&path, &schema(V1)).expect_err("newer");
    assert!(
        matches!(
            e,
            OpenError::NewerSchema {
                found: 2,
                supported: 1,
                ..
            }
        ),
        "{e}"
    );
    assert!(!e.is_retryable());
    assert!(matches!(
        e.into_store_error("s"),
        StoreError::Unusable { store: "s", .. }
    ));
}

#[test]
fn another_applications_file_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("db");
    drop(open(&path, &schema(V1)).expect("create"));
    let other = Schema::new("other", 0x1234, V1);
    let e = open(&path, &other).expect_err("other app");
    assert!(
        matches!(e, OpenError::OtherApplication { found: APP, .. }),
        "{e}"
    );
    // A plain SQLite file with tables and no legacy rule is not ours either.
    let plain = dir.path().join("plain");
    let c = Connection::open(&plain).expect("plain");
    c.execute_batch("CREATE TABLE x (a);").expect("table");
    drop(c);
    let e = open(&plain, &schema(V1)).expect_err("plain");
    assert!(
        matches!(e, OpenError::OtherApplication { found: 0, .. }),
        "{e}"
    );
}

#[test]
fn a_legacy_file_is_adopted_at_the_version_it_reports() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("db");
    let c = Connection::open(&path).expect("legacy");
    c.execute_batch(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT NOT NULL);
         INSERT INTO t (body) VALUES ('old');",
    )
    .expect("legacy schema");
    drop(c);
    let s = schema(V2).legacy(|c| {
        let has_t: i64 = c.query_row(
            "SELECT count(*) FROM sqlite_master WHERE name = 't'",
            [],
            |r| r.get(0),
        )?;
        Ok((has_t == 1).then_some(1))
    });
    let c = open(&path, &s).expect("adopted");
    assert_eq!(version(&c), 2);
    let extra: String = c
        .query_row("SELECT extra FROM t", [], |r| r.get(0))
        .expect("migrated");
    assert_eq!(extra, "x");
}

fn damaged(bytes: &[u8]) -> OpenError {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("db");
    std::fs::write(&path, bytes).expect("write");
    open(&path, &schema(V1)).expect_err("damaged file opened")
}

fn a_real_file() -> Vec<u8> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("db");
    let c = open(&path, &schema(V1)).expect("create");
    for i in 0..200 {
        c.execute(
            "INSERT INTO t (body) VALUES (?1)",
            [format!("row {i} {}", "x".repeat(100))],
        )
        .expect("write");
    }
    c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .expect("checkpoint");
    drop(c);
    std::fs::read(&path).expect("read")
}

#[test]
fn damaged_files_are_refused_not_opened_empty() {
    let e = damaged(b"");
    assert!(
        matches!(&e, OpenError::Damaged { reason, .. } if reason.contains("empty")),
        "{e}"
    );
    assert!(!e.is_retryable());
    assert!(matches!(
        damaged(b"garbage that is no database"),
        OpenError::Damaged { .. }
    ));
    let real = a_real_file();
    assert!(real.len() > 3 * 4096, "{} bytes", real.len());
    let mut garbage_header = real.clone();
    garbage_header[..16].copy_from_slice(b"not sqlite at al");
    assert!(matches!(
        damaged(&garbage_header),
        OpenError::Damaged { .. }
    ));
    assert!(
        matches!(damaged(&real[..real.len() - 1000]), OpenError::Damaged { reason, .. } if reason.contains("mid-page")),
        "truncated mid-page"
    );
    assert!(
        matches!(damaged(&real[..2 * 4096]), OpenError::Damaged { reason, .. } if reason.contains("pages")),
        "truncated at a page boundary"
    );
    assert!(
        matches!(damaged(&real[..50]), OpenError::Damaged { .. }),
        "cut inside the header"
    );
    // An SQLite file that is valid but empty (no schema) is damage too: gofer files
    // are created with their schema.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("empty-db");
    let c = Connection::open(&path).expect("empty");
    c.execute_batch("CREATE TABLE x (a); DROP TABLE x;")
        .expect("write header");
    drop(c);
    assert!(std::fs::metadata(&path).expect("stat").len() > 0);
    let e = open(&path, &schema(V1)).expect_err("empty database");
    assert!(matches!(e, OpenError::Damaged { .. }), "{e}");
}

#[test]
fn a_corrupt_page_is_damage_when_checked_on_open() {
    let mut real = a_real_file();
    // Scribble over the second page (a b-tree page of table t).
    for b in &mut real[4096 + 8..4096 + 200] {
        *b = 0xA5;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("db");
    std::fs::write(&path, &real).expect("write");
    let e = open(&path, &schema(V1).check_on_open(true)).expect_err("corrupt page");
    assert!(matches!(e, OpenError::Damaged { .. }), "{e}");
}

#[test]
fn a_missing_directory_is_an_io_error_naming_the_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("missing").join("db");
    let e = open(&path, &schema(V1)).expect_err("no dir");
    assert!(matches!(e, OpenError::Io { .. }), "{e}");
    assert!(e.to_string().contains("missing"), "{e}");
    assert!(e.is_retryable());
}

#[test]
fn concurrent_first_opens_agree_on_one_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("db");
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let path = path.clone();
            std::thread::spawn(move || {
                let c = open(&path, &schema(V2)).expect("open");
                c.execute("INSERT INTO t (body) VALUES (?1)", [format!("from {i}")])
                    .expect("write");
            })
        })
        .collect();
    for h in handles {
        h.join().expect("thread");
    }
    let c = open(&path, &schema(V2)).expect("reopen");
    let rows: i64 = c
        .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        .expect("count");
    assert_eq!(rows, 8, "every writer wrote to the same database");
    let leftovers = std::fs::read_dir(dir.path())
        .expect("ls")
        .filter(|e| {
            e.as_ref()
                .map(|e| e.file_name().to_string_lossy().contains(".new-"))
                .unwrap_or(false)
        })
        .count();
    assert_eq!(leftovers, 0);
}

#[test]
fn a_database_that_cannot_use_wal_is_refused() {
    // An in-memory database has no file for a write-ahead log: SQLite keeps "memory".
    let c = Connection::open_in_memory().expect("memory");
    let e = require_wal(&c, Path::new("mem")).expect_err("no WAL");
    assert!(
        matches!(&e, OpenError::NoWal { mode, .. } if mode == "memory"),
        "{e}"
    );
    assert!(!e.is_retryable());
    let dir = tempfile::tempdir().expect("tempdir");
    let file = Connection::open(dir.path().join("db")).expect("file");
    assert!(require_wal(&file, Path::new("db")).is_ok());
}
