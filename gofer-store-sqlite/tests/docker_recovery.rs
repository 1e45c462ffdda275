//! Crash recovery on the real Docker engine.
//!
//! This test binary is also the host under test: run with `GOFER_RECOVERY_DIR` set,
//! its `host_process` test starts (or recovers) a run on Docker with a SQLite run store
//! and a file log sink in that data directory, prints what happens on stdout and exits
//! when the run is done. The other tests start it as a child process, kill it with
//! SIGKILL at the worst moments, start it again on the same directory and check the
//! outcome. In CI (`CI=true`) an unreachable Docker engine fails these tests; outside
//! CI they skip, saying why.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use futures::StreamExt;
use gofer_core::naming::engine_filter;
use gofer_core::{
    Capabilities, ContainerId, ContainerSpec, ContainerState, ContainerSummary, DynScheduler,
    ExitStatus, LogStream, Pipeline, PullPolicy, RunOptions, RunStatus, RunStore, Scheduler,
    SchedulerError, Task, TaskState,
};
use gofer_engine::{Engine, FileLogSink, LogKey, LogSink};
use gofer_scheduler_docker::DockerScheduler;
use gofer_store_sqlite::SqliteRunStore;

const IMAGE: &str = "gofer-test/busybox:latest";
/// The data directory: set, the binary acts as the host.
const DIR_ENV: &str = "GOFER_RECOVERY_DIR";
/// The engine instance id of the host.
const INSTANCE_ENV: &str = "GOFER_RECOVERY_INSTANCE";
/// Set to `exit_before_start`: the host exits (code 17) when the engine asks Docker to
/// start the task's container — after the task was recorded as starting.
const HOOK_ENV: &str = "GOFER_RECOVERY_HOOK";
const HOOK_EXIT: i32 = 17;
/// Set to `service`: the run is [`service_pipeline`]'s, in a network sandbox.
const CASE_ENV: &str = "GOFER_RECOVERY_CASE";
const PIPELINE: &str = "recovery";
const TASK: &str = "sleeper";

fn pipeline() -> Pipeline {
    Pipeline::new(PIPELINE, "Crash recovery").task(
        Task::new(TASK, IMAGE)
            .command(["sh", "-c", "echo before; sleep 3; echo after"])
            .pull_policy(PullPolicy::Never),
    )
}

/// A service whose page is a token drawn when it starts, and a task that fetches it
/// before and after a pause: the same token twice means the same service container
/// served both fetches.
fn service_pipeline() -> Pipeline {
    let fetch = "busybox timeout 5 busybox wget -q -O - http://127.0.0.1:8080/";
    Pipeline::new(PIPELINE, "Crash recovery with a service")
        .service(
            gofer_core::Service::new("web", IMAGE)
                .command([
                    "sh",
                    "-c",
                    "mkdir -p /www && cat /proc/sys/kernel/random/uuid > /www/index.html \
                     && echo serving && exec httpd -f -p 8080 -h /www",
                ])
                .pull_policy(PullPolicy::Never)
                .readiness(gofer_core::Readiness::new(
                    ["sh", "-c", fetch],
                    Duration::from_millis(200),
                    Duration::from_secs(60),
                )),
        )
        .task(
            Task::new(TASK, IMAGE)
                .command([
                    "sh".to_string(),
                    "-c".to_string(),
                    format!("echo before $({fetch}); sleep 3; echo after $({fetch})"),
                ])
                .pull_policy(PullPolicy::Never)
                .needs_service("web"),
        )
}

/// Docker, behind a hook that can kill the host at the start of a container.
#[derive(Debug)]
struct Hooked(DockerScheduler);

#[async_trait]
impl Scheduler for Hooked {
    fn name(&self) -> &'static str {
        self.0.name()
    }
    fn capabilities(&self) -> Capabilities {
        self.0.capabilities()
    }
    async fn start(&self, spec: ContainerSpec) -> Result<ContainerId, SchedulerError> {
        if std::env::var(HOOK_ENV).as_deref() == Ok("exit_before_start") {
            say("EXITING before start");
            std::process::exit(HOOK_EXIT);
        }
        self.0.start(spec).await
    }
    async fn wait(&self, id: &ContainerId) -> Result<ExitStatus, SchedulerError> {
        self.0.wait(id).await
    }
    async fn state(&self, id: &ContainerId) -> Result<ContainerState, SchedulerError> {
        self.0.state(id).await
    }
    async fn start_created(&self, id: &ContainerId) -> Result<(), SchedulerError> {
        self.0.start_created(id).await
    }
    async fn logs(&self, id: &ContainerId) -> Result<LogStream, SchedulerError> {
        self.0.logs(id).await
    }
    async fn stop(&self, id: &ContainerId, grace: Duration) -> Result<(), SchedulerError> {
        self.0.stop(id, grace).await
    }
    async fn remove(&self, id: &ContainerId, force: bool) -> Result<(), SchedulerError> {
        self.0.remove(id, force).await
    }
    async fn list(
        &self,
        labels: &BTreeMap<String, String>,
    ) -> Result<Vec<ContainerSummary>, SchedulerError> {
        self.0.list(labels).await
    }
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "GOFER: {line}");
    let _ = out.flush();
}

/// The host: recover, start the run when the store has none, follow the run's log,
/// wait for it.
#[tokio::test]
async fn host_process() {
    let Ok(dir) = std::env::var(DIR_ENV) else {
        return; // Only meaningful as the child of the tests below.
    };
    let instance = std::env::var(INSTANCE_ENV).unwrap();
    let docker = DockerScheduler::connect_default().await.unwrap();
    let store = SqliteRunStore::open_dir(&dir).unwrap();
    let with_service = std::env::var(CASE_ENV).as_deref() == Ok("service");
    let (scheduler, pipeline): (Arc<DynScheduler>, _) = if with_service {
        (Arc::new(docker), service_pipeline())
    } else {
        (Arc::new(Hooked(docker)), pipeline())
    };
    let mut builder = Engine::builder(scheduler)
        .instance_id(instance)
        .log_sink(Arc::new(FileLogSink::new(Path::new(&dir).join("logs"))))
        .run_store(Arc::new(store.clone()));
    if with_service {
        builder = builder.network_sandbox(IMAGE);
    }
    let engine = builder.build().unwrap();
    let report = engine.recover().await.unwrap();
    for t in &report.tasks {
        say(&format!("ACTION {} {:?}", t.task, t.action));
    }
    let handle = match report.runs.into_iter().next() {
        Some(h) => h,
        None if store.list_runs(PIPELINE).await.unwrap().is_empty() => {
            engine.register_pipeline(&pipeline).await.unwrap();
            engine.start_run(&pipeline, RunOptions::new()).unwrap()
        }
        None => {
            say("NOTHING to do");
            return;
        }
    };
    say(&format!("RUN {}", handle.run_id()));
    let mut logs = handle.logs(TASK).unwrap();
    while let Some(line) = logs.next().await {
        say(&format!("LOG {}", line.unwrap().text()));
    }
    let run = handle.wait().await.unwrap();
    say(&format!("DONE {}", run.status));
}

/// The host's report in one line of its output (the test harness may print before
/// it on the same line).
fn report_of(line: &str) -> Option<&str> {
    line.find("GOFER: ").map(|i| &line[i + "GOFER: ".len()..])
}

/// One run of the host as a child process.
struct HostRun {
    child: Child,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
}

impl HostRun {
    fn start(dir: &Path, instance: &str, hook: Option<&str>, case: Option<&str>) -> Self {
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.args(["host_process", "--exact", "--nocapture", "--test-threads=1"])
            .env(DIR_ENV, dir)
            .env(INSTANCE_ENV, instance)
            .env_remove(HOOK_ENV)
            .env_remove(CASE_ENV)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(h) = hook {
            cmd.env(HOOK_ENV, h);
        }
        if let Some(c) = case {
            cmd.env(CASE_ENV, c);
        }
        let mut child = cmd.spawn().unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Self { child, lines }
    }

    /// Reads the host's reports until one starts with `prefix`; every report read.
    fn until(&mut self, prefix: &str) -> Vec<String> {
        let mut seen = Vec::new();
        for line in self.lines.by_ref() {
            let line = line.unwrap();
            if let Some(report) = report_of(&line) {
                seen.push(report.to_string());
                if report.starts_with(prefix) {
                    return seen;
                }
            }
        }
        panic!("the host ended before reporting {prefix:?}; it reported {seen:?}");
    }

    /// SIGKILL, as a host dying would.
    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    fn wait(mut self) -> (std::process::ExitStatus, Vec<String>) {
        let rest = self.until_end();
        (self.child.wait().unwrap(), rest)
    }

    fn until_end(&mut self) -> Vec<String> {
        self.lines
            .by_ref()
            .map_while(Result::ok)
            .filter_map(|l| report_of(&l).map(str::to_string))
            .collect()
    }
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

/// A data directory and an engine instance id unique to one test; on drop the
/// directory is removed and any container of the instance too.
struct Fixture {
    dir: PathBuf,
    instance: String,
    docker: DockerScheduler,
    /// The host's case ([`CASE_ENV`]).
    case: Option<&'static str>,
}

impl Fixture {
    fn new(docker: DockerScheduler, case: &str) -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let instance = format!("rec{case}{}{nanos:x}", std::process::id());
        let dir = std::env::temp_dir().join(format!("gofer-{instance}"));
        let _ = std::fs::remove_dir_all(&dir);
        Self {
            dir,
            instance,
            docker,
            case: None,
        }
    }

    fn host(&self, hook: Option<&str>) -> HostRun {
        HostRun::start(&self.dir, &self.instance, hook, self.case)
    }

    async fn containers(&self) -> Vec<ContainerSummary> {
        self.docker
            .list(&engine_filter(&self.instance))
            .await
            .unwrap()
    }

    fn log(&self, run: u64) -> Vec<String> {
        self.log_of(&LogKey::new(PIPELINE, run, TASK))
    }

    fn log_of(&self, key: &LogKey) -> Vec<String> {
        let sink = FileLogSink::new(self.dir.join("logs"));
        let (lines, _) = sink.read(key, 0, 1000).unwrap();
        lines.iter().map(|l| l.text().into_owned()).collect()
    }

    /// Asserts the finished run and that no labelled container is left.
    async fn assert_finished_whole(&self, reports: &[String]) {
        assert!(
            reports.iter().any(|r| r == "DONE Successful"),
            "run did not finish Successful: {reports:?}"
        );
        assert_eq!(
            self.log(1),
            ["before", "after"],
            "the whole log, each line once"
        );
        let store = SqliteRunStore::open_dir(&self.dir).unwrap();
        let run = store.get_run(PIPELINE, 1).await.unwrap();
        assert_eq!(run.status, RunStatus::Successful);
        assert!(store.unfinished_runs().await.unwrap().is_empty());
        let left: Vec<String> = self
            .containers()
            .await
            .into_iter()
            .map(|c| c.name)
            .collect();
        assert!(left.is_empty(), "containers left behind: {left:?}");
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        let instance = self.instance.clone();
        // Clean up on a fresh thread with its own connection: drop may run inside the
        // test's runtime.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let Ok(docker) = DockerScheduler::connect_default().await else {
                    return;
                };
                for c in docker
                    .list(&engine_filter(&instance))
                    .await
                    .unwrap_or_default()
                {
                    let _ = docker.remove(&c.id, true).await;
                }
            });
        })
        .join();
    }
}

#[tokio::test]
async fn host_killed_mid_run_recovers_and_finishes_with_the_whole_log() {
    let Some(docker) = docker().await else { return };
    let f = Fixture::new(docker, "mid");
    let mut first = f.host(None);
    first.until("LOG before");
    first.kill();
    let running: Vec<_> = f.containers().await;
    assert_eq!(running.len(), 1, "the task's container outlives its host");

    let (status, reports) = f.host(None).wait();
    assert!(status.success(), "second host failed: {reports:?}");
    assert!(
        reports.iter().any(|r| r == "ACTION sleeper Reattached"),
        "{reports:?}"
    );
    f.assert_finished_whole(&reports).await;
}

#[tokio::test]
async fn host_killed_between_recorded_starting_and_container_start() {
    let Some(docker) = docker().await else { return };
    let f = Fixture::new(docker, "gap");
    let (status, reports) = f.host(Some("exit_before_start")).wait();
    assert_eq!(status.code(), Some(HOOK_EXIT), "{reports:?}");
    {
        let store = SqliteRunStore::open_dir(&f.dir).unwrap();
        let t = store.get_task(PIPELINE, 1, TASK).await.unwrap().execution;
        let c = t
            .container
            .expect("container name recorded before the start");
        assert_eq!(c.id, None);
        assert_ne!(t.state, TaskState::Complete);
    }
    assert!(f.containers().await.is_empty(), "no container was created");

    let (status, reports) = f.host(None).wait();
    assert!(status.success(), "second host failed: {reports:?}");
    assert!(
        reports.iter().any(|r| r == "ACTION sleeper Restarted"),
        "{reports:?}"
    );
    f.assert_finished_whole(&reports).await;
}

#[tokio::test]
async fn host_killed_while_away_container_exits_is_collected() {
    let Some(docker) = docker().await else { return };
    let f = Fixture::new(docker, "away");
    let mut first = f.host(None);
    first.until("LOG before");
    first.kill();
    // The container finishes while no host is there.
    let c = f.containers().await.pop().expect("the task's container");
    let exit = f.docker.wait(&c.id).await.unwrap();
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
    let mut f = Fixture::new(docker, "svc");
    f.case = Some("service");
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

    let (status, reports) = f.host(None).wait();
    assert!(status.success(), "second host failed: {reports:?}");
    assert!(
        reports.iter().any(|r| r == "ACTION sleeper Reattached"),
        "{reports:?}"
    );
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
