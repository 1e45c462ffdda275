//! Shared helpers of the real-containerd tests.
#![allow(dead_code, clippy::unwrap_used)]

use std::time::{SystemTime, UNIX_EPOCH};

use gofer_scheduler_containerd::{ContainerdConfig, ContainerdScheduler};

/// The local test image (imported into the namespace by scripts/setup-containerd.sh).
pub const IMAGE: &str = "gofer-test/busybox:latest";
/// The image with curl.
pub const CURL_IMAGE: &str = "gofer-test/curl:latest";
/// Label key every test container carries, with a value unique to this test process.
pub const TEST_LABEL: &str = "dev.gofer.test";

/// The tests' containerd: `CONTAINERD_ADDRESS`, else the socket the set-up script makes.
pub fn config() -> ContainerdConfig {
    let socket = std::env::var("CONTAINERD_ADDRESS")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "/run/gofer-containerd/containerd.sock".to_string());
    ContainerdConfig::unix(socket)
}

/// Connects to containerd. When it is unreachable: panics when `CI=true`, otherwise
/// prints why and returns `None` so the test can skip.
pub async fn containerd() -> Option<ContainerdScheduler> {
    match ContainerdScheduler::connect(config()).await {
        Ok(s) => Some(s),
        Err(e) => {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("containerd is required in CI (CI=true) but unreachable: {e}");
            }
            eprintln!(
                "SKIPPED: containerd is unreachable ({e}); run scripts/setup-containerd.sh as root"
            );
            None
        }
    }
}

/// Unwraps [`containerd`] or returns from the test (skip).
#[macro_export]
macro_rules! containerd_or_skip {
    () => {
        match common::containerd().await {
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
