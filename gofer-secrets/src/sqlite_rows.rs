//! Rows of the `gofer_secrets` table: reading, writing, sealing and opening them.

use gofer_core::StoreError;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use secrecy::{ExposeSecret, SecretString};

use crate::crypto::{self, Identity, Kind};
use crate::db::{self, backend, SQLITE};
use crate::key::EncryptionKey;
use crate::validate::pipeline_scope;

/// The `gofer_meta` entry holding the id of the key the store is under.
pub(crate) const KEY_ID_NAME: &str = "secrets_key_id";

/// A store handle's connection and key, changed together (rotation).
pub(crate) struct State {
    pub(crate) conn: Connection,
    pub(crate) key: EncryptionKey,
}

pub(crate) fn integrity(kind: Kind, key: &str) -> StoreError {
    StoreError::Integrity {
        store: SQLITE,
        kind: kind.describe(),
        key: key.to_string(),
    }
}

pub(crate) fn encode_allow(allow: &[String]) -> String {
    allow.join("\n")
}

pub(crate) fn decode_allow(text: &str) -> Vec<String> {
    text.split('\n')
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect()
}

/// Fails when another handle rotated the key since this one was opened.
pub(crate) fn ensure_current_key(conn: &Connection, key: &EncryptionKey) -> Result<(), StoreError> {
    let stored = db::meta_get(conn, KEY_ID_NAME).map_err(backend(SQLITE, "check key"))?;
    match stored {
        Some(id) if id == key.id() => Ok(()),
        other => {
            tracing::error!(
                expected = key.id(),
                found = other.as_deref().unwrap_or("none"),
                "the secret store is under another key (rotated by another handle?)"
            );
            Err(StoreError::Integrity {
                store: SQLITE,
                kind: "secret store",
                key: format!("key id {}", key.id()),
            })
        }
    }
}

/// `(allow, nonce, ciphertext)`.
pub(crate) type Row = (String, Vec<u8>, Vec<u8>);
/// `(kind, pipeline, key, allow, nonce, ciphertext)`.
pub(crate) type FullRow = (String, String, String, String, Vec<u8>, Vec<u8>);

pub(crate) fn read_row(
    conn: &Connection,
    kind: Kind,
    pipeline: &str,
    key: &str,
) -> Result<Option<Row>, StoreError> {
    conn.prepare_cached(
        "SELECT allow, nonce, ciphertext FROM gofer_secrets
         WHERE kind = ?1 AND pipeline = ?2 AND key = ?3",
    )
    .and_then(|mut st| {
        st.query_row(params![kind.as_str(), pipeline, key], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .optional()
    })
    .map_err(backend(SQLITE, "read"))
}

pub(crate) fn decrypt(
    key: &EncryptionKey,
    id: &Identity<'_>,
    nonce: &[u8],
    ciphertext: &[u8],
) -> Result<SecretString, StoreError> {
    let plain =
        crypto::open(key, id, nonce, ciphertext).ok_or_else(|| integrity(id.kind, id.key))?;
    let text = std::str::from_utf8(&plain).map_err(|_| integrity(id.kind, id.key))?;
    Ok(SecretString::from(text.to_string()))
}

pub(crate) fn write(
    state: &mut State,
    id: &Identity<'_>,
    value: &SecretString,
    force: bool,
) -> Result<(), StoreError> {
    let tx = state
        .conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(backend(SQLITE, "write"))?;
    ensure_current_key(&tx, &state.key)?;
    if !force && read_row(&tx, id.kind, id.pipeline, id.key)?.is_some() {
        return Err(StoreError::AlreadyExists {
            store: SQLITE,
            kind: id.kind.describe(),
            scope: (id.kind == Kind::Pipeline)
                .then(|| pipeline_scope(id.pipeline))
                .flatten(),
            key: id.key.to_string(),
        });
    }
    let (nonce, ciphertext) = crypto::seal(&state.key, id, value.expose_secret().as_bytes())
        .map_err(|e| StoreError::Backend {
            store: SQLITE,
            operation: "encrypt",
            source: Box::new(e),
        })?;
    tx.execute(
        "INSERT INTO gofer_secrets (kind, pipeline, key, allow, key_id, nonce, ciphertext)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (kind, pipeline, key) DO UPDATE SET
           allow = excluded.allow, key_id = excluded.key_id,
           nonce = excluded.nonce, ciphertext = excluded.ciphertext",
        params![
            id.kind.as_str(),
            id.pipeline,
            id.key,
            encode_allow(id.allow),
            state.key.id(),
            &nonce[..],
            ciphertext
        ],
    )
    .map_err(backend(SQLITE, "write"))?;
    tx.commit().map_err(backend(SQLITE, "write"))
}

pub(crate) fn delete(
    conn: &Connection,
    kind: Kind,
    pipeline: &str,
    key: &str,
) -> Result<(), StoreError> {
    let n = conn
        .execute(
            "DELETE FROM gofer_secrets WHERE kind = ?1 AND pipeline = ?2 AND key = ?3",
            params![kind.as_str(), pipeline, key],
        )
        .map_err(backend(SQLITE, "delete"))?;
    if n == 0 {
        return Err(StoreError::NotFound {
            store: SQLITE,
            kind: kind.describe(),
            scope: (kind == Kind::Pipeline)
                .then(|| pipeline_scope(pipeline))
                .flatten(),
            key: key.to_string(),
        });
    }
    Ok(())
}
