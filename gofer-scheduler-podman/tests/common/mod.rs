//! Shared helpers of the real-Podman tests.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use gofer_core::{ContainerId, LogStream, OutputStream, Scheduler};
use gofer_scheduler_podman::{PodmanConfig, PodmanScheduler};

/// The local test image.
pub const IMAGE: &str = "gofer-test/busybox:latest";
/// Label key every test container carries, with a value unique to this test process.
pub const TEST_LABEL: &str = "dev.gofer.test";

/// Connects to the Podman service. When it is unreachable: panics when `CI=true`,
/// otherwise prints why and returns `None` so the test can skip.
pub async fn podman() -> Option<PodmanScheduler> {
    let config = match PodmanConfig::from_env() {
        Ok(c) => c,
        Err(e) => return unreachable(&e.to_string()),
    };
    match PodmanScheduler::connect(config).await {
        Ok(s) => Some(s),
        Err(e) => unreachable(&e.to_string()),
    }
}

fn unreachable(why: &str) -> Option<PodmanScheduler> {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("Podman is required in CI (CI=true) but unreachable: {why}");
    }
    eprintln!("SKIPPED: Podman is unreachable ({why}); run scripts/setup-podman.sh as root");
    None
}

/// Unwraps [`podman`] or returns from the test (skip).
#[macro_export]
macro_rules! podman_or_skip {
    () => {
        match common::podman().await {
            Some(s) => s,
            None => return,
        }
    };
}

/// A value unique to this process.
pub fn run_id() -> &'static str {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(|| {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        format!("{}-{}", std::process::id(), nanos % 1_000_000_000)
    })
}

/// A unique container name for one test case.
pub fn unique_name(case: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "gofer-ptest-{}-{case}-{}",
        run_id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The labels of one test case: the process's run label plus the case.
pub fn case_labels(case: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (TEST_LABEL.to_string(), run_id().to_string()),
        ("dev.gofer.test.case".to_string(), case.to_string()),
    ])
}

/// Asserts that nothing carrying `labels` is left.
pub async fn assert_clean(s: &PodmanScheduler, labels: &BTreeMap<String, String>) {
    let left = s.list(labels).await.unwrap();
    assert!(left.is_empty(), "containers left behind: {left:?}");
}

/// Removes `id` (forcibly), ignoring an already-removed container.
pub async fn cleanup(s: &PodmanScheduler, id: &ContainerId) {
    match s.remove(id, true).await {
        Ok(()) | Err(gofer_core::SchedulerError::NoSuchContainer { .. }) => {}
        Err(e) => panic!("cleanup of {id} failed: {e}"),
    }
}

/// Reads a log stream to its end: (stdout, stderr).
pub async fn read_all(mut logs: LogStream) -> (String, String) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    while let Some(chunk) = logs.next().await {
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
