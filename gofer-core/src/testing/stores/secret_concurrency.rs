//! The concurrency case of the [`SecretStore`](crate::SecretStore) suite.

use crate::DynSecretStore;
use futures::future::join_all;
use secrecy::{ExposeSecret, SecretString};

use super::secret::fixture;

fn secret(v: &str) -> SecretString {
    SecretString::from(v.to_string())
}

/// Many concurrent writers, overwriters, readers and deleters: nothing is lost,
/// nothing is corrupted. A read-only store (`writable` false) gets many concurrent
/// readers of the [`fixture`] instead.
///
/// # Panics
/// When a value is lost or wrong.
pub async fn secret_concurrent_access(store: &DynSecretStore, writable: bool) {
    if !writable {
        let fx = fixture();
        let fx = &fx;
        join_all((0..16).map(|_| async move {
            for s in &fx.pipeline_secrets {
                let v = store
                    .get_pipeline_secret(s.pipeline, s.key)
                    .await
                    .expect("concurrent get");
                assert_eq!(v.expose_secret(), s.value);
            }
            let v = store
                .get_global_secret("suite-alpha", "SHARED_TOKEN")
                .await
                .expect("concurrent global get");
            assert_eq!(v.expose_secret(), "shared-global-3Jd8");
            assert_eq!(
                store
                    .list_pipeline_secrets("suite-alpha")
                    .await
                    .expect("list")
                    .len(),
                3
            );
        }))
        .await;
        return;
    }
    let p = "suite-concurrent";
    const WRITERS: usize = 8;
    const KEYS: usize = 16;
    let value = |w: usize, k: usize| format!("value-{w}-{k}-{}", "z".repeat(k * 7));
    let writers = (0..WRITERS).map(|w| async move {
        for k in 0..KEYS {
            store
                .put_pipeline_secret(p, &format!("W{w}_K{k}"), secret(&value(w, k)), false)
                .await
                .expect("concurrent put");
            // Everybody also overwrites one shared key.
            store
                .put_pipeline_secret(p, "SHARED", secret(&value(w, k)), true)
                .await
                .expect("concurrent overwrite");
        }
    });
    let readers = (0..WRITERS).map(|_| async move {
        for _ in 0..KEYS {
            let keys = store
                .list_pipeline_secrets(p)
                .await
                .expect("concurrent list");
            let mut sorted = keys.clone();
            sorted.sort();
            assert_eq!(keys, sorted, "lists stay sorted");
            if let Some(k) = keys.iter().find(|k| k.as_str() != "SHARED") {
                let v = store
                    .get_pipeline_secret(p, k)
                    .await
                    .expect("concurrent get");
                let (w, n) = k[1..].split_once("_K").expect("key shape");
                let want = value(w.parse().expect("w"), n.parse().expect("k"));
                assert_eq!(v.expose_secret(), want, "value of {k}");
            }
        }
    });
    futures::join!(join_all(writers), join_all(readers));
    let keys = store.list_pipeline_secrets(p).await.expect("list");
    assert_eq!(keys.len(), WRITERS * KEYS + 1, "every key is kept");
    for w in 0..WRITERS {
        for k in 0..KEYS {
            let v = store
                .get_pipeline_secret(p, &format!("W{w}_K{k}"))
                .await
                .expect("kept");
            assert_eq!(v.expose_secret(), value(w, k));
        }
    }
    let shared = store
        .get_pipeline_secret(p, "SHARED")
        .await
        .expect("shared");
    let last_writes: Vec<String> = (0..WRITERS).map(|w| value(w, KEYS - 1)).collect();
    assert!(
        last_writes.iter().any(|v| v == shared.expose_secret()),
        "the shared key holds one writer's last value"
    );
    join_all(keys.iter().map(|k| store.delete_pipeline_secret(p, k)))
        .await
        .into_iter()
        .for_each(|r| r.expect("concurrent delete"));
    assert!(store
        .list_pipeline_secrets(p)
        .await
        .expect("list")
        .is_empty());
}
