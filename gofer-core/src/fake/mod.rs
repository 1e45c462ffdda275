//! [`FakeScheduler`]: a faithful in-memory container engine for tests.
//!
//! It is a fake, not a mock: it has the state machine of a real engine and passes the
//! same conformance suite as the Docker and Podman backends. Container processes are
//! scripted with a [`Behaviour`] (output with delays, exit codes, TERM handling, memory
//! kills, pull and start failures), everything runs on tokio time, and every request
//! and pull is recorded for assertions.

mod behaviour;
#[cfg(feature = "conformance")]
mod conformance;
mod container;
mod engine;
mod image;
mod scheduler;

pub use behaviour::{Behaviour, End, OnTerm, PullFailure, Step};
#[cfg(feature = "conformance")]
pub use conformance::FAKE_BOX;
pub use image::{ImageConfig, PullRecord};
pub use scheduler::{FakeScheduler, NAME};

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_scripting;
