#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod error;
pub mod executor;
pub mod fake;
mod id;
mod interpolate;
pub mod naming;
mod pipeline;
pub mod runstore;
pub mod scheduler;
mod store;
mod task;
#[cfg(feature = "conformance")]
pub mod testing;
mod validate;
mod variable;

pub use error::{BoxError, SchedulerError, StoreError};
pub use executor::{
    mask_str, ContainerRef, Engine, EngineBuilder, EngineError, Event, FileLogSink,
    InMemoryLogSink, InjectedVariable, Limits, LogError, LogKey, LogLine, LogSink, LogWriter,
    MaskPatterns, Masker, RecoveredTask, RecoveryAction, RecoveryError, RecoveryReport,
    RegisterError, Run, RunError, RunHandle, RunOptions, RunState, RunStatus, StatusReason,
    TaskExecution, TaskState, TaskStatus, TokenIssuer, DEFAULT_INSTANCE_ID, MAX_LINE_BYTES,
    MIN_MASK_LEN,
};
pub use id::{validate_id, IdError, ID_MAX_LEN, ID_MIN_LEN};
pub use interpolate::{parse_placeholder, Placeholder, PlaceholderError, PlaceholderKind};
pub use pipeline::{Pipeline, MAX_PARALLELISM};
pub use runstore::{
    DynRunStore, EventRecord, InMemoryRunStore, RunChange, RunSpec, RunStore, TaskDetails,
    UnfinishedRun,
};
pub use scheduler::{
    Capabilities, ContainerId, ContainerSpec, ContainerState, ContainerSummary, DynScheduler, Env,
    ExitStatus, LogChunk, LogStream, NetworkMode, OutputStream, PullProgress, PullProgressFn,
    SandboxNetwork, SandboxSpec, Scheduler,
};
pub use store::{
    allow_list_matches, DynObjectStore, DynSecretStore, GlobalSecretInfo, InMemoryObjectStore,
    InMemorySecretStore, ObjectStore, SecretStore,
};
pub use task::{PullPolicy, RegistryAuth, RequiredParentStatus, ResourceLimits, Task};
pub use validate::{ValidationErrors, ValidationIssue, MIN_MEMORY_BYTES};
pub use variable::{
    is_valid_env_key, merge_variables, system_variables, EnvValue, Variable, VariableSource,
    GOFER_API_TOKEN, GOFER_PIPELINE_ID, GOFER_RUN_ID, GOFER_TASK_ID, GOFER_TASK_IMAGE, MASK,
};

/// Re-exported so hosts and backends use the same `secrecy` version.
pub use secrecy;
