//! [`CliError`]: why a command could not do its job.

use std::path::PathBuf;

use gofer_core::{SchedulerError, StoreError};

use gofer_engine::{EngineError, RecoveryError, RegisterError, RunError};
use gofer_secrets::KeyError;

use crate::pipeline_file::FileError;

impl From<StoreError> for CliError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

/// A store's error without the storage layer's name; run numbers as numbers.
fn store_words(e: &StoreError) -> String {
    match e {
        StoreError::NotFound {
            kind, scope, key, ..
        } => {
            let key = if *kind == "run" {
                key.clone()
            } else {
                format!("{key:?}")
            };
            let kind = if *kind == "task execution" {
                "task"
            } else {
                kind
            };
            match scope {
                Some(scope) => format!("{kind} {key} not found in {scope}"),
                None => format!("{kind} {key} not found"),
            }
        }
        other => {
            let text = other.to_string();
            text.strip_prefix("sqlite: ")
                .map_or(text.clone(), str::to_string)
        }
    }
}

/// Why a command failed. Exit code 2 (a run that ran and failed exits 1 instead).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CliError {
    /// The pipeline file.
    #[error(transparent)]
    File(#[from] FileError),
    /// No data directory: neither `--home`/`GOFER_HOME` nor a platform data directory.
    #[error("no data directory: set GOFER_HOME (or --home)")]
    NoHome,
    /// A file or directory of the data directory.
    #[error("{}: {operation}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// What was attempted.
        operation: &'static str,
        /// The cause.
        source: std::io::Error,
    },
    /// The secret store's encryption key.
    #[error("secret store key: {0}")]
    Key(#[from] KeyError),
    /// A store (run, secret or object store), in the user's words: what is missing, not
    /// which storage layer said so.
    // Not a `source`: the chain would repeat the store's own wording after the words.
    #[error("{}", store_words(.0))]
    Store(StoreError),
    /// No container engine could be reached.
    #[error("no container engine is reachable: {tried}")]
    NoEngine {
        /// What was tried and why it failed.
        tried: String,
    },
    /// The container engine failed.
    #[error("container engine: {0}")]
    Scheduler(#[from] SchedulerError),
    /// The engine could not be built.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The API that tasks with `inject_api_token` call could not be served.
    #[error("cannot serve the API for tasks with inject_api_token: {0}")]
    Api(#[from] gofer_api::ServeError),
    /// Registering the pipeline failed.
    #[error(transparent)]
    Register(#[from] RegisterError),
    /// Recovery failed.
    #[error(transparent)]
    Recovery(#[from] RecoveryError),
    /// Starting or following the run failed.
    #[error(transparent)]
    Run(#[from] RunError),
    /// Every engine instance slot is held by a running `gofer` process.
    #[error("all {slots} engine instance slots under {} are held by running gofer processes", dir.display())]
    NoSlot {
        /// The slot directory.
        dir: PathBuf,
        /// How many slots there are.
        slots: usize,
    },
    /// A registry password's secret could not be read.
    #[error("field `registry_auth.password` of task {task:?}: {source}")]
    RegistrySecret {
        /// The task.
        task: String,
        /// The cause.
        source: StoreError,
    },
    /// A log that does not exist: an attempt never made, a task that never ran.
    #[error("{0}")]
    NoLog(String),
    /// A command was used in a way it refuses (the message says how to use it).
    #[error("{0}")]
    Usage(String),
    /// A task's log could not be read.
    #[error(transparent)]
    Log(#[from] gofer_engine::LogError),
    /// Writing the output failed.
    #[error("cannot write the output: {0}")]
    Output(#[source] std::io::Error),
}

impl CliError {
    /// An I/O error on `path`.
    pub fn io(
        path: impl Into<PathBuf>,
        operation: &'static str,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io {
            path,
            operation,
            source,
        }
    }
}
