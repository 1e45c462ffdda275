//! Metrics on the fake, read from a debugging recorder after the runs: runs and tasks
//! by status, durations and queue waits, start latency per backend, retries, log
//! bytes, masks; and no label holds a run number, a task id or a combination.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use gofer_core::fake::{Behaviour, FakeScheduler};
use gofer_core::secrecy::SecretString;
use gofer_core::{
    InMemorySecretStore, Matrix, Pipeline, RetryPolicy, RunOptions, SecretStore, Task,
};
use gofer_engine::metrics as m;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use metrics_util::MetricKind;

type Series = BTreeMap<(MetricKind, String, Vec<(String, String)>), DebugValue>;

/// Two runs of a pipeline (a task printing a secret, a matrix task, a task failing
/// twice with one retry) on a current-thread runtime under a local recorder.
fn recorded() -> Series {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(async {
            let fake = FakeScheduler::new()
                .image("env", Behaviour::print_env())
                .image("ok", Behaviour::new().stdout("fine\n"))
                .image("bad", Behaviour::new().stdout("no\n").exit_code(3));
            let secrets = Arc::new(InMemorySecretStore::new());
            secrets
                .put_pipeline_secret(
                    "metered",
                    "pw",
                    SecretString::from("s3cret-value".to_string()),
                    false,
                )
                .await
                .unwrap();
            let (b, _) = crate::common::builder(&fake);
            let engine = b.secret_store(secrets).build().unwrap();
            let p = Pipeline::new("metered", "Metered").tasks([
                Task::new("leak", "env").variable("PW", "secret{{pw}}"),
                Task::new("each", "ok").matrix(Matrix::new([("V", vec!["1", "2"])])),
                Task::new("flaky", "bad").retry(RetryPolicy::new(2).backoff(
                    Duration::from_secs(1),
                    1.0,
                    Duration::from_secs(1),
                )),
            ]);
            for _ in 0..2 {
                engine
                    .start_run(&p, RunOptions::new())
                    .unwrap()
                    .wait()
                    .await
                    .unwrap();
            }
        });
    });
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let (kind, key) = key.into_parts();
            let mut labels: Vec<(String, String)> = key
                .labels()
                .map(|l| (l.key().to_string(), l.value().to_string()))
                .collect();
            labels.sort();
            ((kind, key.name().to_string(), labels), value)
        })
        .collect()
}

fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    v.sort();
    v
}

fn counter(s: &Series, name: &str, l: &[(&str, &str)]) -> u64 {
    match s.get(&(MetricKind::Counter, name.to_string(), labels(l))) {
        Some(DebugValue::Counter(n)) => *n,
        other => panic!(
            "{name} {l:?}: {other:?}\nall: {:#?}",
            s.keys().collect::<Vec<_>>()
        ),
    }
}

fn histogram(s: &Series, name: &str, l: &[(&str, &str)]) -> Vec<f64> {
    match s.get(&(MetricKind::Histogram, name.to_string(), labels(l))) {
        Some(DebugValue::Histogram(v)) => v.iter().map(|x| x.into_inner()).collect(),
        other => panic!("{name} {l:?}: {other:?}"),
    }
}

#[test]
fn runs_and_tasks_are_counted_timed_and_labelled_boundedly() {
    let s = recorded();
    let p = ("pipeline", "metered");
    let b = ("backend", "fake");
    assert_eq!(counter(&s, m::RUNS_STARTED, &[p]), 2);
    assert_eq!(counter(&s, m::RUNS_FINISHED, &[p, ("status", "failed")]), 2);
    // Per run: leak, two combinations: successful; flaky: failed (after a retry).
    assert_eq!(
        counter(&s, m::TASKS_FINISHED, &[p, b, ("status", "successful")]),
        6
    );
    assert_eq!(
        counter(&s, m::TASKS_FINISHED, &[p, b, ("status", "failed")]),
        2
    );
    // Every attempt's container ran: 3 + 2 attempts of flaky, per run.
    assert_eq!(counter(&s, m::TASKS_STARTED, &[p, b]), 10);
    assert_eq!(counter(&s, m::RETRIES, &[p]), 2);
    assert_eq!(
        histogram(&s, m::TASK_DURATION, &[p, b, ("status", "successful")]).len(),
        6
    );
    assert_eq!(histogram(&s, m::TASK_QUEUE_WAIT, &[p, b]).len(), 10);
    let starts = histogram(&s, m::START_LATENCY, &[b]);
    assert_eq!(starts.len(), 10);
    assert!(starts.iter().all(|d| *d >= 0.0));
    assert!(counter(&s, m::LOG_BYTES, &[p]) > 0);
    // The secret printed by `env`, once per run.
    assert_eq!(counter(&s, m::MASKED, &[p]), 2);
    // Bounded labels: only these keys, and no value is a run number, a task id or a
    // matrix combination.
    for (_, name, l) in s.keys() {
        for (k, v) in l {
            assert!(
                ["pipeline", "backend", "status"].contains(&k.as_str()),
                "{name}: label {k}"
            );
            assert!(
                !["1", "2", "leak", "each", "flaky"].contains(&v.as_str()) && !v.contains("V-"),
                "{name}: label value {v}"
            );
        }
    }
}
