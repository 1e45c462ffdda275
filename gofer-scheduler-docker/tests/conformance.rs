//! The scheduler conformance suite against the real Docker engine.
//!
//! Outside CI an unreachable engine skips every case (saying why); with `CI=true` it
//! fails them. The cases run one at a time: a few of them check how long a stop takes,
//! and on a small machine twenty containers of a neighbouring case would be measured
//! with it.

mod common;

use gofer_core::testing::conformance::Workloads;
use gofer_core::RegistryAuth;

gofer_core::conformance_tests!(one_at_a_time: async {
    common::scheduler().await.map(|s| {
        let workloads = Workloads::busybox(common::IMAGE).private_image(
            "localhost:5001/private/busybox:latest",
            RegistryAuth::new("gofer", "s3cret"),
        );
        (s, workloads)
    })
});
