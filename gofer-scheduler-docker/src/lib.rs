#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod cleanup;
mod config;
mod create;
mod error;
mod logs;
mod pull;
mod scheduler;
mod state;
mod volumes;

pub use config::{DockerConfig, DEFAULT_API_VERSION, DEFAULT_HOST};
pub use scheduler::DockerScheduler;

/// This backend's name, used in errors and spans.
pub const NAME: &str = "docker";

/// The workspace README's examples, compiled as doctests of this crate.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct WorkspaceReadmeDoctests;
