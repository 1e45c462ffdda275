//! Behaviour suites every [`SecretStore`](crate::SecretStore) and
//! [`ObjectStore`](crate::ObjectStore) must pass (feature `testing`).
//!
//! Each case is a free `async fn` taking the store as `&DynSecretStore` or
//! `&DynObjectStore`; differences between stores are plain arguments (`writable`,
//! `keep_runs`, `max_pipeline_objects`), never a test of which store it is. A case
//! panics with a message naming what went wrong. Cases use their own pipeline ids, so
//! they may share one store.
//!
//! Read paths need known content: a writable store is filled with [`seed`], a
//! read-only store is built from [`fixture`] by the caller (the tests of the crate
//! `gofer-secrets` show how for its `EnvSecretStore` and `FileSecretStore`).
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! use gofer_core::{InMemoryObjectStore, InMemorySecretStore};
//! use gofer_core::testing::stores as testing;
//!
//! let secrets = InMemorySecretStore::new();
//! testing::seed(&secrets, &testing::fixture()).await;
//! testing::pipeline_reads(&secrets).await;
//! testing::global_reads(&secrets).await;
//! testing::pipeline_writes(&secrets, true).await;
//!
//! let objects = InMemoryObjectStore::new().keep_runs(3);
//! testing::run_expiry(&objects, 3).await;
//! testing::pipeline_object_limit(&objects, None).await;
//! # });
//! ```

mod object;
mod secret;
mod secret_concurrency;

pub use object::{
    object_concurrent_access, object_errors, pipeline_object_limit, pipeline_objects, run_expiry,
    run_object_quota, run_objects,
};
pub use secret::{
    fixture, global_reads, global_writes, pipeline_reads, pipeline_writes, secrets_stay_hidden,
    seed, FixtureGlobal, FixtureSecret, SecretFixture,
};
pub use secret_concurrency::secret_concurrent_access;
