//! The [`ObjectStore`](crate::ObjectStore) behaviour suite.

use crate::{DynObjectStore, StoreError};
use bytes::Bytes;
use futures::future::join_all;

fn b(v: &'static [u8]) -> Bytes {
    Bytes::from_static(v)
}

fn assert_missing(r: Result<Bytes, StoreError>, what: &str) {
    match r {
        Err(e @ StoreError::NotFound { .. }) => {
            assert!(
                e.to_string().contains(what),
                "error {e} should name {what:?}"
            )
        }
        Err(e) => panic!("{what}: expected NotFound, got {e}"),
        Ok(v) => panic!("{what}: expected NotFound, got {v:?}"),
    }
}

/// Writes, overwrites, lists and deletes pipeline objects, binary and empty values
/// included.
///
/// # Panics
/// When the store misbehaves.
pub async fn pipeline_objects(store: &DynObjectStore) {
    let p = "suite-objects";
    store
        .put_pipeline_object(p, "b", b(b"\x00\x01\xffbinary"), false)
        .await
        .expect("put");
    store
        .put_pipeline_object(p, "a", b(b""), false)
        .await
        .expect("put empty");
    assert_eq!(
        store.get_pipeline_object(p, "b").await.expect("get"),
        b(b"\x00\x01\xffbinary")
    );
    assert_eq!(
        store.get_pipeline_object(p, "a").await.expect("get"),
        b(b"")
    );
    let e = store
        .put_pipeline_object(p, "b", b(b"new"), false)
        .await
        .expect_err("exists");
    assert!(
        matches!(e, StoreError::AlreadyExists { .. }) && e.to_string().contains("\"b\""),
        "{e}"
    );
    assert_eq!(
        store.get_pipeline_object(p, "b").await.expect("get"),
        b(b"\x00\x01\xffbinary")
    );
    store
        .put_pipeline_object(p, "b", b(b"new"), true)
        .await
        .expect("force");
    assert_eq!(
        store.get_pipeline_object(p, "b").await.expect("get"),
        b(b"new")
    );
    assert_eq!(
        store.list_pipeline_objects(p).await.expect("list"),
        ["a", "b"]
    );
    assert!(store
        .list_pipeline_objects("suite-objects-none")
        .await
        .expect("list")
        .is_empty());
    assert_missing(
        store.get_pipeline_object("suite-objects-other", "b").await,
        "b",
    );
    store.delete_pipeline_object(p, "a").await.expect("delete");
    assert_missing(store.get_pipeline_object(p, "a").await, "a");
    assert!(store
        .delete_pipeline_object(p, "a")
        .await
        .expect_err("gone")
        .is_not_found());
    assert_eq!(store.list_pipeline_objects(p).await.expect("list"), ["b"]);
    store.delete_pipeline_object(p, "b").await.expect("cleanup");
}

/// Run objects are scoped to their run and pipeline.
///
/// # Panics
/// When the store misbehaves.
pub async fn run_objects(store: &DynObjectStore) {
    let p = "suite-runs";
    store
        .put_run_object(p, 1, "out", b(b"one"), false)
        .await
        .expect("put run 1");
    store
        .put_run_object(p, 2, "out", b(b"two"), false)
        .await
        .expect("put run 2");
    store
        .put_run_object(p, 2, "extra", b(b"x"), false)
        .await
        .expect("put run 2");
    assert_eq!(
        store.get_run_object(p, 1, "out").await.expect("get"),
        b(b"one")
    );
    assert_eq!(
        store.get_run_object(p, 2, "out").await.expect("get"),
        b(b"two")
    );
    assert_missing(store.get_run_object(p, 3, "out").await, "out");
    assert_missing(
        store.get_run_object("suite-runs-other", 1, "out").await,
        "out",
    );
    assert_missing(store.get_pipeline_object(p, "out").await, "out");
    let e = store
        .put_run_object(p, 1, "out", b(b"again"), false)
        .await
        .expect_err("exists");
    assert!(matches!(e, StoreError::AlreadyExists { .. }), "{e}");
    store
        .put_run_object(p, 1, "out", b(b"again"), true)
        .await
        .expect("force");
    assert_eq!(
        store.get_run_object(p, 1, "out").await.expect("get"),
        b(b"again")
    );
    assert_eq!(store.list_run_objects(p, 1).await.expect("list"), ["out"]);
    assert_eq!(
        store.list_run_objects(p, 2).await.expect("list"),
        ["extra", "out"]
    );
    assert!(store.list_run_objects(p, 3).await.expect("list").is_empty());
    store.delete_run_object(p, 2, "out").await.expect("delete");
    assert_missing(store.get_run_object(p, 2, "out").await, "out");
    assert!(store
        .delete_run_object(p, 2, "out")
        .await
        .expect_err("gone")
        .is_not_found());
    assert_eq!(
        store
            .get_run_object(p, 1, "out")
            .await
            .expect("run 1 untouched"),
        b(b"again")
    );
}

/// Invalid keys are refused with [`StoreError::InvalidKey`].
///
/// # Panics
/// When the store accepts them.
pub async fn object_errors(store: &DynObjectStore) {
    let p = "suite-object-errors";
    for key in ["", "bad\nkey"] {
        let e = store
            .put_pipeline_object(p, key, b(b"v"), false)
            .await
            .expect_err("bad key");
        assert!(matches!(e, StoreError::InvalidKey { .. }), "{key:?}: {e}");
        let e = store
            .put_run_object(p, 1, key, b(b"v"), false)
            .await
            .expect_err("bad key");
        assert!(matches!(e, StoreError::InvalidKey { .. }), "{key:?}: {e}");
    }
}

/// After `keep_runs + 2` finished runs, the first two runs' objects are gone and the
/// rest are kept; unfinished runs and other pipelines are untouched.
///
/// # Panics
/// When the store misbehaves.
pub async fn run_expiry(store: &DynObjectStore, keep_runs: usize) {
    let p = "suite-expiry";
    let other = "suite-expiry-other";
    store
        .put_run_object(other, 1, "k", b(b"o"), false)
        .await
        .expect("put other");
    store.run_finished(other, 1).await.expect("finish other");
    store
        .put_run_object(p, 1_000, "k", b(b"unfinished"), false)
        .await
        .expect("put unfinished");
    let last = keep_runs as u64 + 2;
    for run in 1..=last {
        store
            .put_run_object(p, run, "k", b(b"v"), false)
            .await
            .expect("put");
        store.run_finished(p, run).await.expect("run finished");
    }
    for run in 1..=2 {
        assert_missing(store.get_run_object(p, run, "k").await, "k");
        assert!(store
            .list_run_objects(p, run)
            .await
            .expect("list")
            .is_empty());
    }
    for run in 3..=last {
        store
            .get_run_object(p, run, "k")
            .await
            .unwrap_or_else(|e| panic!("run {run} kept: {e}"));
    }
    store
        .get_run_object(p, 1_000, "k")
        .await
        .expect("unfinished run kept");
    store
        .get_run_object(other, 1, "k")
        .await
        .expect("other pipeline kept");
}

/// With `max_pipeline_objects` set, writing past the limit evicts the least recently
/// written objects; without one, nothing is evicted.
///
/// # Panics
/// When the store misbehaves.
pub async fn pipeline_object_limit(store: &DynObjectStore, max_pipeline_objects: Option<usize>) {
    let p = "suite-limit";
    let n = max_pipeline_objects.unwrap_or(60);
    let key = |i: usize| format!("obj{i:04}");
    for i in 0..n + 2 {
        store
            .put_pipeline_object(p, &key(i), Bytes::from(i.to_string()), false)
            .await
            .expect("put");
    }
    let listed = store.list_pipeline_objects(p).await.expect("list");
    if max_pipeline_objects.is_none() {
        assert_eq!(listed.len(), n + 2, "no limit: all kept");
        return;
    }
    assert_eq!(listed.len(), n, "limit {n} holds");
    for i in 0..2 {
        assert_missing(store.get_pipeline_object(p, &key(i)).await, &key(i));
    }
    // Rewriting the oldest makes it the newest; the next write evicts the one after.
    store
        .put_pipeline_object(p, &key(2), b(b"fresh"), true)
        .await
        .expect("force");
    store
        .put_pipeline_object(p, "newest", b(b"n"), false)
        .await
        .expect("put");
    assert_eq!(
        store
            .get_pipeline_object(p, &key(2))
            .await
            .expect("refreshed"),
        b(b"fresh")
    );
    assert_missing(store.get_pipeline_object(p, &key(3)).await, &key(3));
    assert_eq!(store.list_pipeline_objects(p).await.expect("list").len(), n);
    assert!(store
        .list_pipeline_objects("suite-limit-other")
        .await
        .expect("list")
        .is_empty());
}

/// Concurrent writers and readers of run objects and of pipeline objects across
/// pipelines: nothing lost or mixed up.
///
/// # Panics
/// When something is lost.
pub async fn object_concurrent_access(store: &DynObjectStore) {
    const TASKS: usize = 8;
    const KEYS: usize = 8;
    let p = "suite-obj-concurrent";
    let value = |t: usize, k: usize| Bytes::from(format!("{t}:{k}:{}", "v".repeat(t * k)));
    join_all((0..TASKS).map(|t| async move {
        let own = format!("suite-obj-conc-{t}");
        for k in 0..KEYS {
            store
                .put_run_object(p, 7, &format!("t{t}k{k}"), value(t, k), false)
                .await
                .expect("put run object");
            store
                .put_pipeline_object(&own, "last", value(t, k), true)
                .await
                .expect("put pipeline object");
            let _ = store.list_run_objects(p, 7).await.expect("list");
        }
    }))
    .await;
    assert_eq!(
        store.list_run_objects(p, 7).await.expect("list").len(),
        TASKS * KEYS
    );
    for t in 0..TASKS {
        for k in 0..KEYS {
            let v = store
                .get_run_object(p, 7, &format!("t{t}k{k}"))
                .await
                .expect("kept");
            assert_eq!(v, value(t, k));
        }
        let own = format!("suite-obj-conc-{t}");
        let v = store.get_pipeline_object(&own, "last").await.expect("kept");
        assert_eq!(v, value(t, KEYS - 1));
    }
}

/// With a quota of 3 objects and 10 bytes per run: writes past either are refused with
/// `Limit` naming the run, and change nothing; overwriting an object counts its new
/// size only; other runs are not affected.
///
/// # Panics
/// When the store misbehaves. The store must have been made with
/// `RunObjectQuota::new(3, 10)`.
pub async fn run_object_quota(store: &DynObjectStore) {
    let p = "suite-quota";
    for (k, v) in [("one", b"1234"), ("two", b"5678")] {
        store
            .put_run_object(p, 1, k, b(v), false)
            .await
            .expect("put");
    }
    let refused = |r: Result<(), StoreError>, what: &str| match r {
        Err(e @ StoreError::Limit { .. }) => {
            let text = e.to_string();
            assert!(
                text.contains("run 1 of pipeline \"suite-quota\""),
                "{what}: {text}"
            );
        }
        other => panic!("{what}: expected Limit, got {other:?}"),
    };
    // 8 bytes held: 3 more pass the 10.
    refused(
        store.put_run_object(p, 1, "three", b(b"abc"), false).await,
        "bytes",
    );
    // An overwrite counts the new value, not the old one as well.
    store
        .put_run_object(p, 1, "two", b(b"567890"), true)
        .await
        .expect("overwrite within the quota");
    refused(
        store
            .put_run_object(p, 1, "two", b(b"56789012345"), true)
            .await,
        "an overwrite past the bytes",
    );
    store
        .put_run_object(p, 1, "three", b(b""), false)
        .await
        .expect("third");
    refused(
        store.put_run_object(p, 1, "four", b(b""), false).await,
        "count",
    );
    // Nothing changed by the refusals.
    let mut keys = store.list_run_objects(p, 1).await.expect("list");
    keys.sort();
    assert_eq!(keys, ["one", "three", "two"]);
    assert_eq!(
        store.get_run_object(p, 1, "two").await.expect("get"),
        b(b"567890")
    );
    // Another run has its own quota.
    store
        .put_run_object(p, 2, "four", b(b"0123456789"), false)
        .await
        .expect("other run");
}
