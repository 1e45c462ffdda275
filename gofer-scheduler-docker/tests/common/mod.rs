//! Shared helpers of the real-engine tests.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use gofer_core::{ContainerId, ContainerSpec, OutputStream, Scheduler};
use gofer_scheduler_docker::DockerScheduler;

/// The local test image (made by scripts/setup-docker.sh).
pub const IMAGE: &str = "gofer-test/busybox:latest";
/// The label every container made by these tests carries; the last test binary checks
/// that none is left.
pub const SUITE_LABEL: &str = "dev.gofer.test-suite";
/// Its value.
pub const SUITE: &str = "gofer-scheduler-docker";
/// The per-test label.
pub const CASE_LABEL: &str = "dev.gofer.test-case";

/// Connects to the engine; outside CI an unreachable engine skips the test (returns
/// `None` after saying why), with `CI=true` it fails.
pub async fn scheduler() -> Option<DockerScheduler> {
    match DockerScheduler::connect_default().await {
        Ok(s) => Some(s),
        Err(e) => {
            let reason = format!(
                "Docker engine unreachable ({e}); run scripts/setup-docker.sh as root to set it up"
            );
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("{reason}");
            }
            eprintln!("skipping: {reason}");
            None
        }
    }
}

/// A name unique to this process and call.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "gofer-test-{prefix}-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The labels of one test case.
pub fn case_labels(case: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (SUITE_LABEL.to_string(), SUITE.to_string()),
        (CASE_LABEL.to_string(), case.to_string()),
    ])
}

/// A spec for the test image, labelled for `case`.
pub fn spec(case: &str, name: &str) -> ContainerSpec {
    ContainerSpec::new(name, IMAGE).labels(case_labels(case))
}

/// Everything a container wrote, per stream.
pub async fn output(s: &DockerScheduler, id: &ContainerId) -> (String, String) {
    let mut stream = s.logs(id).await.unwrap();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        match chunk.stream {
            OutputStream::Stdout => out.extend_from_slice(&chunk.data),
            OutputStream::Stderr => err.extend_from_slice(&chunk.data),
        }
    }
    (
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

/// Removes every container of `case` and asserts none is left.
pub async fn cleanup(s: &DockerScheduler, case: &str) {
    for c in s.list(&case_labels(case)).await.unwrap() {
        let _ = s.remove(&c.id, true).await;
    }
    assert!(s.list(&case_labels(case)).await.unwrap().is_empty());
}
