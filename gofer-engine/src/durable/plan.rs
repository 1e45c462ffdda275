//! Crash recovery, the plan: what to do with each task of an unfinished run, given the
//! containers the engine still has. Pure: it looks at records and container lists and
//! decides; [`Engine::recover`](crate::Engine::recover) acts on the plan.

use std::collections::{BTreeSet, HashMap};

use gofer_core::{
    ContainerId, ContainerState, ContainerSummary, Run, SchedulerError, StoreError, TaskState,
    TaskStatus,
};

use gofer_core::naming::{
    LABEL_ATTEMPT, LABEL_PIPELINE, LABEL_ROLE, LABEL_RUN, LABEL_SERVICE, LABEL_TASK,
};

/// What recovery did with one task execution that was not complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecoveryAction {
    /// Its container was still running: it is followed again (its log is rewritten
    /// whole from the engine's output, its exit recorded).
    Reattached,
    /// Its container exited while the host was away: its real exit code and full
    /// log are recorded.
    Collected,
    /// Its container is gone: the task is Failed with reason Orphaned.
    Orphaned,
    /// It was recorded as starting but its container was never started: the container
    /// the engine has under the task's name (left `Created`) is started, or, when the
    /// engine has none, one is created and started — once.
    Restarted,
    /// It had not started: it runs when the dependency graph allows.
    Resumed,
}

/// One task execution recovery acted on.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecoveredTask {
    /// The pipeline.
    pub pipeline: String,
    /// The run.
    pub run: u64,
    /// The task.
    pub task: String,
    /// What was done.
    pub action: RecoveryAction,
}

/// Why recovery could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecoveryError {
    /// The run store failed.
    #[error("recovery: {0}")]
    Store(#[from] StoreError),
    /// The scheduler could not list this engine's containers.
    #[error("recovery: cannot list the engine's containers: {0}")]
    Scheduler(#[from] SchedulerError),
    /// `recover` was called outside a Tokio runtime.
    #[error("recover must be called from within a Tokio runtime")]
    NoRuntime,
}

/// How a recovered task goes on.
#[derive(Debug, Clone)]
pub(crate) enum Resume {
    /// Start it (no container of it exists).
    Fresh,
    /// Already complete.
    Complete(TaskStatus),
    /// Follow its existing container (started first if it was only created).
    Attach {
        id: ContainerId,
        state: ContainerState,
    },
    /// Its container is gone.
    Orphaned,
}

/// What to do with one unfinished run.
#[derive(Debug)]
pub(crate) struct RunPlan {
    /// How each task goes on, in pipeline order.
    pub(crate) resume: Vec<Resume>,
    /// What is done with each task that was not complete.
    pub(crate) actions: Vec<(String, RecoveryAction)>,
    /// Containers to remove: of tasks already complete, of tasks the run does not
    /// have, a sandbox the engine will not adopt.
    pub(crate) reap: Vec<ContainerSummary>,
}

fn label<'a>(c: &'a ContainerSummary, key: &str) -> Option<&'a str> {
    c.labels.get(key).map(String::as_str)
}

/// The (pipeline, run) a container belongs to, from its labels.
pub(crate) fn run_of(c: &ContainerSummary) -> Option<(String, u64)> {
    label(c, LABEL_PIPELINE)
        .zip(label(c, LABEL_RUN).and_then(|r| r.parse::<u64>().ok()))
        .map(|(p, r)| (p.to_string(), r))
}

/// Containers by the (pipeline, run) they belong to.
pub(crate) type ByRun = HashMap<(String, u64), Vec<ContainerSummary>>;

/// Sorts the engine's containers by unfinished run; the rest are to be reaped.
pub(crate) fn group_by_run(
    containers: Vec<ContainerSummary>,
    unfinished: &[(String, u64)],
) -> (ByRun, Vec<ContainerSummary>) {
    let mut by_run = ByRun::new();
    let mut reap = Vec::new();
    for c in containers {
        match run_of(&c) {
            Some(k) if unfinished.contains(&k) => by_run.entry(k).or_default().push(c),
            _ => reap.push(c),
        }
    }
    (by_run, reap)
}

/// The plan for one unfinished run, given its containers. `adopt_sandbox` says
/// whether the engine recreates (and so adopts) a run's network sandbox; `services`
/// are the services the run's tasks still to run need: their containers are kept for
/// the run to adopt (tasks already running rely on them), the others reaped.
pub(crate) fn plan_run(
    run: &Run,
    mut found: Vec<ContainerSummary>,
    adopt_sandbox: bool,
    services: &BTreeSet<&str>,
) -> RunPlan {
    let mut resume = Vec::with_capacity(run.tasks.len());
    let mut actions = Vec::new();
    let mut reap = Vec::new();
    for t in &run.tasks {
        // The container of the task's recorded attempt (one without an attempt label
        // is a first attempt's); an earlier attempt's container is reaped.
        let attempt = t.attempt.to_string();
        let c = found
            .iter()
            .position(|c| {
                label(c, LABEL_ROLE) == Some("task")
                    && label(c, LABEL_TASK) == Some(t.task_id.as_str())
                    && label(c, LABEL_ATTEMPT).unwrap_or("1") == attempt
            })
            .map(|i| found.swap_remove(i));
        if t.state == TaskState::Complete {
            reap.extend(c);
            resume.push(Resume::Complete(t.status));
            continue;
        }
        let (plan, action) = match c {
            Some(c) => {
                let action = match c.state {
                    // A start that had not reached the engine: start it now, once.
                    ContainerState::Created => RecoveryAction::Restarted,
                    ContainerState::Running => RecoveryAction::Reattached,
                    ContainerState::Exited { .. } => RecoveryAction::Collected,
                    // A state this engine does not know yet: followed again, its
                    // exit says how it went.
                    _ => RecoveryAction::Reattached,
                };
                (
                    Resume::Attach {
                        id: c.id,
                        state: c.state,
                    },
                    action,
                )
            }
            None => match &t.container {
                Some(r) if r.id.is_some() || t.state == TaskState::Running => {
                    (Resume::Orphaned, RecoveryAction::Orphaned)
                }
                Some(_) => (Resume::Fresh, RecoveryAction::Restarted),
                None => (Resume::Fresh, RecoveryAction::Resumed),
            },
        };
        actions.push((t.task_id.clone(), action));
        resume.push(plan);
    }
    // What is left: a sandbox (adopted when the run recreates it), services (adopted
    // when still needed), probes, containers of tasks the run does not have.
    for c in found {
        let adopted = match label(&c, LABEL_ROLE) {
            Some("sandbox") => adopt_sandbox,
            // Only a running service: one that exited (a daemon restart, a crash of
            // its own) is reaped and started afresh.
            Some("service") => {
                c.state == ContainerState::Running
                    && label(&c, LABEL_SERVICE).is_some_and(|s| services.contains(s))
            }
            _ => false,
        };
        if !adopted {
            reap.push(c);
        }
    }
    RunPlan {
        resume,
        actions,
        reap,
    }
}
