#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

// Namespaces of their own (their items are reached through them only).
pub mod cache;
mod concurrency;
pub mod fake;
pub mod matrix;
#[cfg(feature = "mock")]
pub mod mock;
pub mod naming;
#[cfg(feature = "conformance")]
pub mod testing;

// The contract's modules; their items are re-exported below, once each.
mod error;
mod id;
mod interpolate;
mod mount;
mod pipeline;
mod retry;
mod run;
mod runstore;
mod scheduler;
mod service;
mod store;
mod task;
mod token;
mod validate;
mod validate_cycles;
mod validate_text;
mod validation;
mod variable;
mod volume;

pub use cache::{Cache, MAX_CACHES};
pub use concurrency::{Concurrency, ConcurrencyPolicy, MAX_CONCURRENCY_LIMIT};
pub use error::{BoxError, SchedulerError, StoreError};
pub use id::{validate_id, IdError, ID_MAX_LEN, ID_MIN_LEN};
pub use interpolate::{parse_placeholder, Placeholder, PlaceholderError, PlaceholderKind};
pub use matrix::{Matrix, MatrixCell, Scalar, MAX_COMBINATIONS};
pub use mount::{check_mounts, Mount, MountSource};
pub use pipeline::{Pipeline, MAX_PARALLELISM, WORKSPACE_PATH};
pub use retry::{RetryOn, RetryPolicy, MAX_ATTEMPTS, MAX_FACTOR};
pub use run::{
    ContainerRef, Event, InjectedVariable, Run, RunHeader, RunOptions, RunState, RunStatus,
    StatusReason, TaskAttempt, TaskExecution, TaskState, TaskStatus,
};
pub use runstore::{
    enter_group, member_name, without_credentials, DynRunStore, GroupEntry, GroupMember, GroupTurn,
    InMemoryRunStore, RunChange, RunSpec, RunStore, StoredRegistryAuth, TaskDetails, UnfinishedRun,
};
pub use scheduler::{
    Capabilities, ContainerId, ContainerSpec, ContainerState, ContainerSummary, DynScheduler, Env,
    ExitStatus, LogChunk, LogStream, NetworkMode, OutputCursor, OutputStream, PullProgress,
    PullProgressFn, SandboxNetwork, SandboxSpec, Scheduler, VolumeScope, VolumeSpec, VolumeSummary,
};
pub use service::{Readiness, Service};
pub use store::{
    allow_list_matches, DynObjectStore, DynSecretStore, GlobalSecretInfo, InMemoryObjectStore,
    InMemorySecretStore, ObjectStore, RunObjectQuota, SecretStore,
};
pub use task::{PullPolicy, RegistryAuth, RequiredParentStatus, ResourceLimits, Task};
pub use token::{TokenGrant, TokenIssuer};
pub use validate::{
    ValidationErrors, ValidationIssue, CYCLE_SHOWN, EXCERPT_CHARS, MAX_ARG_BYTES,
    MAX_COMMAND_BYTES, MAX_CPUS, MAX_ENVIRONMENT_BYTES, MIN_CPUS, MIN_MEMORY_BYTES,
};
pub use variable::{
    is_valid_env_key, merge_variables, system_variables, EnvValue, Variable, VariableSource,
    API_MOUNT_DIR, API_SOCKET_NAME, GOFER_API_SOCKET, GOFER_API_TOKEN, GOFER_API_URL,
    GOFER_PIPELINE_ID, GOFER_RUN_ID, GOFER_TASK_ATTEMPT, GOFER_TASK_ID, GOFER_TASK_IMAGE, MASK,
    SYSTEM_KEYS,
};
pub use volume::check_volume_name;

/// Re-exported so hosts and backends use the same `secrecy` version.
pub use secrecy;

/// Re-exported so hosts implement the traits (`#[gofer_core::async_trait::async_trait]`,
/// or `use gofer_core::async_trait::async_trait;`) without adding `async-trait`.
pub use async_trait;
/// Re-exported so hosts use the object store's [`Bytes`](bytes::Bytes) without
/// adding `bytes` themselves.
///
/// ```
/// use gofer_core::bytes::Bytes;
/// use gofer_core::{InMemoryObjectStore, ObjectStore};
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let store = InMemoryObjectStore::new();
/// store.put_pipeline_object("build", "k", Bytes::from_static(b"v"), false).await.unwrap();
/// assert_eq!(store.get_pipeline_object("build", "k").await.unwrap(), Bytes::from_static(b"v"));
/// # }
/// ```
pub use bytes;
/// Re-exported for the streams of `RunHandle::logs` and `RunHandle::events`
/// (`use gofer_core::futures::StreamExt;`) without adding `futures`.
pub use futures;
