//! The engine registers every secret value a run sees in the host's SecretRegistry,
//! for as long as the run lives and the registry's grace after.

use std::sync::Arc;
use std::time::Duration;

use gofer_core::fake::{Behaviour, FakeScheduler};
use gofer_core::secrecy::SecretString;
use gofer_core::{
    InMemorySecretStore, Pipeline, RunOptions, RunStatus, SecretStore, Task, TaskState, MASK,
};
use gofer_engine::SecretRegistry;

use crate::common::*;

async fn run_with_a_secret(registry: &SecretRegistry) -> (gofer_engine::RunHandle, FakeScheduler) {
    let fake = FakeScheduler::new().image("busybox", Behaviour::run_until_stopped());
    let secrets = Arc::new(InMemorySecretStore::new());
    secrets
        .put_pipeline_secret(
            "reg",
            "db",
            SecretString::from("db-pass-77".to_string()),
            false,
        )
        .await
        .unwrap();
    let (b, _) = builder(&fake);
    let e = b
        .secret_store(secrets)
        .secret_registry(registry.clone())
        .build()
        .unwrap();
    let p = Pipeline::new("reg", "reg")
        .task(Task::new("uses", "busybox").variable("DB", "secret{{db}}"));
    let h = e.start_run(&p, RunOptions::new()).unwrap();
    h.wait_task("uses", TaskState::Running).await.unwrap();
    (h, fake)
}

#[tokio::test(start_paused = true)]
async fn a_running_runs_secrets_are_in_the_registry_and_stay_for_the_grace() {
    let registry = SecretRegistry::with_grace(Duration::from_secs(3600));
    assert_eq!(
        registry.mask("db-pass-77"),
        "db-pass-77",
        "nothing before the run"
    );
    let (h, _fake) = run_with_a_secret(&registry).await;
    assert_eq!(registry.mask("x db-pass-77 y"), format!("x {MASK} y"));
    h.cancel(Duration::from_secs(1));
    assert_eq!(finish(&h).await.status, RunStatus::Cancelled);
    drop(h);
    // Ended, within the grace: still masked (a late record of the backend).
    assert_eq!(registry.mask("db-pass-77"), MASK);
}

#[tokio::test(start_paused = true)]
async fn an_ended_runs_secrets_go_after_the_grace() {
    let registry = SecretRegistry::with_grace(Duration::ZERO);
    let (h, _fake) = run_with_a_secret(&registry).await;
    assert_eq!(registry.mask("db-pass-77"), MASK);
    h.cancel(Duration::from_secs(1));
    finish(&h).await;
    drop(h);
    // The run's context goes with its executor once it ended (its cleanup is on
    // this paused runtime: yielding lets it finish, no wall time involved).
    for _ in 0..10_000 {
        if registry.mask("db-pass-77") == "db-pass-77" {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("the ended run's secret stayed registered past a zero grace");
}
