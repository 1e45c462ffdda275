//! Named volumes (a run's workspace) through raw libpod calls: create, remove, list
//! by labels.

use std::collections::BTreeMap;

use containers_api::conn::hyper::Method;
use gofer_core::check_volume_name;
use gofer_core::{SchedulerError, VolumeSpec, VolumeSummary};

use crate::client::{encode, segment, Api, ApiError};
use crate::NAME;

/// The reduced libpod volume answer (`/volumes/json`, `/volumes/{name}/json`).
#[derive(serde::Deserialize, Default)]
#[serde(default, rename_all = "PascalCase")]
struct Volume {
    name: String,
    labels: BTreeMap<String, String>,
}

fn mapped(e: ApiError, operation: &'static str, api: &Api, name: &str) -> SchedulerError {
    let status = if e.says("no such volume") {
        Some(404)
    } else if e.says("being used") || e.says("in use") {
        Some(409)
    } else {
        e.status()
    };
    match status {
        Some(404) => SchedulerError::NoSuchContainer {
            scheduler: NAME,
            id: name.to_string(),
        },
        Some(409) => SchedulerError::Conflict {
            scheduler: NAME,
            id: name.to_string(),
            message: e.to_string(),
        },
        _ => e.into_scheduler(operation, &api.endpoint),
    }
}

/// Creates the volume; an existing one with the same labels is kept, one with other
/// labels is a conflict.
pub(crate) async fn create(api: &Api, spec: VolumeSpec) -> Result<(), SchedulerError> {
    check_volume_name(NAME, &spec.name)?;
    let body = serde_json::json!({ "Name": spec.name, "Label": spec.labels }).to_string();
    match api
        .call(Method::POST, "/volumes/create", Some(body.into_bytes()))
        .await
    {
        Ok(_) => Ok(()),
        // Podman 4.3 answers 500 "volume already exists", later ones 409.
        Err(e) if e.status() == Some(409) || e.says("already exists") => {
            let path = format!("/volumes/{}/json", segment(&spec.name));
            let existing: Volume = api
                .get_json(&path)
                .await
                .map_err(|e| mapped(e, "create_volume", api, &spec.name))?;
            if existing.labels == spec.labels {
                Ok(())
            } else {
                Err(SchedulerError::Conflict {
                    scheduler: NAME,
                    id: spec.name,
                    message: "a volume of that name with other labels exists".to_string(),
                })
            }
        }
        Err(e) => Err(mapped(e, "create_volume", api, &spec.name)),
    }
}

/// Removes the volume: 404 → no such volume, 409 → in use.
pub(crate) async fn remove(api: &Api, name: &str) -> Result<(), SchedulerError> {
    api.delete(&format!("/volumes/{}", segment(name)))
        .await
        .map(|_| ())
        .map_err(|e| mapped(e, "remove_volume", api, name))
}

/// The volumes carrying every label in `labels`.
pub(crate) async fn list(
    api: &Api,
    labels: &BTreeMap<String, String>,
) -> Result<Vec<VolumeSummary>, SchedulerError> {
    let mut path = "/volumes/json".to_string();
    if !labels.is_empty() {
        let filter: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let filters = serde_json::json!({ "label": filter }).to_string();
        path.push_str("?filters=");
        path.push_str(&encode(&filters));
    }
    let found: Vec<Volume> = api
        .get_json(&path)
        .await
        .map_err(|e| e.into_scheduler("list_volumes", &api.endpoint))?;
    Ok(found
        .into_iter()
        // The service filters already; this keeps the contract if it did not.
        .filter(|v| labels.iter().all(|(k, val)| v.labels.get(k) == Some(val)))
        .map(|v| VolumeSummary::new(v.name, v.labels))
        .collect())
}
