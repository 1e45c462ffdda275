//! Deterministic container names and labels, so that orphans can be found and reaped
//! and a restarted host can reconcile what is still running.

use std::collections::BTreeMap;

/// Label: the engine instance that made the container.
pub const LABEL_ENGINE: &str = "dev.gofer.engine";
/// Label: the pipeline id.
pub const LABEL_PIPELINE: &str = "dev.gofer.pipeline";
/// Label: the run number.
pub const LABEL_RUN: &str = "dev.gofer.run";
/// Label: the task id.
pub const LABEL_TASK: &str = "dev.gofer.task";
/// Label: the attempt number of a task's container (see [`crate::RetryPolicy`]).
pub const LABEL_ATTEMPT: &str = "dev.gofer.attempt";
/// Label: the service id of a service's container or of its readiness probe.
pub const LABEL_SERVICE: &str = "dev.gofer.service";
/// Label: what the container is (`"task"` or `"sandbox"`).
pub const LABEL_ROLE: &str = "dev.gofer.role";

/// The name of a task's container: `gofer-<engine>-<pipeline>-<run>-<task>`.
///
/// Ids are `[A-Za-z0-9_-]`, so the name is a valid container name for Docker and
/// Podman; an engine id should be short (it is validated like other ids).
///
/// ```
/// assert_eq!(gofer_core::naming::task_container_name("ci1", "build", 7, "test"), "gofer-ci1-build-7-test");
/// ```
pub fn task_container_name(engine: &str, pipeline: &str, run: u64, task: &str) -> String {
    format!("gofer-{engine}-{pipeline}-{run}-{task}")
}

/// The name of the container of attempt `attempt` of a task (see
/// [`crate::RetryPolicy`]): the first attempt's is [`task_container_name`]'s, attempt
/// *n* > 1 adds `.<n>` (ids hold no `.`, so it is no other task's name).
///
/// ```
/// use gofer_core::naming::{task_container_name, task_container_name_attempt};
/// assert_eq!(task_container_name_attempt("ci1", "build", 7, "test", 1), task_container_name("ci1", "build", 7, "test"));
/// assert_eq!(task_container_name_attempt("ci1", "build", 7, "test", 3), "gofer-ci1-build-7-test.3");
/// ```
pub fn task_container_name_attempt(
    engine: &str,
    pipeline: &str,
    run: u64,
    task: &str,
    attempt: u32,
) -> String {
    let name = task_container_name(engine, pipeline, run, task);
    if attempt <= 1 {
        name
    } else {
        format!("{name}.{attempt}")
    }
}

/// The name of a run's network sandbox holder: `gofer-<engine>-<pipeline>-<run>.sandbox`
/// (a `.`, not a `-`, before `sandbox`: ids cannot hold a `.`, so it never collides with
/// the container of a task named `sandbox`, `gofer-<engine>-<pipeline>-<run>-sandbox`).
///
/// ```
/// use gofer_core::naming::{sandbox_container_name, task_container_name};
/// assert_eq!(sandbox_container_name("ci1", "build", 7), "gofer-ci1-build-7.sandbox");
/// assert_ne!(sandbox_container_name("ci1", "build", 7), task_container_name("ci1", "build", 7, "sandbox"));
/// ```
pub fn sandbox_container_name(engine: &str, pipeline: &str, run: u64) -> String {
    format!("gofer-{engine}-{pipeline}-{run}.sandbox")
}

/// The labels of a task's container.
pub fn task_labels(engine: &str, pipeline: &str, run: u64, task: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_ENGINE.to_string(), engine.to_string()),
        (LABEL_PIPELINE.to_string(), pipeline.to_string()),
        (LABEL_RUN.to_string(), run.to_string()),
        (LABEL_TASK.to_string(), task.to_string()),
        (LABEL_ROLE.to_string(), "task".to_string()),
    ])
}

/// The labels of the container of attempt `attempt` of a task: [`task_labels`], and
/// [`LABEL_ATTEMPT`] for attempt 2 and later (a container without it is a first
/// attempt's).
pub fn task_attempt_labels(
    engine: &str,
    pipeline: &str,
    run: u64,
    task: &str,
    attempt: u32,
) -> BTreeMap<String, String> {
    let mut labels = task_labels(engine, pipeline, run, task);
    if attempt > 1 {
        labels.insert(LABEL_ATTEMPT.to_string(), attempt.to_string());
    }
    labels
}

/// The name of a run's service container: `gofer-<engine>-<pipeline>-<run>.service-<id>`
/// (its readiness probes add `.probe-<n>`).
///
/// ```
/// assert_eq!(gofer_core::naming::service_container_name("ci1", "build", 7, "db"), "gofer-ci1-build-7.service-db");
/// ```
pub fn service_container_name(engine: &str, pipeline: &str, run: u64, service: &str) -> String {
    format!("gofer-{engine}-{pipeline}-{run}.service-{service}")
}

/// The name of a run's workspace volume: `gofer-<engine>-<pipeline>-<run>.workspace`
/// (after a `.`, which ids cannot hold).
///
/// ```
/// assert_eq!(gofer_core::naming::workspace_volume_name("ci1", "build", 7), "gofer-ci1-build-7.workspace");
/// ```
pub fn workspace_volume_name(engine: &str, pipeline: &str, run: u64) -> String {
    format!("gofer-{engine}-{pipeline}-{run}.workspace")
}

/// The labels of a run's workspace volume (role `workspace`).
pub fn workspace_labels(engine: &str, pipeline: &str, run: u64) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_ENGINE.to_string(), engine.to_string()),
        (LABEL_PIPELINE.to_string(), pipeline.to_string()),
        (LABEL_RUN.to_string(), run.to_string()),
        (LABEL_ROLE.to_string(), "workspace".to_string()),
    ])
}

/// The labels of a run's sandbox holder.
pub fn sandbox_labels(engine: &str, pipeline: &str, run: u64) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_ENGINE.to_string(), engine.to_string()),
        (LABEL_PIPELINE.to_string(), pipeline.to_string()),
        (LABEL_RUN.to_string(), run.to_string()),
        (LABEL_ROLE.to_string(), "sandbox".to_string()),
    ])
}

/// The label filter that finds every container of one engine instance.
pub fn engine_filter(engine: &str) -> BTreeMap<String, String> {
    BTreeMap::from([(LABEL_ENGINE.to_string(), engine.to_string())])
}
