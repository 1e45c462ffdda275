//! Runs last (test binaries run in name order): no container made by this crate's tests
//! is left on the service — neither by its own cases, nor by the conformance cases, nor
//! by the executor's runs.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;

use gofer_core::naming::LABEL_ENGINE;
use gofer_core::testing::conformance::CONFORMANCE_LABEL;
use gofer_core::Scheduler;

#[tokio::test]
async fn no_test_container_is_left_behind() {
    let s = podman_or_skip!();
    let mut left = Vec::new();
    for c in s.list(&BTreeMap::new()).await.unwrap() {
        let ours = c.labels.contains_key(common::TEST_LABEL)
            || c.labels.contains_key(CONFORMANCE_LABEL)
            // Executor and reaper tests use engine instance ids starting with "ptest".
            || c.labels.get(LABEL_ENGINE).is_some_and(|e| e.starts_with("ptest"));
        if ours {
            left.push(c);
        }
    }
    for c in &left {
        let _ = s.remove(&c.id, true).await;
    }
    let names: Vec<_> = left.iter().map(|c| c.name.clone()).collect();
    assert!(names.is_empty(), "containers left behind: {names:?}");
}

/// No volume made by this crate's tests is left (the conformance volume cases, the
/// executor's run workspaces). The Podman backend makes no networks (a run's sandbox is
/// a holder container, checked above).
#[tokio::test]
async fn no_test_volume_is_left_behind() {
    let s = podman_or_skip!();
    let mut left = Vec::new();
    for v in s.list_volumes(&BTreeMap::new()).await.unwrap() {
        let ours = v.labels.contains_key(common::TEST_LABEL)
            || v.labels.contains_key(CONFORMANCE_LABEL)
            || v.labels
                .get(LABEL_ENGINE)
                .is_some_and(|e| e.starts_with("ptest"));
        if ours {
            left.push(v.name);
        }
    }
    for name in &left {
        let _ = s.remove_volume(name).await;
    }
    assert!(left.is_empty(), "volumes left behind: {left:?}");
}
