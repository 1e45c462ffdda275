//! Stopping a task: SIGTERM, the stop grace, then SIGKILL — by a rolling update.
//!
//! Swarm has no "stop this task" call. Scaling a service down or removing it makes the
//! swarm delete the task's record once its container is gone, and with it the exit code
//! and the log; updating a replicated **job** does the same (every update starts a new
//! job iteration). So a stop updates the service so that its task must move: it adds
//! the placement constraint `node.id==gofer-stopped`, which no node satisfies. The
//! rolling update (stop-first, never rolled back) shuts the task down — SIGTERM, then
//! SIGKILL after the service's stop grace — and keeps it as a finished task with its
//! exit code and log; the replacement task it makes stays pending, runs nowhere, and
//! goes with the service. This is why services are replicated services of one replica
//! with restart condition `none`, not replicated jobs.

use std::time::Duration;

use bollard::query_parameters::UpdateServiceOptions;
use gofer_core::SchedulerError;
use tokio::time::Instant;

use crate::error::{self, SwarmError};
use crate::tasks::Phase;
use crate::{create, SwarmScheduler, NAME};

/// How much longer than the stop grace a stop waits for the task to end before it
/// reports [`SwarmError::StopTimeout`] (the node may be slow to act).
const STOP_MARGIN: Duration = Duration::from_secs(30);

/// The longest pause between two looks at a stopping task: a stop's end is awaited
/// closely.
const STOP_POLL_MAX: Duration = Duration::from_millis(50);

fn ended(p: &Phase) -> bool {
    matches!(p, Phase::Ended(_) | Phase::FailedToRun(_))
}

impl SwarmScheduler {
    /// Stops the task of `service` and returns once it has ended (see the module docs).
    pub(crate) async fn stop_service(
        &self,
        service: &str,
        grace: Duration,
    ) -> Result<(), SchedulerError> {
        let mut applied = self.config.stop_grace;
        for attempt in 0..3 {
            let svc = self.inspect(service).await?;
            applied = svc
                .spec
                .as_ref()
                .and_then(|s| s.task_template.as_ref())
                .and_then(|t| t.container_spec.as_ref())
                .and_then(|c| c.stop_grace_period)
                .and_then(|ns| u64::try_from(ns).ok())
                .map_or(applied, Duration::from_nanos);
            if attempt == 0 && grace != applied {
                tracing::debug!(
                    service,
                    asked_ms = grace.as_millis() as u64,
                    applied_ms = applied.as_millis() as u64,
                    "swarm fixes the stop grace at create: the service's grace applies"
                );
            }
            if let Some(task) = self.task_of(service).await? {
                if ended(&crate::tasks::phase(&task)) {
                    return Ok(());
                }
            }
            let spec = svc.spec.unwrap_or_default();
            if create::is_stopped(&spec) {
                break; // Stopped already (by another call): wait for the end.
            }
            let version = svc.version.and_then(|v| v.index).unwrap_or(0);
            let options = UpdateServiceOptions {
                version: i32::try_from(version).map_err(|_| {
                    SchedulerError::engine(
                        NAME,
                        "stop",
                        format!("service {service} version {version} is out of range"),
                    )
                })?,
                ..Default::default()
            };
            match self
                .docker
                .update_service(service, create::stopped(spec), options, None)
                .await
            {
                Ok(_) => break,
                // Someone else updated it between the inspect and the update: look again.
                Err(e) if attempt < 2 && error::message(&e).contains("out of sequence") => continue,
                Err(e) => return Err(error::service(&self.endpoint, "stop", service, e)),
            }
        }
        // No deadline when the grace is too large for the clock.
        let deadline = Instant::now().checked_add(applied.saturating_add(STOP_MARGIN));
        let max = self.config.poll_max.min(STOP_POLL_MAX);
        match self.poll_until_with(service, deadline, max, ended).await? {
            Some((phase, _)) if ended(&phase) => Ok(()),
            None => Ok(()), // Removed meanwhile: it has certainly ended.
            Some((_, task)) => Err(SwarmError::StopTimeout {
                service: service.to_string(),
                node: self.node_name(task.as_ref()).await,
            }
            .into_scheduler("stop")),
        }
    }
}
