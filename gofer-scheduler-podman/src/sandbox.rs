//! The run-scoped network sandbox: a holder container whose network namespace the
//! run's task containers join (`netns: container:<holder>`).
//!
//! Chosen over a Podman pod after measuring both on Podman 4.3.1 (see the crate
//! README): a task joining either starts equally fast, the holder is made faster than a
//! pod (no infra image to build or find), it needs nothing but the configured image,
//! and it is an ordinary container, so [`Scheduler::remove`](gofer_core::Scheduler::remove),
//! [`Scheduler::list`](gofer_core::Scheduler::list) and the reaper handle it like any
//! other. Removing it with `force` also removes containers still joined to it.

use gofer_core::{ContainerSpec, PullPolicy, SandboxSpec};

/// Seconds the holder sleeps: "until stopped" for any practical run.
const HOLD_SECONDS: &str = "2147483647";

/// The holder's container: the sandbox image running `sleep` under an init process (so
/// a stop ends it at once), on the default network so tasks keep network access.
pub(crate) fn holder_spec(spec: SandboxSpec) -> ContainerSpec {
    ContainerSpec::new(spec.name, spec.image)
        .pull_policy(PullPolicy::IfNotPresent)
        .entrypoint(["sleep"])
        .command([HOLD_SECONDS])
        .labels(spec.labels)
        .init(true)
}
