//! How things end: a task's [`Outcome`] from its container's exit, from a stop of the
//! run, or from a failed step; and the run's status, decided from its tasks.
//!
//! This is the one place that maps a stop (cancel or run timeout) to an outcome.

use std::time::Duration;

use gofer_core::{ExitStatus, RunStatus, SchedulerError, StatusReason, TaskStatus};

/// Why a run is being stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StopCause {
    /// `RunHandle::cancel`.
    Cancelled,
    /// The run timeout elapsed.
    Timeout,
    /// `RunHandle::cancel_task`: this one task, not the run.
    TaskCancelled,
    /// Another combination of the task's matrix failed, and the matrix fails fast.
    FailFast,
    /// A newer member of the task's concurrency group took its place
    /// (`cancel_in_progress`).
    Superseded,
    /// A newer run of the pipeline's concurrency group took the run's place.
    RunSuperseded,
}

/// A request to stop a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stop {
    pub(crate) cause: StopCause,
    pub(crate) grace: Duration,
}

/// A task's terminal result.
#[derive(Debug, Clone)]
pub(crate) struct Outcome {
    pub(crate) status: TaskStatus,
    pub(crate) reason: Option<StatusReason>,
    pub(crate) message: Option<String>,
    pub(crate) exit_code: Option<i64>,
}

impl Outcome {
    pub(crate) fn new(
        status: TaskStatus,
        reason: Option<StatusReason>,
        message: impl Into<Option<String>>,
    ) -> Self {
        Self {
            status,
            reason,
            message: message.into(),
            exit_code: None,
        }
    }

    fn with_exit_code(mut self, code: i64) -> Self {
        self.exit_code = Some(code);
        self
    }

    /// A missing key, a forbidden secret, no API token: no container was created.
    pub(crate) fn precondition(message: impl Into<String>) -> Self {
        Self::new(
            TaskStatus::Failed,
            Some(StatusReason::FailedPrecondition),
            message.into(),
        )
    }

    /// The scheduler (or the run store it depends on) failed.
    pub(crate) fn scheduler_error(message: impl Into<String>) -> Self {
        Self::new(
            TaskStatus::Failed,
            Some(StatusReason::SchedulerError),
            message.into(),
        )
    }

    /// A service the task needs could not start, was not ready in time, or exited.
    pub(crate) fn service_unavailable(message: String) -> Self {
        Self::new(
            TaskStatus::Failed,
            Some(StatusReason::ServiceUnavailable),
            message,
        )
    }

    /// A dependency condition was not met.
    pub(crate) fn skipped(message: String) -> Self {
        Self::new(TaskStatus::Skipped, None, message)
    }

    /// The task's container vanished while the host was away.
    pub(crate) fn orphaned() -> Self {
        Self::new(
            TaskStatus::Failed,
            Some(StatusReason::Orphaned),
            "the task's container disappeared while the host was down".to_string(),
        )
    }

    /// The task's own timeout elapsed while its container ran.
    pub(crate) fn task_timeout(timeout: Duration) -> Self {
        Self::new(
            TaskStatus::Failed,
            Some(StatusReason::Timeout),
            format!(
                "task ran longer than its timeout of {}",
                humantime::format_duration(timeout)
            ),
        )
    }

    /// The executor panicked while running the task.
    pub(crate) fn panicked() -> Self {
        Self::new(
            TaskStatus::Unknown,
            None,
            "the executor panicked".to_string(),
        )
    }

    /// The container ended well, but its log is not whole and the engine fails such
    /// tasks.
    pub(crate) fn fail_incomplete_log(mut self, why: &str) -> Self {
        if self.status == TaskStatus::Successful {
            self.status = TaskStatus::Failed;
            self.reason = Some(StatusReason::IncompleteLog);
            self.message = Some(format!("the task's log is incomplete: {why}"));
        }
        self
    }
}

/// Where a task was when the run was asked to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Its container had not started (it never will).
    NotStarted,
    /// Its container was running (it was stopped).
    Running,
}

/// The outcome of a task stopped by a cancel or a run timeout: the one mapping.
///
/// | cause     | not started             | running              |
/// |-----------|-------------------------|----------------------|
/// | cancelled | Cancelled / Cancelled   | Cancelled / Cancelled |
/// | timeout   | Cancelled / Timeout     | Failed / Timeout     |
/// | task cancelled | Cancelled / Cancelled | Cancelled / Cancelled |
pub(crate) fn stop_outcome(stop: Stop, phase: Phase) -> Outcome {
    let when = match phase {
        Phase::NotStarted => " before the task started",
        Phase::Running => "",
    };
    match (stop.cause, phase) {
        (StopCause::Cancelled, _) => Outcome::new(
            TaskStatus::Cancelled,
            Some(StatusReason::Cancelled),
            format!("run was cancelled{when}"),
        ),
        (StopCause::Timeout, Phase::NotStarted) => Outcome::new(
            TaskStatus::Cancelled,
            Some(StatusReason::Timeout),
            format!("run timed out{when}"),
        ),
        (StopCause::Timeout, Phase::Running) => Outcome::new(
            TaskStatus::Failed,
            Some(StatusReason::Timeout),
            "run timed out".to_string(),
        ),
        (StopCause::TaskCancelled, _) => Outcome::new(
            TaskStatus::Cancelled,
            Some(StatusReason::Cancelled),
            format!("task was cancelled{when}"),
        ),
        (StopCause::RunSuperseded, _) => Outcome::new(
            TaskStatus::Cancelled,
            Some(StatusReason::Cancelled),
            format!("run was cancelled{when}: a newer run of its concurrency group took its place"),
        ),
        (StopCause::Superseded, _) => Outcome::new(
            TaskStatus::Cancelled,
            Some(StatusReason::Cancelled),
            format!("cancelled{when}: a newer member of its concurrency group took its place (cancel_in_progress)"),
        ),
        (StopCause::FailFast, _) => Outcome::new(
            TaskStatus::Cancelled,
            Some(StatusReason::Cancelled),
            format!("cancelled{when}: another combination of its matrix failed (fail_fast)"),
        ),
    }
}

/// The outcome of a container's exit as the scheduler reported it.
pub(crate) fn exit_outcome(exit: Result<ExitStatus, SchedulerError>) -> Outcome {
    match exit {
        Ok(ExitStatus::Exited { code: 0 }) => {
            Outcome::new(TaskStatus::Successful, None, None).with_exit_code(0)
        }
        Ok(ExitStatus::Exited { code }) => Outcome::new(
            TaskStatus::Failed,
            Some(StatusReason::AbnormalExit { code }),
            format!("container exited with code {code}"),
        )
        .with_exit_code(code),
        Ok(ExitStatus::OutOfMemory { code }) => Outcome::new(
            TaskStatus::Failed,
            Some(StatusReason::AbnormalExit { code }),
            format!("container was killed for exceeding its memory limit (exit code {code})"),
        )
        .with_exit_code(code),
        Ok(_) => Outcome::new(
            TaskStatus::Unknown,
            Some(StatusReason::Orphaned),
            "container was removed before it reported an exit".to_string(),
        ),
        Err(e) => Outcome::new(
            TaskStatus::Unknown,
            Some(StatusReason::SchedulerError),
            format!("cannot wait for the container: {e}"),
        ),
    }
}

/// The run's status, a pure function of its tasks and its stop: Cancelled if it was
/// cancelled, else Failed if it timed out or any task Failed or is Unknown, else
/// Successful.
pub(crate) fn decide_status<'a>(
    tasks: impl IntoIterator<Item = &'a TaskStatus>,
    stop: Option<StopCause>,
) -> RunStatus {
    match stop {
        Some(StopCause::Cancelled | StopCause::RunSuperseded) => RunStatus::Cancelled,
        Some(StopCause::Timeout) => RunStatus::Failed,
        // A task's own cancel is not the run's: its Cancelled task fails nothing.
        Some(StopCause::TaskCancelled | StopCause::FailFast | StopCause::Superseded) | None => {
            if tasks
                .into_iter()
                .any(|s| matches!(s, TaskStatus::Failed | TaskStatus::Unknown))
            {
                RunStatus::Failed
            } else {
                RunStatus::Successful
            }
        }
    }
}

/// The run's reason and message when it was stopped.
pub(crate) fn stop_reason(stop: Stop) -> (StatusReason, String) {
    match stop.cause {
        StopCause::Cancelled => (StatusReason::Cancelled, "run was cancelled".into()),
        StopCause::Timeout => (StatusReason::Timeout, "run timed out".into()),
        StopCause::TaskCancelled => (StatusReason::Cancelled, "task was cancelled".into()),
        StopCause::RunSuperseded => (
            StatusReason::Cancelled,
            "run was cancelled: a newer run of its concurrency group took its place".into(),
        ),
        StopCause::Superseded => (
            StatusReason::Cancelled,
            "cancelled: a newer member of its concurrency group took its place".into(),
        ),
        StopCause::FailFast => (
            StatusReason::Cancelled,
            "cancelled: another combination of its matrix failed (fail_fast)".into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stop(cause: StopCause) -> Stop {
        Stop {
            cause,
            grace: Duration::ZERO,
        }
    }

    #[test]
    fn one_mapping_of_a_stop() {
        let o = stop_outcome(stop(StopCause::Timeout), Phase::NotStarted);
        assert_eq!(
            (o.status, o.reason),
            (TaskStatus::Cancelled, Some(StatusReason::Timeout))
        );
        let o = stop_outcome(stop(StopCause::Timeout), Phase::Running);
        assert_eq!(
            (o.status, o.reason),
            (TaskStatus::Failed, Some(StatusReason::Timeout))
        );
        let o = stop_outcome(stop(StopCause::Cancelled), Phase::Running);
        assert_eq!(
            (o.status, o.reason),
            (TaskStatus::Cancelled, Some(StatusReason::Cancelled))
        );
    }

    #[test]
    fn status_is_a_function_of_tasks_and_stop() {
        use TaskStatus::*;
        assert_eq!(
            decide_status(&[Successful, Skipped], None),
            RunStatus::Successful
        );
        assert_eq!(
            decide_status(&[Successful, Unknown], None),
            RunStatus::Failed
        );
        assert_eq!(
            decide_status(&[Successful], Some(StopCause::Timeout)),
            RunStatus::Failed
        );
        assert_eq!(
            decide_status(&[Failed], Some(StopCause::Cancelled)),
            RunStatus::Cancelled
        );
    }

    #[test]
    fn incomplete_log_fails_only_a_success() {
        let ok = exit_outcome(Ok(ExitStatus::Exited { code: 0 })).fail_incomplete_log("x");
        assert_eq!(ok.status, TaskStatus::Failed);
        assert_eq!(ok.reason, Some(StatusReason::IncompleteLog));
        assert_eq!(ok.exit_code, Some(0));
        let bad = exit_outcome(Ok(ExitStatus::Exited { code: 3 })).fail_incomplete_log("x");
        assert_eq!(bad.reason, Some(StatusReason::AbnormalExit { code: 3 }));
    }
}
