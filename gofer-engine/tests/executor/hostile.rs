//! Hostile input a host can pass: extreme durations and limits, arbitrary pipelines.
//! Nothing panics, every rejection is typed and names its field, every accepted run
//! ends with a status.

use std::sync::Arc;
use std::time::Duration;

use gofer_core::fake::{Behaviour, FakeScheduler};
use gofer_core::{InMemoryRunStore, Pipeline, RunOptions, RunState, RunStatus, Task, TaskStatus};
use gofer_engine::{Engine, InMemoryLogSink, Limits, RunError};
use proptest::prelude::*;

use crate::common::*;

const HUGE: [Duration; 3] = [
    Duration::MAX,
    Duration::from_secs(u64::MAX),
    Duration::from_secs(u64::MAX / 2),
];

fn fake() -> FakeScheduler {
    FakeScheduler::new()
        .image("ok", Behaviour::new().stdout("fine\n"))
        .image("forever", Behaviour::run_until_stopped())
}

/// A run or task timeout too far away to represent is no timeout: the run ends with
/// its status instead of being aborted by an overflow.
#[tokio::test(start_paused = true)]
async fn huge_timeouts_end_with_a_status() {
    for huge in HUGE {
        let fake = fake();
        let e = builder(&fake)
            .0
            .limits(Limits::default().run_timeout(huge).stop_grace(huge))
            .build()
            .unwrap();
        let p = Pipeline::new("huge", "huge").task(Task::new("task", "ok").timeout(huge));
        let run = finish(&e.start_run(&p, RunOptions::new().timeout(huge)).unwrap()).await;
        assert_eq!(run.status, RunStatus::Successful, "{huge:?}: {run:?}");
        assert_eq!(fake.containers(), 0);
    }
}

/// Cancelling with a huge grace stops a container that ends on SIGTERM, and leaves
/// nothing.
#[tokio::test(start_paused = true)]
async fn cancel_with_a_huge_grace_ends_cancelled() {
    let fake = fake();
    let e = engine(&fake);
    let p = Pipeline::new("grace", "grace").task(Task::new("task", "forever"));
    let h = e.start_run(&p, RunOptions::new()).unwrap();
    h.wait_task("task", gofer_core::TaskState::Running)
        .await
        .unwrap();
    h.cancel(Duration::MAX);
    let run = finish(&h).await;
    assert_eq!(run.status, RunStatus::Cancelled);
    assert_eq!(fake.containers(), 0);
}

/// A run with a huge timeout that a host crash interrupted is recovered (it used to
/// stay Running and make every later recovery panic).
#[tokio::test(start_paused = true)]
async fn huge_timeout_survives_a_crash_and_recovery() {
    let fake = FakeScheduler::new().image(
        "slow",
        Behaviour::new()
            .stdout("a\n")
            .sleep(Duration::from_secs(5))
            .stdout("b\n"),
    );
    let store = InMemoryRunStore::new();
    let sink = InMemoryLogSink::new();
    let p = Pipeline::new("huge", "huge").task(Task::new("task", "slow"));
    let open = || {
        Engine::builder(Arc::new(fake.clone()))
            .instance_id("test")
            .log_sink(Arc::new(sink.clone()))
            .run_store(Arc::new(store.clone()))
            .limits(Limits::default().run_timeout(Duration::MAX))
            .build_and_recover()
    };
    let (a, _) = open().await.unwrap();
    let h = a
        .start_run(&p, RunOptions::new().timeout(Duration::MAX))
        .unwrap();
    h.wait_task("task", gofer_core::TaskState::Running)
        .await
        .unwrap();
    a.simulate_crash().await;
    let (_b, report) = open().await.unwrap();
    let run = finish(&report.runs[0]).await;
    assert_eq!(run.status, RunStatus::Successful, "{run:?}");
    assert_eq!(run.state, RunState::Complete);
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z_]{3,12}",
        "[A-Za-z0-9_-]{0,70}",
        "\\PC{0,20}",
        Just("with\0nul".to_string()),
        Just("secret{{missing}}".to_string()),
        Just("x secret{{a}}".to_string()),
        Just("run_object{{ }}".to_string()),
        Just("{{ .Go }}".to_string()),
        Just("a".repeat(200_000)),
    ]
}

fn duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        Just(Duration::ZERO),
        Just(Duration::from_nanos(1)),
        Just(Duration::from_secs(1)),
        Just(Duration::MAX),
        Just(Duration::from_secs(u64::MAX)),
        (0u64..100_000).prop_map(Duration::from_millis),
    ]
}

#[derive(Debug, Clone)]
struct TaskInput {
    id: String,
    image: String,
    command: Vec<String>,
    vars: Vec<(String, String)>,
    parent: Option<usize>,
    timeout: Option<Duration>,
    cpus: Option<f64>,
    memory: Option<u64>,
}

fn task_input() -> impl Strategy<Value = TaskInput> {
    (
        prop_oneof![3 => "[a-z]{3,8}", 1 => text()],
        prop_oneof![3 => Just("ok".to_string()), 1 => Just("absent".to_string()), 1 => text()],
        proptest::collection::vec(text(), 0..3),
        proptest::collection::vec((text(), text()), 0..3),
        proptest::option::of(0usize..4),
        proptest::option::of(duration()),
        proptest::option::of(prop_oneof![
            Just(1e-9),
            Just(1e9),
            Just(f64::NAN),
            Just(-1.0),
            0.01f64..8.0
        ]),
        proptest::option::of(prop_oneof![Just(0u64), Just(u64::MAX), 1u64..1 << 40]),
    )
        .prop_map(
            |(id, image, command, vars, parent, timeout, cpus, memory)| TaskInput {
                id,
                image,
                command,
                vars,
                parent,
                timeout,
                cpus,
                memory,
            },
        )
}

fn build(inputs: &[TaskInput]) -> Pipeline {
    let mut p = Pipeline::new("hostile", "hostile");
    for (i, t) in inputs.iter().enumerate() {
        let mut task = Task::new(t.id.clone(), t.image.clone()).command(t.command.clone());
        for (k, v) in &t.vars {
            task = task.variable(k.clone(), v.clone());
        }
        if let Some(parent) = t.parent.filter(|p| *p < i) {
            task = task.depends_on(
                inputs[parent].id.clone(),
                gofer_core::RequiredParentStatus::Any,
            );
        }
        if let Some(d) = t.timeout {
            task = task.timeout(d);
        }
        if let Some(c) = t.cpus {
            task = task.cpu_limit(c);
        }
        if let Some(m) = t.memory {
            task = task.memory_limit(m);
        }
        p = p.task(task);
    }
    p
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

    #[test]
    fn arbitrary_pipelines_never_panic(
        inputs in proptest::collection::vec(task_input(), 1..5),
        options in proptest::collection::vec((text(), text()), 0..3),
        run_timeout in proptest::option::of(duration()),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(async {
            let fake = FakeScheduler::new().default_behaviour(Behaviour::new().stdout("x\n"));
            let e = engine(&fake);
            let mut opts = RunOptions::new().variables(options.clone());
            if let Some(t) = run_timeout {
                opts = opts.timeout(t);
            }
            match e.start_run(&build(&inputs), opts) {
                Ok(h) => {
                    let run = h.wait().await.unwrap();
                    prop_assert_eq!(run.state, RunState::Complete);
                    prop_assert_ne!(run.status, RunStatus::Unknown);
                    for t in &run.tasks {
                        prop_assert_ne!(t.status, TaskStatus::Unknown, "{:?}", t);
                    }
                    prop_assert_eq!(fake.containers(), 0);
                }
                Err(RunError::Invalid(errors)) => {
                    prop_assert!(!errors.issues.is_empty());
                    for issue in &errors.issues {
                        prop_assert!(!issue.field().is_empty(), "{:?}", issue);
                    }
                    prop_assert!(errors.to_string().len() < 64 * 1024);
                }
                Err(RunError::InvalidVariable { key, .. }) => {
                    prop_assert!(options.iter().any(|(k, _)| *k == key));
                }
                Err(RunError::ZeroTimeout) => prop_assert_eq!(run_timeout, Some(Duration::ZERO)),
                Err(other) => prop_assert!(false, "unexpected rejection {other}"),
            }
            Ok(())
        })?;
    }
}
