//! Mapping of the engine's container states onto [`ContainerState`].

use bollard::models::{
    ContainerState as DockerState, ContainerStateStatusEnum, ContainerSummaryStateEnum,
};
use gofer_core::{ContainerState, ExitStatus};

/// How an exited container ended, from its inspected state.
pub(crate) fn exit_status(state: &DockerState) -> ExitStatus {
    let code = state.exit_code.unwrap_or_default();
    if matches!(state.status, Some(ContainerStateStatusEnum::REMOVING)) {
        ExitStatus::Removed
    } else if state.oom_killed.unwrap_or(false) {
        ExitStatus::OutOfMemory { code }
    } else {
        ExitStatus::Exited { code }
    }
}

/// The state of an inspected container.
pub(crate) fn from_inspect(state: &DockerState) -> ContainerState {
    match state.status {
        Some(ContainerStateStatusEnum::CREATED) => ContainerState::Created,
        Some(
            ContainerStateStatusEnum::RUNNING
            | ContainerStateStatusEnum::PAUSED
            | ContainerStateStatusEnum::RESTARTING
            | ContainerStateStatusEnum::STOPPING,
        ) => ContainerState::Running,
        _ if state.running.unwrap_or(false) => ContainerState::Running,
        _ => ContainerState::Exited {
            status: exit_status(state),
        },
    }
}

/// The exit code in a list entry's status text (`"Exited (137) 2 seconds ago"`).
pub(crate) fn code_from_status_text(text: &str) -> Option<i64> {
    let rest = text.split_once('(')?.1;
    rest.split_once(')')?.0.trim().parse().ok()
}

/// The state of a listed container (the list carries no OOM flag).
pub(crate) fn from_summary(
    state: Option<ContainerSummaryStateEnum>,
    status_text: Option<&str>,
) -> ContainerState {
    match state {
        Some(ContainerSummaryStateEnum::CREATED) => ContainerState::Created,
        Some(
            ContainerSummaryStateEnum::RUNNING
            | ContainerSummaryStateEnum::PAUSED
            | ContainerSummaryStateEnum::RESTARTING
            | ContainerSummaryStateEnum::STOPPING,
        ) => ContainerState::Running,
        Some(ContainerSummaryStateEnum::REMOVING) => ContainerState::Exited {
            status: ExitStatus::Removed,
        },
        _ => ContainerState::Exited {
            status: ExitStatus::Exited {
                code: status_text.and_then(code_from_status_text).unwrap_or(-1),
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_text_codes() {
        assert_eq!(
            code_from_status_text("Exited (137) 2 seconds ago"),
            Some(137)
        );
        assert_eq!(
            code_from_status_text("Exited (0) About a minute ago"),
            Some(0)
        );
        assert_eq!(code_from_status_text("Up 3 seconds"), None);
    }

    #[test]
    fn inspected_states() {
        let mut s = DockerState {
            status: Some(ContainerStateStatusEnum::EXITED),
            exit_code: Some(137),
            oom_killed: Some(true),
            ..Default::default()
        };
        assert_eq!(
            from_inspect(&s),
            ContainerState::Exited {
                status: ExitStatus::OutOfMemory { code: 137 }
            }
        );
        s.oom_killed = Some(false);
        assert_eq!(exit_status(&s), ExitStatus::Exited { code: 137 });
        s.status = Some(ContainerStateStatusEnum::RUNNING);
        assert_eq!(from_inspect(&s), ContainerState::Running);
        s.status = Some(ContainerStateStatusEnum::CREATED);
        assert_eq!(from_inspect(&s), ContainerState::Created);
    }

    #[test]
    fn listed_states() {
        assert_eq!(
            from_summary(
                Some(ContainerSummaryStateEnum::EXITED),
                Some("Exited (3) now")
            ),
            ContainerState::Exited {
                status: ExitStatus::Exited { code: 3 }
            }
        );
        assert_eq!(
            from_summary(
                Some(ContainerSummaryStateEnum::RUNNING),
                Some("Up 1 second")
            ),
            ContainerState::Running
        );
    }
}
