//! The scheduler conformance suite against the real two-node test swarm.
//!
//! Outside CI an unreachable swarm skips every case (saying why); with `CI=true` it
//! fails them. The cases run one at a time, as for Docker: a few of them time a stop.
//!
//! Differences from Docker, as data: no out-of-memory workload (Swarm reports a memory
//! kill as exit 137 without saying it was one); no private-registry image (the nodes
//! cannot reach the host's registries); the stop grace is each spec's (Swarm fixes it
//! at create, so `stop_honours_the_grace_of_each_call` is skipped, and the stop cases
//! prove the spec's grace wins over the config's 10 s); and a stop may take 3 s more
//! than the grace: the swarm hands a stop to the node's agent, which sends SIGTERM
//! about 1.4 s after the request (measured here on Docker 20.10, also with
//! `docker service rm`), and reports the kill back through the manager (stops of a
//! TERM-ignoring task with a 2 s grace took 3.6–4.1 s).

mod common;

use std::time::Duration;

#[allow(unused_imports)]
use gofer_core::testing::conformance::Workloads;

gofer_core::conformance_tests!(one_at_a_time: async {
    common::scheduler().await.map(|s| {
        let workloads = Workloads::busybox(common::IMAGE)
            .oom(None)
            .stop_slack(Duration::from_secs(3));
        (s, workloads)
    })
});
