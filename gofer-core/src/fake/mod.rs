//! [`FakeScheduler`]: a faithful in-memory container engine for tests.
//!
//! It is a fake, not a mock: it has the state machine of a real engine and passes the
//! same conformance suite as the Docker and Podman backends. Container processes are
//! scripted with a [`Behaviour`] (output with delays, exit codes, TERM handling, memory
//! kills, pull and start failures), everything runs on tokio time, and every request
//! and pull is recorded for assertions.
//!
//! **Fake or mock?** The fake is for behaviour: what a run does on an engine. For exact
//! expectations and scripted faults (a call that fails or panics, a store that fails
//! on the k-th write, a call that must happen exactly once), the `mock` feature gives
//! `mockall` mocks of every public trait in `gofer_core::mock` (`MockScheduler`,
//! `MockSecretStore`, `MockObjectStore`, `MockRunStore`, `MockLogSink`,
//! `MockLogWriter`).

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
