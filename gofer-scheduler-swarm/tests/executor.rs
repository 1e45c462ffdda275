//! The run executor on the real two-node swarm: the shared engine checks
//! (`gofer_engine::testing`) with Swarm's run network in place of a shared
//! namespace.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use common::*;
use gofer_core::DynScheduler;
use gofer_engine::testing;
use gofer_scheduler_swarm::SwarmScheduler;

/// What the image and the engine itself set, beside the contract's variables.
const ENGINE_ENV: &[&str] = &["PATH", "HOSTNAME", "HOME"];

fn sched(s: &SwarmScheduler) -> Arc<DynScheduler> {
    Arc::new(s.clone())
}

#[tokio::test]
async fn the_seed_hello_world_pipeline_prints_its_greeting() {
    let Some(s) = scheduler().await else { return };
    testing::hello_world(sched(&s), IMAGE, &instance()).await;
}

#[tokio::test]
async fn a_task_sees_exactly_the_contract_variables() {
    let Some(s) = scheduler().await else { return };
    testing::exact_contract_variables(sched(&s), IMAGE, &instance(), ENGINE_ENV).await;
}

#[tokio::test]
async fn tasks_of_a_run_reach_each_other_by_task_id_on_the_run_network() {
    let Some(s) = scheduler().await else { return };
    testing::run_network_reaches_tasks_by_id(sched(&s), IMAGE, &instance()).await;
}

#[tokio::test]
async fn the_run_network_is_removed_when_a_run_is_cancelled() {
    let Some(s) = scheduler().await else { return };
    testing::sandbox_removed_on_cancel(sched(&s), IMAGE, &instance()).await;
}

#[tokio::test]
async fn the_run_network_is_removed_when_a_run_fails() {
    let Some(s) = scheduler().await else { return };
    testing::sandbox_removed_on_failure(sched(&s), IMAGE, &instance()).await;
}

#[tokio::test]
async fn the_api_socket_is_refused_since_binds_are_on_the_tasks_node() {
    let Some(s) = scheduler().await else { return };
    let caps = gofer_core::Scheduler::capabilities(&s);
    assert!(caps.mounts && !caps.local_bind_mounts, "{caps:?}");
    let e = gofer_engine::Engine::builder(sched(&s))
        .instance_id(instance())
        .api_socket_dir(std::env::temp_dir().join("gofer-swarm-api-never"))
        .build()
        .unwrap_err();
    assert!(
        matches!(
            e,
            gofer_engine::EngineError::ApiSocketNotSupported { scheduler: "swarm" }
        ),
        "{e}"
    );
}

#[tokio::test]
async fn capabilities_say_the_grace_is_fixed_at_create() {
    use gofer_core::Scheduler;
    let Some(s) = scheduler().await else { return };
    let caps = s.capabilities();
    assert!(
        !caps.per_stop_grace,
        "Swarm cannot change a task's stop grace"
    );
    assert!(caps.mounts && caps.network_sandbox && caps.registry_auth);
}
