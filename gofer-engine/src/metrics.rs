//! Metrics, through the [`metrics`] facade: the engine records them, the host picks
//! the exporter (Prometheus, StatsD, OpenTelemetry, ...) by installing a recorder; with
//! none installed, recording costs next to nothing.
//!
//! Labels are bounded: `pipeline` (a pipeline id), `backend` (the scheduler's name:
//! `docker`, `podman`, `containerd`, `swarm`, `fake`) and `status` (a run's or task's
//! final status, snake case). Never a run number, a task id, a matrix combination or
//! a container name: a host that runs for months would otherwise grow a series per
//! run.
//!
//! | name | kind | labels | what |
//! |---|---|---|---|
//! | [`RUNS_STARTED`] | counter | pipeline | runs that began running |
//! | [`RUNS_FINISHED`] | counter | pipeline, status | runs that completed |
//! | [`TASKS_STARTED`] | counter | pipeline, backend | task attempts whose container runs |
//! | [`TASKS_FINISHED`] | counter | pipeline, backend, status | tasks that completed |
//! | [`TASK_DURATION`] | histogram (s) | pipeline, backend, status | a task's last attempt, running to complete |
//! | [`TASK_QUEUE_WAIT`] | histogram (s) | pipeline, backend | an attempt, from the moment it may start (its parents ended, its backoff passed) to its container running: slots, groups, pull and start |
//! | [`START_LATENCY`] | histogram (s) | backend | the backend's start call (pull when needed, create, start) |
//! | [`RETRIES`] | counter | pipeline | attempts that failed and were tried again |
//! | [`LOG_BYTES`] | counter | pipeline | bytes of task output kept in logs |
//! | [`MASKED`] | counter | pipeline | secret values masked in task output |
//! | [`CACHE_HITS`] / [`CACHE_MISSES`] | counter | pipeline | cache restores: a hit (the key's or a fallback's entry) or a miss (empty) |
//! | [`PENDING_REMOVALS`] | gauge | backend | exited containers not yet removed |

use std::time::Duration;

use gofer_core::{RunStatus, TaskStatus};

/// Runs that began running.
pub const RUNS_STARTED: &str = "gofer_runs_started_total";
/// Runs that completed, by status.
pub const RUNS_FINISHED: &str = "gofer_runs_finished_total";
/// Task attempts whose container runs.
pub const TASKS_STARTED: &str = "gofer_tasks_started_total";
/// Tasks that completed, by status.
pub const TASKS_FINISHED: &str = "gofer_tasks_finished_total";
/// Seconds from a task's last attempt running to the task complete.
pub const TASK_DURATION: &str = "gofer_task_duration_seconds";
/// Seconds from an attempt being free to start to its container running.
pub const TASK_QUEUE_WAIT: &str = "gofer_task_queue_wait_seconds";
/// Seconds of the backend's start call (pull when needed, create, start).
pub const START_LATENCY: &str = "gofer_container_start_seconds";
/// Attempts that failed and were tried again.
pub const RETRIES: &str = "gofer_task_retries_total";
/// Bytes of task output kept in logs.
pub const LOG_BYTES: &str = "gofer_log_bytes_total";
/// Secret values masked in task output.
pub const MASKED: &str = "gofer_masked_values_total";
/// Cache restores that found an entry.
pub const CACHE_HITS: &str = "gofer_cache_hits_total";
/// Cache restores that found none (the cache started empty).
pub const CACHE_MISSES: &str = "gofer_cache_misses_total";
/// Exited containers not yet removed.
pub const PENDING_REMOVALS: &str = "gofer_pending_removals";

/// A status as a label value: snake case, as in JSON.
fn run_status(s: RunStatus) -> &'static str {
    match s {
        RunStatus::Successful => "successful",
        RunStatus::Failed => "failed",
        RunStatus::Cancelled => "cancelled",
        _ => "unknown",
    }
}

fn task_status(s: TaskStatus) -> &'static str {
    match s {
        TaskStatus::Successful => "successful",
        TaskStatus::Failed => "failed",
        TaskStatus::Cancelled => "cancelled",
        TaskStatus::Skipped => "skipped",
        _ => "unknown",
    }
}

/// The labels of one run's metrics.
#[derive(Debug, Clone)]
pub(crate) struct RunMetrics {
    pipeline: String,
    backend: &'static str,
}

impl RunMetrics {
    pub(crate) fn new(pipeline: &str, backend: &'static str) -> Self {
        Self {
            pipeline: pipeline.to_string(),
            backend,
        }
    }

    pub(crate) fn run_started(&self) {
        metrics::counter!(RUNS_STARTED, "pipeline" => self.pipeline.clone()).increment(1);
    }

    pub(crate) fn run_finished(&self, status: RunStatus) {
        metrics::counter!(RUNS_FINISHED, "pipeline" => self.pipeline.clone(), "status" => run_status(status))
            .increment(1);
    }

    pub(crate) fn task_started(&self, queue_wait: Option<Duration>) {
        metrics::counter!(TASKS_STARTED, "pipeline" => self.pipeline.clone(), "backend" => self.backend)
            .increment(1);
        if let Some(w) = queue_wait {
            metrics::histogram!(TASK_QUEUE_WAIT, "pipeline" => self.pipeline.clone(), "backend" => self.backend)
                .record(w.as_secs_f64());
        }
    }

    pub(crate) fn task_finished(&self, status: TaskStatus, ran: Option<Duration>) {
        let labels = [
            ("pipeline", self.pipeline.clone()),
            ("backend", self.backend.to_string()),
            ("status", task_status(status).to_string()),
        ];
        metrics::counter!(TASKS_FINISHED, &labels).increment(1);
        if let Some(d) = ran {
            metrics::histogram!(TASK_DURATION, &labels).record(d.as_secs_f64());
        }
    }

    pub(crate) fn retried(&self) {
        metrics::counter!(RETRIES, "pipeline" => self.pipeline.clone()).increment(1);
    }

    pub(crate) fn log_bytes(&self, n: u64) {
        metrics::counter!(LOG_BYTES, "pipeline" => self.pipeline.clone()).increment(n);
    }

    pub(crate) fn masked(&self, n: u64) {
        if n > 0 {
            metrics::counter!(MASKED, "pipeline" => self.pipeline.clone()).increment(n);
        }
    }

    pub(crate) fn cache(&self, hit: bool) {
        let name = if hit { CACHE_HITS } else { CACHE_MISSES };
        metrics::counter!(name, "pipeline" => self.pipeline.clone()).increment(1);
    }
}

/// The backend's start call took `d`.
pub(crate) fn start_latency(backend: &'static str, d: Duration) {
    metrics::histogram!(START_LATENCY, "backend" => backend).record(d.as_secs_f64());
}

/// `n` exited containers wait for removal.
pub(crate) fn pending_removals(backend: &'static str, n: usize) {
    metrics::gauge!(PENDING_REMOVALS, "backend" => backend).set(n as f64);
}
