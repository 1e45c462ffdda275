//! Crash recovery on the real Docker engine.
//!
//! This test binary is also the host under test (`gofer_engine::testing::crash`): its
//! `host_process` test starts (or recovers) a run on Docker with a SQLite run store and
//! a file log sink in the case's data directory and reports what happens; the other
//! tests start it as a child process, kill it with SIGKILL at the worst moments, start
//! it again on the same directory and check the outcome. In CI (`CI=true`) an unreachable Docker engine fails these tests; outside
//! CI they skip, saying why.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use common::{log_sink, pipeline, service_pipeline, Fixture, CASE_ENV, IMAGE, PIPELINE, TASK};
use gofer_core::{DynScheduler, ExitStatus, RunStore, TaskState};
use gofer_engine::testing::crash::{self, hooked, EXIT_BEFORE_START};
use gofer_engine::{Engine, LogKey};
use gofer_scheduler_docker::DockerScheduler;
use gofer_store_sqlite::SqliteRunStore;

/// The host: on Docker (behind the hook when asked), the pipeline of its case.
#[tokio::test]
async fn host_process() {
    let Some((dir, instance)) = crash::host_env() else {
        return; // Only meaningful as the child of the tests below.
    };
    let docker: Arc<DynScheduler> = Arc::new(DockerScheduler::connect_default().await.unwrap());
    let store = SqliteRunStore::open_dir(&dir).unwrap();
    let with_service = std::env::var(CASE_ENV).as_deref() == Ok("service");
    let (scheduler, pipeline) = if with_service {
        (docker, service_pipeline())
    } else {
        (hooked(docker), pipeline())
    };
    let mut builder = Engine::builder(scheduler)
        .instance_id(instance)
        .log_sink(Arc::new(log_sink(&dir)))
        .run_store(Arc::new(store));
    if with_service {
        builder = builder.network_sandbox(IMAGE);
    }
    crash::host(&builder.build().unwrap(), &pipeline, TASK).await;
}

async fn connect() -> Option<Arc<DynScheduler>> {
    DockerScheduler::connect_default()
        .await
        .ok()
        .map(|d| Arc::new(d) as Arc<DynScheduler>)
}

fn fixture(docker: DockerScheduler, case: &str) -> Fixture {
    Fixture::new(&format!("rec{case}"), Arc::new(docker), || {
        Box::pin(connect())
    })
}

/// Docker, or `None` (outside CI) when it cannot be reached.
async fn docker() -> Option<DockerScheduler> {
    match DockerScheduler::connect_default().await {
        Ok(s) => Some(s),
        Err(e) => {
            let reason = format!(
                "Docker engine unreachable ({e}); run scripts/setup-docker.sh as root to set it up"
            );
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("{reason}");
            }
            eprintln!("skipping: {reason}");
            None
        }
    }
}

#[tokio::test]
async fn host_killed_mid_run_recovers_and_finishes_with_the_whole_log() {
    let Some(docker) = docker().await else { return };
    let f = fixture(docker, "mid");
    let mut first = f.host(None);
    first.until("LOG before");
    first.kill();
    let running: Vec<_> = f.containers().await;
    assert_eq!(running.len(), 1, "the task's container outlives its host");

    let (_, reports) = f.recover_and_release("Reattached").await;
    f.assert_finished_whole(&reports).await;
}

#[tokio::test]
async fn host_killed_between_recorded_starting_and_container_start() {
    let Some(docker) = docker().await else { return };
    let f = fixture(docker, "gap");
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
    assert!(f.containers().await.is_empty(), "no container was created");

    let (_, reports) = f.recover_and_release("Restarted").await;
    f.assert_finished_whole(&reports).await;
}

#[tokio::test]
async fn host_killed_while_away_container_exits_is_collected() {
    let Some(docker) = docker().await else { return };
    let f = fixture(docker, "away");
    let mut first = f.host(None);
    first.until("LOG before");
    first.kill();
    // The container finishes while no host is there.
    f.release_task().await;
    let c = f.containers().await.pop().expect("the task's container");
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

/// A host killed while a task uses a service: recovery adopts the service container
/// (the task's second fetch gets the same token from the same container, never a
/// restarted one), keeps its log whole, and nothing is left.
#[tokio::test]
async fn host_killed_mid_run_adopts_the_service_its_task_uses() {
    let Some(docker) = docker().await else { return };
    let mut f = fixture(docker, "svc");
    f.extra.push((CASE_ENV, "service"));
    let mut first = f.host(None);
    first.until("LOG before");
    first.kill();
    let roles: Vec<String> = f
        .containers()
        .await
        .into_iter()
        .filter_map(|c| c.labels.get(gofer_core::naming::LABEL_ROLE).cloned())
        .collect();
    assert!(
        roles.iter().filter(|r| *r == "service").count() == 1 && roles.contains(&"task".into()),
        "the service and the task outlive their host: {roles:?}"
    );

    let (_, reports) = f.recover_and_release("Reattached").await;
    assert!(
        reports.iter().any(|r| r == "DONE Successful"),
        "{reports:?}"
    );
    let log = f.log(1);
    let tokens: Vec<&str> = log
        .iter()
        .filter_map(|l| l.split_once(' ').map(|(_, token)| token))
        .collect();
    assert!(
        log.len() == 2 && tokens.len() == 2 && tokens[0].len() >= 32 && tokens[0] == tokens[1],
        "both fetches served by the one service container: {log:?}"
    );
    assert_eq!(
        f.log_of(&LogKey::service(PIPELINE, 1, "web")),
        ["serving"],
        "the service's log, whole and once"
    );
    let left: Vec<String> = f.containers().await.into_iter().map(|c| c.name).collect();
    assert!(left.is_empty(), "containers left behind: {left:?}");
}
