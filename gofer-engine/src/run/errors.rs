//! Why an engine could not be built, or a run not started or followed.

use gofer_core::{IdError, ValidationErrors};

/// Why a run could not be started, or could not be followed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The pipeline is invalid; nothing was started.
    #[error(transparent)]
    Invalid(#[from] ValidationErrors),
    /// A run-option variable is invalid; nothing was started.
    #[error("run option variable {key:?}: {message}")]
    InvalidVariable {
        /// The key.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// A zero run timeout; nothing was started.
    #[error("run option `timeout` must be greater than zero")]
    ZeroTimeout,
    /// `start_run` was called outside a Tokio runtime.
    #[error("start_run must be called from within a Tokio runtime")]
    NoRuntime,
    /// No task with this id in the run.
    #[error("run {run} of pipeline {pipeline:?} has no task {task:?}")]
    UnknownTask {
        /// The pipeline.
        pipeline: String,
        /// The run.
        run: u64,
        /// The task asked for.
        task: String,
    },
    /// No service with this id in the run's pipeline.
    #[error("run {run} of pipeline {pipeline:?} has no service {service:?}")]
    UnknownService {
        /// The pipeline.
        pipeline: String,
        /// The run.
        run: u64,
        /// The service asked for.
        service: String,
    },
    /// The engine has a run store and [`Engine::recover`](crate::Engine::recover) has not run yet (run
    /// numbers continue from the store's, and unfinished runs come first). Build with
    /// [`EngineBuilder::build_and_recover`](crate::EngineBuilder::build_and_recover) to do both at once.
    #[error("the engine has a run store: call Engine::recover (or build with EngineBuilder::build_and_recover) before starting runs")]
    NotRecovered,
    /// The executor stopped before the run completed (a panic, or the runtime shut
    /// down); its containers carry labels so they can be found and removed.
    #[error("run {run} of pipeline {pipeline:?} was aborted before it completed")]
    Aborted {
        /// The pipeline.
        pipeline: String,
        /// The run.
        run: u64,
    },
}

/// Why an engine could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The engine instance id is not a valid id.
    #[error("engine instance id {id:?}: {source}")]
    InvalidInstanceId {
        /// The id given.
        id: String,
        /// The rule that failed.
        source: IdError,
    },
    /// The network sandbox image is empty.
    #[error("network sandbox image must not be empty")]
    EmptySandboxImage,
    /// A network sandbox was asked for but the scheduler has no such capability.
    #[error("scheduler {scheduler} does not support network sandboxes")]
    SandboxNotSupported {
        /// The scheduler's name.
        scheduler: &'static str,
    },
    /// An API socket directory was given but the scheduler cannot bind-mount a path of
    /// this host into its containers (they may run on other nodes).
    #[error("scheduler {scheduler} cannot mount a path of this host into its containers, so tasks cannot reach the API socket; serve the API on a network address the tasks can reach instead")]
    ApiSocketNotSupported {
        /// The scheduler's name.
        scheduler: &'static str,
    },
}
