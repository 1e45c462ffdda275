//! Properties of the encrypted SQLite secret store that the shared suite cannot see:
//! what is on disk, reopening, key rotation, wrong keys and tampered rows.

use std::path::{Path, PathBuf};

use gofer_core::{SecretStore, StoreError};
use gofer_secrets::{EncryptionKey, SqliteObjectStore, SqliteSecretStore};
use rusqlite::Connection;
use secrecy::{ExposeSecret, SecretString};

fn secret(v: &str) -> SecretString {
    SecretString::from(v.to_string())
}

fn key_a() -> EncryptionKey {
    "11111111111111111111111111111111aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        .parse()
        .expect("key a")
}

fn key_b() -> EncryptionKey {
    "22222222222222222222222222222222bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
        .parse()
        .expect("key b")
}

struct Db {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

fn db() -> Db {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("secrets.db");
    Db { _dir: dir, path }
}

/// Every byte SQLite keeps for this database: the file, its WAL and shared memory.
fn disk_bytes(path: &Path) -> Vec<(String, Vec<u8>)> {
    ["", "-wal", "-shm", "-journal"]
        .iter()
        .filter_map(|suffix| {
            let p = PathBuf::from(format!("{}{suffix}", path.display()));
            std::fs::read(&p).ok().map(|b| (p.display().to_string(), b))
        })
        .collect()
}

fn assert_not_on_disk(path: &Path, values: &[String], stage: &str) {
    let files = disk_bytes(path);
    assert!(!files.is_empty(), "{stage}: database files exist");
    for (name, bytes) in &files {
        for v in values {
            let found = bytes.windows(v.len()).any(|w| w == v.as_bytes());
            assert!(!found, "{stage}: plaintext of a secret found in {name}");
        }
    }
}

fn is_integrity(e: &StoreError) -> bool {
    matches!(e, StoreError::Integrity { .. })
}

fn raw(path: &Path) -> Connection {
    let c = Connection::open(path).expect("raw open");
    c.busy_timeout(std::time::Duration::from_secs(30))
        .expect("busy timeout");
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_never_reaches_the_disk() {
    let db = db();
    let store = SqliteSecretStore::open(&db.path, key_a())
        .await
        .expect("open");
    let mut written = Vec::new();
    for i in 0..20 {
        let v = format!("PLAINTEXT-CANARY-{i:02}-pipeline-qzx");
        store
            .put_pipeline_secret("canary-pipe", &format!("K{i}"), secret(&v), false)
            .await
            .expect("put");
        written.push(v);
    }
    let g = "PLAINTEXT-CANARY-global-qzx".to_string();
    store
        .put_global_secret("G", secret(&g), vec!["canary-*".into()], false)
        .await
        .expect("put global");
    written.push(g);
    assert_not_on_disk(&db.path, &written, "after writes");
    // Control: the search does find what is stored in plaintext (names, not values).
    let names_found = disk_bytes(&db.path)
        .iter()
        .any(|(_, b)| b.windows(11).any(|w| w == b"canary-pipe"));
    assert!(names_found, "the byte search sees the database content");

    for i in 0..10 {
        let v = format!("PLAINTEXT-CANARY-{i:02}-overwrite-qzx");
        store
            .put_pipeline_secret("canary-pipe", &format!("K{i}"), secret(&v), true)
            .await
            .expect("overwrite");
        written.push(v);
    }
    assert_not_on_disk(&db.path, &written, "after overwrites");

    for i in 10..15 {
        store
            .delete_pipeline_secret("canary-pipe", &format!("K{i}"))
            .await
            .expect("delete");
    }
    assert_not_on_disk(&db.path, &written, "after deletes");

    store.rotate_key(key_b()).await.expect("rotate");
    assert_not_on_disk(&db.path, &written, "after rotation");

    // The values are really there, encrypted.
    let v = store
        .get_pipeline_secret("canary-pipe", "K3")
        .await
        .expect("get");
    assert_eq!(v.expose_secret(), "PLAINTEXT-CANARY-03-overwrite-qzx");
    drop(store);
    assert_not_on_disk(&db.path, &written, "after close (checkpointed)");
    // The key itself is not on disk either, in any encoding.
    let key = key_b();
    let b64 = key.to_base64();
    let key_texts = [
        b64.expose_secret().to_string(),
        "22222222222222222222222222222222bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb".to_string(),
    ];
    assert_not_on_disk(&db.path, &key_texts, "key material");
    let raw_key = [
        0x22u8, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22,
        0x22, 0xbb, 0xbb, 0xbb, 0xbb, 0xbb, 0xbb, 0xbb, 0xbb, 0xbb, 0xbb, 0xbb, 0xbb, 0xbb, 0xbb,
        0xbb, 0xbb,
    ];
    for (name, bytes) in disk_bytes(&db.path) {
        assert!(
            !bytes.windows(32).any(|w| w == raw_key),
            "raw key bytes in {name}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_survive_close_and_reopen() {
    let db = db();
    {
        let store = SqliteSecretStore::open(&db.path, key_a())
            .await
            .expect("open");
        store
            .put_pipeline_secret("persist", "K", secret("kept-value"), false)
            .await
            .expect("put");
        store
            .put_global_secret("G", secret("kept-global"), vec!["pers*".into()], false)
            .await
            .expect("put");
        let objects = SqliteObjectStore::open(&db.path).await.expect("objects");
        gofer_core::ObjectStore::put_run_object(
            &objects,
            "persist",
            4,
            "out",
            bytes::Bytes::from_static(b"obj"),
            false,
        )
        .await
        .expect("object");
    }
    let store = SqliteSecretStore::open(&db.path, key_a())
        .await
        .expect("reopen");
    assert_eq!(
        store
            .get_pipeline_secret("persist", "K")
            .await
            .expect("get")
            .expose_secret(),
        "kept-value"
    );
    assert_eq!(
        store
            .get_global_secret("persist", "G")
            .await
            .expect("get")
            .expose_secret(),
        "kept-global"
    );
    assert_eq!(
        store.list_pipeline_secrets("persist").await.expect("list"),
        ["K"]
    );
    let objects = SqliteObjectStore::open(&db.path).await.expect("objects");
    let v = gofer_core::ObjectStore::get_run_object(&objects, "persist", 4, "out")
        .await
        .expect("object kept");
    assert_eq!(&v[..], b"obj");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&db.path)
            .expect("meta")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "the database is private to its owner");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_key_is_an_integrity_error() {
    let db = db();
    let store = SqliteSecretStore::open(&db.path, key_a())
        .await
        .expect("open");
    store
        .put_pipeline_secret("pipe", "K", secret("v"), false)
        .await
        .expect("put");
    drop(store);
    let e = SqliteSecretStore::open(&db.path, key_b())
        .await
        .expect_err("wrong key");
    assert!(is_integrity(&e), "{e}");
    assert!(e.to_string().contains("secrets.db"), "{e}");

    // Even when the recorded key id is forged to match, the values do not decrypt.
    raw(&db.path)
        .execute(
            "UPDATE gofer_meta SET value = ?1 WHERE name = 'secrets_key_id'",
            [key_b().id()],
        )
        .expect("forge key id");
    let store = SqliteSecretStore::open(&db.path, key_b())
        .await
        .expect("open");
    let e = store
        .get_pipeline_secret("pipe", "K")
        .await
        .expect_err("wrong key");
    assert!(is_integrity(&e), "{e}");
    assert!(e.to_string().contains("\"K\""), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_rows_are_integrity_errors() {
    let db = db();
    let store = SqliteSecretStore::open(&db.path, key_a())
        .await
        .expect("open");
    for k in ["CT", "NONCE", "SHORT", "FINE"] {
        store
            .put_pipeline_secret("pipe", k, secret("some value"), false)
            .await
            .expect("put");
    }
    store
        .put_global_secret("G", secret("global value"), vec!["ops".into()], false)
        .await
        .expect("put");
    let c = raw(&db.path);
    let flip = |column: &str, key: &str| {
        let mut bytes: Vec<u8> = c
            .query_row(
                &format!("SELECT {column} FROM gofer_secrets WHERE key = ?1"),
                [key],
                |r| r.get(0),
            )
            .expect("read");
        bytes[0] ^= 0x01;
        c.execute(
            &format!("UPDATE gofer_secrets SET {column} = ?1 WHERE key = ?2"),
            rusqlite::params![bytes, key],
        )
        .expect("write");
    };
    flip("ciphertext", "CT");
    flip("nonce", "NONCE");
    c.execute(
        "UPDATE gofer_secrets SET nonce = substr(nonce, 1, 8) WHERE key = 'SHORT'",
        [],
    )
    .expect("truncate");
    // Widen the global secret's allow-list behind the store's back.
    c.execute(
        "UPDATE gofer_secrets SET allow = 'ops\nintruder' WHERE key = 'G'",
        [],
    )
    .expect("allow");
    for k in ["CT", "NONCE", "SHORT"] {
        let e = store.get_pipeline_secret("pipe", k).await.expect_err(k);
        assert!(is_integrity(&e), "{k}: {e}");
    }
    let e = store
        .get_global_secret("intruder", "G")
        .await
        .expect_err("widened allow-list");
    assert!(is_integrity(&e), "{e}");
    let v = store
        .get_pipeline_secret("pipe", "FINE")
        .await
        .expect("untouched row");
    assert_eq!(v.expose_secret(), "some value");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_moved_to_another_identity_is_an_integrity_error() {
    let db = db();
    let store = SqliteSecretStore::open(&db.path, key_a())
        .await
        .expect("open");
    store
        .put_pipeline_secret("source", "K", secret("belongs to source/K"), false)
        .await
        .expect("put");
    store
        .put_pipeline_secret("source", "OTHER", secret("belongs to source/OTHER"), false)
        .await
        .expect("put");
    store
        .put_pipeline_secret("target", "K", secret("belongs to target/K"), false)
        .await
        .expect("put");
    let c = raw(&db.path);
    // Move to another pipeline.
    c.execute(
        "UPDATE gofer_secrets SET pipeline = 'thief' WHERE pipeline = 'source' AND key = 'K'",
        [],
    )
    .expect("move");
    let e = store
        .get_pipeline_secret("thief", "K")
        .await
        .expect_err("moved");
    assert!(is_integrity(&e), "{e}");
    // Copy another key's ciphertext over this one.
    c.execute(
        "UPDATE gofer_secrets SET (nonce, ciphertext) =
           (SELECT nonce, ciphertext FROM gofer_secrets WHERE pipeline = 'source' AND key = 'OTHER')
         WHERE pipeline = 'target' AND key = 'K'",
        [],
    )
    .expect("copy");
    let e = store
        .get_pipeline_secret("target", "K")
        .await
        .expect_err("copied");
    assert!(is_integrity(&e), "{e}");
    // Turn a pipeline secret into a global one readable by all.
    c.execute(
        "UPDATE gofer_secrets SET kind = 'global', pipeline = '', allow = '*' WHERE key = 'OTHER'",
        [],
    )
    .expect("promote");
    let e = store
        .get_global_secret("anyone", "OTHER")
        .await
        .expect_err("promoted");
    assert!(is_integrity(&e), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_keeps_every_value_and_retires_the_old_key() {
    let db = db();
    let store = SqliteSecretStore::open(&db.path, key_a())
        .await
        .expect("open");
    for i in 0..25 {
        store
            .put_pipeline_secret(
                &format!("pipe-{}", i % 3),
                &format!("K{i}"),
                secret(&format!("value {i}")),
                false,
            )
            .await
            .expect("put");
    }
    store
        .put_global_secret("G", secret("global"), vec!["pipe-*".into()], false)
        .await
        .expect("put");
    let nonces_before: Vec<Vec<u8>> = raw(&db.path)
        .prepare("SELECT nonce FROM gofer_secrets ORDER BY kind, pipeline, key")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .expect("nonces");
    assert_eq!(store.key_id(), key_a().id());
    let old_ciphertexts: Vec<Vec<u8>> = raw(&db.path)
        .prepare("SELECT ciphertext FROM gofer_secrets")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .expect("ciphertexts");
    let n = store.rotate_key(key_b()).await.expect("rotate");
    assert_eq!(n, 26);
    assert_eq!(store.key_id(), key_b().id());
    // No ciphertext under the old key is left anywhere on disk (file, WAL, free pages).
    for (name, bytes) in disk_bytes(&db.path) {
        for ct in &old_ciphertexts {
            assert!(
                !bytes.windows(ct.len()).any(|w| w == &ct[..]),
                "an old ciphertext lingers in {name}"
            );
        }
    }
    let check = |store: SqliteSecretStore| async move {
        for i in 0..25 {
            let v = store
                .get_pipeline_secret(&format!("pipe-{}", i % 3), &format!("K{i}"))
                .await
                .expect("readable after rotation");
            assert_eq!(v.expose_secret(), format!("value {i}"));
        }
        let v = store
            .get_global_secret("pipe-1", "G")
            .await
            .expect("global");
        assert_eq!(v.expose_secret(), "global");
    };
    check(store.clone()).await;
    drop(store);
    let c = raw(&db.path);
    let ids: Vec<String> = c
        .prepare("SELECT DISTINCT key_id FROM gofer_secrets")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .expect("ids");
    assert_eq!(ids, [key_b().id().to_string()]);
    let nonces_after: Vec<Vec<u8>> = c
        .prepare("SELECT nonce FROM gofer_secrets ORDER BY kind, pipeline, key")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .expect("nonces");
    assert!(
        nonces_before.iter().zip(&nonces_after).all(|(a, b)| a != b),
        "fresh nonces"
    );
    drop(c);
    let e = SqliteSecretStore::open(&db.path, key_a())
        .await
        .expect_err("old key retired");
    assert!(is_integrity(&e), "{e}");
    check(
        SqliteSecretStore::open(&db.path, key_b())
            .await
            .expect("new key"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_is_all_or_nothing() {
    let db = db();
    let store = SqliteSecretStore::open(&db.path, key_a())
        .await
        .expect("open");
    for k in ["A", "B", "C"] {
        store
            .put_pipeline_secret("pipe", k, secret(&format!("value {k}")), false)
            .await
            .expect("put");
    }
    raw(&db.path)
        .execute(
            "UPDATE gofer_secrets SET ciphertext = zeroblob(20) WHERE key = 'C'",
            [],
        )
        .expect("tamper");
    let e = store
        .rotate_key(key_b())
        .await
        .expect_err("tampered row stops rotation");
    assert!(is_integrity(&e) && e.to_string().contains("\"C\""), "{e}");
    assert_eq!(store.key_id(), key_a().id());
    for k in ["A", "B"] {
        let v = store
            .get_pipeline_secret("pipe", k)
            .await
            .expect("still under key a");
        assert_eq!(v.expose_secret(), format!("value {k}"));
    }
    drop(store);
    SqliteSecretStore::open(&db.path, key_a())
        .await
        .expect("key a still opens");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_handle_cannot_write_after_rotation() {
    let db = db();
    let first = SqliteSecretStore::open(&db.path, key_a())
        .await
        .expect("open");
    let second = SqliteSecretStore::open(&db.path, key_a())
        .await
        .expect("open");
    first
        .put_pipeline_secret("pipe", "K", secret("v"), false)
        .await
        .expect("put");
    first.rotate_key(key_b()).await.expect("rotate");
    let e = second
        .put_pipeline_secret("pipe", "NEW", secret("v"), false)
        .await
        .expect_err("stale key");
    assert!(is_integrity(&e), "{e}");
    let e = second
        .get_pipeline_secret("pipe", "K")
        .await
        .expect_err("stale key");
    assert!(is_integrity(&e), "{e}");
    assert_eq!(
        first.list_pipeline_secrets("pipe").await.expect("list"),
        ["K"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_handles_on_one_file_lose_nothing() {
    let db = db();
    let handles: Vec<SqliteSecretStore> = {
        let mut v = Vec::new();
        for _ in 0..3 {
            v.push(
                SqliteSecretStore::open(&db.path, key_a())
                    .await
                    .expect("open"),
            );
        }
        v
    };
    let mut tasks = Vec::new();
    for (h, store) in handles.iter().enumerate() {
        for t in 0..4 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                for k in 0..15 {
                    let key = format!("H{h}T{t}K{k}");
                    store
                        .put_pipeline_secret(
                            "shared-pipe",
                            &key,
                            secret(&format!("v-{key}")),
                            false,
                        )
                        .await
                        .expect("put");
                    let v = store
                        .get_pipeline_secret("shared-pipe", &key)
                        .await
                        .expect("read own write");
                    assert_eq!(v.expose_secret(), format!("v-{key}"));
                    store
                        .put_pipeline_secret(
                            "shared-pipe",
                            "HOT",
                            secret(&format!("v-{key}")),
                            true,
                        )
                        .await
                        .expect("overwrite");
                    store
                        .list_pipeline_secrets("shared-pipe")
                        .await
                        .expect("list");
                }
            }));
        }
    }
    for t in tasks {
        t.await.expect("task");
    }
    let keys = handles[0]
        .list_pipeline_secrets("shared-pipe")
        .await
        .expect("list");
    assert_eq!(keys.len(), 3 * 4 * 15 + 1);
    for k in keys {
        let v = handles[2]
            .get_pipeline_secret("shared-pipe", &k)
            .await
            .expect("every value decrypts");
        assert!(v.expose_secret().starts_with("v-H"), "{k}");
    }
}
