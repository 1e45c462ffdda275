//! Service containers on the FakeScheduler: started in the run's sandbox before the
//! tasks needing them, probed until ready or past the deadline, failing the tasks that
//! need them when not ready or dead, stopped and removed after the last task, their
//! logs kept.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use gofer_core::fake::{Behaviour, FakeScheduler};
use gofer_core::naming::service_container_name;
use gofer_core::{
    Event, InMemoryRunStore, NetworkMode, Pipeline, Readiness, RunOptions, RunState, RunStatus,
    Service, StatusReason, Task, TaskState, TaskStatus, ValidationIssue,
};
use gofer_engine::{
    Engine, InMemoryLogSink, LogError, LogKey, LogLine, LogSink, LogWriter, RecoveryAction,
    RunError,
};

use crate::common::*;

const PIPE: &str = "svc";

fn svc_name(id: &str) -> String {
    service_container_name("test", PIPE, 1, id)
}

fn fake() -> FakeScheduler {
    FakeScheduler::new()
        .image("ok", Behaviour::new().stdout("fine\n"))
        .image("pause", Behaviour::run_until_stopped())
        .image(
            "db",
            Behaviour::new().stdout("db up\n").then_run_until_stopped(),
        )
}

fn sandboxed(fake: &FakeScheduler) -> (Engine, gofer_engine::InMemoryLogSink) {
    let (b, sink) = builder(fake);
    (b.network_sandbox("pause").build().unwrap(), sink)
}

fn readiness(deadline: u64) -> Readiness {
    Readiness::new(
        ["probe"],
        Duration::from_secs(1),
        Duration::from_secs(deadline),
    )
}

#[tokio::test(start_paused = true)]
async fn a_task_starts_after_its_service_is_ready_and_the_service_goes_after_the_tasks() {
    // The first two probes fail, the third succeeds.
    let fake = fake()
        .on_name(
            &format!("{}.probe-", svc_name("database")),
            Behaviour::exit(1),
        )
        .on_name(
            &format!("{}.probe-3", svc_name("database")),
            Behaviour::exit(0),
        );
    let (e, sink) = sandboxed(&fake);
    let p = Pipeline::new(PIPE, PIPE)
        .service(
            Service::new("database", "db")
                .variable("DB_PASSWORD", "hunter2-not-secret")
                .readiness(readiness(30)),
        )
        .task(Task::new("client", "ok").needs_service("database"))
        .task(Task::new("unrelated", "ok"));
    let run = finish(&e.start_run(&p, RunOptions::new()).unwrap()).await;
    assert_eq!(run.status, RunStatus::Successful, "{run:?}");
    let names: Vec<String> = fake.requests().into_iter().map(|r| r.name).collect();
    let pos = |n: &str| {
        names
            .iter()
            .position(|x| x == n)
            .unwrap_or_else(|| panic!("{n} in {names:?}"))
    };
    let probe3 = format!("{}.probe-3", svc_name("database"));
    assert!(pos(&svc_name("database")) < pos(&probe3));
    assert!(pos(&probe3) < pos(&cname(PIPE, 1, "client")), "{names:?}");
    assert!(!names.contains(&format!("{}.probe-4", svc_name("database"))));
    // In the run's sandbox, with its variables, labelled as a service.
    let spec = fake.request(&svc_name("database")).unwrap();
    assert!(matches!(spec.network, NetworkMode::Sandbox(_)));
    assert_eq!(
        spec.env
            .get("DB_PASSWORD")
            .map(|v| v.expose().to_string())
            .as_deref(),
        Some("hunter2-not-secret")
    );
    assert_eq!(spec.labels[gofer_core::naming::LABEL_ROLE], "service");
    // A service's log is followed through the engine's logs (which hold its output
    // from the start) and a probe's is never read, so neither is attached (an unread
    // attach can hold a container); the task is.
    assert!(!spec.attach_output);
    assert!(!fake.request(&probe3).unwrap().attach_output);
    assert!(
        fake.request(&cname(PIPE, 1, "client"))
            .unwrap()
            .attach_output
    );
    // Its log is kept; nothing is left.
    let kept: Vec<String> = sink
        .lines(&LogKey::service(PIPE, 1, "database"))
        .iter()
        .map(|l| l.text().into_owned())
        .collect();
    assert_eq!(kept, ["db up"]);
    assert_eq!(fake.containers(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_service_never_ready_fails_only_the_tasks_needing_it() {
    let fake = fake().on_name(
        &format!("{}.probe-", svc_name("database")),
        Behaviour::exit(1),
    );
    let (e, _) = sandboxed(&fake);
    let p = Pipeline::new(PIPE, PIPE)
        .service(Service::new("database", "db").readiness(readiness(5)))
        .task(Task::new("client", "ok").needs_service("database"))
        .task(Task::new("unrelated", "ok"));
    let run = finish(&e.start_run(&p, RunOptions::new()).unwrap()).await;
    assert_eq!(run.status, RunStatus::Failed);
    let t = task(&run, "client");
    assert_eq!(
        (t.status, t.reason),
        (TaskStatus::Failed, Some(StatusReason::ServiceUnavailable))
    );
    let message = t.message.as_deref().unwrap();
    assert!(
        message.contains("\"database\"") && message.contains("not ready within 5s"),
        "{message}"
    );
    assert!(
        fake.request(&cname(PIPE, 1, "client")).is_none(),
        "never started"
    );
    assert_eq!(task(&run, "unrelated").status, TaskStatus::Successful);
    let probes = fake
        .requests()
        .iter()
        .filter(|r| r.name.contains(".probe-"))
        .count();
    assert!(
        (5..=7).contains(&probes),
        "about one probe a second for 5 s: {probes}"
    );
    assert_eq!(fake.containers(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_service_that_dies_fails_the_running_task_needing_it() {
    let fake = fake()
        .image(
            "shortlived",
            Behaviour::new().sleep(Duration::from_secs(5)).exit_code(2),
        )
        .image("long", Behaviour::run_until_stopped());
    let (e, _) = sandboxed(&fake);
    let p = Pipeline::new(PIPE, PIPE)
        .service(Service::new("database", "shortlived"))
        .task(Task::new("client", "long").needs_service("database"));
    let run = finish(&e.start_run(&p, RunOptions::new()).unwrap()).await;
    let t = task(&run, "client");
    assert_eq!(
        (t.status, t.reason),
        (TaskStatus::Failed, Some(StatusReason::ServiceUnavailable))
    );
    assert!(
        t.message
            .as_deref()
            .unwrap()
            .contains("exited while tasks needed it"),
        "{t:?}"
    );
    assert_eq!(fake.containers(), 0);
}

#[tokio::test(start_paused = true)]
async fn services_need_the_network_sandbox_and_known_ids() {
    let fake = fake();
    let p = Pipeline::new(PIPE, PIPE)
        .service(Service::new("database", "db"))
        .task(Task::new("client", "ok").needs_service("database"));
    let run = finish(&engine(&fake).start_run(&p, RunOptions::new()).unwrap()).await;
    let t = task(&run, "client");
    assert_eq!(t.reason, Some(StatusReason::ServiceUnavailable));
    assert!(
        t.message.as_deref().unwrap().contains("network sandbox"),
        "{t:?}"
    );
    assert!(fake.requests().is_empty());

    let bad = Pipeline::new(PIPE, PIPE)
        .service(Service::new("database", "db").readiness(Readiness::new(
            Vec::<String>::new(),
            Duration::ZERO,
            Duration::from_secs(1),
        )))
        .task(Task::new("client", "ok").needs_service("cache"));
    let issues = bad.validate().unwrap_err().issues;
    let fields: Vec<String> = issues.iter().map(ValidationIssue::field).collect();
    assert_eq!(
        fields,
        [
            "services",
            "services[database].readiness.command",
            "services[database].readiness.interval"
        ],
        "{issues:?}"
    );
    assert!(
        matches!(&issues[0], ValidationIssue::UnknownService { service, .. } if service == "cache")
    );
}

/// A service's log is readable while the service runs (here, while the task needing
/// it still works), and its stream ends once the service is stopped after the run's
/// last task.
#[tokio::test(start_paused = true)]
async fn a_services_log_is_live_and_ends_with_the_service() {
    let fake = fake().image(
        "busy",
        Behaviour::new()
            .sleep(Duration::from_secs(60))
            .stdout("done\n"),
    );
    let (e, sink) = sandboxed(&fake);
    let p = Pipeline::new(PIPE, PIPE)
        .service(Service::new("database", "db"))
        .task(Task::new("client", "busy").needs_service("database"));
    let h = e.start_run(&p, RunOptions::new()).unwrap();
    assert!(matches!(
        h.service_logs("cache"),
        Err(RunError::UnknownService { service, .. }) if service == "cache"
    ));
    let mut events = h.events();
    while let Some(e) = events.next().await {
        if matches!(&e, Event::Task { task_id, state: TaskState::Running, .. } if &**task_id == "client")
        {
            break;
        }
    }
    let mut live = h.service_logs("database").unwrap();
    let first = live.next().await.unwrap().unwrap();
    assert_eq!(first.text(), "db up");
    // Read live: the task still works, the service still runs.
    let now = h.snapshot();
    assert_ne!(now.state, RunState::Complete, "{now:?}");
    assert_eq!(fake.running(), 3, "sandbox, service and task");
    assert!(live.next().await.is_none(), "ends once the service stopped");
    assert_eq!(task(&h.snapshot(), "client").state, TaskState::Complete);
    let run = finish(&h).await;
    assert_eq!(run.status, RunStatus::Successful, "{run:?}");
    assert_eq!(sink.lines(&LogKey::service(PIPE, 1, "database")).len(), 1);
    // A service no task needs never starts: its log stream ends (empty) with the run.
    let p = Pipeline::new(PIPE, PIPE)
        .service(Service::new("idle", "db"))
        .task(Task::new("alone", "ok"));
    let h = e.start_run(&p, RunOptions::new()).unwrap();
    let lines: Vec<_> = h.service_logs("idle").unwrap().collect().await;
    assert!(lines.is_empty(), "{lines:?}");
    assert_eq!(finish(&h).await.status, RunStatus::Successful);
    assert_eq!(fake.containers(), 0);
}

/// A sink that cannot open services' logs.
#[derive(Debug, Clone)]
struct NoServiceLogs(InMemoryLogSink);

impl LogSink for NoServiceLogs {
    fn open(&self, key: &LogKey) -> Result<Box<dyn LogWriter>, LogError> {
        if key.task.starts_with("service.") {
            return Err(LogError::Io {
                sink: "test",
                operation: "open",
                source: "disk full".into(),
            });
        }
        self.0.open(key)
    }
    fn read(&self, key: &LogKey, cursor: u64, max: usize) -> Result<(Vec<LogLine>, u64), LogError> {
        self.0.read(key, cursor, max)
    }
    fn may_block(&self) -> bool {
        false
    }
}

/// A service's log that cannot be kept is reported (an event; the live stream ends
/// with the error), never lost silently; the tasks are not failed for it.
#[tokio::test(start_paused = true)]
async fn a_service_log_that_cannot_be_kept_is_reported() {
    let fake = fake();
    let e = Engine::builder(Arc::new(fake.clone()))
        .instance_id("test")
        .log_sink(Arc::new(NoServiceLogs(InMemoryLogSink::new())))
        .network_sandbox("pause")
        .build()
        .unwrap();
    let p = Pipeline::new(PIPE, PIPE)
        .service(Service::new("database", "db"))
        .task(Task::new("client", "ok").needs_service("database"));
    let h = e.start_run(&p, RunOptions::new()).unwrap();
    let got: Vec<_> = h.service_logs("database").unwrap().collect().await;
    assert!(
        matches!(got.as_slice(), [Err(LogError::Incomplete { reason, .. })] if reason.contains("disk full")),
        "{got:?}"
    );
    let run = finish(&h).await;
    assert_eq!(run.status, RunStatus::Successful, "{run:?}");
    let events: Vec<Event> = h.events().collect().await;
    assert!(
        events.iter().any(|e| matches!(e,
            Event::ServiceLogIncomplete { service_id, reason, .. }
                if &**service_id == "database" && reason.contains("disk full"))),
        "{events:?}"
    );
    assert_eq!(fake.containers(), 0);
}

/// A host that dies mid-run leaves its services running; recovery adopts those that
/// tasks still to run need (never restarting them under the tasks using them) with
/// their log rewritten whole, and reaps those only finished tasks needed.
#[tokio::test(start_paused = true)]
async fn recovery_adopts_the_services_still_needed() {
    let fake = fake()
        .image(
            "busy",
            Behaviour::new()
                .sleep(Duration::from_secs(30))
                .stdout("done\n"),
        )
        .on_name(
            &format!("{}.probe-", svc_name("database")),
            Behaviour::exit(0),
        );
    let store = InMemoryRunStore::new();
    let sink = InMemoryLogSink::new();
    let host = || {
        Engine::builder(Arc::new(fake.clone()))
            .instance_id("test")
            .log_sink(Arc::new(sink.clone()))
            .run_store(Arc::new(store.clone()))
            .network_sandbox("pause")
            .build()
            .unwrap()
    };
    let p = Pipeline::new(PIPE, PIPE)
        .service(Service::new("cache", "db"))
        .service(Service::new("database", "db").readiness(readiness(30)))
        .task(Task::new("quick", "ok").needs_service("cache"))
        .task(Task::new("client", "busy").needs_service("database"))
        .task(
            Task::new("after", "ok")
                .needs_service("database")
                .depends_on("client", gofer_core::RequiredParentStatus::Success),
        );
    let a = host();
    a.recover().await.unwrap();
    let h = a.start_run(&p, RunOptions::new()).unwrap();
    let mut events = h.events();
    let mut seen = (false, false);
    while let Some(e) = events.next().await {
        if let Event::Task {
            task_id,
            state: TaskState::Complete,
            ..
        } = &e
        {
            seen.0 |= &**task_id == "quick";
        }
        if let Event::Task {
            task_id,
            state: TaskState::Running,
            ..
        } = &e
        {
            seen.1 |= &**task_id == "client";
        }
        if seen == (true, true) {
            break;
        }
    }
    a.simulate_crash().await;
    assert_eq!(
        fake.running(),
        4,
        "sandbox, two services and the task outlive the host"
    );

    let b = host();
    let report = b.recover().await.unwrap();
    assert_eq!(
        report.action(PIPE, 1, "client"),
        Some(RecoveryAction::Reattached)
    );
    assert!(
        report.reaped.contains(&svc_name("cache")),
        "{:?}",
        report.reaped
    );
    assert!(
        !report.reaped.contains(&svc_name("database")),
        "{:?}",
        report.reaped
    );
    let run = finish(&report.runs[0]).await;
    assert_eq!(run.status, RunStatus::Successful, "{run:?}");
    assert_eq!(
        fake.started_count(&svc_name("database")),
        1,
        "adopted, not restarted"
    );
    assert_eq!(
        fake.started_count(&svc_name("cache")),
        1,
        "not needed any more"
    );
    let kept: Vec<String> = sink
        .lines(&LogKey::service(PIPE, 1, "database"))
        .iter()
        .map(|l| l.text().into_owned())
        .collect();
    assert_eq!(kept, ["db up"], "rewritten whole, once");
    assert_eq!(fake.containers(), 0);
}

/// The fake, with starts of containers whose name contains `slow` answered only 30 s
/// after the container began to run (a slow engine answer).
#[derive(Debug)]
struct SlowStart {
    inner: FakeScheduler,
    slow: String,
}
#[async_trait::async_trait]
impl gofer_core::Scheduler for SlowStart {
    fn name(&self) -> &'static str {
        "slowstart"
    }
    fn capabilities(&self) -> gofer_core::Capabilities {
        self.inner.capabilities()
    }
    async fn start(
        &self,
        spec: gofer_core::ContainerSpec,
    ) -> Result<gofer_core::ContainerId, gofer_core::SchedulerError> {
        let slow = spec.name.contains(&self.slow);
        let id = self.inner.start(spec).await?;
        if slow {
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
        Ok(id)
    }
    async fn wait(
        &self,
        id: &gofer_core::ContainerId,
    ) -> Result<gofer_core::ExitStatus, gofer_core::SchedulerError> {
        self.inner.wait(id).await
    }
    async fn state(
        &self,
        id: &gofer_core::ContainerId,
    ) -> Result<gofer_core::ContainerState, gofer_core::SchedulerError> {
        self.inner.state(id).await
    }
    async fn start_created(
        &self,
        id: &gofer_core::ContainerId,
    ) -> Result<(), gofer_core::SchedulerError> {
        self.inner.start_created(id).await
    }
    async fn logs(
        &self,
        id: &gofer_core::ContainerId,
    ) -> Result<gofer_core::LogStream, gofer_core::SchedulerError> {
        self.inner.logs(id).await
    }
    async fn stop(
        &self,
        id: &gofer_core::ContainerId,
        grace: Duration,
    ) -> Result<(), gofer_core::SchedulerError> {
        self.inner.stop(id, grace).await
    }
    async fn remove(
        &self,
        id: &gofer_core::ContainerId,
        force: bool,
    ) -> Result<(), gofer_core::SchedulerError> {
        self.inner.remove(id, force).await
    }
    async fn list(
        &self,
        labels: &std::collections::BTreeMap<String, String>,
    ) -> Result<Vec<gofer_core::ContainerSummary>, gofer_core::SchedulerError> {
        self.inner.list(labels).await
    }
    async fn create_sandbox(
        &self,
        spec: gofer_core::SandboxSpec,
    ) -> Result<gofer_core::ContainerId, gofer_core::SchedulerError> {
        self.inner.create_sandbox(spec).await
    }
}

/// A run that ends while a service's start or a probe's start is still being
/// answered leaves no container behind: the start is seen through and its container
/// removed.
#[tokio::test(start_paused = true)]
async fn a_run_ending_during_a_slow_start_leaves_no_service_or_probe() {
    for probe in [true, false] {
        // Probes that never end.
        let fake = fake().on_name(
            &format!("{}.probe-", svc_name("database")),
            Behaviour::run_until_stopped(),
        );
        let slow = if probe {
            ".probe-".to_string()
        } else {
            svc_name("database")
        };
        let e = Engine::builder(Arc::new(SlowStart {
            inner: fake.clone(),
            slow,
        }))
        .instance_id("test")
        .log_sink(Arc::new(InMemoryLogSink::new()))
        .network_sandbox("pause")
        .build()
        .unwrap();
        let mut database = Service::new("database", "db");
        if probe {
            database = database.readiness(readiness(300));
        }
        let p = Pipeline::new(PIPE, PIPE)
            .service(database)
            .task(Task::new("client", "ok").needs_service("database"));
        let h = e.start_run(&p, RunOptions::new()).unwrap();
        tokio::time::sleep(Duration::from_secs(5)).await;
        h.cancel(Duration::from_secs(1));
        let run = finish(&h).await;
        assert_eq!(run.status, RunStatus::Cancelled, "probe {probe}: {run:?}");
        // Nothing goes on after the run's end: a probe's removal is part of it.
        assert_eq!(fake.containers(), 0, "probe {probe}: a container was left");
    }
}

/// A service that echoes a secret of a task started after it (a password the task
/// sent it) has it masked in its log: the service's log is masked with every secret
/// the run learns while it runs.
#[tokio::test(start_paused = true)]
async fn a_service_echoing_a_later_tasks_secret_has_it_masked() {
    use gofer_core::secrecy::SecretString;
    use gofer_core::{InMemorySecretStore, SecretStore};
    let fake = fake()
        .image(
            "leaky",
            Behaviour::new()
                .sleep(Duration::from_secs(5))
                .stdout("got hunter2-task-pw\n")
                .then_run_until_stopped(),
        )
        .image("busy", Behaviour::new().sleep(Duration::from_secs(10)))
        .image("slowish", Behaviour::new().sleep(Duration::from_secs(2)));
    let secrets = Arc::new(InMemorySecretStore::new());
    secrets
        .put_pipeline_secret(
            PIPE,
            "task_pw",
            SecretString::from("hunter2-task-pw".to_string()),
            false,
        )
        .await
        .unwrap();
    let (b, sink) = builder(&fake);
    let e = b
        .network_sandbox("pause")
        .secret_store(secrets)
        .build()
        .unwrap();
    let p = Pipeline::new(PIPE, PIPE)
        .service(Service::new("database", "leaky"))
        // The client (and its secret) comes a while after the service started.
        .task(Task::new("warmup", "slowish"))
        .task(
            Task::new("client", "busy")
                .variable("PW", "secret{{task_pw}}")
                .needs_service("database")
                .depends_on("warmup", gofer_core::RequiredParentStatus::Success),
        );
    let run = finish(&e.start_run(&p, RunOptions::new()).unwrap()).await;
    assert_eq!(run.status, RunStatus::Successful, "{run:?}");
    let kept: Vec<String> = sink
        .lines(&LogKey::service(PIPE, 1, "database"))
        .iter()
        .map(|l| l.text().into_owned())
        .collect();
    assert_eq!(kept, [format!("got {}", gofer_core::MASK)]);
}

/// A task whose container ended while the host was away is only collected after the
/// crash: its real exit is recorded, and its service, which ended meanwhile too, is
/// not started again for it.
#[tokio::test(start_paused = true)]
async fn a_task_collected_after_a_crash_starts_no_service_again() {
    let fake = fake()
        .image(
            "busy",
            Behaviour::new()
                .sleep(Duration::from_secs(30))
                .stdout("done\n"),
        )
        // The service ends while the host is away too.
        .image(
            "shortdb",
            Behaviour::new()
                .stdout("db up\n")
                .sleep(Duration::from_secs(40)),
        );
    let store = InMemoryRunStore::new();
    let sink = InMemoryLogSink::new();
    let host = || {
        Engine::builder(Arc::new(fake.clone()))
            .instance_id("test")
            .log_sink(Arc::new(sink.clone()))
            .run_store(Arc::new(store.clone()))
            .network_sandbox("pause")
            .build()
            .unwrap()
    };
    let p = Pipeline::new(PIPE, PIPE)
        .service(Service::new("database", "shortdb"))
        .task(Task::new("client", "busy").needs_service("database"));
    let a = host();
    a.recover().await.unwrap();
    let h = a.start_run(&p, RunOptions::new()).unwrap();
    let mut events = h.events();
    while let Some(e) = events.next().await {
        if matches!(&e, Event::Task { task_id, state: TaskState::Running, .. } if &**task_id == "client")
        {
            break;
        }
    }
    a.simulate_crash().await;
    // The task's container ends while no host is there.
    tokio::time::sleep(Duration::from_secs(60)).await;

    let b = host();
    let report = b.recover().await.unwrap();
    assert_eq!(
        report.action(PIPE, 1, "client"),
        Some(RecoveryAction::Collected)
    );
    let run = finish(&report.runs[0]).await;
    let t = task(&run, "client");
    assert_eq!(
        (t.status, t.exit_code),
        (TaskStatus::Successful, Some(0)),
        "{t:?}"
    );
    assert_eq!(
        fake.started_count(&svc_name("database")),
        1,
        "not started again"
    );
    assert_eq!(fake.containers(), 0);
}
