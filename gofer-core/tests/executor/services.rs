//! Service containers on the FakeScheduler: started in the run's sandbox before the
//! tasks needing them, probed until ready or past the deadline, failing the tasks that
//! need them when not ready or dead, stopped and removed after the last task, their
//! logs kept.

use std::time::Duration;

use gofer_core::fake::{Behaviour, FakeScheduler};
use gofer_core::naming::service_container_name;
use gofer_core::{
    Engine, LogKey, NetworkMode, Pipeline, Readiness, RunOptions, RunStatus, Service, StatusReason,
    Task, TaskStatus, ValidationIssue,
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

fn sandboxed(fake: &FakeScheduler) -> (Engine, gofer_core::InMemoryLogSink) {
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
    // Nothing reads a service or a probe while it runs, so neither is attached (an
    // unread attach can hold a container); the task is.
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
