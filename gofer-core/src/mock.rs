//! [`mockall`] mocks of the public traits, for a host's tests. Feature `mock`.
//!
//! **Fake or mock?** Use the [fake](crate::fake) for behaviour: [`FakeScheduler`](crate::fake::FakeScheduler)
//! is a real state machine that passes the conformance suite, and the in-memory
//! stores ([`InMemorySecretStore`](crate::InMemorySecretStore),
//! [`InMemoryObjectStore`](crate::InMemoryObjectStore),
//! [`InMemoryRunStore`](crate::InMemoryRunStore))
//! keep what they are given. Use a mock for **exact expectations and faults**: a
//! backend call that fails or panics, a store that fails on the k-th write, a log
//! stream that errors after N chunks, a call that must happen exactly once with
//! these arguments.
//!
//! | trait | mock |
//! | --- | --- |
//! | [`Scheduler`](crate::Scheduler) | [`MockScheduler`] |
//! | [`SecretStore`](crate::SecretStore) | [`MockSecretStore`] |
//! | [`ObjectStore`](crate::ObjectStore) | [`MockObjectStore`] |
//! | [`RunStore`](crate::RunStore) | [`MockRunStore`] |
//!
//! The mocks are generated from the traits themselves (`mockall::automock` on each,
//! under this feature), so each has every method of its trait, defaults included
//! (`create_sandbox`, `start_created`, the volume methods, `run_finished`), and never
//! drifts from it: a call without a matching expectation panics, so script what the
//! code under test calls.
//!
//! # Examples
//!
//! A scheduler whose start fails: the error is what the code under test sees, and
//! nothing else was asked of it (the crate `gofer-engine` runs the same mock through
//! its engine, in `gofer_engine::mock`).
//!
//! ```
//! use gofer_core::mock::MockScheduler;
//! use gofer_core::{ContainerSpec, Scheduler, SchedulerError};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let mut scheduler = MockScheduler::new();
//! scheduler
//!     .expect_start()
//!     .times(1)
//!     .withf(|spec| spec.image == "busybox")
//!     .returning(|spec| Err(SchedulerError::NoSuchImage {
//!         scheduler: "mock",
//!         image: spec.image,
//!         message: "not in the registry".into(),
//!     }));
//! let err = scheduler.start(ContainerSpec::new("c1", "busybox")).await.unwrap_err();
//! assert!(matches!(err, SchedulerError::NoSuchImage { .. }));
//! # }
//! ```

pub use crate::runstore::MockRunStore;
pub use crate::scheduler::MockScheduler;
pub use crate::store::{MockObjectStore, MockSecretStore};
