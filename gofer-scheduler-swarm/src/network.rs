//! The run network: Swarm's sandbox. An attachable overlay network per run that spans
//! the nodes; tasks join it with their task id as an alias and reach each other by
//! name (DNS round-robin, no virtual IPs). There is no holder container: the network is
//! the sandbox, listed, waited on and removed like a container.

use std::collections::HashMap;
use std::time::Duration;

use bollard::models::{NetworkAttachmentConfig, NetworkCreateRequest, NetworkInspect};
use bollard::query_parameters::{InspectNetworkOptions, ListNetworksOptions, ListServicesOptions};
use gofer_core::{ContainerId, SandboxSpec, SchedulerError};
use tokio::time::Instant;

use crate::error::{self, SwarmError};
use crate::ids;
use crate::wait::Backoff;
use crate::{SwarmScheduler, LABEL_NAME, NAME};

/// How long a removal waits, beyond the stop grace, for the tasks of removed services
/// to leave the network.
const DETACH_MARGIN: Duration = Duration::from_secs(20);

fn no_such(id: &ContainerId) -> SchedulerError {
    SchedulerError::NoSuchContainer {
        scheduler: NAME,
        id: id.0.clone(),
    }
}

impl SwarmScheduler {
    /// Creates the run network of `spec` (its image is not used: nothing holds it).
    pub(crate) async fn create_network(
        &self,
        spec: SandboxSpec,
    ) -> Result<ContainerId, SchedulerError> {
        let name = ids::swarm_name(&spec.name);
        // Network names are not unique to the engine: refuse a second one here.
        let options = ListNetworksOptions {
            filters: Some(HashMap::from([("name".to_string(), vec![name.clone()])])),
        };
        let existing = self
            .docker
            .list_networks(Some(options))
            .await
            .map_err(|e| error::api(&self.endpoint, "list networks", &name, None, e))?;
        if existing
            .iter()
            .any(|n| n.name.as_deref() == Some(name.as_str()))
        {
            return Err(SchedulerError::Conflict {
                scheduler: NAME,
                id: spec.name,
                message: format!("a network named {name} exists"),
            });
        }
        let mut labels: HashMap<String, String> = spec.labels.into_iter().collect();
        labels.insert(LABEL_NAME.to_string(), spec.name.clone());
        let request = NetworkCreateRequest {
            name: name.clone(),
            driver: Some("overlay".to_string()),
            attachable: Some(true),
            labels: Some(labels),
            ..Default::default()
        };
        let created = self
            .docker
            .create_network(request)
            .await
            .map_err(|e| error::service(&self.endpoint, "create network", &spec.name, e))?;
        tracing::debug!(network = %created.id, name = %name, "run network created");
        Ok(ids::network_id(&created.id))
    }

    /// The run network, or [`SchedulerError::NoSuchContainer`].
    pub(crate) async fn inspect_network(
        &self,
        net: &str,
        id: &ContainerId,
    ) -> Result<NetworkInspect, SchedulerError> {
        // Scope "swarm": the manager's own copy of a removed overlay lingers a while.
        let options = InspectNetworkOptions {
            verbose: false,
            scope: Some("swarm".to_string()),
        };
        self.docker
            .inspect_network(net, Some(options))
            .await
            .map_err(|e| match error::status(&e) {
                Some(404) => no_such(id),
                _ => error::api(&self.endpoint, "inspect network", net, None, e),
            })
    }

    /// Waits until the run network is removed.
    pub(crate) async fn wait_network(
        &self,
        net: &str,
        id: &ContainerId,
    ) -> Result<(), SchedulerError> {
        self.inspect_network(net, id).await?;
        let mut backoff = Backoff::new(&self.config);
        loop {
            match self.inspect_network(net, id).await {
                Err(SchedulerError::NoSuchContainer { .. }) => return Ok(()),
                Err(e) => return Err(e),
                Ok(_) => backoff.pause().await,
            }
        }
    }

    /// Removes the run network, waiting for the tasks of removed services to leave it
    /// (Swarm detaches them only once their containers have stopped). A service still
    /// attached is a conflict; with `force` it is removed first (which stops its task),
    /// as removing a shared-namespace holder cuts its members off.
    pub(crate) async fn remove_network(
        &self,
        net: &str,
        id: &ContainerId,
        force: bool,
    ) -> Result<(), SchedulerError> {
        let deadline = Instant::now() + self.config.stop_grace + DETACH_MARGIN;
        let mut backoff = Backoff::new(&self.config);
        loop {
            let e = match self.docker.remove_network(net).await {
                Ok(()) => return self.until_gone(net, id, deadline).await,
                Err(e) => e,
            };
            let message = error::message(&e);
            match error::status(&e) {
                Some(404) => return Err(no_such(id)),
                Some(400 | 403 | 409 | 500) if message.contains("in use by service") => {
                    if !force {
                        return Err(SchedulerError::Conflict {
                            scheduler: NAME,
                            id: id.0.clone(),
                            message,
                        });
                    }
                    for service in self.services_on(net).await? {
                        match self.docker.delete_service(&service).await {
                            Err(e) if error::status(&e) != Some(404) => {
                                return Err(error::service(&self.endpoint, "remove", &service, e))
                            }
                            _ => {}
                        }
                    }
                }
                // "... is in use by task ..." / "has active endpoints": detaching.
                Some(400 | 403 | 409 | 500) if Instant::now() < deadline => backoff.pause().await,
                Some(400 | 403 | 409) => {
                    return Err(SwarmError::NetworkBusy {
                        network: net.to_string(),
                        message,
                    }
                    .into_scheduler("remove"))
                }
                _ => return Err(error::api(&self.endpoint, "remove network", net, None, e)),
            }
        }
    }

    /// Waits until the manager no longer shows the removed network: it answers the
    /// removal before its allocator has let go of it.
    async fn until_gone(
        &self,
        net: &str,
        id: &ContainerId,
        deadline: Instant,
    ) -> Result<(), SchedulerError> {
        let mut backoff = Backoff::new(&self.config);
        loop {
            match self.inspect_network(net, id).await {
                Err(SchedulerError::NoSuchContainer { .. }) => return Ok(()),
                Err(e) => return Err(e),
                Ok(_) if Instant::now() >= deadline => {
                    return Err(SwarmError::NetworkBusy {
                        network: net.to_string(),
                        message: "the manager still shows the network after its removal"
                            .to_string(),
                    }
                    .into_scheduler("remove"))
                }
                Ok(_) => backoff.pause().await,
            }
        }
    }

    /// The services attached to the network `net`.
    async fn services_on(&self, net: &str) -> Result<Vec<String>, SchedulerError> {
        let all = self
            .docker
            .list_services(None::<ListServicesOptions>)
            .await
            .map_err(|e| error::api(&self.endpoint, "list services", "*", None, e))?;
        Ok(all
            .into_iter()
            .filter(|s| {
                let spec = s.spec.as_ref();
                let on = |n: &Vec<NetworkAttachmentConfig>| {
                    n.iter().any(|a| a.target.as_deref() == Some(net))
                };
                spec.and_then(|s| s.task_template.as_ref())
                    .and_then(|t| t.networks.as_ref())
                    .is_some_and(on)
                    || spec.and_then(|s| s.networks.as_ref()).is_some_and(on)
            })
            .filter_map(|s| s.id)
            .collect())
    }
}
