//! Crash recovery on the FakeScheduler: an engine dies mid-run (its executor stops,
//! its containers keep going), a new engine on the same run store and scheduler picks
//! the run up.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use gofer_core::fake::{Behaviour, FakeScheduler};
use gofer_core::naming;
use gofer_core::RequiredParentStatus::Success;
use gofer_core::{
    ContainerId, ContainerSpec, Event, InMemoryRunStore, Pipeline, RunOptions, RunState, RunStatus,
    RunStore, Scheduler, StatusReason, Task, TaskState, TaskStatus,
};
use gofer_engine::{Engine, InMemoryLogSink, LogKey, RecoveryAction, RunError};

use crate::common::*;

pub fn fake() -> FakeScheduler {
    FakeScheduler::new()
        .image(
            "slow",
            Behaviour::new()
                .stdout("before\n")
                .sleep(Duration::from_secs(10))
                .stdout("after\n"),
        )
        .image(
            "slowfail",
            Behaviour::new()
                .stdout("before\n")
                .sleep(Duration::from_secs(10))
                .stdout("after\n")
                .exit_code(3),
        )
        .image("ok", Behaviour::new().stdout("fine\n"))
}

pub fn pipeline(first_image: &str) -> Pipeline {
    Pipeline::new("crashy", "crash test").tasks([
        Task::new("quick", "ok"),
        Task::new("first", first_image).depends_on("quick", Success),
        Task::new("second", "ok").depends_on("first", Success),
    ])
}

pub struct Host {
    pub engine: Engine,
}

/// An engine over `scheduler`, the shared store and the shared sink, recovered.
pub async fn host(
    scheduler: Arc<dyn Scheduler>,
    store: &InMemoryRunStore,
    sink: &InMemoryLogSink,
) -> (Host, gofer_engine::RecoveryReport) {
    let engine = Engine::builder(scheduler)
        .instance_id("test")
        .log_sink(Arc::new(sink.clone()))
        .run_store(Arc::new(store.clone()))
        .build()
        .unwrap();
    let report = engine.recover().await.unwrap();
    (Host { engine }, report)
}

/// Waits until the run's task reaches `state`.
pub async fn until_task(h: &gofer_engine::RunHandle, task: &str, state: TaskState) {
    let mut events = h.events();
    while let Some(e) = events.next().await {
        if let Event::Task {
            task_id, state: s, ..
        } = &e
        {
            if &**task_id == task && *s == state {
                return;
            }
        }
    }
    panic!("run ended before task {task} reached {state:?}");
}

pub fn log_text(sink: &InMemoryLogSink, run: u64, task: &str) -> Vec<String> {
    sink.lines(&LogKey::new("crashy", run, task))
        .iter()
        .map(|l| l.text().into_owned())
        .collect()
}

pub fn starts(fake: &FakeScheduler, name: &str) -> usize {
    fake.requests().iter().filter(|r| r.name == name).count()
}

#[tokio::test(start_paused = true)]
async fn crash_mid_run_then_recover_reattaches_and_finishes() {
    let fake = fake();
    let store = InMemoryRunStore::new();
    let sink = InMemoryLogSink::new();
    let (a, report) = host(Arc::new(fake.clone()), &store, &sink).await;
    assert!(report.runs.is_empty() && report.tasks.is_empty());
    let h = a
        .engine
        .start_run(&pipeline("slow"), RunOptions::new())
        .unwrap();
    until_task(&h, "first", TaskState::Running).await;
    // Recorded durably before the container started: the name, then the id.
    let stored = store.get_task("crashy", 1, "first").await.unwrap();
    assert_eq!(stored.execution.state, TaskState::Running);
    let c = stored.execution.container.clone().unwrap();
    assert_eq!(c.name, cname("crashy", 1, "first"));
    assert!(c.id.is_some());
    assert!(a.engine.run("crashy", 1).is_some(), "a live run");
    a.engine.simulate_crash().await;
    assert_eq!(fake.running(), 1, "the container outlives the host");
    assert!(
        a.engine.run("crashy", 1).is_none(),
        "a run whose executor stopped is no live run any more"
    );

    let (b, report) = host(Arc::new(fake.clone()), &store, &sink).await;
    assert_eq!(report.runs.len(), 1);
    assert_eq!(
        report.action("crashy", 1, "first"),
        Some(RecoveryAction::Reattached)
    );
    assert_eq!(
        report.action("crashy", 1, "second"),
        Some(RecoveryAction::Resumed)
    );
    assert_eq!(
        report.action("crashy", 1, "quick"),
        None,
        "complete tasks are kept"
    );
    let run = finish(&report.runs[0]).await;
    assert_eq!(run.status, RunStatus::Successful, "{run:?}");
    assert_eq!(log_text(&sink, 1, "first"), vec!["before", "after"]);
    assert_eq!(log_text(&sink, 1, "second"), vec!["fine"]);
    assert_eq!(
        starts(&fake, &cname("crashy", 1, "first")),
        1,
        "never started twice"
    );
    assert_eq!(starts(&fake, &cname("crashy", 1, "quick")), 1);
    assert_eq!(fake.containers(), 0, "every container removed");

    // The store has the whole, finished history.
    let stored = store.get_run("crashy", 1).await.unwrap();
    assert_eq!(
        (stored.state, stored.status),
        (RunState::Complete, RunStatus::Successful)
    );
    assert_eq!(stored, run);
    let events = store.events("crashy", 1).await.unwrap();
    assert_eq!(events.len(), report.runs[0].events().count().await);
    assert!(store.unfinished_runs().await.unwrap().is_empty());
    // Run numbers continue.
    let next = b
        .engine
        .start_run(&pipeline("ok"), RunOptions::new())
        .unwrap();
    assert_eq!(next.run_id(), 2);
    assert_eq!(finish(&next).await.status, RunStatus::Successful);
}

#[tokio::test(start_paused = true)]
async fn container_that_exited_while_away_is_collected_with_its_code_and_log() {
    let fake = fake();
    let store = InMemoryRunStore::new();
    let sink = InMemoryLogSink::new();
    let (a, _) = host(Arc::new(fake.clone()), &store, &sink).await;
    let h = a
        .engine
        .start_run(&pipeline("slowfail"), RunOptions::new())
        .unwrap();
    until_task(&h, "first", TaskState::Running).await;
    a.engine.simulate_crash().await;
    // The host is away while the container finishes.
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(fake.running(), 0);
    assert_eq!(fake.containers(), 1);

    let (_b, report) = host(Arc::new(fake.clone()), &store, &sink).await;
    assert_eq!(
        report.action("crashy", 1, "first"),
        Some(RecoveryAction::Collected)
    );
    let run = finish(&report.runs[0]).await;
    let first = task(&run, "first");
    assert_eq!(first.status, TaskStatus::Failed);
    assert_eq!(first.reason, Some(StatusReason::AbnormalExit { code: 3 }));
    assert_eq!(first.exit_code, Some(3));
    assert_eq!(log_text(&sink, 1, "first"), vec!["before", "after"]);
    assert_eq!(task(&run, "second").status, TaskStatus::Skipped);
    assert_eq!(run.status, RunStatus::Failed);
    assert_eq!(fake.containers(), 0);
}

#[tokio::test(start_paused = true)]
async fn vanished_container_is_failed_orphaned() {
    let fake = fake();
    let store = InMemoryRunStore::new();
    let sink = InMemoryLogSink::new();
    let (a, _) = host(Arc::new(fake.clone()), &store, &sink).await;
    let h = a
        .engine
        .start_run(&pipeline("slow"), RunOptions::new())
        .unwrap();
    until_task(&h, "first", TaskState::Running).await;
    a.engine.simulate_crash().await;
    // Someone removes the container while the host is down.
    let id = ContainerId::from(cname("crashy", 1, "first"));
    fake.remove(&id, true).await.unwrap();

    let (_b, report) = host(Arc::new(fake.clone()), &store, &sink).await;
    assert_eq!(
        report.action("crashy", 1, "first"),
        Some(RecoveryAction::Orphaned)
    );
    let run = finish(&report.runs[0]).await;
    assert_eq!(task(&run, "first").status, TaskStatus::Failed);
    assert_eq!(task(&run, "first").reason, Some(StatusReason::Orphaned));
    assert_eq!(task(&run, "second").status, TaskStatus::Skipped);
    assert_eq!(run.status, RunStatus::Failed);
    assert_eq!(
        starts(&fake, &cname("crashy", 1, "first")),
        1,
        "not restarted"
    );
}

#[tokio::test(start_paused = true)]
async fn unknown_labelled_containers_are_reaped_others_left_alone() {
    let fake = fake().image("forever", Behaviour::run_until_stopped());
    let ghost = ContainerSpec::new("ghost-of-run-9", "forever")
        .labels(naming::task_labels("test", "crashy", 9, "gone"));
    let foreign = ContainerSpec::new("other-engine", "forever")
        .labels(naming::task_labels("other", "crashy", 9, "gone"));
    fake.start(ghost).await.unwrap();
    fake.start(foreign).await.unwrap();
    let store = InMemoryRunStore::new();
    let sink = InMemoryLogSink::new();
    let (_b, report) = host(Arc::new(fake.clone()), &store, &sink).await;
    assert_eq!(report.reaped, vec!["ghost-of-run-9".to_string()]);
    assert_eq!(
        fake.containers(),
        1,
        "another engine's container is not touched"
    );
    fake.remove(&ContainerId::from("other-engine"), true)
        .await
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn start_run_needs_recovery_first_with_a_store() {
    let fake = fake();
    let engine = Engine::builder(Arc::new(fake.clone()))
        .instance_id("test")
        .log_sink(Arc::new(InMemoryLogSink::new()))
        .run_store(Arc::new(InMemoryRunStore::new()))
        .build()
        .unwrap();
    assert!(matches!(
        engine.start_run(&pipeline("ok"), RunOptions::new()),
        Err(RunError::NotRecovered)
    ));
    engine.recover().await.unwrap();
    let h = engine
        .start_run(&pipeline("ok"), RunOptions::new())
        .unwrap();
    assert_eq!(finish(&h).await.status, RunStatus::Successful);
}

#[tokio::test(start_paused = true)]
async fn store_keeps_task_details_with_sources_and_masked_secrets() {
    let fake = FakeScheduler::new().image("env", Behaviour::print_env());
    let store = InMemoryRunStore::new();
    let secrets = gofer_core::InMemorySecretStore::new();
    gofer_core::SecretStore::put_pipeline_secret(
        &secrets,
        "crashy",
        "pw",
        gofer_core::secrecy::SecretString::from("hunter2-secret".to_string()),
        false,
    )
    .await
    .unwrap();
    let engine = Engine::builder(Arc::new(fake.clone()))
        .instance_id("test")
        .log_sink(Arc::new(InMemoryLogSink::new()))
        .secret_store(Arc::new(secrets))
        .run_store(Arc::new(store.clone()))
        .build()
        .unwrap();
    engine.recover().await.unwrap();
    let p = Pipeline::new("crashy", "details").task(
        Task::new("show", "env")
            .variable("PASSWORD", "secret{{pw}}")
            .variable("MODE", "plain"),
    );
    engine.register_pipeline(&p).await.unwrap();
    let h = engine
        .start_run(&p, RunOptions::new().variable("FROM_RUN", "yes"))
        .unwrap();
    finish(&h).await;
    let d = store.get_task("crashy", 1, "show").await.unwrap();
    let var = |k: &str| {
        d.execution
            .variables
            .iter()
            .find(|v| v.key == k)
            .unwrap()
            .clone()
    };
    assert_eq!(var("PASSWORD").value, gofer_core::MASK);
    assert!(var("PASSWORD").masked);
    assert_eq!(
        var("MODE").source,
        gofer_core::VariableSource::PipelineConfig
    );
    assert_eq!(
        var("FROM_RUN").source,
        gofer_core::VariableSource::RunOptions
    );
    assert_eq!(
        var("GOFER_RUN_ID").source,
        gofer_core::VariableSource::System
    );
    assert!(!format!("{d:?}").contains("hunter2-secret"));
    assert_eq!(store.get_pipeline("crashy").await.unwrap(), p);
    assert_eq!(store.list_runs("crashy").await.unwrap().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn re_read_log_of_a_reattached_task_is_still_masked() {
    let fake = FakeScheduler::new().image(
        "envslow",
        Behaviour::print_env()
            .sleep(Duration::from_secs(10))
            .stdout("after\n"),
    );
    let secrets = gofer_core::InMemorySecretStore::new();
    gofer_core::SecretStore::put_pipeline_secret(
        &secrets,
        "crashy",
        "pw",
        gofer_core::secrecy::SecretString::from("hunter2-secret".to_string()),
        false,
    )
    .await
    .unwrap();
    let secrets = Arc::new(secrets);
    let store = InMemoryRunStore::new();
    let sink = InMemoryLogSink::new();
    let build = |s: Arc<dyn Scheduler>| {
        Engine::builder(s)
            .instance_id("test")
            .log_sink(Arc::new(sink.clone()))
            .secret_store(secrets.clone())
            .run_store(Arc::new(store.clone()))
            .build()
            .unwrap()
    };
    let p = Pipeline::new("crashy", "masking")
        .task(Task::new("show", "envslow").variable("PASSWORD", "secret{{pw}}"));
    let a = build(Arc::new(fake.clone()));
    a.recover().await.unwrap();
    let h = a.start_run(&p, RunOptions::new()).unwrap();
    until_task(&h, "show", TaskState::Running).await;
    a.simulate_crash().await;

    let b = build(Arc::new(fake.clone()));
    let report = b.recover().await.unwrap();
    assert_eq!(
        report.action("crashy", 1, "show"),
        Some(RecoveryAction::Reattached)
    );
    let run = finish(&report.runs[0]).await;
    assert_eq!(run.status, RunStatus::Successful);
    let log = log_text(&sink, 1, "show");
    assert!(log.iter().any(|l| l.starts_with("PASSWORD=")), "{log:?}");
    assert!(!log.iter().any(|l| l.contains("hunter2-secret")), "{log:?}");
    assert_eq!(log.last().map(String::as_str), Some("after"));
}

#[tokio::test(start_paused = true)]
async fn without_a_store_recover_reaps_the_instance_containers_before_any_run() {
    let fake = fake().image("forever", Behaviour::run_until_stopped());
    fake.start(
        ContainerSpec::new("left-by-last-life", "forever")
            .labels(naming::task_labels("test", "crashy", 1, "first")),
    )
    .await
    .unwrap();
    let engine = engine(&fake);
    let report = engine.recover().await.unwrap();
    assert_eq!(report.reaped, vec!["left-by-last-life".to_string()]);
    assert_eq!(fake.containers(), 0);
    // Once runs are going, their containers are never taken for leftovers.
    let h = engine
        .start_run(&pipeline("slow"), RunOptions::new())
        .unwrap();
    until_task(&h, "first", TaskState::Running).await;
    assert!(engine.recover().await.unwrap().reaped.is_empty());
    assert_eq!(finish(&h).await.status, RunStatus::Successful);
}

/// A host that died between the engine's create and its start leaves a `Created`
/// container: recovery starts that container (once) instead of removing it and
/// starting another, so the task runs exactly once.
#[tokio::test(start_paused = true)]
async fn created_container_is_started_once_not_recreated() {
    let fake = fake().image("held", Behaviour::new().stdout("ran\n").hold_created());
    let store = InMemoryRunStore::new();
    let sink = InMemoryLogSink::new();
    let p = Pipeline::new("held", "held").task(Task::new("only", "held"));
    let name = cname("held", 1, "only");
    {
        let (a, _) = host(Arc::new(fake.clone()), &store, &sink).await;
        let h = a.engine.start_run(&p, RunOptions::new()).unwrap();
        until_task(&h, "only", TaskState::Running).await;
        a.engine.simulate_crash().await;
    }
    assert_eq!(fake.started_count(&name), 0, "left created, never started");
    let (b, report) = host(Arc::new(fake.clone()), &store, &sink).await;
    assert_eq!(
        report.action("held", 1, "only"),
        Some(RecoveryAction::Restarted)
    );
    assert!(
        report.reaped.is_empty(),
        "nothing removed: {:?}",
        report.reaped
    );
    let run = finish(&report.runs[0]).await;
    assert_eq!(run.status, RunStatus::Successful, "{run:?}");
    assert_eq!(fake.started_count(&name), 1, "the task ran exactly once");
    let lines = sink.lines(&LogKey::new("held", 1, "only"));
    assert_eq!(lines.iter().map(|l| l.text()).collect::<Vec<_>>(), ["ran"]);
    assert_eq!(fake.containers(), 0);
    drop(b);
}

/// Timestamps follow Tokio's clock: under paused time a run's durations can be read.
#[tokio::test(start_paused = true)]
async fn timestamps_follow_the_paused_clock() {
    let fake = fake();
    let e = engine(&fake);
    let p = Pipeline::new("timed", "timed").task(Task::new("first", "slow"));
    let run = finish(&e.start_run(&p, RunOptions::new()).unwrap()).await;
    let t = task(&run, "first");
    let took = t.ended.unwrap().duration_since(t.started.unwrap()).unwrap();
    assert!(took >= Duration::from_secs(10), "{took:?}");
    assert!(took < Duration::from_secs(11), "{took:?}");
}

/// A task whose registry password is a secret placeholder resumes with its
/// credentials after a crash, although the new host never registered the pipeline:
/// the run store kept the placeholder (never the password), the secret store gives
/// the password again.
#[tokio::test(start_paused = true)]
async fn a_placeholder_registry_password_survives_a_crash_without_registration() {
    use gofer_core::secrecy::SecretString;
    use gofer_core::{InMemorySecretStore, SecretStore};
    let fake = fake()
        .image(
            "reg.example/private/tool",
            Behaviour::new().stdout("pulled\n"),
        )
        .private_registry_image("reg.example/private/tool", "gofer", "s3cret-pw");
    let store = InMemoryRunStore::new();
    let sink = InMemoryLogSink::new();
    let secrets = Arc::new(InMemorySecretStore::new());
    secrets
        .put_pipeline_secret(
            "crashy",
            "registry_pw",
            SecretString::from("s3cret-pw".to_string()),
            false,
        )
        .await
        .unwrap();
    let host = || {
        Engine::builder(Arc::new(fake.clone()))
            .instance_id("test")
            .log_sink(Arc::new(sink.clone()))
            .run_store(Arc::new(store.clone()))
            .secret_store(secrets.clone())
            .build()
            .unwrap()
    };
    let p = Pipeline::new("crashy", "crash test").tasks([
        Task::new("first", "slow"),
        Task::new("private", "reg.example/private/tool")
            .registry_auth("gofer", "secret{{registry_pw}}")
            .pull_policy(gofer_core::PullPolicy::Always)
            .depends_on("first", Success),
    ]);
    let a = host();
    a.recover().await.unwrap();
    let h = a.start_run(&p, RunOptions::new()).unwrap();
    until_task(&h, "first", TaskState::Running).await;
    a.simulate_crash().await;

    let b = host();
    let report = b.recover().await.unwrap();
    let run = finish(&report.runs[0]).await;
    let t = task(&run, "private");
    assert_eq!(t.status, TaskStatus::Successful, "{t:?}");
    assert_eq!(log_text(&sink, 1, "private"), ["pulled"]);
    let stored = store.unfinished_runs().await.unwrap();
    assert!(stored.is_empty());
}

/// A run resumed after a crash gets its API token again from an issuer that can give
/// it (its running container holds it): nothing new is issued, the token is masked in
/// the log read again, and revoked at the run's end.
#[tokio::test(start_paused = true)]
async fn a_resumed_run_keeps_its_api_token_masked() {
    let fake = fake().image(
        "tokenish",
        Behaviour::print_env()
            .sleep(Duration::from_secs(10))
            .stdout("after\n"),
    );
    let store = InMemoryRunStore::new();
    let sink = InMemoryLogSink::new();
    let host = |tokens: Arc<Tokens>| {
        Engine::builder(Arc::new(fake.clone()))
            .instance_id("test")
            .log_sink(Arc::new(sink.clone()))
            .run_store(Arc::new(store.clone()))
            .token_issuer(tokens)
            .build()
            .unwrap()
    };
    let p = Pipeline::new("crashy", "crash test")
        .task(Task::new("first", "tokenish").inject_api_token(true));
    let before = Arc::new(Tokens {
        resumable: true,
        ..Tokens::default()
    });
    let a = host(before.clone());
    a.recover().await.unwrap();
    let h = a.start_run(&p, RunOptions::new()).unwrap();
    until_task(&h, "first", TaskState::Running).await;
    a.simulate_crash().await;
    let token = before.issued.lock().unwrap()[0].1.clone();

    let after = Arc::new(Tokens {
        resumable: true,
        ..Tokens::default()
    });
    let b = host(after.clone());
    let report = b.recover().await.unwrap();
    assert_eq!(
        report.action("crashy", 1, "first"),
        Some(RecoveryAction::Reattached)
    );
    let run = finish(&report.runs[0]).await;
    assert_eq!(run.status, RunStatus::Successful, "{run:?}");
    assert!(after.issued.lock().unwrap().is_empty(), "no new token");
    assert_eq!(*after.resumed.lock().unwrap(), [1]);
    let log = log_text(&sink, 1, "first");
    assert!(
        log.iter().any(|l| l == "GOFER_API_TOKEN=[MASKED]"),
        "{log:?}"
    );
    assert!(log.iter().all(|l| !l.contains(&token)), "{log:?}");
    assert_eq!(*after.revoked.lock().unwrap(), [(1, token)]);
}
