//! Helpers shared by the SQLite secret store tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use gofer_core::StoreError;
use gofer_secrets::EncryptionKey;
use rusqlite::Connection;
use secrecy::SecretString;

pub fn secret(v: &str) -> SecretString {
    SecretString::from(v.to_string())
}

pub fn key_a() -> EncryptionKey {
    "11111111111111111111111111111111aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        .parse()
        .expect("key a")
}

pub fn key_b() -> EncryptionKey {
    "22222222222222222222222222222222bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
        .parse()
        .expect("key b")
}

pub struct Db {
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
}

pub fn db() -> Db {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("secrets.db");
    Db { dir, path }
}

/// Every byte SQLite keeps for this database: the file, its WAL and shared memory.
pub fn disk_bytes(path: &Path) -> Vec<(String, Vec<u8>)> {
    ["", "-wal", "-shm", "-journal"]
        .iter()
        .filter_map(|suffix| {
            let p = PathBuf::from(format!("{}{suffix}", path.display()));
            std::fs::read(&p).ok().map(|b| (p.display().to_string(), b))
        })
        .collect()
}

pub fn assert_not_on_disk(path: &Path, values: &[String], stage: &str) {
    let files = disk_bytes(path);
    assert!(!files.is_empty(), "{stage}: database files exist");
    for (name, bytes) in &files {
        for v in values {
            let found = bytes.windows(v.len()).any(|w| w == v.as_bytes());
            assert!(!found, "{stage}: plaintext of a secret found in {name}");
        }
    }
}

pub fn is_integrity(e: &StoreError) -> bool {
    matches!(e, StoreError::Integrity { .. })
}

pub fn raw(path: &Path) -> Connection {
    let c = Connection::open(path).expect("raw open");
    c.busy_timeout(std::time::Duration::from_secs(30))
        .expect("busy timeout");
    c
}
