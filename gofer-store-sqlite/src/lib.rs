#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod schema;
mod store;

pub use store::{SqliteRunStore, FILE_NAME, NAME};
