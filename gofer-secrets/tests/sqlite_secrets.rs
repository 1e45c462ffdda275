//! Properties of the encrypted SQLite secret store that the shared suite cannot see:
//! what is on disk, reopening, concurrent handles on one file.

mod common;

use common::*;
use gofer_core::SecretStore;
use gofer_secrets::{SqliteObjectStore, SqliteSecretStore};
use secrecy::ExposeSecret;

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
