#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod config;
mod create;
mod error;
mod ids;
mod list;
mod logs;
mod network;
mod scheduler;
mod stop;
mod tasks;
mod wait;

pub use config::{SwarmConfig, DEFAULT_API_VERSION, DEFAULT_HOST};
pub use create::{CONSTRAINTS_ENV, LABEL_NAME};
pub use error::SwarmError;
pub use scheduler::SwarmScheduler;

/// This backend's name, used in errors and spans.
pub const NAME: &str = "swarm";
