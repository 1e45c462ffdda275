//! [`FileSecretStore`]: read-only secrets, one file per secret (as in `/run/secrets`).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use gofer_core::{allow_list_matches, GlobalSecretInfo, SecretStore, StoreError};
use secrecy::SecretString;
use zeroize::Zeroizing;

use crate::validate::{check_key, check_pipeline, pipeline_scope};

/// The store name used in errors and spans.
pub const FILE: &str = "file";

/// A read-only [`SecretStore`] over a directory with one file per secret, the way
/// Docker and Kubernetes mount secrets:
///
/// ```text
/// <dir>/pipelines/<pipeline>/<KEY>   pipeline secret KEY of <pipeline>
/// <dir>/global/<KEY>                 global secret KEY
/// <dir>/global-allow/<KEY>           its allow-list: patterns separated by commas,
///                                    spaces or newlines; lines starting with # ignored
/// ```
///
/// - A file holds the value as UTF-8. **One** trailing newline (`\n` or `\r\n`) is
///   removed, since `echo value > file` and most editors add one; a value that must
///   end in a newline needs a second one.
/// - Keys must be usable as file names: no `/`, `\`, NUL, not `.` or `..`, and not
///   starting with `.` (Kubernetes keeps its bookkeeping in `..data` entries, which
///   listings skip). Others get [`StoreError::InvalidKey`]; pipeline ids follow
///   [`gofer_core::validate_id`]. Symbolic links are followed.
/// - A global secret without an allow file is allowed to no pipeline (fail closed).
/// - Files are read at each call, so a rotated mount is seen at once; a file larger
///   than [`MAX_SECRET_FILE_BYTES`] is refused with [`StoreError::Limit`]. Writes return
///   [`StoreError::NotSupported`].
#[derive(Debug, Clone)]
pub struct FileSecretStore {
    dir: Arc<PathBuf>,
}

fn backend(operation: &'static str, path: &Path, e: io::Error) -> StoreError {
    StoreError::Backend {
        store: FILE,
        operation,
        source: Box::new(io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
    }
}

fn check_file_key(key: &str) -> Result<(), StoreError> {
    check_key(FILE, key)?;
    if key.starts_with('.') || key.contains(['/', '\\', '\0']) {
        return Err(StoreError::InvalidKey {
            store: FILE,
            key: key.to_string(),
            message: "keys of the file store must be file names: no '/', '\\', and no leading '.'"
                .into(),
        });
    }
    Ok(())
}

/// Largest secret file read, in bytes.
pub const MAX_SECRET_FILE_BYTES: u64 = 1024 * 1024;

/// Reads a value; `None` when the file does not exist.
fn read_value(path: &Path) -> Result<Option<SecretString>, StoreError> {
    if let Ok(meta) = std::fs::metadata(path) {
        if meta.len() > MAX_SECRET_FILE_BYTES {
            return Err(StoreError::Limit {
                store: FILE,
                message: format!(
                    "secret file {} has {} bytes, more than {MAX_SECRET_FILE_BYTES}",
                    path.display(),
                    meta.len()
                ),
            });
        }
    }
    let bytes = match std::fs::read(path) {
        Ok(b) => Zeroizing::new(b),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
            ) =>
        {
            return Ok(None)
        }
        Err(e) => return Err(backend("read", path, e)),
    };
    let text = std::str::from_utf8(&bytes).map_err(|_| {
        backend(
            "read",
            path,
            io::Error::new(io::ErrorKind::InvalidData, "the value is not UTF-8"),
        )
    })?;
    let text = text
        .strip_suffix('\n')
        .map_or(text, |t| t.strip_suffix('\r').unwrap_or(t));
    Ok(Some(SecretString::from(text.to_string())))
}

/// Names of the regular files (links followed) in `dir`, sorted, skipping hidden ones.
fn list_files(dir: &Path) -> Result<Vec<String>, StoreError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(backend("list", dir, e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| backend("list", dir, e))?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if name.starts_with('.') {
            continue;
        }
        if std::fs::metadata(entry.path()).is_ok_and(|m| m.is_file()) {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

fn read_allow(path: &Path) -> Result<Vec<String>, StoreError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(backend("read allow-list", path, e)),
    };
    Ok(text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .flat_map(|l| l.split(|c: char| c == ',' || c.is_whitespace()))
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect())
}

async fn blocking<T: Send + 'static>(
    operation: &'static str,
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Backend {
            store: FILE,
            operation,
            source: Box::new(e),
        })?
}

fn read_only(operation: &'static str) -> StoreError {
    StoreError::NotSupported {
        store: FILE,
        operation,
    }
}

impl FileSecretStore {
    /// A store over `dir`. The directory need not exist yet (everything then reads as
    /// absent).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: Arc::new(dir.into()),
        }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file that holds a pipeline secret.
    ///
    /// # Errors
    /// [`StoreError::InvalidKey`] when the pipeline id or key cannot name a file.
    pub fn pipeline_secret_path(&self, pipeline: &str, key: &str) -> Result<PathBuf, StoreError> {
        check_pipeline(FILE, pipeline)?;
        check_file_key(key)?;
        Ok(self.dir.join("pipelines").join(pipeline).join(key))
    }

    /// The file that holds a global secret.
    ///
    /// # Errors
    /// [`StoreError::InvalidKey`] when the key cannot name a file.
    pub fn global_secret_path(&self, key: &str) -> Result<PathBuf, StoreError> {
        check_file_key(key)?;
        Ok(self.dir.join("global").join(key))
    }

    /// The file that holds a global secret's allow-list.
    ///
    /// # Errors
    /// [`StoreError::InvalidKey`] when the key cannot name a file.
    pub fn allow_list_path(&self, key: &str) -> Result<PathBuf, StoreError> {
        check_file_key(key)?;
        Ok(self.dir.join("global-allow").join(key))
    }
}

#[async_trait]
impl SecretStore for FileSecretStore {
    async fn get_pipeline_secret(
        &self,
        pipeline: &str,
        key: &str,
    ) -> Result<SecretString, StoreError> {
        let path = self.pipeline_secret_path(pipeline, key)?;
        let (p, k) = (pipeline.to_string(), key.to_string());
        blocking("read", move || {
            read_value(&path)?.ok_or_else(|| StoreError::NotFound {
                store: FILE,
                kind: "pipeline secret",
                scope: pipeline_scope(&p),
                key: k,
            })
        })
        .await
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
        check_pipeline(FILE, pipeline)?;
        let dir = self.dir.join("pipelines").join(pipeline);
        blocking("list", move || list_files(&dir)).await
    }

    async fn delete_pipeline_secret(&self, _pipeline: &str, _key: &str) -> Result<(), StoreError> {
        Err(read_only("delete pipeline secret"))
    }

    async fn get_global_secret(
        &self,
        pipeline: &str,
        key: &str,
    ) -> Result<SecretString, StoreError> {
        let path = self.global_secret_path(key)?;
        let allow_path = self.allow_list_path(key)?;
        let (p, k) = (pipeline.to_string(), key.to_string());
        blocking("read", move || {
            if !path.is_file() {
                return Err(StoreError::NotFound {
                    store: FILE,
                    kind: "global secret",
                    scope: None,
                    key: k,
                });
            }
            if !allow_list_matches(&read_allow(&allow_path)?, &p) {
                return Err(StoreError::Forbidden {
                    store: FILE,
                    pipeline: p,
                    key: k,
                });
            }
            read_value(&path)?.ok_or(StoreError::NotFound {
                store: FILE,
                kind: "global secret",
                scope: None,
                key: k,
            })
        })
        .await
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
        let dir = Arc::clone(&self.dir);
        blocking("list", move || {
            list_files(&dir.join("global"))?
                .into_iter()
                .map(|k| {
                    let allow = read_allow(&dir.join("global-allow").join(&k))?;
                    Ok(GlobalSecretInfo::new(k, allow))
                })
                .collect()
        })
        .await
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
    async fn layout_newlines_and_traversal() {
        let dir = tempfile::tempdir().unwrap();
        let st = FileSecretStore::new(dir.path());
        let p = dir.path().join("pipelines/build-web");
        std::fs::create_dir_all(&p).unwrap();
        std::fs::write(p.join("ONE_NL"), "v1\n").unwrap();
        std::fs::write(p.join("CRLF"), "v2\r\n").unwrap();
        std::fs::write(p.join("TWO_NL"), "v3\n\n").unwrap();
        std::fs::write(p.join("NONE"), "v4").unwrap();
        std::fs::write(p.join(".hidden"), "h").unwrap();
        std::fs::write(p.join("BAD_UTF8"), [0xff, 0xfe]).unwrap();
        std::fs::create_dir(p.join("subdir")).unwrap();
        std::fs::write(
            p.join("HUGE"),
            vec![b'a'; MAX_SECRET_FILE_BYTES as usize + 1],
        )
        .unwrap();
        let e = st
            .get_pipeline_secret("build-web", "HUGE")
            .await
            .unwrap_err();
        assert!(matches!(e, StoreError::Limit { .. }), "{e}");
        std::fs::remove_file(p.join("HUGE")).unwrap();
        let get = |k: &'static str| {
            let st = st.clone();
            async move { st.get_pipeline_secret("build-web", k).await }
        };
        assert_eq!(get("ONE_NL").await.unwrap().expose_secret(), "v1");
        assert_eq!(get("CRLF").await.unwrap().expose_secret(), "v2");
        assert_eq!(get("TWO_NL").await.unwrap().expose_secret(), "v3\n");
        assert_eq!(get("NONE").await.unwrap().expose_secret(), "v4");
        let e = get("BAD_UTF8").await.unwrap_err();
        assert!(
            matches!(e, StoreError::Backend { .. }) && e.to_string().contains("BAD_UTF8"),
            "{e}"
        );
        assert_eq!(
            st.list_pipeline_secrets("build-web").await.unwrap(),
            ["BAD_UTF8", "CRLF", "NONE", "ONE_NL", "TWO_NL"]
        );
        for bad in ["../ONE_NL", "..", ".", ".hidden", "a/b", "a\\b", ""] {
            let e = st.get_pipeline_secret("build-web", bad).await.unwrap_err();
            assert!(matches!(e, StoreError::InvalidKey { .. }), "{bad:?}: {e}");
        }
        for bad in ["..", "../x", "a/b/c"] {
            let e = st.get_pipeline_secret(bad, "ONE_NL").await.unwrap_err();
            assert!(matches!(e, StoreError::InvalidKey { .. }), "{bad:?}: {e}");
            assert!(st.list_pipeline_secrets(bad).await.is_err());
        }
        let e = st
            .get_global_secret("build-web", "../pipelines")
            .await
            .unwrap_err();
        assert!(matches!(e, StoreError::InvalidKey { .. }), "{e}");
        assert!(st
            .get_pipeline_secret("nowhere", "K")
            .await
            .unwrap_err()
            .is_not_found());
        assert!(st
            .list_pipeline_secrets("nowhere")
            .await
            .unwrap()
            .is_empty());
    }

    #[tokio::test]
    async fn allow_files() {
        let dir = tempfile::tempdir().unwrap();
        let st = FileSecretStore::new(dir.path());
        std::fs::create_dir_all(dir.path().join("global")).unwrap();
        std::fs::create_dir_all(dir.path().join("global-allow")).unwrap();
        std::fs::write(dir.path().join("global/TOKEN"), "t\n").unwrap();
        std::fs::write(dir.path().join("global/CLOSED"), "c").unwrap();
        std::fs::write(
            dir.path().join("global-allow/TOKEN"),
            "# who may read\ndeploy-*, ops\nweb\n",
        )
        .unwrap();
        assert_eq!(
            st.get_global_secret("deploy-eu", "TOKEN")
                .await
                .unwrap()
                .expose_secret(),
            "t"
        );
        assert!(st.get_global_secret("web", "TOKEN").await.is_ok());
        let e = st.get_global_secret("build", "TOKEN").await.unwrap_err();
        assert!(matches!(e, StoreError::Forbidden { .. }), "{e}");
        let e = st.get_global_secret("ops", "CLOSED").await.unwrap_err();
        assert!(matches!(e, StoreError::Forbidden { .. }), "{e}");
        let list = st.list_global_secrets().await.unwrap();
        assert_eq!(list[0], GlobalSecretInfo::new("CLOSED", vec![]));
        assert_eq!(
            list[1],
            GlobalSecretInfo::new("TOKEN", vec!["deploy-*".into(), "ops".into(), "web".into()])
        );
    }
}
