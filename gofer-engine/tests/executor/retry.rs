//! Retries on the FakeScheduler: attempt counts, what is retried, backoff under paused
//! time, timeouts per attempt, cancels during a backoff, crash recovery mid-retry.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use gofer_core::fake::{Behaviour, FakeScheduler};
use gofer_core::naming::task_container_name_attempt;
use gofer_core::RequiredParentStatus::Success;
use gofer_core::{
    Event, InMemoryRunStore, Pipeline, RetryOn, RetryPolicy, RunOptions, RunStatus, RunStore,
    StatusReason, Task, TaskState, TaskStatus, ValidationIssue,
};
use gofer_engine::{InMemoryLogSink, LogKey, RecoveryAction, RunHandle};

use crate::common::*;
use crate::recovery::host;

fn attempt_name(pipeline: &str, task: &str, attempt: u32) -> String {
    task_container_name_attempt("test", pipeline, 1, task, attempt)
}

/// A task of image "flaky" fails (exit 3, printing its attempt) until attempt `ok_at`.
fn flaky(pipeline: &str, ok_at: u32) -> FakeScheduler {
    let mut fake = FakeScheduler::new()
        .image("flaky", Behaviour::new().stdout("failing\n").exit_code(3))
        .image("ok", Behaviour::new().stdout("fine\n"))
        .image("forever", Behaviour::run_until_stopped());
    for a in 2..ok_at {
        fake = fake.on_name(
            &attempt_name(pipeline, "flaky", a),
            Behaviour::new()
                .stdout(format!("failing {a}\n"))
                .exit_code(3),
        );
    }
    fake.on_name(
        &attempt_name(pipeline, "flaky", ok_at),
        Behaviour::new().stdout("passed\n"),
    )
}

fn starts(fake: &FakeScheduler, name: &str) -> usize {
    fake.requests().iter().filter(|r| r.name == name).count()
}

async fn until_event(h: &RunHandle, f: impl Fn(&Event) -> bool) {
    let mut events = h.events();
    while let Some(e) = events.next().await {
        if f(&e) {
            return;
        }
    }
    panic!("run ended before the event");
}

fn lines(sink: &InMemoryLogSink, pipeline: &str, task: &str, attempt: u32) -> Vec<String> {
    sink.lines(&LogKey::attempt(pipeline, 1, task, attempt))
        .iter()
        .map(|l| l.text().into_owned())
        .collect()
}

#[tokio::test(start_paused = true)]
async fn fails_twice_then_succeeds_with_a_container_log_and_record_per_attempt() {
    let fake = flaky("retry", 3);
    let (b, sink) = builder(&fake);
    let engine = b.build().unwrap();
    let p = Pipeline::new("retry", "retry").tasks([
        Task::new("flaky", "flaky").retry(RetryPolicy::new(5).backoff(
            Duration::from_secs(1),
            2.0,
            Duration::from_secs(60),
        )),
        Task::new("after", "ok").depends_on("flaky", Success),
    ]);
    let h = engine.start_run(&p, RunOptions::new()).unwrap();
    let run = finish(&h).await;
    assert_eq!(run.status, RunStatus::Successful, "{run:?}");
    let t = task(&run, "flaky");
    assert_eq!(
        (t.status, t.attempt, t.exit_code),
        (TaskStatus::Successful, 3, Some(0))
    );
    assert_eq!(t.attempts.len(), 2);
    for (i, a) in t.attempts.iter().enumerate() {
        let n = i as u32 + 1;
        assert_eq!(a.attempt, n);
        assert_eq!(a.status, TaskStatus::Failed);
        assert_eq!(a.reason, Some(StatusReason::AbnormalExit { code: 3 }));
        assert_eq!(
            a.container.as_ref().unwrap().name,
            attempt_name("retry", "flaky", n)
        );
    }
    assert_eq!(
        t.container.as_ref().unwrap().name,
        attempt_name("retry", "flaky", 3)
    );
    // One container per attempt, each started once; the dependent ran after the last.
    for n in 1..=3 {
        assert_eq!(
            starts(&fake, &attempt_name("retry", "flaky", n)),
            1,
            "attempt {n}"
        );
    }
    assert_eq!(starts(&fake, &attempt_name("retry", "flaky", 4)), 0);
    assert_eq!(
        fake.request(&attempt_name("retry", "flaky", 2))
            .unwrap()
            .labels[gofer_core::naming::LABEL_ATTEMPT],
        "2"
    );
    // Each attempt's container is told which attempt it is.
    for n in 1..=3u32 {
        let spec = fake.request(&attempt_name("retry", "flaky", n)).unwrap();
        assert_eq!(
            spec.env
                .get(gofer_core::GOFER_TASK_ATTEMPT)
                .map(|v| v.expose().to_string()),
            Some(n.to_string())
        );
    }
    assert_eq!(task(&run, "after").status, TaskStatus::Successful);
    // Each attempt's own log, all kept.
    assert_eq!(lines(&sink, "retry", "flaky", 1), ["failing"]);
    assert_eq!(lines(&sink, "retry", "flaky", 2), ["failing 2"]);
    assert_eq!(lines(&sink, "retry", "flaky", 3), ["passed"]);
    let one: Vec<_> = h.attempt_logs("flaky", 2).unwrap().collect().await;
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].as_ref().unwrap().text(), "failing 2");
    let all: Vec<String> = h
        .logs("flaky")
        .unwrap()
        .map(|l| l.unwrap().text().into_owned())
        .collect()
        .await;
    assert_eq!(all, ["failing", "failing 2", "passed"]);
    // Events name the attempt.
    let events: Vec<Event> = h.events().collect().await;
    let retrying: Vec<(u32, Duration)> = events
        .iter()
        .filter_map(|e| match e {
            Event::Retrying {
                task_id,
                attempt,
                backoff,
                ..
            } if &**task_id == "flaky" => Some((*attempt, *backoff)),
            _ => None,
        })
        .collect();
    assert_eq!(
        retrying,
        [(1, Duration::from_secs(1)), (2, Duration::from_secs(2))]
    );
    let running: Vec<u32> = events
        .iter()
        .filter_map(|e| match e {
            Event::Task {
                task_id,
                state: TaskState::Running,
                attempt,
                ..
            } if &**task_id == "flaky" => Some(*attempt),
            _ => None,
        })
        .collect();
    assert_eq!(running, [1, 2, 3]);
    assert_eq!(fake.containers(), 0);
}

#[tokio::test(start_paused = true)]
async fn backoff_waits_grow_and_are_capped_under_paused_time() {
    let fake = flaky("backoff", 5);
    let p =
        Pipeline::new("backoff", "backoff").task(Task::new("flaky", "flaky").retry(
            RetryPolicy::new(5).backoff(Duration::from_secs(10), 3.0, Duration::from_secs(60)),
        ));
    let start = tokio::time::Instant::now();
    let run = finish(&engine(&fake).start_run(&p, RunOptions::new()).unwrap()).await;
    let t = task(&run, "flaky");
    assert_eq!(t.status, TaskStatus::Successful);
    let waits: Vec<Duration> = t.attempts.iter().map(|a| a.backoff).collect();
    let expected = [10, 30, 60, 60].map(Duration::from_secs);
    assert_eq!(waits, expected);
    // Each next attempt started no sooner than its wait after the previous ended.
    let mut starts: Vec<_> = t
        .attempts
        .iter()
        .skip(1)
        .map(|a| a.started.unwrap())
        .collect();
    starts.push(t.started.unwrap());
    for (a, next) in t.attempts.iter().zip(starts) {
        assert!(
            next.duration_since(a.ended.unwrap()).unwrap() >= a.backoff,
            "{a:?}"
        );
    }
    assert!(start.elapsed() >= expected.iter().sum::<Duration>());
}

#[tokio::test(start_paused = true)]
async fn only_the_failures_asked_for_are_retried() {
    let fake = FakeScheduler::new()
        .image("exit3", Behaviour::exit(3))
        .image("nostart", Behaviour::new().fail_start("no room"));
    let p = Pipeline::new("which", "which").tasks([
        Task::new("code_listed", "exit3")
            .retry(RetryPolicy::new(3).retry_on(RetryOn::ExitCodes(vec![3]))),
        Task::new("code_unlisted", "exit3")
            .retry(RetryPolicy::new(3).retry_on(RetryOn::ExitCodes(vec![1, 2]))),
        Task::new("exit_not_sched", "exit3")
            .retry(RetryPolicy::new(3).retry_on(RetryOn::SchedulerErrors)),
        Task::new("start_failed", "nostart")
            .retry(RetryPolicy::new(2).retry_on(RetryOn::SchedulerErrors)),
        Task::new("missing_key", "exit3")
            .variable("K", "secret{{absent}}")
            .retry(RetryPolicy::new(3)),
        Task::new("no_policy", "exit3"),
    ]);
    let run = finish(&engine(&fake).start_run(&p, RunOptions::new()).unwrap()).await;
    let attempts = |id: &str| {
        let t = task(&run, id);
        assert_ne!(t.status, TaskStatus::Successful);
        t.attempt
    };
    assert_eq!(attempts("code_listed"), 3);
    assert_eq!(attempts("code_unlisted"), 1);
    assert_eq!(attempts("exit_not_sched"), 1);
    assert_eq!(attempts("start_failed"), 2);
    assert_eq!(
        task(&run, "start_failed").reason,
        Some(StatusReason::SchedulerError)
    );
    assert_eq!(attempts("missing_key"), 1);
    assert_eq!(
        task(&run, "missing_key").reason,
        Some(StatusReason::FailedPrecondition)
    );
    assert_eq!(attempts("no_policy"), 1);
    assert_eq!(run.status, RunStatus::Failed);
    assert_eq!(fake.containers(), 0);
}

#[tokio::test(start_paused = true)]
async fn the_timeout_applies_to_each_attempt() {
    let fake = FakeScheduler::new().image("forever", Behaviour::run_until_stopped());
    let p = Pipeline::new("tmo", "tmo").task(
        Task::new("slow", "forever")
            .timeout(Duration::from_secs(5))
            .retry(RetryPolicy::new(3)),
    );
    let run = finish(&engine(&fake).start_run(&p, RunOptions::new()).unwrap()).await;
    let t = task(&run, "slow");
    assert_eq!(
        (t.status, t.reason, t.attempt),
        (TaskStatus::Failed, Some(StatusReason::Timeout), 3)
    );
    assert!(t
        .attempts
        .iter()
        .all(|a| a.reason == Some(StatusReason::Timeout)));
    assert_eq!(fake.containers(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_cancel_during_the_backoff_stops_retrying() {
    for own in [false, true] {
        let fake = flaky("cancel", 3);
        let p = Pipeline::new("cancel", "cancel").task(Task::new("flaky", "flaky").retry(
            RetryPolicy::new(3).backoff(Duration::from_secs(3600), 1.0, Duration::from_secs(3600)),
        ));
        let h = engine(&fake).start_run(&p, RunOptions::new()).unwrap();
        until_event(&h, |e| matches!(e, Event::Retrying { .. })).await;
        if own {
            h.cancel_task("flaky", Duration::from_secs(1)).unwrap();
        } else {
            h.cancel(Duration::from_secs(1));
        }
        let run = finish(&h).await;
        let t = task(&run, "flaky");
        assert_eq!(
            (t.status, t.reason),
            (TaskStatus::Cancelled, Some(StatusReason::Cancelled))
        );
        assert_eq!((t.attempt, t.attempts.len()), (2, 1));
        assert_eq!(
            starts(&fake, &attempt_name("cancel", "flaky", 2)),
            0,
            "own: {own}"
        );
        let status = if own {
            RunStatus::Successful
        } else {
            RunStatus::Cancelled
        };
        assert_eq!(run.status, status);
        assert_eq!(fake.containers(), 0);
    }
}

#[tokio::test(start_paused = true)]
async fn extreme_policies_are_typed_validation_errors_and_huge_waits_do_not_panic() {
    let fake = flaky("extreme", 2);
    let e = engine(&fake);
    for (policy, field) in [
        (RetryPolicy::new(0), "retry.attempts"),
        (RetryPolicy::new(u32::MAX), "retry.attempts"),
        (
            RetryPolicy::new(2).backoff(Duration::ZERO, f64::NAN, Duration::ZERO),
            "retry.factor",
        ),
        (
            RetryPolicy::new(2).backoff(Duration::MAX, 1.0, Duration::from_secs(1)),
            "retry.max_backoff",
        ),
    ] {
        let p = Pipeline::new("extreme", "x").task(Task::new("flaky", "flaky").retry(policy));
        let err = e.start_run(&p, RunOptions::new()).unwrap_err().to_string();
        assert!(err.contains(field), "{err}");
        let issues = p.validate().unwrap_err().issues;
        assert!(
            matches!(&issues[0], ValidationIssue::InvalidRetry { field: f, .. } if field == *f),
            "{issues:?}"
        );
    }
    // The longest wait there is: the run waits (and a cancel still ends it).
    let p = Pipeline::new("extreme", "x").task(Task::new("flaky", "flaky").retry(
        RetryPolicy::new(gofer_core::MAX_ATTEMPTS).backoff(
            Duration::MAX,
            gofer_core::MAX_FACTOR,
            Duration::MAX,
        ),
    ));
    let h = e.start_run(&p, RunOptions::new()).unwrap();
    until_event(&h, |e| matches!(e, Event::Retrying { .. })).await;
    tokio::time::sleep(Duration::from_secs(86_400)).await;
    assert_eq!(
        h.snapshot().task("flaky").unwrap().state,
        TaskState::Waiting
    );
    h.cancel(Duration::ZERO);
    assert_eq!(finish(&h).await.status, RunStatus::Cancelled);
}

#[tokio::test(start_paused = true)]
async fn a_crash_during_the_backoff_resumes_at_the_next_attempt() {
    let fake = flaky("crashy", 3);
    let store = InMemoryRunStore::new();
    let sink = InMemoryLogSink::new();
    let (a, _) = host(Arc::new(fake.clone()), &store, &sink).await;
    let p = Pipeline::new("crashy", "crashy").task(Task::new("flaky", "flaky").retry(
        RetryPolicy::new(3).backoff(Duration::from_secs(600), 1.0, Duration::from_secs(600)),
    ));
    let h = a.engine.start_run(&p, RunOptions::new()).unwrap();
    until_event(&h, |e| matches!(e, Event::Retrying { attempt: 1, .. })).await;
    h.wait_task("flaky", TaskState::Waiting).await.unwrap();
    // Durable: the failed attempt and the next attempt's number.
    let stored = store
        .get_task("crashy", 1, "flaky")
        .await
        .unwrap()
        .execution;
    assert_eq!((stored.attempt, stored.attempts.len()), (2, 1));
    a.engine.simulate_crash().await;

    let (_b, report) = host(Arc::new(fake.clone()), &store, &sink).await;
    assert_eq!(
        report.action("crashy", 1, "flaky"),
        Some(RecoveryAction::Resumed)
    );
    let run = finish(&report.runs[0]).await;
    let t = task(&run, "flaky");
    assert_eq!((t.status, t.attempt), (TaskStatus::Successful, 3));
    for n in 1..=3 {
        assert_eq!(
            starts(&fake, &attempt_name("crashy", "flaky", n)),
            1,
            "attempt {n}"
        );
    }
    assert_eq!(lines(&sink, "crashy", "flaky", 1), ["failing"]);
    assert_eq!(lines(&sink, "crashy", "flaky", 3), ["passed"]);
    assert_eq!(fake.containers(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_crash_during_a_later_attempt_reattaches_that_attempt_once() {
    let fake = FakeScheduler::new()
        .image("flaky", Behaviour::exit(3))
        .on_name(
            &attempt_name("crashy", "flaky", 2),
            Behaviour::new()
                .stdout("before\n")
                .sleep(Duration::from_secs(10))
                .stdout("after\n")
                .exit_code(3),
        )
        .on_name(
            &attempt_name("crashy", "flaky", 3),
            Behaviour::new().stdout("passed\n"),
        );
    let store = InMemoryRunStore::new();
    let sink = InMemoryLogSink::new();
    let (a, _) = host(Arc::new(fake.clone()), &store, &sink).await;
    let p = Pipeline::new("crashy", "crashy")
        .task(Task::new("flaky", "flaky").retry(RetryPolicy::new(3)));
    let h = a.engine.start_run(&p, RunOptions::new()).unwrap();
    until_event(&h, |e| {
        matches!(
            e,
            Event::Task {
                state: TaskState::Running,
                attempt: 2,
                ..
            }
        )
    })
    .await;
    a.engine.simulate_crash().await;

    let (_b, report) = host(Arc::new(fake.clone()), &store, &sink).await;
    assert_eq!(
        report.action("crashy", 1, "flaky"),
        Some(RecoveryAction::Reattached)
    );
    let run = finish(&report.runs[0]).await;
    let t = task(&run, "flaky");
    // The re-attached attempt 2 failed; the retry goes on with attempt 3.
    assert_eq!((t.status, t.attempt), (TaskStatus::Successful, 3));
    assert_eq!(
        t.attempts[1].reason,
        Some(StatusReason::AbnormalExit { code: 3 })
    );
    for n in 1..=3 {
        assert_eq!(
            starts(&fake, &attempt_name("crashy", "flaky", n)),
            1,
            "attempt {n}"
        );
    }
    assert_eq!(lines(&sink, "crashy", "flaky", 2), ["before", "after"]);
    assert_eq!(fake.containers(), 0);
}
