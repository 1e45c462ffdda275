//! Key rotation: every value stays readable, the old key is retired, nothing of it
//! stays on disk, and a failed rotation changes nothing.

mod common;

use common::*;
use gofer_core::SecretStore;
use gofer_secrets::SqliteSecretStore;
use secrecy::ExposeSecret;

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
