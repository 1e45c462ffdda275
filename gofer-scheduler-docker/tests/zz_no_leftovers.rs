//! Runs last (test binaries run in name order): no container made by this crate's tests
//! is left on the engine — neither by its own cases, nor by the conformance cases, nor
//! by the executor's runs.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;

use bollard::query_parameters::ListContainersOptions;
use common::*;
use gofer_core::naming::LABEL_ENGINE;
use gofer_core::testing::conformance::CONFORMANCE_LABEL;
use gofer_core::{ContainerId, Scheduler};

#[tokio::test]
async fn no_test_container_is_left_behind() {
    let Some(s) = scheduler().await else { return };
    let mut left = Vec::new();
    for key in [SUITE_LABEL, CONFORMANCE_LABEL, LABEL_ENGINE] {
        let options = ListContainersOptions {
            all: true,
            filters: Some(HashMap::from([(
                "label".to_string(),
                vec![key.to_string()],
            )])),
            ..Default::default()
        };
        for c in s.client().list_containers(Some(options)).await.unwrap() {
            let labels = c.labels.unwrap_or_default();
            // Executor tests use engine instance ids starting with "dtest".
            if key == LABEL_ENGINE && !labels[LABEL_ENGINE].starts_with("dtest") {
                continue;
            }
            left.push((c.id.unwrap_or_default(), c.names.unwrap_or_default()));
        }
    }
    for (id, _) in &left {
        let _ = s.remove(&ContainerId(id.clone()), true).await;
    }
    assert!(left.is_empty(), "containers left behind: {left:?}");
}

/// No volume made by this crate's tests is left (the conformance volume cases, the
/// executor's run workspaces). The Docker backend makes no networks (a run's sandbox
/// is a holder container, checked above).
#[tokio::test]
async fn no_test_volume_is_left_behind() {
    let Some(s) = scheduler().await else { return };
    let mut left = Vec::new();
    for v in s.list_volumes(&Default::default()).await.unwrap() {
        let ours = v.labels.contains_key(CONFORMANCE_LABEL)
            || v.labels.contains_key(SUITE_LABEL)
            || v.labels
                .get(LABEL_ENGINE)
                .is_some_and(|e| e.starts_with("dtest"));
        if ours {
            left.push(v.name);
        }
    }
    for name in &left {
        let _ = s.remove_volume(name).await;
    }
    assert!(left.is_empty(), "volumes left behind: {left:?}");
}
