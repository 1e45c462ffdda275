//! The one task of a task execution's service, and what its state means.

use bollard::models::{Task, TaskState};
use gofer_core::{ContainerState, ExitStatus};

/// Where a service's task is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Not running yet: being placed, pulled, prepared or started.
    Waiting,
    /// Its container runs.
    Running,
    /// Its container ended (or it was taken away before it ran).
    Ended(ExitStatus),
    /// It ended before its container ran: rejected by the node, failed to start.
    FailedToRun(String),
}

/// The task of a task execution: the first one the service made. (A stop adds a
/// second one that never runs; see the crate docs, "Stop".)
pub(crate) fn ours(mut tasks: Vec<Task>) -> Option<Task> {
    tasks.sort_by(|a, b| {
        let key = |t: &Task| {
            let created = t.created_at.as_ref().map(|d| d.to_string());
            let at = created
                .as_deref()
                .and_then(|d| humantime::parse_rfc3339_weak(d).ok());
            (at, t.id.clone())
        };
        key(a).cmp(&key(b))
    });
    tasks.into_iter().next()
}

/// The swarm's message on a task: its error, else its status message.
pub(crate) fn message(task: &Task) -> String {
    let status = task.status.as_ref();
    status
        .and_then(|s| s.err.clone())
        .filter(|e| !e.is_empty())
        .or_else(|| status.and_then(|s| s.message.clone()))
        .unwrap_or_default()
}

/// Whether the task's container was created on its node.
fn had_container(task: &Task) -> bool {
    task.status
        .as_ref()
        .and_then(|s| s.container_status.as_ref())
        .and_then(|c| c.container_id.as_ref())
        .is_some_and(|id| !id.is_empty())
}

fn exit_code(task: &Task) -> Option<i64> {
    task.status
        .as_ref()
        .and_then(|s| s.container_status.as_ref())
        .and_then(|c| c.exit_code)
}

/// Where the task is. Swarm reports no out-of-memory kill (only the code, 137), so an
/// out-of-memory end is reported as [`ExitStatus::Exited`] with that code.
pub(crate) fn phase(task: &Task) -> Phase {
    let state = task.status.as_ref().and_then(|s| s.state);
    match state {
        None
        | Some(
            TaskState::NEW
            | TaskState::ALLOCATED
            | TaskState::PENDING
            | TaskState::ASSIGNED
            | TaskState::ACCEPTED
            | TaskState::PREPARING
            | TaskState::READY
            | TaskState::STARTING,
        ) => Phase::Waiting,
        Some(TaskState::RUNNING) => Phase::Running,
        Some(TaskState::COMPLETE) => Phase::Ended(ExitStatus::Exited {
            code: exit_code(task).unwrap_or(0),
        }),
        Some(TaskState::FAILED) => {
            let msg = message(task);
            match exit_code(task) {
                Some(code)
                    if had_container(task) && !msg.starts_with("starting container failed") =>
                {
                    Phase::Ended(ExitStatus::Exited { code })
                }
                _ => Phase::FailedToRun(msg),
            }
        }
        Some(TaskState::SHUTDOWN) => match exit_code(task) {
            Some(code) if had_container(task) => Phase::Ended(ExitStatus::Exited { code }),
            _ => Phase::Ended(ExitStatus::Removed),
        },
        Some(TaskState::REJECTED) => Phase::FailedToRun(message(task)),
        Some(TaskState::ORPHANED | TaskState::REMOVE) => Phase::Ended(ExitStatus::Removed),
    }
}

/// The container state of a task's phase.
pub(crate) fn container_state(phase: &Phase) -> ContainerState {
    match phase {
        Phase::Waiting => ContainerState::Created,
        Phase::Running => ContainerState::Running,
        Phase::Ended(status) => ContainerState::Exited { status: *status },
        // It never ran: there is no exit code to report.
        Phase::FailedToRun(_) => ContainerState::Exited {
            status: ExitStatus::Removed,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::{ContainerStatus, TaskStatus};

    fn task(
        state: TaskState,
        container: Option<&str>,
        code: Option<i64>,
        err: Option<&str>,
    ) -> Task {
        Task {
            status: Some(TaskStatus {
                state: Some(state),
                err: err.map(str::to_string),
                container_status: Some(ContainerStatus {
                    container_id: container.map(str::to_string),
                    pid: None,
                    exit_code: code,
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn states_map_to_phases() {
        assert_eq!(
            phase(&task(TaskState::PENDING, None, None, None)),
            Phase::Waiting
        );
        assert_eq!(
            phase(&task(TaskState::RUNNING, Some("c"), None, None)),
            Phase::Running
        );
        assert_eq!(
            phase(&task(TaskState::COMPLETE, Some("c"), Some(0), None)),
            Phase::Ended(ExitStatus::Exited { code: 0 })
        );
        assert_eq!(
            phase(&task(
                TaskState::FAILED,
                Some("c"),
                Some(3),
                Some("task: non-zero exit (3)")
            )),
            Phase::Ended(ExitStatus::Exited { code: 3 })
        );
        assert_eq!(
            phase(&task(TaskState::SHUTDOWN, Some("c"), Some(137), None)),
            Phase::Ended(ExitStatus::Exited { code: 137 })
        );
        assert_eq!(
            phase(&task(TaskState::SHUTDOWN, None, None, None)),
            Phase::Ended(ExitStatus::Removed)
        );
        assert_eq!(
            phase(&task(
                TaskState::REJECTED,
                None,
                None,
                Some("No such image: x")
            )),
            Phase::FailedToRun("No such image: x".to_string())
        );
        assert!(matches!(
            phase(&task(
                TaskState::FAILED,
                Some("c"),
                Some(127),
                Some("starting container failed: exec: nope")
            )),
            Phase::FailedToRun(_)
        ));
    }

    #[test]
    fn our_task_is_the_first_made() {
        let mut a = task(TaskState::SHUTDOWN, Some("c"), Some(0), None);
        a.id = Some("a".to_string());
        a.created_at = Some("2026-12-01T10:00:00.5Z".parse().expect("date"));
        let mut b = task(TaskState::PENDING, None, None, None);
        b.id = Some("b".to_string());
        b.created_at = Some("2026-12-01T10:00:05Z".parse().expect("date"));
        b.id = Some("0".to_string());
        assert_eq!(ours(vec![b, a]).and_then(|t| t.id).as_deref(), Some("a"));
    }
}
