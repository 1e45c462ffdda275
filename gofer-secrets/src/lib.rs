#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod crypto;
mod db;
mod env;
mod file;
mod key;
mod sqlite_object;
mod sqlite_rows;
mod sqlite_schema;
mod sqlite_secret;
mod validate;

pub use env::{EnvSecretStore, DEFAULT_ENV_PREFIX, ENV};
pub use file::{FileSecretStore, FILE, MAX_SECRET_FILE_BYTES};
pub use key::{EncryptionKey, KeyError, KEY_LEN};
pub use sqlite_object::{SqliteObjectStore, DEFAULT_KEEP_RUNS, DEFAULT_MAX_PIPELINE_OBJECTS};
pub use sqlite_secret::{SqliteSecretStore, SQLITE};
