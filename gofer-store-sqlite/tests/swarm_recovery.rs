//! Crash recovery on the real two-node test swarm (scripts/setup-swarm.sh), as
//! `docker_recovery.rs` does it on Docker.
//!
//! This test binary is also the host under test: run with `GOFER_RECOVERY_DIR` set,
//! its `host_process` test starts (or recovers) a run on the swarm — with a run network
//! — with a SQLite run store and a file log sink in that data directory, prints what
//! happens on stdout and exits when the run is done. The other tests start it as a
//! child process, kill it with SIGKILL mid-run, start it again on the same directory
//! and check the outcome: the service re-attached (not started again), the whole log
//! once, nothing left on the swarm. In CI (`CI=true`) an unreachable swarm fails these
//! tests; outside CI they skip, saying why.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use futures::StreamExt;
use gofer_core::naming::{engine_filter, LABEL_ROLE};
use gofer_core::{
    Capabilities, ContainerId, ContainerSpec, ContainerState, ContainerSummary, DynScheduler,
    ExitStatus, LogStream, Pipeline, PullPolicy, RunOptions, RunStatus, RunStore, SandboxSpec,
    Scheduler, SchedulerError, Task, TaskState,
};
use gofer_engine::{Engine, FileLogSink, LogKey, LogSink};
use gofer_scheduler_swarm::{SwarmConfig, SwarmScheduler};
use gofer_store_sqlite::SqliteRunStore;

const IMAGE: &str = "gofer-test/busybox:latest";
/// The data directory: set, the binary acts as the host.
const DIR_ENV: &str = "GOFER_RECOVERY_DIR";
/// The engine instance id of the host.
const INSTANCE_ENV: &str = "GOFER_RECOVERY_INSTANCE";
/// Set to `exit_before_start`: the host exits (code 17) when the engine asks the swarm to
/// start the task's container — after the task was recorded as starting.
const HOOK_ENV: &str = "GOFER_RECOVERY_HOOK";
const HOOK_EXIT: i32 = 17;
const PIPELINE: &str = "recovery";
const TASK: &str = "sleeper";

fn pipeline() -> Pipeline {
    Pipeline::new(PIPELINE, "Crash recovery").task(
        Task::new(TASK, IMAGE)
            .command(["sh", "-c", "echo before; sleep 3; echo after"])
            .pull_policy(PullPolicy::Never),
    )
}

/// The manager of the project's test swarm; `GOFER_SWARM_HOST` overrides it.
fn swarm_config() -> SwarmConfig {
    let host = std::env::var("GOFER_SWARM_HOST")
        .unwrap_or_else(|_| "unix:///run/gofer-swarm/manager.sock".to_string());
    SwarmConfig::new()
        .host(host)
        .stop_grace(Duration::from_secs(2))
}

/// The swarm, behind a hook that can kill the host at the start of a container.
#[derive(Debug)]
struct Hooked(SwarmScheduler);

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
    async fn create_sandbox(&self, spec: SandboxSpec) -> Result<ContainerId, SchedulerError> {
        self.0.create_sandbox(spec).await
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
    let swarm = SwarmScheduler::connect(swarm_config()).await.unwrap();
    let store = SqliteRunStore::open_dir(&dir).unwrap();
    let engine = Engine::builder(Arc::new(Hooked(swarm)) as Arc<DynScheduler>)
        .instance_id(instance)
        .network_sandbox(IMAGE)
        .log_sink(Arc::new(FileLogSink::new(Path::new(&dir).join("logs"))))
        .run_store(Arc::new(store.clone()))
        .build()
        .unwrap();
    let report = engine.recover().await.unwrap();
    for t in &report.tasks {
        say(&format!("ACTION {} {:?}", t.task, t.action));
    }
    let handle = match report.runs.into_iter().next() {
        Some(h) => h,
        None if store.list_runs(PIPELINE).await.unwrap().is_empty() => {
            engine.register_pipeline(&pipeline()).await.unwrap();
            engine.start_run(&pipeline(), RunOptions::new()).unwrap()
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
    fn start(dir: &Path, instance: &str, hook: Option<&str>) -> Self {
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.args(["host_process", "--exact", "--nocapture", "--test-threads=1"])
            .env(DIR_ENV, dir)
            .env(INSTANCE_ENV, instance)
            .env_remove(HOOK_ENV)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(h) = hook {
            cmd.env(HOOK_ENV, h);
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

/// A data directory and an engine instance id unique to one test; on drop the
/// directory is removed and any container of the instance too.
struct Fixture {
    dir: PathBuf,
    instance: String,
    swarm: SwarmScheduler,
}

impl Fixture {
    fn new(swarm: SwarmScheduler, case: &str) -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        // Starts with "stest": the swarm crate's leftover check looks for these.
        let instance = format!(
            "stestrec{case}{}{:x}",
            std::process::id() % 10_000,
            nanos % 0xfffff
        );
        let dir = std::env::temp_dir().join(format!("gofer-{instance}"));
        let _ = std::fs::remove_dir_all(&dir);
        Self {
            dir,
            instance,
            swarm,
        }
    }

    fn host(&self, hook: Option<&str>) -> HostRun {
        HostRun::start(&self.dir, &self.instance, hook)
    }

    async fn containers(&self) -> Vec<ContainerSummary> {
        self.swarm
            .list(&engine_filter(&self.instance))
            .await
            .unwrap()
    }

    fn log(&self, run: u64) -> Vec<String> {
        let sink = FileLogSink::new(self.dir.join("logs"));
        let (lines, _) = sink
            .read(&LogKey::new(PIPELINE, run, TASK), 0, 1000)
            .unwrap();
        lines.iter().map(|l| l.text().into_owned()).collect()
    }

    /// Asserts the finished run and that no labelled service or network is left.
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
        assert!(
            left.is_empty(),
            "services or networks left behind: {left:?}"
        );
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
                let Ok(swarm) = SwarmScheduler::connect(swarm_config()).await else {
                    return;
                };
                for c in swarm
                    .list(&engine_filter(&instance))
                    .await
                    .unwrap_or_default()
                {
                    let _ = swarm.remove(&c.id, true).await;
                }
            });
        })
        .join();
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
    let f = Fixture::new(swarm, "mid");
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

    let (status, reports) = f.host(None).wait();
    assert!(status.success(), "second host failed: {reports:?}");
    assert!(
        reports.iter().any(|r| r == "ACTION sleeper Reattached"),
        "{reports:?}"
    );
    // Re-attached: no second service was made for the task (the first one's id is the
    // one the run store holds).
    let store = SqliteRunStore::open_dir(&f.dir).unwrap();
    let t = store.get_task(PIPELINE, 1, TASK).await.unwrap().execution;
    assert_eq!(t.container.and_then(|c| c.id), Some(service.0));
    drop(store);
    f.assert_finished_whole(&reports).await;
}

#[tokio::test]
async fn host_killed_while_away_task_ends_is_collected() {
    let Some(swarm) = swarm().await else { return };
    let f = Fixture::new(swarm, "away");
    let mut first = f.host(None);
    first.until("LOG before");
    first.kill();
    // The task finishes while no host is there.
    let live = f.containers().await;
    let c = services(&live).pop().expect("the task's service").clone();
    let exit = f.swarm.wait(&c.id).await.unwrap();
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
    let f = Fixture::new(swarm, "gap");
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
    assert!(
        services(&f.containers().await).is_empty(),
        "no service was created"
    );

    let (status, reports) = f.host(None).wait();
    assert!(status.success(), "second host failed: {reports:?}");
    assert!(
        reports.iter().any(|r| r == "ACTION sleeper Restarted"),
        "{reports:?}"
    );
    f.assert_finished_whole(&reports).await;
}
