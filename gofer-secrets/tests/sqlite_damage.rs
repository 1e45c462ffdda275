//! A damaged secret store file never opens as "no secrets": truncated to zero bytes,
//! cut mid-page, with a garbage header or a scribbled page, it is refused with
//! `StoreError::Unusable` naming the file. Files from before schema versioning are
//! adopted with their secrets.

mod common;

use common::*;
use gofer_core::{SecretStore, StoreError};
use gofer_secrets::{SqliteObjectStore, SqliteSecretStore};
use gofer_sqlite::OpenError;
use secrecy::ExposeSecret;

/// A store file holding a few secrets, checkpointed so everything is in the file.
async fn written(db: &Db) -> Vec<u8> {
    let store = SqliteSecretStore::open(&db.path, key_a())
        .await
        .expect("open");
    for i in 0..40 {
        store
            .put_pipeline_secret("pipe", &format!("K{i}"), secret(&"v".repeat(200)), false)
            .await
            .expect("put");
    }
    drop(store);
    raw(&db.path)
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .expect("checkpoint");
    std::fs::read(&db.path).expect("read")
}

async fn refused(db: &Db, bytes: &[u8], what: &str) -> OpenError {
    let _ = std::fs::remove_file(format!("{}-wal", db.path.display()));
    let _ = std::fs::remove_file(format!("{}-shm", db.path.display()));
    std::fs::write(&db.path, bytes).expect("write damaged file");
    let e = SqliteSecretStore::open(&db.path, key_a())
        .await
        .expect_err(what);
    assert!(!e.is_retryable(), "{what}: {e}");
    assert!(
        e.to_string().contains("secrets.db"),
        "{what}: names the file: {e}"
    );
    let StoreError::Unusable { store, source } = e else {
        panic!("{what}: not Unusable: {e}");
    };
    assert_eq!(store, "sqlite");
    let open = *source.downcast::<OpenError>().expect("an OpenError");
    // The object store refuses the same file the same way.
    let e = SqliteObjectStore::open(&db.path)
        .await
        .expect_err("object store");
    assert!(matches!(e, StoreError::Unusable { .. }), "{what}: {e}");
    open
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_truncated_to_zero_bytes_is_an_error_not_an_empty_store() {
    let db = db();
    written(&db).await;
    let e = refused(&db, b"", "zero bytes").await;
    assert!(
        matches!(&e, OpenError::Damaged { reason, .. } if reason.contains("empty")),
        "{e}"
    );
    // Still refused on a second try: the open did not "repair" it into a new store.
    let e = refused(&db, b"", "zero bytes, again").await;
    assert!(matches!(e, OpenError::Damaged { .. }), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_damage_shapes_are_errors() {
    let db = db();
    let real = written(&db).await;
    assert!(real.len() >= 4 * 4096, "{} bytes", real.len());

    let e = refused(&db, &real[..real.len() - 777], "mid-page").await;
    assert!(matches!(e, OpenError::Damaged { .. }), "{e}");
    let e = refused(&db, &real[..2 * 4096], "at a page boundary").await;
    assert!(matches!(e, OpenError::Damaged { .. }), "{e}");
    let e = refused(&db, &real[..60], "inside the header").await;
    assert!(matches!(e, OpenError::Damaged { .. }), "{e}");

    let mut garbage = real.clone();
    garbage[..16].copy_from_slice(b"\x00\x01garbage header");
    let e = refused(&db, &garbage, "garbage header").await;
    assert!(matches!(e, OpenError::Damaged { .. }), "{e}");

    let e = refused(&db, &vec![0u8; 8192], "zeros").await;
    assert!(matches!(e, OpenError::Damaged { .. }), "{e}");

    let mut scribbled = real.clone();
    for b in &mut scribbled[real.len() - 4096 + 8..real.len() - 8] {
        *b = 0x5a;
    }
    let e = refused(&db, &scribbled, "scribbled last page").await;
    assert!(matches!(e, OpenError::Damaged { .. }), "{e}");

    // The undamaged file still opens with every secret.
    std::fs::write(&db.path, &real).expect("restore");
    let store = SqliteSecretStore::open(&db.path, key_a())
        .await
        .expect("intact file");
    let v = store.get_pipeline_secret("pipe", "K7").await.expect("K7");
    assert_eq!(v.expose_secret(), "v".repeat(200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_store_file_is_not_a_secret_store() {
    let db = db();
    written(&db).await;
    raw(&db.path)
        .execute_batch("PRAGMA application_id = 1735349843;") // "goRS", the run store
        .expect("set id");
    let e = SqliteSecretStore::open(&db.path, key_a())
        .await
        .expect_err("another schema");
    let StoreError::Unusable { source, .. } = e else {
        panic!("not Unusable: {e}");
    };
    assert!(
        matches!(
            source.downcast_ref::<OpenError>(),
            Some(OpenError::OtherApplication { .. })
        ),
        "{source}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_with_its_version_in_gofer_meta_is_migrated_to_user_version() {
    let db = db();
    written(&db).await;
    // Make it look as the earlier code wrote it: no application id, no
    // user_version, the versions in gofer_meta.
    raw(&db.path)
        .execute_batch(
            "PRAGMA application_id = 0; PRAGMA user_version = 0;
             INSERT INTO gofer_meta (name, value) VALUES ('secrets_schema', '1'), ('objects_schema', '1');",
        )
        .expect("legacy");
    let store = SqliteSecretStore::open(&db.path, key_a())
        .await
        .expect("legacy file opens");
    let v = store.get_pipeline_secret("pipe", "K3").await.expect("K3");
    assert_eq!(v.expose_secret(), "v".repeat(200));
    drop(store);
    let c = raw(&db.path);
    let version: u32 = c
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("version");
    assert_eq!(version, 2);
    let left: i64 = c
        .query_row(
            "SELECT count(*) FROM gofer_meta WHERE name LIKE '%_schema'",
            [],
            |r| r.get(0),
        )
        .expect("meta");
    assert_eq!(left, 0, "the version rows moved into user_version");

    // A legacy version this build does not know is refused.
    c.execute_batch(
        "PRAGMA application_id = 0; PRAGMA user_version = 0;
         INSERT INTO gofer_meta (name, value) VALUES ('secrets_schema', '2');",
    )
    .expect("newer legacy");
    drop(c);
    let e = SqliteSecretStore::open(&db.path, key_a())
        .await
        .expect_err("unknown legacy version");
    assert!(matches!(e, StoreError::Unusable { .. }), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_schema_is_refused() {
    let db = db();
    written(&db).await;
    raw(&db.path)
        .execute_batch("PRAGMA user_version = 3;")
        .expect("bump");
    let e = SqliteSecretStore::open(&db.path, key_a())
        .await
        .expect_err("newer");
    let StoreError::Unusable { source, .. } = e else {
        panic!("not Unusable: {e}");
    };
    assert!(
        matches!(
            source.downcast_ref::<OpenError>(),
            Some(OpenError::NewerSchema {
                found: 3,
                supported: 2,
                ..
            })
        ),
        "{source}"
    );
}
