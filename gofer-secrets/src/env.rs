//! [`EnvSecretStore`]: read-only secrets from environment variables.

use std::collections::BTreeMap;
use std::fmt;

use async_trait::async_trait;
use gofer_core::{allow_list_matches, GlobalSecretInfo, SecretStore, StoreError};
use secrecy::SecretString;

use crate::validate::pipeline_scope;

/// The store name used in errors and spans.
pub const ENV: &str = "env";

/// The default variable prefix of [`EnvSecretStore`].
pub const DEFAULT_ENV_PREFIX: &str = "GOFER";

/// A read-only [`SecretStore`] over environment variables.
///
/// With the default prefix `GOFER` the variables are named:
///
/// | variable | meaning |
/// |---|---|
/// | `GOFER_SECRET_<pipeline>__<KEY>` | pipeline secret `KEY` of pipeline `<pipeline>` |
/// | `GOFER_GLOBAL_SECRET_<KEY>` | global secret `KEY` |
/// | `GOFER_GLOBAL_ALLOW_<KEY>` | its allow-list: pipeline-id patterns separated by commas or spaces |
///
/// - The pipeline id is written verbatim and matched case-sensitively (no case folding
///   and no `-`→`_` mapping, which would let two pipelines share secrets). Ids with
///   `-` cannot be `export`ed from a POSIX shell but work with `env`, container `-e`
///   flags and systemd `Environment=`.
/// - The pipeline part ends at the first `__`, so a key may contain `__` while a
///   pipeline id containing `__` or ending in `_` cannot be addressed (reads return
///   [`StoreError::InvalidKey`] naming it).
/// - A global secret without an allow variable is allowed to no pipeline (fail
///   closed); `*` allows all.
/// - Variables are read once, when the store is made; values are kept as
///   [`SecretString`]s. Writes return [`StoreError::NotSupported`].
///
/// # Examples
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use gofer_core::SecretStore;
/// use gofer_secrets::EnvSecretStore;
/// use secrecy::ExposeSecret;
///
/// let store = EnvSecretStore::from_vars([
///     ("GOFER_SECRET_deploy__DB_PASSWORD", "hunter2"),
///     ("GOFER_GLOBAL_SECRET_REGISTRY_TOKEN", "t0k"),
///     ("GOFER_GLOBAL_ALLOW_REGISTRY_TOKEN", "deploy,build-*"),
/// ]);
/// let v = store.get_pipeline_secret("deploy", "DB_PASSWORD").await.unwrap();
/// assert_eq!(v.expose_secret(), "hunter2");
/// assert!(store.get_global_secret("build-web", "REGISTRY_TOKEN").await.is_ok());
/// assert!(store.get_global_secret("other", "REGISTRY_TOKEN").await.is_err());
/// # });
/// ```
pub struct EnvSecretStore {
    prefix: String,
    pipeline: BTreeMap<(String, String), SecretString>,
    global: BTreeMap<String, SecretString>,
    allow: BTreeMap<String, Vec<String>>,
}

impl fmt::Debug for EnvSecretStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnvSecretStore")
            .field("prefix", &self.prefix)
            .field("pipeline_secrets", &self.pipeline.len())
            .field("global_secrets", &self.global.len())
            .finish()
    }
}

fn split_patterns(text: &str) -> Vec<String> {
    text.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect()
}

impl EnvSecretStore {
    /// Reads the process environment with the prefix `GOFER`. Variables whose name or
    /// value is not UTF-8 are skipped.
    pub fn from_process_env() -> Self {
        Self::from_process_env_with_prefix(DEFAULT_ENV_PREFIX)
    }

    /// Reads the process environment with another prefix (`MYAPP` gives
    /// `MYAPP_SECRET_...`, `MYAPP_GLOBAL_SECRET_...`, `MYAPP_GLOBAL_ALLOW_...`).
    pub fn from_process_env_with_prefix(prefix: &str) -> Self {
        let vars = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)));
        Self::from_vars_with_prefix(prefix, vars)
    }

    /// A store over the given variables instead of the process environment (for tests
    /// and for hosts that read variables elsewhere), with the prefix `GOFER`.
    pub fn from_vars<K, V>(vars: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: AsRef<str>,
        V: Into<String>,
    {
        Self::from_vars_with_prefix(DEFAULT_ENV_PREFIX, vars)
    }

    /// As [`EnvSecretStore::from_vars`] with another prefix.
    pub fn from_vars_with_prefix<K, V>(prefix: &str, vars: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: AsRef<str>,
        V: Into<String>,
    {
        let secret = format!("{prefix}_SECRET_");
        let global = format!("{prefix}_GLOBAL_SECRET_");
        let allow = format!("{prefix}_GLOBAL_ALLOW_");
        let mut store = Self {
            prefix: prefix.to_string(),
            pipeline: BTreeMap::new(),
            global: BTreeMap::new(),
            allow: BTreeMap::new(),
        };
        for (name, value) in vars {
            let name = name.as_ref();
            if let Some(rest) = name.strip_prefix(&secret) {
                match rest.split_once("__") {
                    Some((p, k)) if !p.is_empty() && !k.is_empty() => {
                        store.pipeline.insert(
                            (p.to_string(), k.to_string()),
                            SecretString::from(value.into()),
                        );
                    }
                    _ => tracing::warn!(
                        variable = name,
                        "ignored: expected {secret}<pipeline>__<KEY>"
                    ),
                }
            } else if let Some(k) = name.strip_prefix(&global).filter(|k| !k.is_empty()) {
                store
                    .global
                    .insert(k.to_string(), SecretString::from(value.into()));
            } else if let Some(k) = name.strip_prefix(&allow).filter(|k| !k.is_empty()) {
                store
                    .allow
                    .insert(k.to_string(), split_patterns(&value.into()));
            }
        }
        store
    }

    /// The variable that holds a pipeline secret.
    pub fn pipeline_variable(&self, pipeline: &str, key: &str) -> String {
        format!("{}_SECRET_{pipeline}__{key}", self.prefix)
    }

    /// The variable that holds a global secret.
    pub fn global_variable(&self, key: &str) -> String {
        format!("{}_GLOBAL_SECRET_{key}", self.prefix)
    }

    /// The variable that holds a global secret's allow-list.
    pub fn allow_variable(&self, key: &str) -> String {
        format!("{}_GLOBAL_ALLOW_{key}", self.prefix)
    }

    fn check_pipeline(pipeline: &str) -> Result<(), StoreError> {
        if pipeline.is_empty() || pipeline.contains("__") || pipeline.ends_with('_') {
            return Err(StoreError::InvalidKey {
                store: ENV,
                key: pipeline.to_string(),
                message: "a pipeline id that is empty, contains \"__\" or ends in '_' cannot be named in a variable".into(),
            });
        }
        Ok(())
    }
}

fn read_only(operation: &'static str) -> StoreError {
    StoreError::NotSupported {
        store: ENV,
        operation,
    }
}

#[async_trait]
impl SecretStore for EnvSecretStore {
    async fn get_pipeline_secret(
        &self,
        pipeline: &str,
        key: &str,
    ) -> Result<SecretString, StoreError> {
        Self::check_pipeline(pipeline)?;
        self.pipeline
            .get(&(pipeline.to_string(), key.to_string()))
            .cloned()
            .ok_or_else(|| StoreError::NotFound {
                store: ENV,
                kind: "pipeline secret",
                scope: pipeline_scope(pipeline),
                key: key.to_string(),
            })
    }

    async fn put_pipeline_secret(
        &self,
        _pipeline: &str,
        _key: &str,
        _value: SecretString,
        _force: bool,
    ) -> Result<(), StoreError> {
        Err(read_only("put pipeline secret"))
    }

    async fn list_pipeline_secrets(&self, pipeline: &str) -> Result<Vec<String>, StoreError> {
        Self::check_pipeline(pipeline)?;
        Ok(self
            .pipeline
            .keys()
            .filter(|(p, _)| p == pipeline)
            .map(|(_, k)| k.clone())
            .collect())
    }

    async fn delete_pipeline_secret(&self, _pipeline: &str, _key: &str) -> Result<(), StoreError> {
        Err(read_only("delete pipeline secret"))
    }

    async fn get_global_secret(
        &self,
        pipeline: &str,
        key: &str,
    ) -> Result<SecretString, StoreError> {
        let value = self.global.get(key).ok_or_else(|| StoreError::NotFound {
            store: ENV,
            kind: "global secret",
            scope: None,
            key: key.to_string(),
        })?;
        let allow = self.allow.get(key).map(Vec::as_slice).unwrap_or_default();
        if !allow_list_matches(allow, pipeline) {
            return Err(StoreError::Forbidden {
                store: ENV,
                pipeline: pipeline.to_string(),
                key: key.to_string(),
            });
        }
        Ok(value.clone())
    }

    async fn put_global_secret(
        &self,
        _key: &str,
        _value: SecretString,
        _allow: Vec<String>,
        _force: bool,
    ) -> Result<(), StoreError> {
        Err(read_only("put global secret"))
    }

    async fn list_global_secrets(&self) -> Result<Vec<GlobalSecretInfo>, StoreError> {
        Ok(self
            .global
            .keys()
            .map(|k| {
                GlobalSecretInfo::new(k.clone(), self.allow.get(k).cloned().unwrap_or_default())
            })
            .collect())
    }

    async fn delete_global_secret(&self, _key: &str) -> Result<(), StoreError> {
        Err(read_only("delete global secret"))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[tokio::test]
    async fn naming_rules() {
        let st = EnvSecretStore::from_vars_with_prefix(
            "APP",
            [
                ("APP_SECRET_my-pipe__KEY__WITH__SEPS", "v1"),
                ("APP_SECRET_my_pipe__KEY", "v2"),
                ("APP_SECRET_nokey__", "ignored"),
                ("APP_SECRET_noseparator", "ignored"),
                ("GOFER_SECRET_my-pipe__OTHER", "other prefix"),
                ("APP_GLOBAL_SECRET_G", "g"),
                ("APP_GLOBAL_ALLOW_G", " a*, b  c\n"),
                ("APP_GLOBAL_SECRET_CLOSED", "c"),
            ],
        );
        assert_eq!(
            st.get_pipeline_secret("my-pipe", "KEY__WITH__SEPS")
                .await
                .unwrap()
                .expose_secret(),
            "v1"
        );
        // No case folding or '-' mapping: my_pipe and my-pipe are different pipelines.
        assert_eq!(
            st.list_pipeline_secrets("my-pipe").await.unwrap(),
            ["KEY__WITH__SEPS"]
        );
        assert_eq!(st.list_pipeline_secrets("my_pipe").await.unwrap(), ["KEY"]);
        assert!(st
            .list_pipeline_secrets("MY_PIPE")
            .await
            .unwrap()
            .is_empty());
        assert!(st
            .get_pipeline_secret("nokey", "")
            .await
            .unwrap_err()
            .is_not_found());
        let e = st.get_pipeline_secret("ab__c", "K").await.unwrap_err();
        assert!(matches!(e, StoreError::InvalidKey { .. }), "{e}");
        let e = st.list_pipeline_secrets("abc_").await.unwrap_err();
        assert!(matches!(e, StoreError::InvalidKey { .. }), "{e}");
        let globals = st.list_global_secrets().await.unwrap();
        assert_eq!(
            globals[1],
            GlobalSecretInfo::new("G", vec!["a*".into(), "b".into(), "c".into()])
        );
        assert_eq!(globals[0], GlobalSecretInfo::new("CLOSED", vec![]));
        assert!(st.get_global_secret("anything", "G").await.is_ok());
        assert!(st.get_global_secret("c", "G").await.is_ok());
        let e = st.get_global_secret("abc", "CLOSED").await.unwrap_err();
        assert!(matches!(e, StoreError::Forbidden { .. }), "{e}");
        assert_eq!(st.pipeline_variable("p-1", "K"), "APP_SECRET_p-1__K");
        assert_eq!(st.global_variable("K"), "APP_GLOBAL_SECRET_K");
        assert_eq!(st.allow_variable("K"), "APP_GLOBAL_ALLOW_K");
    }

    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Any pipeline id the store accepts and any key round-trip through the
        /// variable name, and never show up under another pipeline.
        #[test]
        fn variable_names_round_trip(
            pipeline in "[A-Za-z0-9-]([A-Za-z0-9_-]{1,20}[A-Za-z0-9-])?".prop_filter("no __", |p| !p.contains("__")),
            other in "[A-Za-z0-9-]{3,10}",
            key in "[A-Za-z0-9_]{1,20}",
        ) {
            let names = EnvSecretStore::from_vars(Vec::<(String, String)>::new());
            let st = EnvSecretStore::from_vars([(names.pipeline_variable(&pipeline, &key), "v")]);
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            rt.block_on(async {
                let v = st.get_pipeline_secret(&pipeline, &key).await.unwrap();
                prop_assert_eq!(v.expose_secret(), "v");
                prop_assert_eq!(st.list_pipeline_secrets(&pipeline).await.unwrap(), vec![key.clone()]);
                if other != pipeline {
                    prop_assert!(st.list_pipeline_secrets(&other).await.unwrap().is_empty());
                }
                Ok(())
            })?;
        }
    }
}
