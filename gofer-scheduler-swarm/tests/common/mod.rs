//! Shared helpers of the real-swarm tests.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gofer_scheduler_swarm::{SwarmConfig, SwarmScheduler};

/// The test image, loaded into both nodes by scripts/setup-swarm.sh.
pub const IMAGE: &str = "gofer-test/busybox:latest";
/// The manager of the project's test swarm (scripts/setup-swarm.sh); `GOFER_SWARM_HOST`
/// overrides it.
pub const MANAGER: &str = "unix:///run/gofer-swarm/manager.sock";
/// The label every service made by these tests carries; the last test binary checks
/// that none is left.
pub const SUITE_LABEL: &str = "dev.gofer.test-suite";
/// Its value.
pub const SUITE: &str = "gofer-scheduler-swarm";
/// Engine instance ids of the executor tests start with this.
pub const INSTANCE_PREFIX: &str = "stest";

/// The config of the tests: the test swarm, and the conformance suite's stop grace.
pub fn config() -> SwarmConfig {
    let host = std::env::var("GOFER_SWARM_HOST").unwrap_or_else(|_| MANAGER.to_string());
    SwarmConfig::new()
        .host(host)
        .stop_grace(gofer_core::testing::conformance::STOP_GRACE)
}

/// Connects to the test swarm; outside CI an unreachable swarm skips the test (returns
/// `None` after saying why), with `CI=true` it fails.
pub async fn scheduler() -> Option<SwarmScheduler> {
    match SwarmScheduler::connect(config()).await {
        Ok(s) => Some(s),
        Err(e) => {
            let reason = format!(
                "the test swarm is unreachable ({e}); run scripts/setup-swarm.sh as root to make it"
            );
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("{reason}");
            }
            eprintln!("skipping: {reason}");
            None
        }
    }
}

/// A unique, short engine instance id (the executor labels its services with it).
pub fn instance() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .subsec_nanos();
    format!(
        "{INSTANCE_PREFIX}{}{:x}{}",
        std::process::id() % 10_000,
        nanos % 0xfffff,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The labels of one test case.
pub fn case_labels(case: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (SUITE_LABEL.to_string(), SUITE.to_string()),
        ("dev.gofer.test-case".to_string(), case.to_string()),
    ])
}
