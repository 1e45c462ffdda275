//! Runs last (test binaries run in name order): no container made by this crate's tests
//! is left on the engine.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;

use common::*;
use gofer_core::Scheduler;

#[tokio::test]
async fn no_test_container_is_left_behind() {
    let Some(s) = scheduler().await else { return };
    let left = s
        .list(&BTreeMap::from([(
            SUITE_LABEL.to_string(),
            SUITE.to_string(),
        )]))
        .await
        .unwrap();
    let names: Vec<_> = left.iter().map(|c| c.name.clone()).collect();
    for c in &left {
        let _ = s.remove(&c.id, true).await;
    }
    assert!(names.is_empty(), "containers left behind: {names:?}");
}
