//! Runs last (test binaries run in name order): no service and no network made by this
//! crate's tests is left on the swarm — neither by the conformance cases nor by the
//! executor's runs.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;

use bollard::query_parameters::{ListNetworksOptions, ListServicesOptions};
use common::*;
use gofer_core::naming::LABEL_ENGINE;
use gofer_core::testing::conformance::CONFORMANCE_LABEL;

fn by_key(key: &str) -> Option<HashMap<String, Vec<String>>> {
    Some(HashMap::from([(
        "label".to_string(),
        vec![key.to_string()],
    )]))
}

/// Whether labels mark something these tests made.
fn ours(key: &str, labels: &HashMap<String, String>) -> bool {
    key != LABEL_ENGINE || labels[LABEL_ENGINE].starts_with(INSTANCE_PREFIX)
}

#[tokio::test]
async fn no_test_service_or_network_is_left_behind() {
    let Some(s) = scheduler().await else { return };
    let docker = s.client();
    let mut left = Vec::new();
    for key in [SUITE_LABEL, CONFORMANCE_LABEL, LABEL_ENGINE] {
        let options = ListServicesOptions {
            filters: by_key(key),
            status: None,
        };
        for svc in docker.list_services(Some(options)).await.unwrap() {
            let spec = svc.spec.unwrap_or_default();
            if ours(key, &spec.labels.unwrap_or_default()) {
                let _ = docker
                    .delete_service(svc.id.as_deref().unwrap_or_default())
                    .await;
                left.push(format!("service {}", spec.name.unwrap_or_default()));
            }
        }
        let options = ListNetworksOptions {
            filters: by_key(key),
        };
        for net in docker.list_networks(Some(options)).await.unwrap() {
            if ours(key, &net.labels.unwrap_or_default()) {
                let _ = docker
                    .remove_network(net.id.as_deref().unwrap_or_default())
                    .await;
                left.push(format!("network {}", net.name.unwrap_or_default()));
            }
        }
    }
    assert!(left.is_empty(), "left behind on the swarm: {left:?}");
}
