//! The crash-recovery fixture the real-backend tests of this crate share: a
//! [`CrashCase`] (data directory, instance id) on a backend, the host's run store and
//! log read back, and the check that a recovered run finished whole with nothing left.
#![allow(dead_code, clippy::unwrap_used)]

use std::ffi::OsStr;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use gofer_core::naming::{engine_filter, LABEL_ROLE};
use gofer_core::{ContainerSummary, DynScheduler, Pipeline, PullPolicy, RunStatus, RunStore, Task};
use gofer_engine::testing::crash::{CrashCase, HostProcess};
use gofer_engine::{FileLogSink, LogKey, LogSink};
use gofer_store_sqlite::SqliteRunStore;

pub const IMAGE: &str = "gofer-test/busybox:latest";
pub const PIPELINE: &str = "recovery";
pub const TASK: &str = "sleeper";

/// A task that sets its trap, prints `before` and runs until it is stopped; the stop
/// makes it print `after` and exit 0. So it is still running when a second host
/// recovers, however slow the machine is, and it ends when the test says (a stop sent
/// once `before` is in the log always finds the trap set).
pub const HELD: &str =
    "trap 'echo after; exit 0' TERM; echo before; while true; do sleep 0.1; done";

/// One [`HELD`] task.
pub fn pipeline() -> Pipeline {
    Pipeline::new(PIPELINE, "Crash recovery").task(
        Task::new(TASK, IMAGE)
            .command(["sh", "-c", HELD])
            .pull_policy(PullPolicy::Never),
    )
}

/// The host's log sink in its data directory.
/// Set to `service`: the run is [`service_pipeline`]'s, in a network sandbox.
pub const CASE_ENV: &str = "GOFER_RECOVERY_CASE";

/// A service whose page is a token drawn when it starts, and a task that fetches it
/// first, then again when it is stopped (held, as [`HELD`]): the same token
/// twice means the same service container served both fetches.
pub fn service_pipeline() -> Pipeline {
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
                    format!(
                        "trap 'echo after $({fetch}); exit 0' TERM; echo before $({fetch}); \
                         while true; do sleep 0.1; done"
                    ),
                ])
                .pull_policy(PullPolicy::Never)
                .needs_service("web"),
        )
}

pub fn log_sink(dir: &Path) -> FileLogSink {
    FileLogSink::new(dir.join("logs"))
}

/// Connects to the backend again (for the cleanup, on a runtime of its own).
pub type Connect = fn() -> Pin<Box<dyn Future<Output = Option<Arc<DynScheduler>>> + Send>>;

/// A [`CrashCase`] on one backend; on drop, every container of the instance is removed.
pub struct Fixture {
    pub case: CrashCase,
    pub scheduler: Arc<DynScheduler>,
    connect: Connect,
    /// More variables for the host (its case).
    pub extra: Vec<(&'static str, &'static str)>,
}

impl Fixture {
    pub fn new(prefix: &str, scheduler: Arc<DynScheduler>, connect: Connect) -> Self {
        Self {
            case: CrashCase::new(prefix),
            scheduler,
            connect,
            extra: Vec::new(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.case.dir
    }

    pub fn host(&self, hook: Option<&str>) -> HostProcess {
        let extra: Vec<(&str, &OsStr)> = self
            .extra
            .iter()
            .map(|(k, v)| (*k, OsStr::new(v)))
            .collect();
        self.case.host(hook, &extra)
    }

    /// Stops the task's container (its trap ends it with exit 0), as the test's way to
    /// let the task end; `role` picks it among the run's containers.
    pub async fn release_task(&self) {
        let task: Vec<ContainerSummary> = self
            .containers()
            .await
            .into_iter()
            .filter(|c| c.labels.get(LABEL_ROLE).map(String::as_str) == Some("task"))
            .collect();
        assert_eq!(task.len(), 1, "one task container to release: {task:?}");
        self.scheduler
            .stop(&task[0].id, Duration::from_secs(30))
            .await
            .unwrap();
    }

    /// Starts the host again and lets its [`HELD`] task end once the host follows it
    /// (its log says `before`): the host's exit and every report it made, which must
    /// include `ACTION sleeper <action>`.
    pub async fn recover_and_release(
        &self,
        action: &str,
    ) -> (std::process::ExitStatus, Vec<String>) {
        let mut host = self.host(None);
        let mut reports = host.until("LOG before");
        let want = format!("ACTION {TASK} {action}");
        assert!(reports.contains(&want), "{want}: {reports:?}");
        self.release_task().await;
        let (status, rest) = host.wait();
        reports.extend(rest);
        assert!(status.success(), "second host failed: {reports:?}");
        (status, reports)
    }

    pub async fn containers(&self) -> Vec<ContainerSummary> {
        self.scheduler
            .list(&engine_filter(&self.case.instance))
            .await
            .unwrap()
    }

    pub fn log(&self, run: u64) -> Vec<String> {
        self.log_of(&LogKey::new(PIPELINE, run, TASK))
    }

    pub fn log_of(&self, key: &LogKey) -> Vec<String> {
        let (lines, _) = log_sink(self.dir()).read(key, 0, 1000).unwrap();
        lines.iter().map(|l| l.text().into_owned()).collect()
    }

    /// Asserts the finished run (reported, recorded, its whole log once) and that no
    /// labelled container (service, network) is left.
    pub async fn assert_finished_whole(&self, reports: &[String]) {
        assert!(
            reports.iter().any(|r| r == "DONE Successful"),
            "run did not finish Successful: {reports:?}"
        );
        assert_eq!(
            self.log(1),
            ["before", "after"],
            "the whole log, each line once"
        );
        let store = SqliteRunStore::open_dir(self.dir()).unwrap();
        let run = store.get_run(PIPELINE, 1).await.unwrap();
        assert_eq!(run.status, RunStatus::Successful);
        assert!(store.unfinished_runs().await.unwrap().is_empty());
        let left: Vec<String> = self
            .containers()
            .await
            .into_iter()
            .map(|c| c.name)
            .collect();
        assert!(left.is_empty(), "left behind: {left:?}");
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let instance = self.case.instance.clone();
        let connect = self.connect;
        // Clean up on a fresh thread with its own connection: drop may run inside the
        // test's runtime.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let Some(s) = connect().await else { return };
                let _ = gofer_engine::reap(&*s, &engine_filter(&instance)).await;
            });
        })
        .join();
    }
}
