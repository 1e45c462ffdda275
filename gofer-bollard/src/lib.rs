#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod connect;
mod error;
mod mounts;
mod registry;

pub use connect::{connect, endpoint, DEFAULT_API_VERSION, DEFAULT_HOST};
pub use error::{
    connection, invalid, is_connection, message, says_unauthorized, scrub, scrub_request, status,
};
pub use mounts::mounts;
pub use registry::{credentials, pull_reference, registry_host};
