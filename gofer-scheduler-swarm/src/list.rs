//! Listing by label: the services of task executions and the run networks, for the
//! reaper and for crash recovery.

use std::collections::{BTreeMap, HashMap};

use bollard::models::Task;
use bollard::query_parameters::{ListNetworksOptions, ListServicesOptions, ListTasksOptions};
use gofer_core::{ContainerId, ContainerState, ContainerSummary, SchedulerError};

use crate::error;
use crate::ids;
use crate::tasks;
use crate::{SwarmScheduler, LABEL_NAME};

fn label_filter(labels: &BTreeMap<String, String>) -> Option<HashMap<String, Vec<String>>> {
    Some(HashMap::from([(
        "label".to_string(),
        labels.iter().map(|(k, v)| format!("{k}={v}")).collect(),
    )]))
}

/// The gofer name kept in the labels, else the swarm name.
fn gofer_name(labels: &HashMap<String, String>, swarm_name: Option<String>) -> String {
    labels
        .get(LABEL_NAME)
        .cloned()
        .or(swarm_name)
        .unwrap_or_default()
}

impl SwarmScheduler {
    /// Services and run networks carrying every label in `labels`.
    pub(crate) async fn list_labelled(
        &self,
        labels: &BTreeMap<String, String>,
    ) -> Result<Vec<ContainerSummary>, SchedulerError> {
        let services = self
            .docker
            .list_services(Some(ListServicesOptions {
                filters: label_filter(labels),
                status: None,
            }))
            .await
            .map_err(|e| error::api(&self.endpoint, "list services", "*", None, e))?;
        let ids: Vec<String> = services.iter().filter_map(|s| s.id.clone()).collect();
        let mut by_service: HashMap<String, Vec<Task>> = HashMap::new();
        if !ids.is_empty() {
            let found = self
                .docker
                .list_tasks(Some(ListTasksOptions {
                    filters: Some(HashMap::from([("service".to_string(), ids)])),
                }))
                .await
                .map_err(|e| error::api(&self.endpoint, "list tasks", "*", None, e))?;
            for t in found {
                if let Some(s) = t.service_id.clone() {
                    by_service.entry(s).or_default().push(t);
                }
            }
        }
        let mut out = Vec::with_capacity(services.len());
        for s in services {
            let Some(id) = s.id else { continue };
            let spec = s.spec.unwrap_or_default();
            let labels = spec.labels.unwrap_or_default();
            let state = match tasks::ours(by_service.remove(&id).unwrap_or_default()) {
                Some(t) => tasks::container_state(&tasks::phase(&t)),
                None => ContainerState::Created,
            };
            let name = gofer_name(&labels, spec.name);
            out.push(ContainerSummary::new(
                ContainerId(id),
                name,
                labels.into_iter().collect(),
                state,
            ));
        }
        let networks = self
            .docker
            .list_networks(Some(ListNetworksOptions {
                filters: label_filter(labels),
            }))
            .await
            .map_err(|e| error::api(&self.endpoint, "list networks", "*", None, e))?;
        for n in networks {
            let Some(id) = n.id else { continue };
            let labels = n.labels.unwrap_or_default();
            // Only the run networks this backend made.
            if !labels.contains_key(LABEL_NAME) {
                continue;
            }
            let name = gofer_name(&labels, n.name);
            out.push(ContainerSummary::new(
                ids::network_id(&id),
                name,
                labels.into_iter().collect(),
                ContainerState::Running,
            ));
        }
        Ok(out)
    }
}
