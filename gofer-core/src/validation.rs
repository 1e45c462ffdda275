//! The vocabulary of validation: [`ValidationIssue`] (one problem, naming its field)
//! and [`ValidationErrors`] (every problem of a pipeline).

use std::fmt;

use crate::id::IdError;
use crate::interpolate::PlaceholderError;
use crate::pipeline::MAX_PARALLELISM;

/// Most tasks of a cycle a message lists.
pub const CYCLE_SHOWN: usize = 16;

/// One problem found in a pipeline. Every issue names its field
/// ([`ValidationIssue::field`]); ids, keys and values in it are excerpts (the text
/// itself up to [`EXCERPT_CHARS`](crate::validate::EXCERPT_CHARS) characters, else its start and its length).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ValidationIssue {
    /// The pipeline id is not a valid id.
    #[error("field `id` of the pipeline: {source}")]
    InvalidPipelineId {
        /// The rule that failed.
        source: IdError,
    },
    /// A task id is not a valid id.
    #[error("field `id` of task {task:?}: {source}")]
    InvalidTaskId {
        /// The offending id (an excerpt).
        task: String,
        /// The rule that failed.
        source: IdError,
    },
    /// Two tasks share an id.
    #[error("field `id` of task {task:?}: the id is used by more than one task ({})", show_positions(.positions))]
    DuplicateTask {
        /// The shared id (an excerpt).
        task: String,
        /// Where the tasks of that id are in the pipeline's `tasks` (0-based; at most
        /// [`CYCLE_SHOWN`] of them).
        positions: Vec<usize>,
    },
    /// A task depends on a task that is not in the pipeline.
    #[error("field `depends_on` of task {task:?}: unknown parent {parent:?}")]
    UnknownParent {
        /// The child (an excerpt).
        task: String,
        /// The missing parent (an excerpt).
        parent: String,
    },
    /// The dependencies form a cycle; the list starts and ends with the same task.
    #[error("field `depends_on`: tasks form a cycle: {}", show_cycle(.cycle))]
    Cycle {
        /// The tasks of the cycle in order, first repeated at the end (excerpts).
        cycle: Vec<String>,
    },
    /// A task has an empty image.
    #[error("field `image` of task {task:?}: must not be empty")]
    EmptyImage {
        /// The task (an excerpt).
        task: String,
    },
    /// A variable key is not an environment-variable name.
    #[error("field `variables` of task {task:?}: key {key:?} is not an environment variable name ([A-Za-z_][A-Za-z0-9_]*)")]
    InvalidVariableKey {
        /// The task (an excerpt).
        task: String,
        /// The key (an excerpt).
        key: String,
    },
    /// A variable value holds a malformed placeholder.
    #[error("field `variables` of task {task:?}: value of {key:?}: {source}")]
    InvalidPlaceholder {
        /// The task (an excerpt).
        task: String,
        /// The key (an excerpt).
        key: String,
        /// What is wrong.
        source: PlaceholderError,
    },
    /// A timeout of zero.
    #[error("field `timeout` of task {task:?}: must be greater than zero")]
    ZeroTimeout {
        /// The task (an excerpt).
        task: String,
    },
    /// A resource limit that cannot be honoured.
    #[error("field `resources.{field}` of task {task:?}: {message}")]
    InvalidResource {
        /// The task (an excerpt).
        task: String,
        /// `memory_bytes` or `cpus`.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
    /// A task needs a service the pipeline does not declare.
    #[error("field `services` of task {task:?}: unknown service {service:?}")]
    UnknownService {
        /// The task (an excerpt).
        task: String,
        /// The missing service (an excerpt).
        service: String,
    },
    /// A service of the pipeline is not valid.
    #[error("field `services[{service}].{field}` of the pipeline: {message}")]
    InvalidService {
        /// The service's id (an excerpt).
        service: String,
        /// `id`, `image`, `variables`, `readiness.command`, `readiness.interval`, ...
        field: String,
        /// What is wrong.
        message: String,
    },
    /// The pipeline's concurrency group cannot be honoured.
    #[error("field `concurrency`: {message}")]
    InvalidPipelineConcurrency {
        /// What is wrong.
        message: String,
    },
    /// A concurrency group that cannot be honoured.
    #[error("field `concurrency` of task {task:?}: {message}")]
    InvalidConcurrency {
        /// The task (an excerpt).
        task: String,
        /// What is wrong.
        message: String,
    },
    /// A cache that cannot be honoured, or a cache on a backend without caches.
    #[error("field `{field}` of task {task:?}: {message}")]
    InvalidCache {
        /// The task (an excerpt).
        task: String,
        /// `caches`, `caches[1]`, ...
        field: String,
        /// What is wrong.
        message: String,
    },
    /// A matrix that cannot be expanded, or whose combinations clash.
    #[error("field `matrix` of task {task:?}: {message}")]
    InvalidMatrix {
        /// The task (an excerpt).
        task: String,
        /// What is wrong.
        message: String,
    },
    /// A retry policy that cannot be honoured.
    #[error("field `{field}` of task {task:?}: {message}")]
    InvalidRetry {
        /// The task (an excerpt).
        task: String,
        /// `retry.attempts`, `retry.factor`, `retry.max_backoff` or `retry.retry_on`.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
    /// A resource limit outside the range the engines honour.
    #[error("field `resources.{field}` of task {task:?}: {}", out_of_range(*.value, *.min, *.max))]
    ResourceOutOfRange {
        /// The task (an excerpt).
        task: String,
        /// `cpus`.
        field: &'static str,
        /// The value given.
        value: f64,
        /// The smallest accepted value.
        min: f64,
        /// The largest accepted value.
        max: f64,
    },
    /// Parallelism above [`MAX_PARALLELISM`].
    #[error("field `parallelism` of the pipeline: {value} exceeds the maximum {MAX_PARALLELISM} (0 means unlimited)")]
    Parallelism {
        /// The value given.
        value: u32,
    },
    /// A pipeline without tasks.
    #[error("field `tasks` of the pipeline: a pipeline needs at least one task")]
    NoTasks,
    /// A command or entrypoint given as an empty list.
    #[error("field `{field}` of task {task:?}: must not be an empty list (leave it unset to keep the image's)")]
    EmptyList {
        /// The task (an excerpt).
        task: String,
        /// `command` or `entrypoint`.
        field: &'static str,
    },
    /// A text holding a NUL byte, which no container engine can pass to a process
    /// (the kernel ends arguments and environment entries at NUL).
    #[error("field `{field}` of {}: contains a NUL byte at byte {at}", of(.task))]
    NulByte {
        /// The task (an excerpt), `None` for a field of the pipeline.
        task: Option<String>,
        /// The field: `image`, `description`, `command[2]`, `variables[KEY]`, ...
        field: String,
        /// Byte offset of the first NUL.
        at: usize,
    },
    /// A text longer than a process can be given.
    #[error("field `{field}` of {}: {len} bytes exceeds the limit of {max} bytes", of(.task))]
    TooLong {
        /// The task (an excerpt), `None` for a field of the pipeline.
        task: Option<String>,
        /// The field: `command[0]`, `variables[KEY]`, `command` (all of it), ...
        field: String,
        /// Its size in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
}

fn of(task: &Option<String>) -> String {
    match task {
        Some(t) => format!("task {t:?}"),
        None => "the pipeline".to_string(),
    }
}

fn show_cycle(cycle: &[String]) -> String {
    if cycle.len() <= CYCLE_SHOWN {
        cycle.join(" -> ")
    } else {
        format!(
            "{} -> … ({} tasks)",
            cycle[..CYCLE_SHOWN].join(" -> "),
            cycle.len() - 1
        )
    }
}

fn out_of_range(value: f64, min: f64, max: f64) -> String {
    if value < min {
        format!("{value} is below the smallest limit the engines enforce, {min} (a smaller one would round to no limit at all)")
    } else {
        format!("{value} exceeds the maximum of {max}")
    }
}

impl ValidationIssue {
    /// The field the issue is about, as in its message: `id`, `depends_on`,
    /// `resources.cpus`, `command[2]`, `variables[KEY]`, ...
    pub fn field(&self) -> String {
        match self {
            Self::InvalidPipelineId { .. }
            | Self::InvalidTaskId { .. }
            | Self::DuplicateTask { .. } => "id".into(),
            Self::UnknownParent { .. } | Self::Cycle { .. } => "depends_on".into(),
            Self::EmptyImage { .. } => "image".into(),
            Self::InvalidVariableKey { .. } | Self::InvalidPlaceholder { .. } => "variables".into(),
            Self::ZeroTimeout { .. } => "timeout".into(),
            Self::InvalidResource { field, .. } | Self::ResourceOutOfRange { field, .. } => {
                format!("resources.{field}")
            }
            Self::InvalidRetry { field, .. } => (*field).into(),
            Self::InvalidMatrix { .. } => "matrix".into(),
            Self::InvalidCache { field, .. } => field.clone(),
            Self::InvalidConcurrency { .. } | Self::InvalidPipelineConcurrency { .. } => {
                "concurrency".into()
            }
            Self::UnknownService { .. } => "services".into(),
            Self::InvalidService { service, field, .. } => format!("services[{service}].{field}"),
            Self::Parallelism { .. } => "parallelism".into(),
            Self::NoTasks => "tasks".into(),
            Self::EmptyList { field, .. } => (*field).into(),
            Self::NulByte { field, .. } | Self::TooLong { field, .. } => field.clone(),
        }
    }

    /// The task the issue is about (an excerpt of its id), `None` for the pipeline's
    /// own fields and for cycles.
    pub fn task(&self) -> Option<&str> {
        match self {
            Self::InvalidTaskId { task, .. }
            | Self::DuplicateTask { task, .. }
            | Self::UnknownParent { task, .. }
            | Self::EmptyImage { task }
            | Self::InvalidVariableKey { task, .. }
            | Self::InvalidPlaceholder { task, .. }
            | Self::ZeroTimeout { task }
            | Self::InvalidResource { task, .. }
            | Self::ResourceOutOfRange { task, .. }
            | Self::InvalidRetry { task, .. }
            | Self::InvalidMatrix { task, .. }
            | Self::InvalidCache { task, .. }
            | Self::InvalidConcurrency { task, .. }
            | Self::UnknownService { task, .. }
            | Self::EmptyList { task, .. } => Some(task),
            Self::NulByte { task, .. } | Self::TooLong { task, .. } => task.as_deref(),
            Self::InvalidPipelineId { .. }
            | Self::InvalidPipelineConcurrency { .. }
            | Self::Cycle { .. }
            | Self::Parallelism { .. }
            | Self::InvalidService { .. }
            | Self::NoTasks => None,
        }
    }
}

fn show_positions(positions: &[usize]) -> String {
    let shown: Vec<String> = positions.iter().map(|i| format!("tasks[{i}]")).collect();
    shown.join(", ")
}

/// Every problem found in one pipeline.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub struct ValidationErrors {
    /// The pipeline's id as given (an excerpt).
    pub pipeline: String,
    /// The problems, in a stable order.
    pub issues: Vec<ValidationIssue>,
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "pipeline {:?} is invalid ({} problem{})",
            self.pipeline,
            self.issues.len(),
            if self.issues.len() == 1 { "" } else { "s" }
        )?;
        for issue in &self.issues {
            write!(f, "; {issue}")?;
        }
        Ok(())
    }
}
