//! A harness for crash-recovery tests on a real backend: the test binary is its own
//! host. Run as a child with the test's environment, its host test starts (or
//! recovers) a run, reports what happens on stdout as `GOFER: ...` lines ([`say`]) and
//! exits when the run is done; the parent test starts it ([`HostProcess::start`]),
//! waits for a report ([`HostProcess::until`]), kills it with SIGKILL at the worst
//! moment ([`HostProcess::kill`]), starts it again on the same data directory and
//! checks the outcome.
//!
//! [`ExitBeforeStart`] wraps any scheduler so the host dies in the one window a kill
//! from outside cannot hit reliably: after the task was recorded as starting, before
//! its container exists.
//!
//! ```no_run
//! use gofer_engine::testing::crash::HostProcess;
//! # fn demo(dir: &std::path::Path) {
//! let mut host = HostProcess::start("host_process", &[("GOFER_RECOVERY_DIR", dir.as_os_str())]);
//! host.until("LOG started");
//! host.kill();
//! # }
//! ```

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Lines, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, ExitStatus as ProcessExit, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt;

use async_trait::async_trait;
use gofer_core::{
    Capabilities, ContainerId, ContainerSpec, ContainerState, ContainerSummary, DynScheduler,
    ExitStatus, LogStream, Pipeline, RunOptions, SandboxSpec, Scheduler, SchedulerError,
    VolumeSpec, VolumeSummary,
};

use crate::Engine;

/// The host's data directory; set, the test binary acts as the host.
pub const DIR_ENV: &str = "GOFER_RECOVERY_DIR";
/// The host's engine instance id.
pub const INSTANCE_ENV: &str = "GOFER_RECOVERY_INSTANCE";
/// Set to `exit_before_start`: the host's scheduler is wrapped in [`ExitBeforeStart`]
/// (see [`hooked`]).
pub const HOOK_ENV: &str = "GOFER_RECOVERY_HOOK";

/// The exit code of a host that [`ExitBeforeStart`] ended.
pub const EXIT_BEFORE_START: i32 = 17;

/// What starts every report line.
const REPORT: &str = "GOFER: ";

/// Prints one report line (`GOFER: <line>`) on stdout, flushed at once, for the parent
/// test to read.
pub fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{REPORT}{line}");
    let _ = out.flush();
}

/// The report in one line of the host's output (the test harness may print before it
/// on the same line).
pub fn report_of(line: &str) -> Option<&str> {
    line.find(REPORT).map(|i| &line[i + REPORT.len()..])
}

/// A scheduler whose [`Scheduler::start`] ends the process (code
/// [`EXIT_BEFORE_START`], after reporting `EXITING before start`) instead of starting
/// anything; every other call goes to the scheduler it wraps.
#[derive(Debug)]
pub struct ExitBeforeStart(pub Arc<DynScheduler>);

#[async_trait]
impl Scheduler for ExitBeforeStart {
    fn name(&self) -> &'static str {
        self.0.name()
    }
    fn capabilities(&self) -> Capabilities {
        self.0.capabilities()
    }
    async fn start(&self, _spec: ContainerSpec) -> Result<ContainerId, SchedulerError> {
        say("EXITING before start");
        std::process::exit(EXIT_BEFORE_START);
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
    async fn create_volume(&self, spec: VolumeSpec) -> Result<(), SchedulerError> {
        self.0.create_volume(spec).await
    }
    async fn remove_volume(&self, name: &str) -> Result<(), SchedulerError> {
        self.0.remove_volume(name).await
    }
    async fn list_volumes(
        &self,
        labels: &BTreeMap<String, String>,
    ) -> Result<Vec<VolumeSummary>, SchedulerError> {
        self.0.list_volumes(labels).await
    }
}

/// `scheduler`, behind [`ExitBeforeStart`] when [`HOOK_ENV`] is `exit_before_start`.
pub fn hooked(scheduler: Arc<DynScheduler>) -> Arc<DynScheduler> {
    if std::env::var(HOOK_ENV).as_deref() == Ok("exit_before_start") {
        Arc::new(ExitBeforeStart(scheduler))
    } else {
        scheduler
    }
}

/// What the host reads from its environment: its data directory and instance id;
/// `None` when the binary runs as a plain test (then the host test does nothing).
///
/// # Panics
/// When the directory is set and the instance is not.
pub fn host_env() -> Option<(PathBuf, String)> {
    let dir = std::env::var_os(DIR_ENV)?;
    #[allow(clippy::expect_used)]
    let instance = std::env::var(INSTANCE_ENV).expect("the host's instance id is set");
    Some((PathBuf::from(dir), instance))
}

/// The host's life, reported line by line: recovers the engine (`ACTION <task>
/// <action>` for each task it acted on), goes on with the recovered run or, when the
/// run store has no run of `pipeline`, registers and starts one (`RUN <n>`), follows
/// `task`'s log (`LOG <line>`) and waits for the run (`DONE <status>`); `NOTHING to
/// do` when the store has a finished run only.
///
/// # Panics
/// When the engine has no run store, or recovery, the store or the run fails.
#[allow(clippy::expect_used)]
pub async fn host(engine: &Engine, pipeline: &Pipeline, task: &str) {
    let report = engine.recover().await.expect("recovery");
    for t in &report.tasks {
        say(&format!("ACTION {} {:?}", t.task, t.action));
    }
    let store = engine
        .run_store()
        .expect("the host has a run store")
        .clone();
    let handle = match report.runs.into_iter().next() {
        Some(h) => h,
        None if store
            .list_runs(&pipeline.id)
            .await
            .expect("runs")
            .is_empty() =>
        {
            engine.register_pipeline(pipeline).await.expect("register");
            engine
                .start_run(pipeline, RunOptions::new())
                .expect("start")
        }
        None => {
            say("NOTHING to do");
            return;
        }
    };
    say(&format!("RUN {}", handle.run_id()));
    let mut logs = handle.logs(task).expect("the task's log");
    while let Some(line) = logs.next().await {
        say(&format!("LOG {}", line.expect("a log line").text()));
    }
    let run = handle.wait().await.expect("the run");
    say(&format!("DONE {}", run.status));
}

/// A data directory and an engine instance id unique to one test (the instance starts
/// with `prefix`); the directory is removed on drop. The host is started on them with
/// [`CrashCase::host`].
#[derive(Debug)]
pub struct CrashCase {
    /// The data directory (absent until the host makes it).
    pub dir: PathBuf,
    /// The engine instance id.
    pub instance: String,
}

impl CrashCase {
    /// A fresh case whose instance id starts with `prefix`.
    pub fn new(prefix: &str) -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        let instance = format!(
            "{prefix}{}{:x}",
            std::process::id() % 10_000,
            nanos % 0xfffff
        );
        let dir = std::env::temp_dir().join(format!("gofer-{instance}"));
        let _ = std::fs::remove_dir_all(&dir);
        Self { dir, instance }
    }

    /// Starts the host test `host_process` on this case, with `hook` as [`HOOK_ENV`]
    /// when given and `extra` variables.
    pub fn host(&self, hook: Option<&str>, extra: &[(&str, &OsStr)]) -> HostProcess {
        let mut env = vec![
            (DIR_ENV, self.dir.as_os_str()),
            (INSTANCE_ENV, OsStr::new(&self.instance)),
        ];
        env.extend(hook.map(|h| (HOOK_ENV, OsStr::new(h))));
        env.extend_from_slice(extra);
        HostProcess::start("host_process", &env)
    }
}

impl Drop for CrashCase {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One run of the host: this test binary started again as a child running one test.
#[derive(Debug)]
pub struct HostProcess {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl HostProcess {
    /// Starts this test binary as a child running only the test `test`, with `env`
    /// set (and nothing else of the parent's environment changed); its stdout is read
    /// for reports, its stderr goes to the parent's.
    ///
    /// # Panics
    /// When the binary cannot be started.
    pub fn start(test: &str, env: &[(&str, &OsStr)]) -> Self {
        #[allow(clippy::expect_used)]
        let exe = std::env::current_exe().expect("the test binary's path");
        let mut cmd = Command::new(exe);
        cmd.args([test, "--exact", "--nocapture", "--test-threads=1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        #[allow(clippy::expect_used)]
        let mut child = cmd.spawn().expect("the host process starts");
        #[allow(clippy::expect_used)]
        let stdout = child.stdout.take().expect("the host's stdout is piped");
        Self {
            child,
            lines: BufReader::new(stdout).lines(),
        }
    }

    /// Reads the host's reports until one starts with `prefix`; returns every report
    /// read, that one last.
    ///
    /// # Panics
    /// When the host ends before reporting it, naming what it reported.
    pub fn until(&mut self, prefix: &str) -> Vec<String> {
        let mut seen = Vec::new();
        for line in self.lines.by_ref().map_while(Result::ok) {
            if let Some(report) = report_of(&line) {
                seen.push(report.to_string());
                if report.starts_with(prefix) {
                    return seen;
                }
            }
        }
        panic!("the host ended before reporting {prefix:?}; it reported {seen:?}");
    }

    /// SIGKILL, as a host dying would; returns once the process is gone.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for the host to end: its exit status and every report it made since the
    /// last [`HostProcess::until`].
    ///
    /// # Panics
    /// When the process cannot be waited for.
    pub fn wait(mut self) -> (ProcessExit, Vec<String>) {
        let rest = self
            .lines
            .by_ref()
            .map_while(Result::ok)
            .filter_map(|l| report_of(&l).map(str::to_string))
            .collect();
        #[allow(clippy::expect_used)]
        let status = self.child.wait().expect("the host process ends");
        (status, rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_are_found_after_what_the_harness_printed() {
        assert_eq!(report_of("test host ... GOFER: RUN 1"), Some("RUN 1"));
        assert_eq!(report_of("running 1 test"), None);
    }
}
