#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod client;
mod config;
mod conmon;
mod create;
mod guard;
mod inspect;
mod logs;
mod pull;
mod sandbox;
mod scheduler;
mod volumes;

pub use config::{PodmanConfig, ROOTFUL_SOCKET};
pub use scheduler::PodmanScheduler;

/// This backend's name, used in errors and spans.
pub const NAME: &str = "podman";
