//! Named volumes (a run's workspace): create, remove, list by labels.

use std::collections::{BTreeMap, HashMap};

use bollard::models::VolumeCreateRequest;
use bollard::query_parameters::{ListVolumesOptions, RemoveVolumeOptions};
use bollard::Docker;
use gofer_core::check_volume_name;
use gofer_core::{SchedulerError, VolumeSpec, VolumeSummary};

use crate::{error, NAME};

/// Creates the volume; an existing one with the same labels is kept (Docker answers a
/// create of an existing name with that volume), one with other labels is a conflict.
pub(crate) async fn create(
    docker: &Docker,
    endpoint: &str,
    spec: VolumeSpec,
) -> Result<(), SchedulerError> {
    check_volume_name(NAME, &spec.name)?;
    let request = VolumeCreateRequest {
        name: Some(spec.name.clone()),
        labels: Some(spec.labels.clone().into_iter().collect()),
        ..Default::default()
    };
    let made = docker
        .create_volume(request)
        .await
        .map_err(|e| error::container(endpoint, "create_volume", &spec.name, e))?;
    let labels: BTreeMap<String, String> = made.labels.into_iter().collect();
    if labels == spec.labels {
        Ok(())
    } else {
        Err(SchedulerError::Conflict {
            scheduler: NAME,
            id: spec.name,
            message: "a volume of that name with other labels exists".to_string(),
        })
    }
}

/// Removes the volume: 404 → no such volume, 409 → in use.
pub(crate) async fn remove(
    docker: &Docker,
    endpoint: &str,
    name: &str,
) -> Result<(), SchedulerError> {
    docker
        .remove_volume(name, Some(RemoveVolumeOptions { force: false }))
        .await
        .map_err(|e| error::container(endpoint, "remove_volume", name, e))
}

/// The volumes carrying every label in `labels`.
pub(crate) async fn list(
    docker: &Docker,
    endpoint: &str,
    labels: &BTreeMap<String, String>,
) -> Result<Vec<VolumeSummary>, SchedulerError> {
    let filters = HashMap::from([(
        "label".to_string(),
        labels.iter().map(|(k, v)| format!("{k}={v}")).collect(),
    )]);
    let found = docker
        .list_volumes(Some(ListVolumesOptions {
            filters: Some(filters),
        }))
        .await
        .map_err(|e| error::engine(endpoint, "list_volumes", e))?;
    Ok(found
        .volumes
        .unwrap_or_default()
        .into_iter()
        // The engine filters; checked again so an engine that ignores a filter
        // never makes the reaper remove another's volume.
        .filter(|v| labels.iter().all(|(k, val)| v.labels.get(k) == Some(val)))
        .map(|v| VolumeSummary::new(v.name, v.labels.into_iter().collect()))
        .collect())
}
