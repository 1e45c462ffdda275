//! End to end on real Docker and Podman: the three-task pipeline whose first task
//! writes a run object through the API on its mounted socket, whose second reads it
//! as a `run_object{{...}}` variable, and whose third reads its run's state through
//! the API. The test image `gofer-test/curl:latest` (busybox and curl) is made by
//! scripts/curl-image.sh, which scripts/engines.sh runs.
//!
//! With `CI=true` an unreachable engine fails the test; otherwise it is skipped.

use std::collections::BTreeMap;
use std::sync::Arc;

use gofer_api::{Api, RunTokens};
use gofer_core::naming::LABEL_ENGINE;
use gofer_core::{
    DynScheduler, Pipeline, RequiredParentStatus, Run, RunOptions, RunStatus, Task, TaskStatus,
};
use gofer_engine::Engine;
use gofer_scheduler_docker::DockerScheduler;
use gofer_scheduler_podman::{PodmanConfig, PodmanScheduler};

const IMAGE: &str = "gofer-test/curl:latest";

/// `curl` on the API socket with the run's token, against a path under the run.
const CURL: &str = r#"curl -sS --fail-with-body --unix-socket "$GOFER_API_SOCKET" -H "Authorization: Bearer $GOFER_API_TOKEN""#;
const RUN_URL: &str = r#"http://gofer/api/v1/pipelines/$GOFER_PIPELINE_ID/runs/$GOFER_RUN_ID"#;

fn unreachable(engine: &str, why: &str) -> Option<Arc<DynScheduler>> {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{engine} is required in CI (CI=true) but unreachable: {why}");
    }
    eprintln!("SKIPPED: {engine} is unreachable ({why}); run scripts/engines.sh as root");
    None
}

async fn docker() -> Option<Arc<DynScheduler>> {
    match DockerScheduler::connect_default().await {
        Ok(s) => Some(Arc::new(s)),
        Err(e) => unreachable("Docker", &e.to_string()),
    }
}

async fn podman() -> Option<Arc<DynScheduler>> {
    let config = match PodmanConfig::from_env() {
        Ok(c) => c,
        Err(e) => return unreachable("Podman", &e.to_string()),
    };
    match PodmanScheduler::connect(config).await {
        Ok(s) => Some(Arc::new(s)),
        Err(e) => unreachable("Podman", &e.to_string()),
    }
}

/// The pipeline of the README.
fn pipeline() -> Pipeline {
    Pipeline::new("api_objects", "A parent leaves a run object for its child")
        .task(
            Task::new("build", IMAGE)
                .inject_api_token(true)
                .command([
                    "sh",
                    "-c",
                    &format!(
                        r#"set -e; printf 'built-%s' "$GOFER_RUN_ID" | {CURL} -X PUT --data-binary @- "{RUN_URL}/objects/artifact"; echo stored; echo "token: $GOFER_API_TOKEN""#
                    ),
                ]),
        )
        .task(
            Task::new("deploy", IMAGE)
                .variable("ARTIFACT", "run_object{{artifact}}")
                .depends_on("build", RequiredParentStatus::Success)
                .command([
                    "sh",
                    "-c",
                    r#"echo "deploying $ARTIFACT"; test "$ARTIFACT" = "built-$GOFER_RUN_ID""#,
                ]),
        )
        .task(
            Task::new("report", IMAGE)
                .inject_api_token(true)
                .depends_on("deploy", RequiredParentStatus::Success)
                .command([
                    "sh",
                    "-c",
                    &format!(
                        r#"set -e; {CURL} "{RUN_URL}"; echo; code=$(curl -s -o /dev/null -w '%{{http_code}}' --unix-socket "$GOFER_API_SOCKET" "{RUN_URL}"); echo "without token: $code""#
                    ),
                ]),
        )
}

async fn three_tasks(scheduler: Arc<DynScheduler>, instance: &str) {
    let dir = tempfile::tempdir().expect("dir");
    let sock_dir = dir.path().join("api");
    let logs = dir.path().join("logs");
    let engine = Engine::builder(scheduler.clone())
        .instance_id(instance)
        .log_dir(&logs)
        .token_issuer(Arc::new(RunTokens::new()))
        .api_socket_dir(&sock_dir)
        .build()
        .expect("engine");
    let api = Api::new(engine.clone()).expect("api");
    let server = api.serve_unix(&sock_dir).await.expect("serve");

    let run = engine
        .start_run(&pipeline(), RunOptions::new())
        .expect("start");
    let done = run.wait().await.expect("wait");
    let log = |task: &'static str| {
        let run = run.clone();
        async move {
            run.read_log(task)
                .await
                .expect("log")
                .iter()
                .map(|l| l.text().to_string())
                .collect::<Vec<_>>()
        }
    };
    let (build, deploy, report) = (log("build").await, log("deploy").await, log("report").await);
    let summary = format!(
        "{:#?}\nbuild: {build:?}\ndeploy: {deploy:?}\nreport: {report:?}",
        done.tasks
            .iter()
            .map(|t| (&t.task_id, t.status, t.reason, &t.message))
            .collect::<Vec<_>>()
    );
    assert_eq!(done.status, RunStatus::Successful, "{summary}");
    assert!(build.iter().any(|l| l == "stored"), "{summary}");
    // The token is masked in the log like any secret.
    assert!(
        build
            .iter()
            .any(|l| *l == format!("token: {}", gofer_core::MASK)),
        "{summary}"
    );
    assert!(deploy.iter().any(|l| l == "deploying built-1"), "{summary}");

    // The state the third task read: its parents ended well, itself running.
    let state: Run = serde_json::from_str(report.first().expect("report line")).expect("run JSON");
    assert_eq!(
        (state.pipeline_id.as_str(), state.run_id),
        ("api_objects", 1)
    );
    let status = |id: &str| {
        state
            .tasks
            .iter()
            .find(|t| t.task_id == id)
            .map(|t| t.status)
    };
    assert_eq!(status("build"), Some(TaskStatus::Successful), "{summary}");
    assert_eq!(status("deploy"), Some(TaskStatus::Successful), "{summary}");
    let me = state
        .tasks
        .iter()
        .find(|t| t.task_id == "report")
        .expect("report");
    // The engine records Running once the engine's start call returns, which may be
    // after the container's first request: a task may see itself still Waiting.
    assert!(
        matches!(
            me.state,
            gofer_core::TaskState::Waiting | gofer_core::TaskState::Running
        ),
        "{:?}",
        me.state
    );
    // Its token shows masked, as in `gofer task get`; the socket path in plain text.
    let var = |k: &str| me.variables.iter().find(|v| v.key == k).cloned().expect(k);
    assert!(var("GOFER_API_TOKEN").masked);
    assert_eq!(var("GOFER_API_SOCKET").value, "/run/gofer/api.sock");
    assert!(
        report.iter().any(|l| l == "without token: 401"),
        "{summary}"
    );
    // The token never reaches a log in plain text, and is revoked with the run.
    assert!(!report.join("\n").contains("gofer_"), "{summary}");

    server.shutdown().await.expect("shutdown");
    assert!(!sock_dir.join("api.sock").exists());
    let left = scheduler
        .list(&BTreeMap::from([(
            LABEL_ENGINE.to_string(),
            instance.to_string(),
        )]))
        .await
        .expect("list");
    assert!(left.is_empty(), "left behind: {left:?}");
}

fn instance(engine: &str) -> String {
    format!("apitest-{engine}-{}", std::process::id())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_tasks_on_docker() {
    let Some(s) = docker().await else { return };
    three_tasks(s, &instance("docker")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_tasks_on_podman() {
    let Some(s) = podman().await else { return };
    three_tasks(s, &instance("podman")).await;
}
