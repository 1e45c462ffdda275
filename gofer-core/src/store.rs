//! The [`SecretStore`] and [`ObjectStore`] traits and their in-memory implementations.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use bytes::Bytes;
use secrecy::SecretString;

use crate::error::StoreError;

/// A global secret's metadata (never its value).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GlobalSecretInfo {
    /// The key.
    pub key: String,
    /// Pipeline-id patterns allowed to read it (see [`allow_list_matches`]).
    pub allow: Vec<String>,
}

impl GlobalSecretInfo {
    /// Metadata for a key.
    pub fn new(key: impl Into<String>, allow: Vec<String>) -> Self {
        Self {
            key: key.into(),
            allow,
        }
    }
}

/// Whether `pipeline` matches one of the allow-list `patterns`. A pattern is a pipeline
/// id where `*` matches any run of characters (`*` alone allows every pipeline).
///
/// ```
/// use gofer_core::allow_list_matches;
/// assert!(allow_list_matches(&["deploy-*".into()], "deploy-prod"));
/// assert!(!allow_list_matches(&["deploy-*".into()], "build"));
/// ```
pub fn allow_list_matches(patterns: &[String], pipeline: &str) -> bool {
    patterns
        .iter()
        .any(|p| glob_match(p.as_bytes(), pipeline.as_bytes()))
}

/// Glob with `*` only; linear-time with backtracking to the last star.
fn glob_match(p: &[u8], s: &[u8]) -> bool {
    let (mut pi, mut si) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while si < s.len() {
        if pi < p.len() && p[pi] != b'*' && p[pi] == s[si] {
            pi += 1;
            si += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some(pi);
            mark = si;
            pi += 1;
        } else if let Some(st) = star {
            pi = st + 1;
            mark += 1;
            si = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == b'*')
}

/// Where secret values live. Values are [`SecretString`]s end to end.
///
/// Pipeline secrets belong to one pipeline. Global secrets are shared and carry an
/// allow-list of pipeline-id patterns; [`SecretStore::get_global_secret`] checks it.
/// Read-only stores return [`StoreError::NotSupported`] from writes.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait SecretStore: fmt::Debug + Send + Sync + 'static {
    /// Reads a pipeline secret.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when absent.
    async fn get_pipeline_secret(
        &self,
        pipeline: &str,
        key: &str,
    ) -> Result<SecretString, StoreError>;

    /// Writes a pipeline secret; refuses to overwrite unless `force`.
    ///
    /// # Errors
    /// [`StoreError::AlreadyExists`] when present and not forced.
    async fn put_pipeline_secret(
        &self,
        pipeline: &str,
        key: &str,
        value: SecretString,
        force: bool,
    ) -> Result<(), StoreError>;

    /// Lists a pipeline's secret keys, sorted.
    async fn list_pipeline_secrets(&self, pipeline: &str) -> Result<Vec<String>, StoreError>;

    /// Deletes a pipeline secret.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when absent.
    async fn delete_pipeline_secret(&self, pipeline: &str, key: &str) -> Result<(), StoreError>;

    /// Reads a global secret on behalf of `pipeline`.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when absent, [`StoreError::Forbidden`] when `pipeline`
    /// is not on the allow-list.
    async fn get_global_secret(
        &self,
        pipeline: &str,
        key: &str,
    ) -> Result<SecretString, StoreError>;

    /// Writes a global secret with its allow-list; refuses to overwrite unless `force`.
    async fn put_global_secret(
        &self,
        key: &str,
        value: SecretString,
        allow: Vec<String>,
        force: bool,
    ) -> Result<(), StoreError>;

    /// Lists global secrets' keys and allow-lists, sorted by key.
    async fn list_global_secrets(&self) -> Result<Vec<GlobalSecretInfo>, StoreError>;

    /// Deletes a global secret.
    async fn delete_global_secret(&self, key: &str) -> Result<(), StoreError>;
}

/// A secret store behind dynamic dispatch.
pub type DynSecretStore = dyn SecretStore;

/// Where pipeline objects and run objects live (small values tasks share).
///
/// Run objects are scoped to one run of a pipeline; a parent task can leave one for
/// its children. [`ObjectStore::run_finished`] lets a store expire old runs' objects.
///
/// The two scopes have methods of their own rather than one scope argument, on
/// purpose: their rules differ (a pipeline's objects live until deleted and count
/// against a per-pipeline limit; a run's objects count against a per-run
/// [`RunObjectQuota`] and expire with [`ObjectStore::run_finished`]), a store keeps them
/// apart (the SQLite store in two tables), and each method's contract then states
/// exactly one set of rules, where a scope argument would make every method say "for a
/// pipeline ..., for a run ...".
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait ObjectStore: fmt::Debug + Send + Sync + 'static {
    /// Reads a pipeline object.
    async fn get_pipeline_object(&self, pipeline: &str, key: &str) -> Result<Bytes, StoreError>;
    /// Writes a pipeline object; refuses to overwrite unless `force`.
    async fn put_pipeline_object(
        &self,
        pipeline: &str,
        key: &str,
        value: Bytes,
        force: bool,
    ) -> Result<(), StoreError>;
    /// Lists a pipeline's object keys, sorted.
    async fn list_pipeline_objects(&self, pipeline: &str) -> Result<Vec<String>, StoreError>;
    /// Deletes a pipeline object.
    async fn delete_pipeline_object(&self, pipeline: &str, key: &str) -> Result<(), StoreError>;

    /// Reads a run object.
    async fn get_run_object(
        &self,
        pipeline: &str,
        run: u64,
        key: &str,
    ) -> Result<Bytes, StoreError>;
    /// Writes a run object; refuses to overwrite unless `force`.
    async fn put_run_object(
        &self,
        pipeline: &str,
        run: u64,
        key: &str,
        value: Bytes,
        force: bool,
    ) -> Result<(), StoreError>;
    /// Lists a run's object keys, sorted.
    async fn list_run_objects(&self, pipeline: &str, run: u64) -> Result<Vec<String>, StoreError>;
    /// Deletes a run object.
    async fn delete_run_object(
        &self,
        pipeline: &str,
        run: u64,
        key: &str,
    ) -> Result<(), StoreError>;

    /// Tells the store a run ended, so it may expire older runs' objects. The default
    /// does nothing.
    async fn run_finished(&self, pipeline: &str, run: u64) -> Result<(), StoreError> {
        let _ = (pipeline, run);
        Ok(())
    }
}

/// An object store behind dynamic dispatch.
pub type DynObjectStore = dyn ObjectStore;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock only means another thread panicked mid-update of plain maps;
    // the maps stay usable.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

const MEMORY: &str = "memory";

/// An in-memory [`SecretStore`], suitable for tests and short-lived hosts.
#[derive(Default, Clone)]
pub struct InMemorySecretStore {
    inner: Arc<Mutex<SecretMaps>>,
}

#[derive(Default)]
struct SecretMaps {
    pipeline: HashMap<(String, String), SecretString>,
    global: BTreeMap<String, (SecretString, Vec<String>)>,
}

impl fmt::Debug for InMemorySecretStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = lock(&self.inner);
        f.debug_struct("InMemorySecretStore")
            .field("pipeline_secrets", &m.pipeline.len())
            .field("global_secrets", &m.global.len())
            .finish()
    }
}

impl InMemorySecretStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

fn check_key(store: &'static str, key: &str) -> Result<(), StoreError> {
    if key.is_empty() || key.len() > 256 || key.chars().any(|c| c.is_control()) {
        return Err(StoreError::InvalidKey {
            store,
            key: key.to_string(),
            message: "keys are 1 to 256 characters without control characters".into(),
        });
    }
    Ok(())
}

#[async_trait]
impl SecretStore for InMemorySecretStore {
    async fn get_pipeline_secret(
        &self,
        pipeline: &str,
        key: &str,
    ) -> Result<SecretString, StoreError> {
        lock(&self.inner)
            .pipeline
            .get(&(pipeline.to_string(), key.to_string()))
            .cloned()
            .ok_or_else(|| StoreError::NotFound {
                store: MEMORY,
                kind: "pipeline secret",
                scope: Some(format!("pipeline {pipeline:?}")),
                key: key.to_string(),
            })
    }

    async fn put_pipeline_secret(
        &self,
        pipeline: &str,
        key: &str,
        value: SecretString,
        force: bool,
    ) -> Result<(), StoreError> {
        check_key(MEMORY, key)?;
        let mut m = lock(&self.inner);
        let k = (pipeline.to_string(), key.to_string());
        if !force && m.pipeline.contains_key(&k) {
            return Err(StoreError::AlreadyExists {
                store: MEMORY,
                kind: "pipeline secret",
                scope: Some(format!("pipeline {pipeline:?}")),
                key: key.to_string(),
            });
        }
        m.pipeline.insert(k, value);
        Ok(())
    }

    async fn list_pipeline_secrets(&self, pipeline: &str) -> Result<Vec<String>, StoreError> {
        let mut keys: Vec<String> = lock(&self.inner)
            .pipeline
            .keys()
            .filter(|(p, _)| p == pipeline)
            .map(|(_, k)| k.clone())
            .collect();
        keys.sort();
        Ok(keys)
    }

    async fn delete_pipeline_secret(&self, pipeline: &str, key: &str) -> Result<(), StoreError> {
        lock(&self.inner)
            .pipeline
            .remove(&(pipeline.to_string(), key.to_string()))
            .map(drop)
            .ok_or_else(|| StoreError::NotFound {
                store: MEMORY,
                kind: "pipeline secret",
                scope: Some(format!("pipeline {pipeline:?}")),
                key: key.to_string(),
            })
    }

    async fn get_global_secret(
        &self,
        pipeline: &str,
        key: &str,
    ) -> Result<SecretString, StoreError> {
        let m = lock(&self.inner);
        let (value, allow) = m.global.get(key).ok_or_else(|| StoreError::NotFound {
            store: MEMORY,
            kind: "global secret",
            scope: None,
            key: key.to_string(),
        })?;
        if !allow_list_matches(allow, pipeline) {
            return Err(StoreError::Forbidden {
                store: MEMORY,
                pipeline: pipeline.to_string(),
                key: key.to_string(),
            });
        }
        Ok(value.clone())
    }

    async fn put_global_secret(
        &self,
        key: &str,
        value: SecretString,
        allow: Vec<String>,
        force: bool,
    ) -> Result<(), StoreError> {
        check_key(MEMORY, key)?;
        let mut m = lock(&self.inner);
        if !force && m.global.contains_key(key) {
            return Err(StoreError::AlreadyExists {
                store: MEMORY,
                kind: "global secret",
                scope: None,
                key: key.to_string(),
            });
        }
        m.global.insert(key.to_string(), (value, allow));
        Ok(())
    }

    async fn list_global_secrets(&self) -> Result<Vec<GlobalSecretInfo>, StoreError> {
        Ok(lock(&self.inner)
            .global
            .iter()
            .map(|(k, (_, allow))| GlobalSecretInfo::new(k.clone(), allow.clone()))
            .collect())
    }

    async fn delete_global_secret(&self, key: &str) -> Result<(), StoreError> {
        lock(&self.inner)
            .global
            .remove(key)
            .map(drop)
            .ok_or_else(|| StoreError::NotFound {
                store: MEMORY,
                kind: "global secret",
                scope: None,
                key: key.to_string(),
            })
    }
}

/// How much one run may keep in run objects; a write beyond it is refused with
/// [`StoreError::Limit`] naming the run and the limit (what is there stays). Tasks
/// write run objects through the API, so this is what keeps one run from filling the
/// host's disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RunObjectQuota {
    /// Most objects in one run.
    pub max_objects: usize,
    /// Most bytes of object values in one run, all objects together.
    pub max_bytes: u64,
}

impl Default for RunObjectQuota {
    /// 1000 objects and 256 MiB per run.
    fn default() -> Self {
        Self {
            max_objects: 1000,
            max_bytes: 256 << 20,
        }
    }
}

impl RunObjectQuota {
    /// A quota of `max_objects` objects and `max_bytes` bytes per run.
    pub fn new(max_objects: usize, max_bytes: u64) -> Self {
        Self {
            max_objects,
            max_bytes,
        }
    }

    /// Checks a write of `new_bytes` to a run that holds `others` other objects of
    /// `other_bytes` bytes together (the object written, if it exists, not counted).
    ///
    /// # Errors
    /// [`StoreError::Limit`] from `store` when the write would pass the quota.
    pub fn check(
        &self,
        store: &'static str,
        pipeline: &str,
        run: u64,
        others: usize,
        other_bytes: u64,
        new_bytes: u64,
    ) -> Result<(), StoreError> {
        if others >= self.max_objects {
            return Err(StoreError::Limit {
                store,
                message: format!(
                    "run {run} of pipeline {pipeline:?} holds {others} run objects, the most a run may hold ({})",
                    self.max_objects
                ),
            });
        }
        let total = other_bytes.saturating_add(new_bytes);
        if total > self.max_bytes {
            return Err(StoreError::Limit {
                store,
                message: format!(
                    "run {run} of pipeline {pipeline:?} would hold {total} bytes of run objects, more than a run may hold ({})",
                    self.max_bytes
                ),
            });
        }
        Ok(())
    }
}

/// An in-memory [`ObjectStore`], suitable for tests and short-lived hosts.
///
/// Keeps the run objects of the last `keep_runs` finished runs of each pipeline
/// (default 20); older runs' objects are dropped by [`ObjectStore::run_finished`].
/// Each run holds at most its [`RunObjectQuota`] (default
/// [`RunObjectQuota::default`]).
#[derive(Clone)]
pub struct InMemoryObjectStore {
    inner: Arc<Mutex<ObjectMaps>>,
    keep_runs: usize,
    quota: RunObjectQuota,
}

#[derive(Default)]
struct ObjectMaps {
    pipeline: BTreeMap<(String, String), Bytes>,
    run: BTreeMap<(String, u64, String), Bytes>,
    finished: HashMap<String, std::collections::VecDeque<u64>>,
}

impl Default for InMemoryObjectStore {
    fn default() -> Self {
        Self {
            inner: Arc::default(),
            keep_runs: 20,
            quota: RunObjectQuota::default(),
        }
    }
}

impl fmt::Debug for InMemoryObjectStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = lock(&self.inner);
        f.debug_struct("InMemoryObjectStore")
            .field("pipeline_objects", &m.pipeline.len())
            .field("run_objects", &m.run.len())
            .field("keep_runs", &self.keep_runs)
            .finish()
    }
}

impl InMemoryObjectStore {
    /// An empty store keeping the objects of the last 20 runs per pipeline.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets how many finished runs per pipeline keep their objects (at least 1).
    #[must_use]
    pub fn keep_runs(mut self, n: usize) -> Self {
        self.keep_runs = n.max(1);
        self
    }

    /// Sets how much one run may keep in run objects.
    #[must_use]
    pub fn run_quota(mut self, quota: RunObjectQuota) -> Self {
        self.quota = quota;
        self
    }
}

fn not_found(kind: &'static str, scope: String, key: &str) -> StoreError {
    StoreError::NotFound {
        store: MEMORY,
        kind,
        scope: Some(scope),
        key: key.to_string(),
    }
}

#[async_trait]
impl ObjectStore for InMemoryObjectStore {
    async fn get_pipeline_object(&self, pipeline: &str, key: &str) -> Result<Bytes, StoreError> {
        lock(&self.inner)
            .pipeline
            .get(&(pipeline.to_string(), key.to_string()))
            .cloned()
            .ok_or_else(|| not_found("pipeline object", format!("pipeline {pipeline:?}"), key))
    }

    async fn put_pipeline_object(
        &self,
        pipeline: &str,
        key: &str,
        value: Bytes,
        force: bool,
    ) -> Result<(), StoreError> {
        check_key(MEMORY, key)?;
        let mut m = lock(&self.inner);
        let k = (pipeline.to_string(), key.to_string());
        if !force && m.pipeline.contains_key(&k) {
            return Err(StoreError::AlreadyExists {
                store: MEMORY,
                kind: "pipeline object",
                scope: Some(format!("pipeline {pipeline:?}")),
                key: key.to_string(),
            });
        }
        m.pipeline.insert(k, value);
        Ok(())
    }

    async fn list_pipeline_objects(&self, pipeline: &str) -> Result<Vec<String>, StoreError> {
        Ok(lock(&self.inner)
            .pipeline
            .keys()
            .filter(|(p, _)| p == pipeline)
            .map(|(_, k)| k.clone())
            .collect())
    }

    async fn delete_pipeline_object(&self, pipeline: &str, key: &str) -> Result<(), StoreError> {
        lock(&self.inner)
            .pipeline
            .remove(&(pipeline.to_string(), key.to_string()))
            .map(drop)
            .ok_or_else(|| not_found("pipeline object", format!("pipeline {pipeline:?}"), key))
    }

    async fn get_run_object(
        &self,
        pipeline: &str,
        run: u64,
        key: &str,
    ) -> Result<Bytes, StoreError> {
        lock(&self.inner)
            .run
            .get(&(pipeline.to_string(), run, key.to_string()))
            .cloned()
            .ok_or_else(|| {
                not_found(
                    "run object",
                    format!("run {run} of pipeline {pipeline:?}"),
                    key,
                )
            })
    }

    async fn put_run_object(
        &self,
        pipeline: &str,
        run: u64,
        key: &str,
        value: Bytes,
        force: bool,
    ) -> Result<(), StoreError> {
        check_key(MEMORY, key)?;
        let mut m = lock(&self.inner);
        let k = (pipeline.to_string(), run, key.to_string());
        if !force && m.run.contains_key(&k) {
            return Err(StoreError::AlreadyExists {
                store: MEMORY,
                kind: "run object",
                scope: Some(format!("run {run} of pipeline {pipeline:?}")),
                key: key.to_string(),
            });
        }
        let (others, other_bytes) = m
            .run
            .range((pipeline.to_string(), run, String::new())..)
            .take_while(|((p, r, _), _)| p == pipeline && *r == run)
            .filter(|((_, _, other), _)| other != key)
            .fold((0usize, 0u64), |(n, bytes), (_, v)| {
                (n + 1, bytes.saturating_add(v.len() as u64))
            });
        self.quota.check(
            MEMORY,
            pipeline,
            run,
            others,
            other_bytes,
            value.len() as u64,
        )?;
        m.run.insert(k, value);
        Ok(())
    }

    async fn list_run_objects(&self, pipeline: &str, run: u64) -> Result<Vec<String>, StoreError> {
        Ok(lock(&self.inner)
            .run
            .keys()
            .filter(|(p, r, _)| p == pipeline && *r == run)
            .map(|(_, _, k)| k.clone())
            .collect())
    }

    async fn delete_run_object(
        &self,
        pipeline: &str,
        run: u64,
        key: &str,
    ) -> Result<(), StoreError> {
        lock(&self.inner)
            .run
            .remove(&(pipeline.to_string(), run, key.to_string()))
            .map(drop)
            .ok_or_else(|| {
                not_found(
                    "run object",
                    format!("run {run} of pipeline {pipeline:?}"),
                    key,
                )
            })
    }

    async fn run_finished(&self, pipeline: &str, run: u64) -> Result<(), StoreError> {
        let mut m = lock(&self.inner);
        let keep = self.keep_runs;
        let q = m.finished.entry(pipeline.to_string()).or_default();
        q.push_back(run);
        let mut expired = Vec::new();
        while q.len() > keep {
            if let Some(old) = q.pop_front() {
                expired.push(old);
            }
        }
        m.run
            .retain(|(p, r, _), _| !(p == pipeline && expired.contains(r)));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn s(v: &str) -> SecretString {
        SecretString::from(v.to_string())
    }

    #[test]
    fn glob_rules() {
        let p = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(allow_list_matches(&p(&["*"]), "anything"));
        assert!(allow_list_matches(&p(&["a*c"]), "abbbc"));
        assert!(allow_list_matches(&p(&["x", "abc"]), "abc"));
        assert!(!allow_list_matches(&p(&["abc"]), "abcd"));
        assert!(!allow_list_matches(&p(&[]), "abc"));
        assert!(allow_list_matches(&p(&["*-prod-*"]), "web-prod-eu"));
    }

    #[tokio::test]
    async fn memory_secret_store_rules() {
        let st = InMemorySecretStore::new();
        st.put_pipeline_secret("pipe", "k", s("v1"), false)
            .await
            .expect("put");
        let e = st
            .put_pipeline_secret("pipe", "k", s("v2"), false)
            .await
            .expect_err("exists");
        assert!(matches!(e, StoreError::AlreadyExists { .. }));
        st.put_pipeline_secret("pipe", "k", s("v2"), true)
            .await
            .expect("force");
        assert_eq!(
            st.get_pipeline_secret("pipe", "k")
                .await
                .expect("get")
                .expose_secret(),
            "v2"
        );
        assert!(st
            .get_pipeline_secret("other", "k")
            .await
            .expect_err("scoped")
            .is_not_found());
        st.put_global_secret("g", s("gv"), vec!["pi*".into()], false)
            .await
            .expect("put");
        assert_eq!(
            st.get_global_secret("pipe", "g")
                .await
                .expect("allowed")
                .expose_secret(),
            "gv"
        );
        let e = st
            .get_global_secret("other", "g")
            .await
            .expect_err("forbidden");
        assert!(matches!(e, StoreError::Forbidden { .. }), "{e}");
        assert!(!format!("{st:?}{e}").contains("gv"));
    }

    #[tokio::test]
    async fn memory_object_store_expires_old_runs() {
        let st = InMemoryObjectStore::new().keep_runs(2);
        for run in 1..=3 {
            st.put_run_object("p", run, "k", Bytes::from_static(b"v"), false)
                .await
                .expect("put");
            st.run_finished("p", run).await.expect("finish");
        }
        assert!(st
            .get_run_object("p", 1, "k")
            .await
            .expect_err("expired")
            .is_not_found());
        st.get_run_object("p", 2, "k").await.expect("kept");
        st.get_run_object("p", 3, "k").await.expect("kept");
    }
}
