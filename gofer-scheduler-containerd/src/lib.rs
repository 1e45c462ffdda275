#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod client;
mod config;
mod exits;
mod image;
mod logger;
mod logs;
mod net;
mod oci;
mod scheduler;
mod volumes;

pub use config::{ContainerdConfig, DEFAULT_NAMESPACE, DEFAULT_SOCKET};
pub use scheduler::ContainerdScheduler;

/// This backend's name, used in errors and spans.
pub const NAME: &str = "containerd";
