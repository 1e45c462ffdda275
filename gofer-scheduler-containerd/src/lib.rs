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
pub use scheduler::{ContainerdScheduler, NETNS_PREFIX};

/// The `tracing` target of the backend's timing events (debug level): one per start
/// (`image_us`, `container_us`, `snapshot_us`, `network_us`, `task_us`, `start_us`,
/// `total_us`), one per exit (`delete_us`: the task's deletion, which is when its last
/// output is written) and one per removal (`remove_us`).
pub const TIMING_TARGET: &str = "gofer_scheduler_containerd::timing";

/// This backend's name, used in errors and spans.
pub const NAME: &str = "containerd";
