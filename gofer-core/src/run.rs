//! The run model: what a run and its task executions look like (states, statuses,
//! reasons), the options a run starts with, and the events it emits.
//!
//! This sits beside the task model ([`crate::Task`]): the executor produces these
//! values, the run store keeps them, and neither depends on the other.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

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
    /// The container ended well but its log could not be kept whole (see
    /// [`TaskExecution::log_incomplete`]); the engine was set to fail such tasks.
    IncompleteLog,
    /// A service the task needs (see [`crate::Service`]) could not start, was not
    /// ready by its deadline, or exited.
    ServiceUnavailable,
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

impl InjectedVariable {
    /// How `value`, injected under `key` from `source` (substituted from
    /// `placeholder`, if any), is shown: a secret's value as [`MASK`](crate::MASK).
    pub fn shown(
        key: impl Into<String>,
        value: &crate::EnvValue,
        source: VariableSource,
        placeholder: Option<PlaceholderKind>,
    ) -> Self {
        let masked = value.is_secret();
        Self {
            key: key.into(),
            value: if masked {
                crate::MASK.to_string()
            } else {
                value.expose().to_string()
            },
            source,
            placeholder,
            masked,
        }
    }
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

impl ContainerRef {
    /// A container known by its name only (not started yet).
    pub fn named(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            id: None,
        }
    }
}

/// One finished attempt of a task that was attempted again (see
/// [`RetryPolicy`](crate::RetryPolicy)): what it ended with, kept in
/// [`TaskExecution::attempts`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TaskAttempt {
    /// The attempt number (1 for the first).
    pub attempt: u32,
    /// How it ended.
    pub status: TaskStatus,
    /// Why.
    pub reason: Option<StatusReason>,
    /// A human-readable explanation (never holds a secret value).
    pub message: Option<String>,
    /// Its container's exit code, when it exited.
    pub exit_code: Option<i64>,
    /// When its container started.
    pub started: Option<SystemTime>,
    /// When it ended.
    pub ended: Option<SystemTime>,
    /// Its container (named with the attempt number).
    pub container: Option<ContainerRef>,
    /// Why its log is not whole, when it is not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_incomplete: Option<String>,
    /// How long the engine waited after it before the next attempt.
    #[serde(default, with = "humantime_serde")]
    pub backoff: Duration,
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
    /// Why the task's log is not whole, when it is not: the engine could not read part
    /// of the container's output, or the log sink could not keep it. `None` for a
    /// complete log (and for a task that never had a container).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_incomplete: Option<String>,
    /// The attempt these fields describe (1 for the first; see
    /// [`RetryPolicy`](crate::RetryPolicy)). The task's status is its last attempt's.
    #[serde(default = "first_attempt")]
    pub attempt: u32,
    /// The earlier attempts, each finished and failed, oldest first (empty for a task
    /// attempted once).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attempts: Vec<TaskAttempt>,
}

pub(crate) fn first_attempt() -> u32 {
    1
}

impl TaskExecution {
    /// The execution of a task not yet started: `Processing`, status `Unknown`,
    /// attempt 1.
    pub fn new(task_id: &str, image: &str) -> Self {
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
            log_incomplete: None,
            attempt: 1,
            attempts: Vec::new(),
        }
    }

    /// Ends the current attempt as failed (`status`, `reason`, ...) and makes the
    /// next one current, waiting; the variables are kept.
    pub fn next_attempt(&mut self, ended: SystemTime, backoff: Duration) {
        let done = TaskAttempt {
            attempt: self.attempt,
            status: self.status,
            reason: self.reason,
            message: self.message.take(),
            exit_code: self.exit_code.take(),
            started: self.started.take(),
            ended: Some(ended),
            container: self.container.take(),
            log_incomplete: self.log_incomplete.take(),
            backoff,
        };
        self.attempts.push(done);
        self.attempt = self.attempt.saturating_add(1);
        self.state = TaskState::Waiting;
        self.status = TaskStatus::Unknown;
        self.reason = None;
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
    #[serde(default)]
    pub tasks: Vec<TaskExecution>,
}

impl Run {
    /// A run that has not started: `Pending`, status `Unknown`, with `tasks` (in the
    /// pipeline's task order).
    pub fn pending(pipeline_id: impl Into<String>, run_id: u64, tasks: Vec<TaskExecution>) -> Self {
        Self {
            pipeline_id: pipeline_id.into(),
            run_id,
            state: RunState::Pending,
            status: RunStatus::Unknown,
            reason: None,
            message: None,
            started: None,
            ended: None,
            tasks,
        }
    }
}

/// The run-level fields of a [`Run`], without its task executions: what a
/// [`RunChange::Run`](crate::RunChange::Run) carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RunHeader {
    /// The pipeline id.
    pub pipeline_id: String,
    /// The run number.
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
}

impl From<&Run> for RunHeader {
    fn from(r: &Run) -> Self {
        Self {
            pipeline_id: r.pipeline_id.clone(),
            run_id: r.run_id,
            state: r.state,
            status: r.status,
            reason: r.reason,
            message: r.message.clone(),
            started: r.started,
            ended: r.ended,
        }
    }
}

impl Run {
    /// A run from its header and its task executions.
    pub fn from_parts(header: RunHeader, tasks: Vec<TaskExecution>) -> Self {
        Self {
            pipeline_id: header.pipeline_id,
            run_id: header.run_id,
            state: header.state,
            status: header.status,
            reason: header.reason,
            message: header.message,
            started: header.started,
            ended: header.ended,
            tasks,
        }
    }

    /// Replaces the run-level fields with `header`'s (the tasks are kept).
    pub fn apply_header(&mut self, header: &RunHeader) {
        self.state = header.state;
        self.status = header.status;
        self.reason = header.reason;
        self.message.clone_from(&header.message);
        self.started = header.started;
        self.ended = header.ended;
    }

    /// A task execution by task id.
    pub fn task(&self, task_id: &str) -> Option<&TaskExecution> {
        self.tasks.iter().find(|t| t.task_id == task_id)
    }
}

/// A state change of a run or of one of its tasks; also what a run store keeps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
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
        /// Which attempt of the task (1 for the first).
        #[serde(default = "first_attempt")]
        attempt: u32,
        /// When.
        at: SystemTime,
    },
    /// An attempt of a task failed and the task is attempted again after `backoff`
    /// (emitted before the task's `Waiting` for the next attempt).
    Retrying {
        /// The task.
        task_id: Arc<str>,
        /// The attempt that failed.
        attempt: u32,
        /// How it ended.
        status: TaskStatus,
        /// Why.
        reason: Option<StatusReason>,
        /// The wait before the next attempt.
        #[serde(with = "humantime_serde")]
        backoff: Duration,
        /// When.
        at: SystemTime,
    },
    /// A task's log could not be kept whole (emitted before the task's `Complete`).
    LogIncomplete {
        /// The task.
        task_id: Arc<str>,
        /// Why (what could not be read or written).
        reason: String,
        /// When.
        at: SystemTime,
    },
    /// A service's log (see [`crate::Service`]) could not be kept whole (emitted when
    /// the service's output ends, before the run's `Complete`).
    ServiceLogIncomplete {
        /// The service.
        service_id: Arc<str>,
        /// Why (what could not be read or written).
        reason: String,
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

/// Options of one run: variables of source
/// [`RunOptions`](crate::VariableSource::RunOptions) and a timeout.
///
/// Values may be store placeholders (`secret{{key}}`, `run_object{{key}}`, ...); they
/// are substituted like the task's own variables.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunOptions {
    pub(crate) variables: Vec<(String, String)>,
    pub(crate) timeout: Option<Duration>,
}

impl RunOptions {
    /// No variables, the engine's default timeout.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a variable (a later one with the same key wins).
    #[must_use]
    pub fn variable(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.variables.push((key.into(), value.into()));
        self
    }

    /// Adds many variables.
    #[must_use]
    pub fn variables<I, K, V>(mut self, vars: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        self.variables
            .extend(vars.into_iter().map(|(k, v)| (k.into(), v.into())));
        self
    }

    /// Fails the run (status Failed, reason Timeout) when it runs longer than this,
    /// counted from when it leaves Pending. A timeout too large to represent as an
    /// instant (such as [`Duration::MAX`]) means no timeout.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The run-option variables, in the order given.
    pub fn variable_list(&self) -> &[(String, String)] {
        &self.variables
    }

    /// The run's own timeout, when one was given.
    pub fn timeout_value(&self) -> Option<Duration> {
        self.timeout
    }
}
