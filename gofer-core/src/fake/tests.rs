//! Unit tests of the fake's state machine.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use secrecy::SecretString;
use tokio::time::Instant;

use super::*;
use crate::error::SchedulerError;
use crate::scheduler::{
    ContainerId, ContainerSpec, ContainerState, ExitStatus, OutputStream, Scheduler,
};
use crate::variable::EnvValue;

pub(super) fn spec(name: &str, image: &str) -> ContainerSpec {
    ContainerSpec::new(name, image)
}

pub(super) async fn output(s: &FakeScheduler, id: &ContainerId) -> (String, String) {
    let mut logs = s.logs(id).await.unwrap();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    while let Some(c) = logs.next().await {
        let c = c.unwrap();
        match c.stream {
            OutputStream::Stdout => out.extend_from_slice(&c.data),
            OutputStream::Stderr => err.extend_from_slice(&c.data),
        }
    }
    (
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

#[tokio::test(start_paused = true)]
async fn records_every_request_whole_with_env_and_secrets() {
    let fake = FakeScheduler::new().image("busybox", Behaviour::exit(0));
    let s = spec("a", "busybox")
        .env_var("PLAIN", "x=y")
        .env_var(
            "TOKEN",
            EnvValue::Secret(SecretString::from("hunter2".to_string())),
        )
        .label("k", "v");
    let id = fake.start(s).await.unwrap();
    fake.wait(&id).await.unwrap();
    let _ = fake.start(spec("a", "busybox")).await.unwrap_err();
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 2, "failed requests are recorded too");
    assert_eq!(reqs[0].env["PLAIN"].expose(), "x=y");
    assert_eq!(reqs[0].env["TOKEN"].expose(), "hunter2");
    assert!(reqs[0].env["TOKEN"].is_secret());
    assert_eq!(reqs[0].labels["k"], "v");
    assert!(!format!("{:?}", reqs[0]).contains("hunter2"));
    assert_eq!(
        fake.request("a").unwrap().env.len(),
        0,
        "last request of that name"
    );
}

#[tokio::test(start_paused = true)]
async fn a_name_cannot_be_used_twice_until_removed() {
    let fake = FakeScheduler::new().image("img", Behaviour::run_until_stopped());
    let id = fake.start(spec("n", "img")).await.unwrap();
    let err = fake.start(spec("n", "img")).await.unwrap_err();
    assert!(
        matches!(err, SchedulerError::Conflict { ref id, .. } if id == "n"),
        "{err}"
    );
    assert_eq!(fake.containers(), 1);
    fake.remove(&id, true).await.unwrap();
    let again = fake.start(spec("n", "img")).await.unwrap();
    assert_ne!(again, id, "a new container gets a new id");
}

#[tokio::test(start_paused = true)]
async fn concurrent_starts_of_one_name_give_one_container() {
    let fake = FakeScheduler::new().image("img", Behaviour::run_until_stopped());
    let results = futures::future::join_all((0..5).map(|_| fake.start(spec("same", "img")))).await;
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    assert!(results
        .iter()
        .filter_map(|r| r.as_ref().err())
        .all(|e| matches!(e, SchedulerError::Conflict { .. })));
    assert_eq!(fake.containers(), 1);
}

#[tokio::test(start_paused = true)]
async fn logs_follow_in_tokio_time_and_stay_readable_after_exit() {
    let b = Behaviour::new()
        .stdout("one\n")
        .sleep(Duration::from_secs(5))
        .stderr("two\n")
        .stdout("three\n")
        .exit_code(2);
    let fake = FakeScheduler::new().image("img", b);
    let begin = Instant::now();
    let id = fake.start(spec("l", "img")).await.unwrap();
    let mut logs = fake.logs(&id).await.unwrap();
    let first = logs.next().await.unwrap().unwrap();
    assert_eq!(&first.data[..], b"one\n");
    assert_eq!(fake.state(&id).await.unwrap(), ContainerState::Running);
    let second = logs.next().await.unwrap().unwrap();
    assert_eq!(second.stream, OutputStream::Stderr);
    assert_eq!(
        begin.elapsed(),
        Duration::from_secs(5),
        "paused time is exact"
    );
    let ts = second.timestamp.duration_since(first.timestamp).unwrap();
    assert_eq!(ts, Duration::from_secs(5), "timestamps follow tokio time");
    assert_eq!(&logs.next().await.unwrap().unwrap().data[..], b"three\n");
    assert!(logs.next().await.is_none(), "the stream ends after exit");
    assert_eq!(
        fake.wait(&id).await.unwrap(),
        ExitStatus::Exited { code: 2 }
    );
    let (out, err) = output(&fake, &id).await;
    assert_eq!((out.as_str(), err.as_str()), ("one\nthree\n", "two\n"));
}

#[tokio::test(start_paused = true)]
async fn large_output_is_chunked_and_whole() {
    let big: Vec<u8> = (0..10 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    let fake = FakeScheduler::new().image("img", Behaviour::new().stdout(big.clone()));
    let id = fake.start(spec("big", "img")).await.unwrap();
    let mut logs = fake.logs(&id).await.unwrap();
    let mut got = Vec::with_capacity(big.len());
    let mut chunks = 0;
    while let Some(c) = logs.next().await {
        let c = c.unwrap();
        assert!(c.data.len() <= 64 * 1024);
        got.extend_from_slice(&c.data);
        chunks += 1;
    }
    assert_eq!(chunks, 160);
    assert!(got == big);
}

#[tokio::test(start_paused = true)]
async fn stop_runs_the_term_trap_within_the_grace() {
    let b = Behaviour::run_until_stopped().trap_term(
        Behaviour::new()
            .sleep(Duration::from_millis(300))
            .stdout("bye\n")
            .exit_code(0),
    );
    let fake = FakeScheduler::new().image("img", b);
    let id = fake.start(spec("t", "img")).await.unwrap();
    let begin = Instant::now();
    fake.stop(&id, Duration::from_secs(10)).await.unwrap();
    assert_eq!(begin.elapsed(), Duration::from_millis(300));
    assert_eq!(
        fake.wait(&id).await.unwrap(),
        ExitStatus::Exited { code: 0 }
    );
    assert_eq!(output(&fake, &id).await.0, "bye\n");
}

#[tokio::test(start_paused = true)]
async fn a_trap_slower_than_the_grace_is_killed() {
    let b = Behaviour::run_until_stopped()
        .trap_term(Behaviour::new().sleep(Duration::from_secs(30)).exit_code(0));
    let fake = FakeScheduler::new().image("img", b);
    let id = fake.start(spec("t", "img")).await.unwrap();
    let begin = Instant::now();
    fake.stop(&id, Duration::from_secs(2)).await.unwrap();
    assert_eq!(begin.elapsed(), Duration::from_secs(2));
    assert_eq!(
        fake.wait(&id).await.unwrap(),
        ExitStatus::Exited { code: 137 }
    );
}

#[tokio::test(start_paused = true)]
async fn stop_kills_a_term_ignoring_process_exactly_after_the_grace() {
    let fake = FakeScheduler::new().image("img", Behaviour::run_until_stopped().ignore_term());
    let id = fake.start(spec("i", "img")).await.unwrap();
    let begin = Instant::now();
    fake.stop(&id, Duration::from_secs(3)).await.unwrap();
    assert_eq!(begin.elapsed(), Duration::from_secs(3));
    assert_eq!(
        fake.state(&id).await.unwrap(),
        ContainerState::Exited {
            status: ExitStatus::Exited { code: 137 }
        }
    );
}

#[tokio::test(start_paused = true)]
async fn without_a_handler_term_kills_under_init_and_is_dropped_for_pid_1() {
    let fake = FakeScheduler::new().image("img", Behaviour::run_until_stopped());
    let with_init = fake.start(spec("init", "img")).await.unwrap();
    fake.stop(&with_init, Duration::from_secs(5)).await.unwrap();
    assert_eq!(
        fake.wait(&with_init).await.unwrap(),
        ExitStatus::Exited { code: 143 }
    );
    let pid1 = fake.start(spec("pid1", "img").init(false)).await.unwrap();
    let begin = Instant::now();
    fake.stop(&pid1, Duration::from_secs(5)).await.unwrap();
    assert_eq!(begin.elapsed(), Duration::from_secs(5));
    assert_eq!(
        fake.wait(&pid1).await.unwrap(),
        ExitStatus::Exited { code: 137 }
    );
}

#[tokio::test(start_paused = true)]
async fn stop_of_an_exited_container_is_ok_and_changes_nothing() {
    let fake = FakeScheduler::new().image("img", Behaviour::exit(4));
    let id = fake.start(spec("e", "img")).await.unwrap();
    fake.wait(&id).await.unwrap();
    fake.stop(&id, Duration::from_secs(1)).await.unwrap();
    assert_eq!(
        fake.wait(&id).await.unwrap(),
        ExitStatus::Exited { code: 4 }
    );
}

#[tokio::test(start_paused = true)]
async fn remove_needs_force_while_running_and_ends_waits_with_removed() {
    let fake = FakeScheduler::new().image("img", Behaviour::run_until_stopped());
    let id = fake.start(spec("r", "img")).await.unwrap();
    let err = fake.remove(&id, false).await.unwrap_err();
    assert!(matches!(err, SchedulerError::Conflict { .. }), "{err}");
    let waiter = {
        let fake = fake.clone();
        let id = id.clone();
        tokio::spawn(async move { fake.wait(&id).await })
    };
    let logs = fake.logs(&id).await.unwrap();
    tokio::task::yield_now().await;
    fake.remove(&id, true).await.unwrap();
    assert_eq!(waiter.await.unwrap().unwrap(), ExitStatus::Removed);
    assert_eq!(logs.count().await, 0, "an open log stream ends on removal");
    assert_eq!(fake.containers(), 0);
    for r in [
        fake.state(&id).await.map(|_| ()),
        fake.wait(&id).await.map(|_| ()),
        fake.logs(&id).await.map(|_| ()),
        fake.stop(&id, Duration::ZERO).await,
        fake.remove(&id, true).await,
    ] {
        assert!(
            matches!(r, Err(SchedulerError::NoSuchContainer { .. })),
            "{r:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn containers_are_found_by_id_or_name_and_listed_by_labels() {
    let fake = FakeScheduler::new().image("img", Behaviour::run_until_stopped());
    let a = fake
        .start(spec("a", "img").label("run", "1").label("task", "x"))
        .await
        .unwrap();
    fake.start(spec("b", "img").label("run", "1"))
        .await
        .unwrap();
    fake.start(spec("c", "img").label("run", "2"))
        .await
        .unwrap();
    assert_eq!(
        fake.state(&ContainerId::from("a")).await.unwrap(),
        ContainerState::Running
    );
    let run1 = BTreeMap::from([("run".to_string(), "1".to_string())]);
    let mut names: Vec<_> = fake
        .list(&run1)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    names.sort();
    assert_eq!(names, ["a", "b"]);
    let both = BTreeMap::from([
        ("run".to_string(), "1".to_string()),
        ("task".to_string(), "x".to_string()),
    ]);
    let found = fake.list(&both).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].id, a);
    assert_eq!(fake.list(&BTreeMap::new()).await.unwrap().len(), 3);
    assert_eq!(fake.running(), 3);
}
