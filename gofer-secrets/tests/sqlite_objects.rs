//! Properties of the SQLite object store beyond the shared suite: persistence of
//! limits and expiry across reopening, sharing a file with the secret store, input
//! checks.

use bytes::Bytes;
use gofer_core::{ObjectStore, SecretStore, StoreError};
use gofer_secrets::{EncryptionKey, SqliteObjectStore, SqliteSecretStore};
use secrecy::{ExposeSecret, SecretString};

fn v(s: &'static str) -> Bytes {
    Bytes::from_static(s.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eviction_order_and_finished_runs_survive_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("objects.db");
    {
        let st = SqliteObjectStore::open(&path)
            .await
            .expect("open")
            .max_pipeline_objects(3)
            .keep_runs(2);
        for k in ["a", "b", "c"] {
            st.put_pipeline_object("pipe", k, v("x"), false)
                .await
                .expect("put");
        }
        for run in 1..=2 {
            st.put_run_object("pipe", run, "k", v("r"), false)
                .await
                .expect("put");
            st.run_finished("pipe", run).await.expect("finish");
        }
    }
    let st = SqliteObjectStore::open(&path)
        .await
        .expect("reopen")
        .max_pipeline_objects(3)
        .keep_runs(2);
    assert_eq!(
        st.list_pipeline_objects("pipe").await.expect("list"),
        ["a", "b", "c"]
    );
    // The oldest write from before the restart is the one evicted.
    st.put_pipeline_object("pipe", "d", v("x"), false)
        .await
        .expect("put");
    assert_eq!(
        st.list_pipeline_objects("pipe").await.expect("list"),
        ["b", "c", "d"]
    );
    // Run 1 finished before the restart and counts towards keep_runs.
    st.put_run_object("pipe", 3, "k", v("r"), false)
        .await
        .expect("put");
    st.run_finished("pipe", 3).await.expect("finish");
    assert!(st
        .get_run_object("pipe", 1, "k")
        .await
        .expect_err("expired")
        .is_not_found());
    st.get_run_object("pipe", 2, "k").await.expect("kept");
    st.get_run_object("pipe", 3, "k").await.expect("kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_and_objects_share_one_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("gofer.db");
    let secrets = SqliteSecretStore::open(&path, EncryptionKey::generate().expect("key"))
        .await
        .expect("secrets");
    let objects = SqliteObjectStore::open(&path).await.expect("objects");
    secrets
        .put_pipeline_secret("pipe", "same", SecretString::from("secret"), false)
        .await
        .expect("put secret");
    objects
        .put_pipeline_object("pipe", "same", v("object"), false)
        .await
        .expect("put object");
    let s = secrets
        .get_pipeline_secret("pipe", "same")
        .await
        .expect("secret");
    assert_eq!(s.expose_secret(), "secret");
    assert_eq!(
        objects
            .get_pipeline_object("pipe", "same")
            .await
            .expect("object"),
        v("object")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_typed_errors_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let objects = SqliteObjectStore::open(dir.path().join("o.db"))
        .await
        .expect("objects");
    let secrets = SqliteSecretStore::open(
        dir.path().join("s.db"),
        EncryptionKey::generate().expect("key"),
    )
    .await
    .expect("secrets");
    let invalid = |e: StoreError, what: &str| {
        assert!(matches!(e, StoreError::InvalidKey { .. }), "{e}");
        assert!(e.to_string().contains(what), "{e} should name {what}");
    };
    invalid(
        objects
            .put_run_object("pipe", u64::MAX, "k", v("x"), false)
            .await
            .expect_err("run"),
        &u64::MAX.to_string(),
    );
    invalid(
        objects
            .put_pipeline_object("../etc", "k", v("x"), false)
            .await
            .expect_err("pipeline"),
        "../etc",
    );
    invalid(
        secrets
            .put_pipeline_secret("has space", "k", SecretString::from("v"), false)
            .await
            .expect_err("pipeline"),
        "has space",
    );
    invalid(
        secrets
            .put_global_secret(
                "G",
                SecretString::from("v"),
                vec!["ok-*".into(), "bad\npattern".into()],
                false,
            )
            .await
            .expect_err("pattern"),
        "bad\\npattern",
    );
    invalid(
        secrets
            .put_pipeline_secret("pipe", &"k".repeat(257), SecretString::from("v"), false)
            .await
            .expect_err("long key"),
        "256",
    );
    let e = SqliteObjectStore::open(dir.path().join("missing-dir/o.db"))
        .await
        .expect_err("no dir");
    assert!(
        matches!(e, StoreError::Backend { .. }) && e.to_string().contains("missing-dir"),
        "{e}"
    );
}
