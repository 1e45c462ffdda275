//! The [`Scheduler`] trait: the one contract every container backend implements.
//!
//! A backend turns a [`ContainerSpec`] into a running container and reports on it.
//! The run executor only ever talks to `dyn Scheduler`; the in-memory
//! [`FakeScheduler`](crate::fake::FakeScheduler) and the Docker and Podman crates
//! implement it and pass the same conformance suite.

//!
//! One file per concern: `contract` (the trait), `spec` (what it is asked to run),
//! `state` (where a container is), `output` (its output and the cursor over it) and
//! `capabilities` (what a backend can do).

mod capabilities;
mod contract;
mod output;
mod spec;
mod state;

pub use crate::volume::{VolumeScope, VolumeSpec, VolumeSummary};
pub use capabilities::*;
pub use contract::*;
pub use output::*;
pub use spec::*;
pub use state::*;
