//! Error types shared by the backends and stores.

/// A boxed error from a backend's own library.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// An error from a [`Scheduler`](crate::Scheduler). Messages name the image or container.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SchedulerError {
    /// The image is not present (pull policy `Never`) or does not exist in its registry.
    #[error("{scheduler}: no such image {image:?}: {message}")]
    NoSuchImage {
        /// The backend.
        scheduler: &'static str,
        /// The image reference.
        image: String,
        /// What the engine said.
        message: String,
    },
    /// The container does not exist.
    #[error("{scheduler}: no such container {id:?}")]
    NoSuchContainer {
        /// The backend.
        scheduler: &'static str,
        /// The id or name asked for.
        id: String,
    },
    /// The registry refused the credentials, or needs some and got none.
    #[error("{scheduler}: registry refused access to image {image:?}: {message}")]
    Unauthorized {
        /// The backend.
        scheduler: &'static str,
        /// The image reference.
        image: String,
        /// What the engine said (never holds credentials).
        message: String,
    },
    /// The engine could not be reached.
    #[error("{scheduler}: cannot connect to the engine at {endpoint}: {source}")]
    Connection {
        /// The backend.
        scheduler: &'static str,
        /// The socket or URL tried.
        endpoint: String,
        /// The cause.
        #[source]
        source: BoxError,
    },
    /// The request conflicts with the container's state or name (name in use, remove
    /// of a running container without force, start of a started container).
    #[error("{scheduler}: conflict on {id:?}: {message}")]
    Conflict {
        /// The backend.
        scheduler: &'static str,
        /// The container id or name.
        id: String,
        /// What conflicted.
        message: String,
    },
    /// The backend does not have this capability.
    #[error("{scheduler}: operation {operation} is not supported")]
    NotSupported {
        /// The backend.
        scheduler: &'static str,
        /// The operation.
        operation: &'static str,
    },
    /// The request itself is invalid (a field the backend cannot honour).
    #[error("{scheduler}: invalid request, field `{field}`: {message}")]
    InvalidRequest {
        /// The backend.
        scheduler: &'static str,
        /// The field.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The engine failed an operation.
    #[error("{scheduler}: {operation} failed: {source}")]
    Engine {
        /// The backend.
        scheduler: &'static str,
        /// The operation (`"create"`, `"wait"`, ...).
        operation: &'static str,
        /// The cause.
        #[source]
        source: BoxError,
    },
}

impl SchedulerError {
    /// An [`SchedulerError::Engine`] from any error.
    pub fn engine(
        scheduler: &'static str,
        operation: &'static str,
        source: impl Into<BoxError>,
    ) -> Self {
        Self::Engine {
            scheduler,
            operation,
            source: source.into(),
        }
    }

    /// Whether retrying the same call may succeed (connection trouble or an engine
    /// hiccup), as opposed to a request that will fail again.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Connection { .. } | Self::Engine { .. })
    }
}

/// An error from a [`SecretStore`](crate::SecretStore) or
/// [`ObjectStore`](crate::ObjectStore). Never holds a secret value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// No value under this key.
    #[error("{store}: {kind} {key:?} not found{}", scope_suffix(.scope))]
    NotFound {
        /// The store.
        store: &'static str,
        /// What was looked up (`"pipeline secret"`, `"run object"`, ...).
        kind: &'static str,
        /// Pipeline or run the key belongs to, when scoped.
        scope: Option<String>,
        /// The key.
        key: String,
    },
    /// A value exists and the write did not ask to overwrite.
    #[error("{store}: {kind} {key:?} already exists{}; pass force to overwrite", scope_suffix(.scope))]
    AlreadyExists {
        /// The store.
        store: &'static str,
        /// What was written.
        kind: &'static str,
        /// Pipeline or run the key belongs to, when scoped.
        scope: Option<String>,
        /// The key.
        key: String,
    },
    /// A global secret exists but the pipeline is not on its allow-list.
    #[error("{store}: pipeline {pipeline:?} is not allowed to read global secret {key:?}")]
    Forbidden {
        /// The store.
        store: &'static str,
        /// The pipeline that asked.
        pipeline: String,
        /// The key.
        key: String,
    },
    /// The key is not acceptable.
    #[error("{store}: invalid key {key:?}: {message}")]
    InvalidKey {
        /// The store.
        store: &'static str,
        /// The key.
        key: String,
        /// Why.
        message: String,
    },
    /// A run that is not complete was asked to be deleted: only complete runs are.
    #[error("{store}: run {run} of pipeline {pipeline:?} is not complete; only complete runs are deleted")]
    RunNotComplete {
        /// The store.
        store: &'static str,
        /// The pipeline.
        pipeline: String,
        /// The run.
        run: u64,
    },
    /// The store does not support this operation (a read-only store asked to write).
    #[error("{store}: operation {operation} is not supported")]
    NotSupported {
        /// The store.
        store: &'static str,
        /// The operation.
        operation: &'static str,
    },
    /// Decryption failed: a wrong key or a tampered value.
    #[error("{store}: cannot decrypt {kind} {key:?}: wrong key or tampered value")]
    Integrity {
        /// The store.
        store: &'static str,
        /// What was read.
        kind: &'static str,
        /// The key.
        key: String,
    },
    /// A limit of the store was hit.
    #[error("{store}: {message}")]
    Limit {
        /// The store.
        store: &'static str,
        /// Which limit.
        message: String,
    },
    /// The store's backing system failed.
    #[error("{store}: {operation} failed: {source}")]
    Backend {
        /// The store.
        store: &'static str,
        /// The operation.
        operation: &'static str,
        /// The cause (never holds a secret value).
        #[source]
        source: BoxError,
    },
    /// The store's file cannot be used and retrying will not help: it is damaged
    /// (for example truncated), belongs to something else, or was written by newer
    /// code. The source says which (for SQLite stores a `gofer_sqlite::OpenError`).
    #[error("{store}: unusable database: {source}")]
    Unusable {
        /// The store.
        store: &'static str,
        /// The cause.
        #[source]
        source: BoxError,
    },
}

/// The errors the run stores share, with the store name filled in.
impl StoreError {
    /// `NotFound` for a run.
    pub fn run_not_found(store: &'static str, pipeline: &str, run: u64) -> Self {
        Self::NotFound {
            store,
            kind: "run",
            scope: Some(format!("pipeline {pipeline:?}")),
            key: run.to_string(),
        }
    }

    /// `NotFound` for a task execution.
    pub fn task_not_found(store: &'static str, pipeline: &str, run: u64, task: &str) -> Self {
        Self::NotFound {
            store,
            kind: "task execution",
            scope: Some(format!("run {run} of pipeline {pipeline:?}")),
            key: task.to_string(),
        }
    }

    /// `NotFound` for a pipeline.
    pub fn pipeline_not_found(store: &'static str, id: &str) -> Self {
        Self::NotFound {
            store,
            kind: "pipeline",
            scope: None,
            key: id.to_string(),
        }
    }

    /// `AlreadyExists` for a run number that is taken.
    pub fn run_exists(store: &'static str, pipeline: &str, run: u64) -> Self {
        Self::AlreadyExists {
            store,
            kind: "run",
            scope: Some(format!("pipeline {pipeline:?}")),
            key: run.to_string(),
        }
    }
}

fn scope_suffix(scope: &Option<String>) -> String {
    scope
        .as_ref()
        .map(|s| format!(" in {s}"))
        .unwrap_or_default()
}

impl StoreError {
    /// Whether this is [`StoreError::NotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound { .. })
    }

    /// Whether retrying may help (a backend failure such as a busy database).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Backend { .. })
    }
}
