//! The [`Scheduler`] implementation of [`FakeScheduler`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::behaviour::Behaviour;
use super::container::{Container, Process};
use super::image::normalize_image;
use super::scheduler::{FakeScheduler, NAME};
use crate::error::SchedulerError;
use crate::scheduler::{
    Capabilities, ContainerId, ContainerSpec, ContainerState, ContainerSummary, ExitStatus,
    LogStream, NetworkMode, SandboxSpec, Scheduler,
};
use crate::task::PullPolicy;

#[async_trait]
impl Scheduler for FakeScheduler {
    fn name(&self) -> &'static str {
        NAME
    }

    fn capabilities(&self) -> Capabilities {
        self.lock().capabilities
    }

    #[tracing::instrument(level = "debug", skip_all, fields(scheduler = NAME, name = %spec.name, image = %spec.image))]
    async fn start(&self, spec: ContainerSpec) -> Result<ContainerId, SchedulerError> {
        self.lock().requests.push(spec.clone());
        if spec.name.is_empty() {
            return Err(SchedulerError::InvalidRequest {
                scheduler: NAME,
                field: "name",
                message: "a container name is required".to_string(),
            });
        }
        crate::check_mounts(NAME, &spec.mounts)?;
        if let NetworkMode::Sandbox(sandbox) = &spec.network {
            let holder = self.find(sandbox)?;
            if holder.state() != ContainerState::Running {
                return Err(SchedulerError::Conflict {
                    scheduler: NAME,
                    id: sandbox.0.clone(),
                    message: "the network sandbox is not running".to_string(),
                });
            }
        }
        let (behaviour, argv, image_env) = self.resolve(&spec);
        let present = self
            .lock()
            .local_images
            .contains(&normalize_image(&spec.image));
        match spec.pull_policy {
            PullPolicy::Never if !present => {
                return Err(SchedulerError::NoSuchImage {
                    scheduler: NAME,
                    image: spec.image.clone(),
                    message: "not present locally and the pull policy is Never".to_string(),
                })
            }
            PullPolicy::Never => {}
            PullPolicy::IfNotPresent if present => {}
            PullPolicy::IfNotPresent | PullPolicy::Always => {
                if !behaviour.pull_delay.is_zero() {
                    tokio::time::sleep(behaviour.pull_delay).await;
                }
                self.pull(&spec, &behaviour)?
            }
        }
        // Tokio-aware yield, so concurrent starts interleave like real ones.
        tokio::task::yield_now().await;
        let container = self.create(&spec.name, spec.labels.clone())?;
        if let Some(message) = &behaviour.start_failure {
            self.forget(&container);
            container.mark_removed();
            return Err(SchedulerError::engine(NAME, "start", message.clone()));
        }
        let process = Process::from_spec(&spec, argv, &image_env);
        if behaviour.hold_created {
            // As if the host died between the engine's create and its start.
            container.hold(behaviour, process);
            tracing::debug!(id = %container.id, "created, not started");
            return Ok(container.id.clone());
        }
        self.count_start(&spec.name);
        container.spawn(behaviour, process);
        tracing::debug!(id = %container.id, "started");
        Ok(container.id.clone())
    }

    async fn start_created(&self, id: &ContainerId) -> Result<(), SchedulerError> {
        let c = self.find(id)?;
        if c.start_pending() {
            self.count_start(&c.name);
        }
        Ok(())
    }

    async fn wait(&self, id: &ContainerId) -> Result<ExitStatus, SchedulerError> {
        let c = self.find(id)?;
        Ok(c.wait().await)
    }

    async fn state(&self, id: &ContainerId) -> Result<ContainerState, SchedulerError> {
        Ok(self.find(id)?.state())
    }

    async fn logs(&self, id: &ContainerId) -> Result<LogStream, SchedulerError> {
        Ok(self.find(id)?.logs())
    }

    #[tracing::instrument(level = "debug", skip_all, fields(scheduler = NAME, id = %id))]
    async fn stop(&self, id: &ContainerId, grace: Duration) -> Result<(), SchedulerError> {
        let c = self.find(id)?;
        if matches!(c.state(), ContainerState::Exited { .. }) {
            return Ok(());
        }
        c.send_term();
        if tokio::time::timeout(grace, c.wait()).await.is_err() {
            c.send_kill();
            c.wait().await;
        }
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all, fields(scheduler = NAME, id = %id, force))]
    async fn remove(&self, id: &ContainerId, force: bool) -> Result<(), SchedulerError> {
        let c = self.find(id)?;
        if c.state() == ContainerState::Running && !force {
            return Err(SchedulerError::Conflict {
                scheduler: NAME,
                id: id.0.clone(),
                message: "cannot remove a running container without force".to_string(),
            });
        }
        self.forget(&c);
        c.mark_removed();
        Ok(())
    }

    async fn list(
        &self,
        labels: &BTreeMap<String, String>,
    ) -> Result<Vec<ContainerSummary>, SchedulerError> {
        let all: Vec<Arc<Container>> = self.lock().containers.values().cloned().collect();
        Ok(all
            .into_iter()
            .filter(|c| labels.iter().all(|(k, v)| c.labels.get(k) == Some(v)))
            .map(|c| ContainerSummary::new(c.id.clone(), &c.name, c.labels.clone(), c.state()))
            .collect())
    }

    #[tracing::instrument(level = "debug", skip_all, fields(scheduler = NAME, name = %spec.name))]
    async fn create_sandbox(&self, spec: SandboxSpec) -> Result<ContainerId, SchedulerError> {
        self.lock().sandboxes.push(spec.clone());
        if !self.lock().capabilities.network_sandbox {
            return Err(SchedulerError::NotSupported {
                scheduler: NAME,
                operation: "create_sandbox",
            });
        }
        let c = self.create(&spec.name, spec.labels.clone())?;
        let process = Process {
            argv: vec!["sleep".to_string(), "infinity".to_string()],
            env: Vec::new(),
            init: true,
        };
        c.spawn(Behaviour::run_until_stopped(), process);
        Ok(c.id.clone())
    }
}
