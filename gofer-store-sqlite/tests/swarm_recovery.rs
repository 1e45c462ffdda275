//! Crash recovery on the real two-node test swarm (scripts/setup-swarm.sh), as
//! `docker_recovery.rs` does it on Docker.
//!
//! This test binary is also the host under test (`gofer_engine::testing::crash`): its
//! `host_process` test starts (or recovers) a run on the swarm — with a run network —
//! with a SQLite run store and a file log sink in the case's data directory and
//! reports what happens. The other tests start it as a child process, kill it with SIGKILL mid-run, start it again on the same directory
//! and check the outcome: the service re-attached (not started again), the whole log
//! once, nothing left on the swarm. In CI (`CI=true`) an unreachable swarm fails these
//! tests; outside CI they skip, saying why.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{log_sink, pipeline, Fixture, IMAGE, PIPELINE, TASK};
use gofer_core::naming::LABEL_ROLE;
use gofer_core::{ContainerSummary, DynScheduler, ExitStatus, RunStore, TaskState};
use gofer_engine::testing::crash::{self, hooked, EXIT_BEFORE_START};
use gofer_engine::Engine;
use gofer_scheduler_swarm::{SwarmConfig, SwarmScheduler};
use gofer_store_sqlite::SqliteRunStore;

/// The manager of the project's test swarm; `GOFER_SWARM_HOST` overrides it.
fn swarm_config() -> SwarmConfig {
    let host = std::env::var("GOFER_SWARM_HOST")
        .unwrap_or_else(|_| "unix:///run/gofer-swarm/manager.sock".to_string());
    SwarmConfig::new()
        .host(host)
        .stop_grace(Duration::from_secs(2))
}

/// The host: on the swarm (behind the hook when asked), with a run network.
#[tokio::test]
async fn host_process() {
    let Some((dir, instance)) = crash::host_env() else {
        return; // Only meaningful as the child of the tests below.
    };
    let swarm = SwarmScheduler::connect(swarm_config()).await.unwrap();
    let engine = Engine::builder(hooked(Arc::new(swarm)))
        .instance_id(instance)
        .network_sandbox(IMAGE)
        .log_sink(Arc::new(log_sink(&dir)))
        .run_store(Arc::new(SqliteRunStore::open_dir(&dir).unwrap()))
        .build()
        .unwrap();
    crash::host(&engine, &pipeline(), TASK).await;
}

async fn connect() -> Option<Arc<DynScheduler>> {
    SwarmScheduler::connect(swarm_config())
        .await
        .ok()
        .map(|s| Arc::new(s) as Arc<DynScheduler>)
}

/// Its instance starts with "stest": the swarm crate's leftover check looks for these.
fn fixture(swarm: SwarmScheduler, case: &str) -> Fixture {
    Fixture::new(&format!("stestrec{case}"), Arc::new(swarm), || {
        Box::pin(connect())
    })
}

/// The swarm, or `None` (outside CI) when it cannot be reached.
async fn swarm() -> Option<SwarmScheduler> {
    match SwarmScheduler::connect(swarm_config()).await {
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

/// The task's services (the run network aside).
fn services(all: &[ContainerSummary]) -> Vec<&ContainerSummary> {
    all.iter()
        .filter(|c| c.labels.get(LABEL_ROLE).map(String::as_str) == Some("task"))
        .collect()
}

#[tokio::test]
async fn host_killed_mid_run_recovers_reattached_and_finishes_with_the_whole_log() {
    let Some(swarm) = swarm().await else { return };
    let f = fixture(swarm, "mid");
    let mut first = f.host(None);
    first.until("LOG before");
    first.kill();
    let live = f.containers().await;
    let before = services(&live);
    assert_eq!(
        before.len(),
        1,
        "the task's service outlives its host: {live:?}"
    );
    assert_eq!(live.len(), 2, "and so does the run network: {live:?}");
    let service = before[0].id.clone();

    let (_, reports) = f.recover_and_release("Reattached").await;
    // Re-attached: no second service was made for the task (the first one's id is the
    // one the run store holds).
    let store = SqliteRunStore::open_dir(f.dir()).unwrap();
    let t = store.get_task(PIPELINE, 1, TASK).await.unwrap().execution;
    assert_eq!(t.container.and_then(|c| c.id), Some(service.0));
    drop(store);
    f.assert_finished_whole(&reports).await;
}

#[tokio::test]
async fn host_killed_while_away_task_ends_is_collected() {
    let Some(swarm) = swarm().await else { return };
    let f = fixture(swarm, "away");
    let mut first = f.host(None);
    first.until("LOG before");
    first.kill();
    // The task finishes while no host is there.
    f.release_task().await;
    let live = f.containers().await;
    let c = services(&live).pop().expect("the task's service").clone();
    let exit = f.scheduler.wait(&c.id).await.unwrap();
    assert_eq!(exit, ExitStatus::Exited { code: 0 });

    let (status, reports) = f.host(None).wait();
    assert!(status.success(), "second host failed: {reports:?}");
    assert!(
        reports.iter().any(|r| r == "ACTION sleeper Collected"),
        "{reports:?}"
    );
    f.assert_finished_whole(&reports).await;
}

#[tokio::test]
async fn host_killed_between_recorded_starting_and_service_create() {
    let Some(swarm) = swarm().await else { return };
    let f = fixture(swarm, "gap");
    let (status, reports) = f.host(Some("exit_before_start")).wait();
    assert_eq!(status.code(), Some(EXIT_BEFORE_START), "{reports:?}");
    {
        let store = SqliteRunStore::open_dir(f.dir()).unwrap();
        let t = store.get_task(PIPELINE, 1, TASK).await.unwrap().execution;
        let c = t
            .container
            .expect("container name recorded before the start");
        assert_eq!(c.id, None);
        assert_ne!(t.state, TaskState::Complete);
    }
    assert!(
        services(&f.containers().await).is_empty(),
        "no service was created"
    );

    let (_, reports) = f.recover_and_release("Restarted").await;
    f.assert_finished_whole(&reports).await;
}
