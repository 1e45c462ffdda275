//! What a run and its task executions look like: states, statuses, reasons, events.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::interpolate::PlaceholderKind;
use crate::variable::VariableSource;

/// Where a run is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    /// Accepted, waiting for a slot (pipeline parallelism).
    Pending,
    /// Tasks are being executed.
    Running,
    /// Every task is complete; the status is final.
    Complete,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// No task Failed or ended Unknown (some may be Skipped), and the run was neither
    /// cancelled nor timed out.
    Successful,
    /// A task Failed or ended Unknown, or the run timed out.
    Failed,
    /// The run was cancelled.
    Cancelled,
    /// Not known (yet, or the executor stopped before deciding).
    Unknown,
}

/// Where a task execution is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    /// Created with the run.
    Processing,
    /// Waiting for its parents, then for a container slot.
    Waiting,
    /// Its container runs.
    Running,
    /// Done; the status is final.
    Complete,
}

/// How a task execution ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    /// Exited with code 0.
    Successful,
    /// Exited non-zero, could not start, timed out or lacked a precondition.
    Failed,
    /// Stopped or never started because the run was cancelled or timed out.
    Cancelled,
    /// Not run because a dependency condition was not met.
    Skipped,
    /// Not known (yet, or its container vanished).
    Unknown,
}

/// Why a task execution has its status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
#[non_exhaustive]
pub enum StatusReason {
    /// The container exited with a non-zero code.
    AbnormalExit {
        /// The exit code.
        code: i64,
    },
    /// The scheduler failed (pull, start, wait).
    SchedulerError,
    /// A precondition failed: a missing or forbidden key, no API token.
    FailedPrecondition,
    /// The run was cancelled.
    Cancelled,
    /// The container disappeared before reporting an exit.
    Orphaned,
    /// The task or the run took longer than its timeout.
    Timeout,
}

/// One variable as the container saw it, for display: secret values are masked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct InjectedVariable {
    /// The environment variable name.
    pub key: String,
    /// The value, or [`MASK`](crate::MASK) when it came from a secret.
    pub value: String,
    /// Where the variable came from.
    pub source: VariableSource,
    /// The store placeholder it was substituted from, if any.
    pub placeholder: Option<PlaceholderKind>,
    /// Whether [`InjectedVariable::value`] is masked.
    pub masked: bool,
}

/// A task's container, recorded before it is started (for recovery and reaping).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ContainerRef {
    /// The deterministic container name.
    pub name: String,
    /// The engine's id, once started.
    pub id: Option<String>,
}

/// One task's execution in one run (the seed's `task get`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TaskExecution {
    /// The task id.
    pub task_id: String,
    /// The image.
    pub image: String,
    /// Where it is.
    pub state: TaskState,
    /// How it ended (`Unknown` until complete).
    pub status: TaskStatus,
    /// Why, when not Successful.
    pub reason: Option<StatusReason>,
    /// A human-readable explanation (never holds a secret value).
    pub message: Option<String>,
    /// The container's exit code, when it exited.
    pub exit_code: Option<i64>,
    /// When its container started.
    pub started: Option<SystemTime>,
    /// When it completed.
    pub ended: Option<SystemTime>,
    /// The container, once one was about to be created.
    pub container: Option<ContainerRef>,
    /// Every injected variable with its source, secrets masked (empty until resolved).
    pub variables: Vec<InjectedVariable>,
}

impl TaskExecution {
    pub(crate) fn new(task_id: &str, image: &str) -> Self {
        Self {
            task_id: task_id.to_string(),
            image: image.to_string(),
            state: TaskState::Processing,
            status: TaskStatus::Unknown,
            reason: None,
            message: None,
            exit_code: None,
            started: None,
            ended: None,
            container: None,
            variables: Vec::new(),
        }
    }
}

/// One run of a pipeline, with every task execution (in pipeline order).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Run {
    /// The pipeline id.
    pub pipeline_id: String,
    /// The run number (1, 2, 3, ... per pipeline).
    pub run_id: u64,
    /// Where it is.
    pub state: RunState,
    /// How it ended (`Unknown` until complete).
    pub status: RunStatus,
    /// Why it has its status, when it was cancelled or timed out.
    pub reason: Option<StatusReason>,
    /// A human-readable explanation.
    pub message: Option<String>,
    /// When it left Pending.
    pub started: Option<SystemTime>,
    /// When it completed.
    pub ended: Option<SystemTime>,
    /// The task executions, in the pipeline's task order.
    pub tasks: Vec<TaskExecution>,
}

impl Run {
    /// A task execution by task id.
    pub fn task(&self, task_id: &str) -> Option<&TaskExecution> {
        self.tasks.iter().find(|t| t.task_id == task_id)
    }
}

/// A state change of a run or of one of its tasks.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// The run changed state.
    Run {
        /// The new state.
        state: RunState,
        /// The status (final when `state` is Complete).
        status: RunStatus,
        /// When.
        at: SystemTime,
    },
    /// A task changed state.
    Task {
        /// The task.
        task_id: Arc<str>,
        /// The new state.
        state: TaskState,
        /// The status (final when `state` is Complete).
        status: TaskStatus,
        /// The reason, when complete and not Successful.
        reason: Option<StatusReason>,
        /// When.
        at: SystemTime,
    },
}

impl fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}
