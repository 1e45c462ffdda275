//! A wrong key, a tampered row or a row moved to another identity reads as
//! `StoreError::Integrity`, never as garbage.

mod common;

use common::*;
use gofer_core::SecretStore;
use gofer_secrets::SqliteSecretStore;
use secrecy::ExposeSecret;

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
