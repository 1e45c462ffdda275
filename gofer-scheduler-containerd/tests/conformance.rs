//! The scheduler conformance suite against a real containerd.
//!
//! Outside CI an unreachable containerd skips every case (saying why); with `CI=true` it
//! fails them. The cases run one at a time: some of them check how long a stop takes,
//! and on a small machine the twenty containers of a neighbouring case would be
//! measured with it.
#![allow(clippy::unwrap_used)]

mod common;

use gofer_core::testing::conformance::Workloads;
use gofer_core::RegistryAuth;
use gofer_scheduler_containerd::ContainerdScheduler;

async fn setup() -> Option<(ContainerdScheduler, Workloads)> {
    let s = common::containerd().await?;
    let workloads = Workloads::busybox(common::IMAGE).private_image(
        "localhost:5001/private/busybox:latest",
        RegistryAuth::new("gofer", "s3cret"),
    );
    Some((s, workloads))
}

gofer_core::conformance_tests!(one_at_a_time: setup());
