//! The [`SecretStore`](crate::SecretStore) behaviour suite.

use crate::{DynSecretStore, GlobalSecretInfo, StoreError};
use secrecy::{ExposeSecret, SecretString};

/// One pipeline secret of the [`fixture`].
#[derive(Debug, Clone, Copy)]
pub struct FixtureSecret {
    /// The pipeline id.
    pub pipeline: &'static str,
    /// The key.
    pub key: &'static str,
    /// The value.
    pub value: &'static str,
}

/// One global secret of the [`fixture`].
#[derive(Debug, Clone, Copy)]
pub struct FixtureGlobal {
    /// The key.
    pub key: &'static str,
    /// The value.
    pub value: &'static str,
    /// The allow-list.
    pub allow: &'static [&'static str],
}

/// The known content the read cases expect.
#[derive(Debug, Clone)]
pub struct SecretFixture {
    /// Pipeline secrets.
    pub pipeline_secrets: Vec<FixtureSecret>,
    /// Global secrets.
    pub global_secrets: Vec<FixtureGlobal>,
}

impl SecretFixture {
    /// Every value, for checks that none leaks.
    pub fn values(&self) -> Vec<&'static str> {
        self.pipeline_secrets
            .iter()
            .map(|s| s.value)
            .chain(self.global_secrets.iter().map(|g| g.value))
            .collect()
    }
}

/// The content [`pipeline_reads`] and [`global_reads`] expect. Keys are valid as
/// environment-variable and file names; no value ends in a newline.
pub fn fixture() -> SecretFixture {
    let s = |pipeline, key, value| FixtureSecret {
        pipeline,
        key,
        value,
    };
    SecretFixture {
        pipeline_secrets: vec![
            s("suite-alpha", "DB_PASSWORD", "alpha-db-pw-7Qz4"),
            s("suite-alpha", "API_TOKEN", "tok-ünïcödé-Ω-2Bn"),
            s(
                "suite-alpha",
                "MULTI_LINE",
                "first line 5Hc\nsecond line 5Hc",
            ),
            s("suite-beta", "DB_PASSWORD", "beta-db-pw-9Xk1"),
        ],
        global_secrets: vec![
            FixtureGlobal {
                key: "SHARED_TOKEN",
                value: "shared-global-3Jd8",
                allow: &["suite-alpha"],
            },
            FixtureGlobal {
                key: "DEPLOY_KEY",
                value: "deploy-global-8Lm2",
                allow: &["suite-*", "ops"],
            },
            FixtureGlobal {
                key: "NOBODY_KEY",
                value: "nobody-global-4Rt6",
                allow: &[],
            },
        ],
    }
}

fn secret(v: &str) -> SecretString {
    SecretString::from(v.to_string())
}

/// Writes the fixture into a writable store (overwriting).
///
/// # Panics
/// When a write fails.
pub async fn seed(store: &DynSecretStore, fixture: &SecretFixture) {
    for s in &fixture.pipeline_secrets {
        store
            .put_pipeline_secret(s.pipeline, s.key, secret(s.value), true)
            .await
            .unwrap_or_else(|e| panic!("seed pipeline secret {}: {e}", s.key));
    }
    for g in &fixture.global_secrets {
        let allow = g.allow.iter().map(|p| p.to_string()).collect();
        store
            .put_global_secret(g.key, secret(g.value), allow, true)
            .await
            .unwrap_or_else(|e| panic!("seed global secret {}: {e}", g.key));
    }
}

fn assert_not_found(r: Result<SecretString, StoreError>, what: &str) {
    match r {
        Err(e @ StoreError::NotFound { .. }) => {
            assert!(
                e.to_string().contains(what),
                "error {e} should name {what:?}"
            );
        }
        Err(e) => panic!("{what}: expected NotFound, got {e}"),
        Ok(_) => panic!("{what}: expected NotFound, got a value"),
    }
}

fn assert_forbidden(r: Result<SecretString, StoreError>, pipeline: &str, key: &str) {
    match r {
        Err(e @ StoreError::Forbidden { .. }) => {
            let m = e.to_string();
            assert!(
                m.contains(pipeline) && m.contains(key),
                "{m} should name {pipeline} and {key}"
            );
        }
        Err(e) => panic!("{pipeline}/{key}: expected Forbidden, got {e}"),
        Ok(_) => panic!("{pipeline}/{key}: expected Forbidden, got the value"),
    }
}

/// Reads the fixture's pipeline secrets back; lists are sorted and scoped to their
/// pipeline; absent keys are [`StoreError::NotFound`].
///
/// # Panics
/// When the store misbehaves.
pub async fn pipeline_reads(store: &DynSecretStore) {
    let fx = fixture();
    for s in &fx.pipeline_secrets {
        let v = store
            .get_pipeline_secret(s.pipeline, s.key)
            .await
            .unwrap_or_else(|e| panic!("get {}/{}: {e}", s.pipeline, s.key));
        assert_eq!(
            v.expose_secret(),
            s.value,
            "value of {}/{}",
            s.pipeline,
            s.key
        );
    }
    let list = store
        .list_pipeline_secrets("suite-alpha")
        .await
        .expect("list suite-alpha");
    assert_eq!(list, ["API_TOKEN", "DB_PASSWORD", "MULTI_LINE"]);
    let list = store
        .list_pipeline_secrets("suite-beta")
        .await
        .expect("list suite-beta");
    assert_eq!(list, ["DB_PASSWORD"]);
    let list = store
        .list_pipeline_secrets("suite-absent")
        .await
        .expect("list suite-absent");
    assert!(
        list.is_empty(),
        "an unknown pipeline has no secrets, got {list:?}"
    );
    assert_not_found(
        store.get_pipeline_secret("suite-alpha", "ABSENT").await,
        "ABSENT",
    );
    // Same key, other pipeline: scoped.
    assert_not_found(
        store.get_pipeline_secret("suite-beta", "API_TOKEN").await,
        "API_TOKEN",
    );
    assert_not_found(
        store
            .get_pipeline_secret("suite-gamma", "DB_PASSWORD")
            .await,
        "DB_PASSWORD",
    );
    // Pipeline secrets are not global secrets.
    assert_not_found(
        store.get_global_secret("suite-alpha", "DB_PASSWORD").await,
        "DB_PASSWORD",
    );
}

/// Reads the fixture's global secrets: allowed pipelines get the value, others get
/// [`StoreError::Forbidden`]; the listing shows keys and allow-lists.
///
/// # Panics
/// When the store misbehaves.
pub async fn global_reads(store: &DynSecretStore) {
    let fx = fixture();
    let get = |p: &'static str, k: &'static str| store.get_global_secret(p, k);
    let v = get("suite-alpha", "SHARED_TOKEN")
        .await
        .expect("allowed by exact id");
    assert_eq!(v.expose_secret(), "shared-global-3Jd8");
    assert_forbidden(
        get("suite-beta", "SHARED_TOKEN").await,
        "suite-beta",
        "SHARED_TOKEN",
    );
    for p in ["suite-alpha", "suite-beta", "ops"] {
        let v = get(p, "DEPLOY_KEY")
            .await
            .unwrap_or_else(|e| panic!("{p} allowed: {e}"));
        assert_eq!(v.expose_secret(), "deploy-global-8Lm2");
    }
    assert_forbidden(
        get("other-pipe", "DEPLOY_KEY").await,
        "other-pipe",
        "DEPLOY_KEY",
    );
    assert_forbidden(
        get("suite-alpha", "NOBODY_KEY").await,
        "suite-alpha",
        "NOBODY_KEY",
    );
    assert_not_found(get("suite-alpha", "ABSENT_GLOBAL").await, "ABSENT_GLOBAL");
    let mut want: Vec<GlobalSecretInfo> = fx
        .global_secrets
        .iter()
        .map(|g| GlobalSecretInfo::new(g.key, g.allow.iter().map(|p| p.to_string()).collect()))
        .collect();
    want.sort_by(|a, b| a.key.cmp(&b.key));
    let all = store.list_global_secrets().await.expect("list globals");
    assert!(
        all.windows(2).all(|w| w[0].key < w[1].key),
        "global secrets are listed sorted by key: {all:?}"
    );
    let got: Vec<GlobalSecretInfo> = all
        .into_iter()
        .filter(|g| fx.global_secrets.iter().any(|f| f.key == g.key))
        .collect();
    assert_eq!(got, want);
}

/// `Debug` of the store, of values and of every error holds no value.
///
/// # Panics
/// When a value shows.
pub async fn secrets_stay_hidden(store: &DynSecretStore) {
    let fx = fixture();
    let mut text = format!("{store:?}");
    let v = store
        .get_pipeline_secret("suite-alpha", "DB_PASSWORD")
        .await
        .expect("get");
    text.push_str(&format!("{v:?}"));
    for r in [
        store.get_global_secret("suite-beta", "SHARED_TOKEN").await,
        store.get_pipeline_secret("suite-alpha", "ABSENT").await,
    ] {
        let e = r.expect_err("an error");
        text.push_str(&format!("{e} {e:?}"));
    }
    if let Err(e) = store
        .put_pipeline_secret(
            "suite-alpha",
            "DB_PASSWORD",
            secret("hidden-new-6Vw0"),
            false,
        )
        .await
    {
        text.push_str(&format!("{e} {e:?}"));
    }
    for value in fx.values().into_iter().chain(["hidden-new-6Vw0"]) {
        assert!(!text.contains(value), "a value shows in {text}");
    }
}

/// Writes, overwrites and deletes pipeline secrets. A read-only store (`writable`
/// false) must answer every write with [`StoreError::NotSupported`].
///
/// # Panics
/// When the store misbehaves.
pub async fn pipeline_writes(store: &DynSecretStore, writable: bool) {
    let p = "suite-write";
    if !writable {
        let e = store
            .put_pipeline_secret(p, "K1", secret("v"), true)
            .await
            .expect_err("read-only");
        assert!(matches!(e, StoreError::NotSupported { .. }), "put: {e}");
        let e = store
            .delete_pipeline_secret("suite-alpha", "DB_PASSWORD")
            .await
            .expect_err("read-only");
        assert!(matches!(e, StoreError::NotSupported { .. }), "delete: {e}");
        return;
    }
    let get = |k: &'static str| store.get_pipeline_secret(p, k);
    store
        .put_pipeline_secret(p, "K1", secret("first-1Aa"), false)
        .await
        .expect("put");
    assert_eq!(get("K1").await.expect("get").expose_secret(), "first-1Aa");
    let e = store
        .put_pipeline_secret(p, "K1", secret("second-2Bb"), false)
        .await
        .expect_err("no overwrite without force");
    assert!(
        matches!(e, StoreError::AlreadyExists { .. }) && e.to_string().contains("K1"),
        "{e}"
    );
    assert_eq!(get("K1").await.expect("get").expose_secret(), "first-1Aa");
    store
        .put_pipeline_secret(p, "K1", secret("second-2Bb"), true)
        .await
        .expect("force");
    assert_eq!(get("K1").await.expect("get").expose_secret(), "second-2Bb");
    store
        .put_pipeline_secret(p, "EMPTY", secret(""), false)
        .await
        .expect("empty value");
    assert_eq!(get("EMPTY").await.expect("get").expose_secret(), "");
    let big = "x".repeat(64 * 1024) + "ü-end";
    store
        .put_pipeline_secret(p, "BIG", secret(&big), false)
        .await
        .expect("big value");
    assert_eq!(get("BIG").await.expect("get").expose_secret(), big);
    let list = store.list_pipeline_secrets(p).await.expect("list");
    assert_eq!(list, ["BIG", "EMPTY", "K1"]);
    assert_not_found(
        store.get_pipeline_secret("suite-write-other", "K1").await,
        "K1",
    );
    store.delete_pipeline_secret(p, "K1").await.expect("delete");
    assert_not_found(get("K1").await, "K1");
    let e = store
        .delete_pipeline_secret(p, "K1")
        .await
        .expect_err("gone");
    assert!(e.is_not_found(), "{e}");
    let e = store
        .put_pipeline_secret(p, "", secret("v"), false)
        .await
        .expect_err("empty key");
    assert!(matches!(e, StoreError::InvalidKey { .. }), "{e}");
    for k in ["BIG", "EMPTY"] {
        store.delete_pipeline_secret(p, k).await.expect("cleanup");
    }
    assert!(store
        .list_pipeline_secrets(p)
        .await
        .expect("list")
        .is_empty());
}

/// Writes, overwrites (with a new allow-list) and deletes a global secret.
/// A read-only store must answer with [`StoreError::NotSupported`].
///
/// # Panics
/// When the store misbehaves.
pub async fn global_writes(store: &DynSecretStore, writable: bool) {
    let k = "SUITE_WRITE_GLOBAL";
    let allow = |v: &[&str]| v.iter().map(|p| p.to_string()).collect::<Vec<_>>();
    if !writable {
        let e = store
            .put_global_secret(k, secret("v"), allow(&["*"]), true)
            .await
            .expect_err("read-only");
        assert!(matches!(e, StoreError::NotSupported { .. }), "put: {e}");
        let e = store
            .delete_global_secret("SHARED_TOKEN")
            .await
            .expect_err("read-only");
        assert!(matches!(e, StoreError::NotSupported { .. }), "delete: {e}");
        return;
    }
    store
        .put_global_secret(
            k,
            secret("global-one-7Gg"),
            allow(&["suite-write-*"]),
            false,
        )
        .await
        .expect("put");
    let v = store
        .get_global_secret("suite-write-a", k)
        .await
        .expect("allowed");
    assert_eq!(v.expose_secret(), "global-one-7Gg");
    assert_forbidden(
        store.get_global_secret("suite-alpha", k).await,
        "suite-alpha",
        k,
    );
    let e = store
        .put_global_secret(k, secret("global-two-8Hh"), allow(&["suite-alpha"]), false)
        .await
        .expect_err("no overwrite without force");
    assert!(matches!(e, StoreError::AlreadyExists { .. }), "{e}");
    store
        .put_global_secret(k, secret("global-two-8Hh"), allow(&["suite-alpha"]), true)
        .await
        .expect("force");
    let v = store
        .get_global_secret("suite-alpha", k)
        .await
        .expect("now allowed");
    assert_eq!(v.expose_secret(), "global-two-8Hh");
    assert_forbidden(
        store.get_global_secret("suite-write-a", k).await,
        "suite-write-a",
        k,
    );
    let listed = store.list_global_secrets().await.expect("list");
    assert!(
        listed.contains(&GlobalSecretInfo::new(k, allow(&["suite-alpha"]))),
        "{listed:?}"
    );
    let e = store
        .put_global_secret("", secret("v"), vec![], false)
        .await
        .expect_err("empty key");
    assert!(matches!(e, StoreError::InvalidKey { .. }), "{e}");
    store.delete_global_secret(k).await.expect("delete");
    assert_not_found(store.get_global_secret("suite-alpha", k).await, k);
    assert!(store
        .delete_global_secret(k)
        .await
        .expect_err("gone")
        .is_not_found());
}
