//! [`SqliteSecretStore`]: secrets encrypted with AES-256-GCM in one SQLite file.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use async_trait::async_trait;
use gofer_core::{allow_list_matches, GlobalSecretInfo, SecretStore, StoreError};
use rusqlite::{params, TransactionBehavior};
use secrecy::SecretString;
use tracing::Instrument;

use crate::crypto::{self, Identity, Kind};
use crate::db::{self, backend, Shared};
use crate::key::EncryptionKey;
use crate::sqlite_rows::{
    decode_allow, decrypt, delete, ensure_current_key, integrity, read_row, write, FullRow, State,
    KEY_ID_NAME,
};
use crate::validate::{check_allow, check_key, check_pipeline, pipeline_scope};

pub use crate::db::SQLITE;

/// A [`SecretStore`] keeping values encrypted with AES-256-GCM in one SQLite file
/// (WAL mode), the embedded default.
///
/// Every write uses a fresh random nonce; the associated data binds each value to the
/// key's id and to its identity (kind, pipeline, key, and a global secret's
/// allow-list), so a wrong key, an edited row, or a row moved to another identity all
/// read as [`StoreError::Integrity`], never as garbage. Names of pipelines and keys
/// and the allow-lists are stored in plaintext; values never are.
///
/// The store is cheap to clone (all clones share one connection). SQLite work runs
/// on Tokio's blocking pool, so the methods need a Tokio runtime.
#[derive(Clone)]
pub struct SqliteSecretStore {
    shared: Shared<State>,
    path: Arc<PathBuf>,
    key_id: Arc<RwLock<String>>,
}

impl fmt::Debug for SqliteSecretStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteSecretStore")
            .field("path", &self.path)
            .field("key_id", &self.key_id())
            .finish()
    }
}

impl SqliteSecretStore {
    /// Opens the store at `path`, creating the file (mode `0600`) and its tables when
    /// the file does not exist. A new store records `key`'s [id](EncryptionKey::id); an
    /// existing one must be opened with the key it was last written under.
    ///
    /// A file that exists is never taken for a new store: one truncated to zero
    /// bytes, cut mid-page, with a garbage header or a corrupt page is refused.
    ///
    /// # Errors
    /// [`StoreError::Integrity`] when the file is under another key,
    /// [`StoreError::Unusable`] when it is damaged, is not a gofer-secrets file or has
    /// a newer schema (the source is a [`gofer_sqlite::OpenError`]),
    /// [`StoreError::Backend`] when it cannot be opened.
    pub async fn open(path: impl AsRef<Path>, key: EncryptionKey) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let span = tracing::debug_span!("secret_store.open", store = SQLITE, path = %path.display(), key_id = key.id());
        let p = path.clone();
        let inner = span.clone();
        let state = tokio::task::spawn_blocking(move || -> Result<State, StoreError> {
            let _entered = inner.enter();
            let mut conn = db::open(SQLITE, &p)?;
            // Overwrite freed space, so replaced ciphertexts (such as those under a
            // rotated-out key) do not linger in the file.
            conn.execute_batch("PRAGMA secure_delete = ON;")
                .map_err(backend(SQLITE, "open"))?;
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend(SQLITE, "open"))?;
            match db::meta_get(&tx, KEY_ID_NAME).map_err(backend(SQLITE, "open"))? {
                None => db::meta_set(&tx, KEY_ID_NAME, key.id()).map_err(backend(SQLITE, "open"))?,
                Some(id) if id == key.id() => {}
                Some(id) => {
                    tracing::error!(path = %p.display(), stored_key_id = %id, given_key_id = key.id(), "wrong encryption key for the secret store");
                    return Err(StoreError::Integrity {
                        store: SQLITE,
                        kind: "secret store",
                        key: p.display().to_string(),
                    });
                }
            }
            tx.commit().map_err(backend(SQLITE, "open"))?;
            Ok(State { conn, key })
        })
        .instrument(span)
        .await
        .map_err(|e| StoreError::Backend {
            store: SQLITE,
            operation: "open",
            source: Box::new(e),
        })??;
        let key_id = state.key.id().to_string();
        Ok(Self {
            shared: Arc::new(Mutex::new(state)),
            path: Arc::new(path),
            key_id: Arc::new(RwLock::new(key_id)),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The id of the key the store is under now.
    pub fn key_id(&self) -> String {
        self.key_id
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Re-encrypts every value under `new_key` in one transaction and switches this
    /// handle to it; returns how many values were re-encrypted. If anything fails,
    /// nothing changes. Afterwards the old key no longer opens the store.
    ///
    /// Other handles opened on the same file (other processes) keep the old key and
    /// get [`StoreError::Integrity`] from then on; reopen them with the new key.
    ///
    /// # Errors
    /// [`StoreError::Integrity`] when a value cannot be decrypted with the current key
    /// (the rotation is then abandoned), [`StoreError::Backend`] on SQLite failures.
    pub async fn rotate_key(&self, new_key: EncryptionKey) -> Result<usize, StoreError> {
        let span = tracing::info_span!(
            "secret_store.rotate_key",
            store = SQLITE,
            new_key_id = new_key.id()
        );
        let key_id = Arc::clone(&self.key_id);
        db::blocking(SQLITE, "rotate key", &self.shared, move |state| {
            let tx = state
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend(SQLITE, "rotate key"))?;
            ensure_current_key(&tx, &state.key)?;
            let rows: Vec<FullRow> = tx
                .prepare("SELECT kind, pipeline, key, allow, nonce, ciphertext FROM gofer_secrets")
                .and_then(|mut st| {
                    st.query_map([], |r| {
                        Ok((
                            r.get(0)?,
                            r.get(1)?,
                            r.get(2)?,
                            r.get(3)?,
                            r.get(4)?,
                            r.get(5)?,
                        ))
                    })?
                    .collect()
                })
                .map_err(backend(SQLITE, "rotate key"))?;
            for (kind_text, pipeline, key, allow_text, nonce, ciphertext) in &rows {
                let kind = if kind_text == Kind::Global.as_str() {
                    Kind::Global
                } else {
                    Kind::Pipeline
                };
                let allow = decode_allow(allow_text);
                let id = Identity {
                    kind,
                    pipeline,
                    key,
                    allow: &allow,
                };
                let plain = crypto::open(&state.key, &id, nonce, ciphertext)
                    .ok_or_else(|| integrity(kind, key))?;
                let (nonce, ciphertext) =
                    crypto::seal(&new_key, &id, &plain).map_err(|e| StoreError::Backend {
                        store: SQLITE,
                        operation: "encrypt",
                        source: Box::new(e),
                    })?;
                tx.execute(
                    "UPDATE gofer_secrets SET key_id = ?4, nonce = ?5, ciphertext = ?6
                     WHERE kind = ?1 AND pipeline = ?2 AND key = ?3",
                    params![
                        kind_text,
                        pipeline,
                        key,
                        new_key.id(),
                        &nonce[..],
                        ciphertext
                    ],
                )
                .map_err(backend(SQLITE, "rotate key"))?;
            }
            db::meta_set(&tx, KEY_ID_NAME, new_key.id()).map_err(backend(SQLITE, "rotate key"))?;
            tx.commit().map_err(backend(SQLITE, "rotate key"))?;
            // Move the new pages into the file and empty the WAL, so no frame with a
            // ciphertext under the old key remains on disk.
            let busy: i64 = state
                .conn
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))
                .map_err(backend(SQLITE, "rotate key"))?;
            if busy != 0 {
                tracing::warn!("other connections kept the WAL from being emptied after the key rotation; it will be on the next checkpoint");
            }
            *key_id
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = new_key.id().to_string();
            tracing::info!(values = rows.len(), "rotated the encryption key");
            state.key = new_key;
            Ok(rows.len())
        })
        .instrument(span)
        .await
    }

    async fn run<T, F>(
        &self,
        operation: &'static str,
        pipeline: &str,
        key: &str,
        f: F,
    ) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut State) -> Result<T, StoreError> + Send + 'static,
    {
        let span = tracing::debug_span!("secret_store", store = SQLITE, operation, pipeline, key);
        db::blocking(SQLITE, operation, &self.shared, f)
            .instrument(span)
            .await
    }
}

#[async_trait]
impl SecretStore for SqliteSecretStore {
    async fn get_pipeline_secret(
        &self,
        pipeline: &str,
        key: &str,
    ) -> Result<SecretString, StoreError> {
        let (p, k) = (pipeline.to_string(), key.to_string());
        self.run("get pipeline secret", pipeline, key, move |state| {
            let (_, nonce, ciphertext) = read_row(&state.conn, Kind::Pipeline, &p, &k)?
                .ok_or_else(|| StoreError::NotFound {
                    store: SQLITE,
                    kind: Kind::Pipeline.describe(),
                    scope: pipeline_scope(&p),
                    key: k.clone(),
                })?;
            let id = Identity {
                kind: Kind::Pipeline,
                pipeline: &p,
                key: &k,
                allow: &[],
            };
            decrypt(&state.key, &id, &nonce, &ciphertext)
        })
        .await
    }

    async fn put_pipeline_secret(
        &self,
        pipeline: &str,
        key: &str,
        value: SecretString,
        force: bool,
    ) -> Result<(), StoreError> {
        check_pipeline(SQLITE, pipeline)?;
        check_key(SQLITE, key)?;
        let (p, k) = (pipeline.to_string(), key.to_string());
        self.run("put pipeline secret", pipeline, key, move |state| {
            let id = Identity {
                kind: Kind::Pipeline,
                pipeline: &p,
                key: &k,
                allow: &[],
            };
            write(state, &id, &value, force)
        })
        .await
    }

    async fn list_pipeline_secrets(&self, pipeline: &str) -> Result<Vec<String>, StoreError> {
        let p = pipeline.to_string();
        self.run("list pipeline secrets", pipeline, "", move |state| {
            state
                .conn
                .prepare_cached("SELECT key FROM gofer_secrets WHERE kind = 'pipeline' AND pipeline = ?1 ORDER BY key")
                .and_then(|mut st| st.query_map([&p], |r| r.get(0))?.collect())
                .map_err(backend(SQLITE, "list"))
        })
        .await
    }

    async fn delete_pipeline_secret(&self, pipeline: &str, key: &str) -> Result<(), StoreError> {
        let (p, k) = (pipeline.to_string(), key.to_string());
        self.run("delete pipeline secret", pipeline, key, move |state| {
            delete(&state.conn, Kind::Pipeline, &p, &k)
        })
        .await
    }

    async fn get_global_secret(
        &self,
        pipeline: &str,
        key: &str,
    ) -> Result<SecretString, StoreError> {
        let (p, k) = (pipeline.to_string(), key.to_string());
        self.run("get global secret", pipeline, key, move |state| {
            let (allow_text, nonce, ciphertext) = read_row(&state.conn, Kind::Global, "", &k)?
                .ok_or_else(|| StoreError::NotFound {
                    store: SQLITE,
                    kind: Kind::Global.describe(),
                    scope: None,
                    key: k.clone(),
                })?;
            let allow = decode_allow(&allow_text);
            if !allow_list_matches(&allow, &p) {
                return Err(StoreError::Forbidden {
                    store: SQLITE,
                    pipeline: p,
                    key: k,
                });
            }
            // The allow-list is part of the associated data: an edited list fails here.
            let id = Identity {
                kind: Kind::Global,
                pipeline: "",
                key: &k,
                allow: &allow,
            };
            decrypt(&state.key, &id, &nonce, &ciphertext)
        })
        .await
    }

    async fn put_global_secret(
        &self,
        key: &str,
        value: SecretString,
        allow: Vec<String>,
        force: bool,
    ) -> Result<(), StoreError> {
        check_key(SQLITE, key)?;
        check_allow(SQLITE, key, &allow)?;
        let k = key.to_string();
        self.run("put global secret", "", key, move |state| {
            let id = Identity {
                kind: Kind::Global,
                pipeline: "",
                key: &k,
                allow: &allow,
            };
            write(state, &id, &value, force)
        })
        .await
    }

    async fn list_global_secrets(&self) -> Result<Vec<GlobalSecretInfo>, StoreError> {
        self.run("list global secrets", "", "", move |state| {
            state
                .conn
                .prepare_cached(
                    "SELECT key, allow FROM gofer_secrets WHERE kind = 'global' ORDER BY key",
                )
                .and_then(|mut st| {
                    st.query_map([], |r| {
                        let key: String = r.get(0)?;
                        let allow: String = r.get(1)?;
                        Ok(GlobalSecretInfo::new(key, decode_allow(&allow)))
                    })?
                    .collect()
                })
                .map_err(backend(SQLITE, "list"))
        })
        .await
    }

    async fn delete_global_secret(&self, key: &str) -> Result<(), StoreError> {
        let k = key.to_string();
        self.run("delete global secret", "", key, move |state| {
            delete(&state.conn, Kind::Global, "", &k)
        })
        .await
    }
}
