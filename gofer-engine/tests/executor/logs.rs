//! Logs: completeness with slow readers, masking in the sink and live, line limits.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use gofer_core::fake::{Behaviour, FakeScheduler};
use gofer_core::secrecy::SecretString;
use gofer_core::RequiredParentStatus::Success;
use gofer_core::{
    InMemorySecretStore, OutputStream, Pipeline, RunOptions, RunStatus, SecretStore, Task, MASK,
};
use gofer_engine::{Engine, FileLogSink, LogKey, LogLine, RunError, MAX_LINE_BYTES};

use crate::common::*;

/// A behaviour printing `n` numbered lines on stdout and every tenth on stderr, in
/// chunks that cut lines at odd places, with pauses.
fn chatty(n: usize) -> Behaviour {
    let mut text = String::new();
    for i in 0..n {
        text.push_str(&format!("line {i}\n"));
    }
    let bytes = text.as_bytes();
    let mut b = Behaviour::new();
    let mut at = 0;
    let mut step = 0;
    while at < bytes.len() {
        let len = (7 + step * 13 % 97).min(bytes.len() - at);
        b = b.stdout(bytes[at..at + len].to_vec());
        if step % 10 == 0 {
            b = b.stderr(format!("err {step}\n"));
        }
        if step % 50 == 0 {
            b = b.sleep(Duration::from_millis(5));
        }
        at += len;
        step += 1;
    }
    b
}

fn texts(lines: &[LogLine], stream: OutputStream) -> Vec<String> {
    lines
        .iter()
        .filter(|l| l.stream == stream)
        .map(|l| l.text().into_owned())
        .collect()
}

#[tokio::test(start_paused = true)]
async fn slow_live_reader_gets_every_line_in_order() {
    const N: usize = 5_000;
    let fake = FakeScheduler::new().image("chatty", chatty(N));
    let (b, sink) = builder(&fake);
    let e = b.build().unwrap();
    let p = Pipeline::new("logs", "logs").task(Task::new("talk", "chatty"));
    let h = e.start_run(&p, RunOptions::new()).unwrap();
    let mut live = h.logs("talk").unwrap();
    let reader = tokio::spawn(async move {
        let mut got = Vec::new();
        while let Some(line) = live.next().await {
            got.push(line.unwrap());
            if got.len() % 100 == 0 {
                // A slow reader: the run does not wait for it and nothing is lost.
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
        got
    });
    let run = finish(&h).await;
    assert_eq!(run.status, RunStatus::Successful);
    let got = reader.await.unwrap();
    let expected: Vec<String> = (0..N).map(|i| format!("line {i}")).collect();
    assert_eq!(texts(&got, OutputStream::Stdout), expected);
    assert!(!texts(&got, OutputStream::Stderr).is_empty());
    // The sink holds the same, complete log.
    let kept = sink.lines(&LogKey::new("logs", 1, "talk"));
    assert_eq!(kept, got);
    // A reader that joins after the end gets it all too.
    let late: Vec<LogLine> = h.logs("talk").unwrap().map(|l| l.unwrap()).collect().await;
    assert_eq!(late, got);
}

/// The engine reads every task's output right after the start, so it lets backends
/// attach before the start (`attach_output`), and it masks overlapping secrets as
/// their union.
#[tokio::test(start_paused = true)]
async fn tasks_start_attached_and_overlapping_secrets_are_masked_whole() {
    let fake = FakeScheduler::new().image(
        "overlap",
        Behaviour::new().stdout("x abcdefgh y\n").exit_code(0),
    );
    let secrets = Arc::new(InMemorySecretStore::new());
    for (key, value) in [("one", "defg"), ("two", "bcde")] {
        secrets
            .put_pipeline_secret("overlap", key, SecretString::from(value.to_string()), false)
            .await
            .unwrap();
    }
    let (b, sink) = builder(&fake);
    let e = b.secret_store(secrets).build().unwrap();
    let p = Pipeline::new("overlap", "overlap").task(
        Task::new("leak", "overlap")
            .variable("ONE", "secret{{one}}")
            .variable("TWO", "secret{{two}}"),
    );
    let h = e.start_run(&p, RunOptions::new()).unwrap();
    assert_eq!(finish(&h).await.status, RunStatus::Successful);
    let requests = fake.requests();
    assert_eq!(requests.len(), 1);
    assert!(requests[0].attach_output, "{:?}", requests[0]);
    let kept = sink.lines(&LogKey::new("overlap", 1, "leak"));
    assert_eq!(
        texts(&kept, OutputStream::Stdout),
        [format!("x a{MASK}h y")]
    );
}

#[tokio::test(start_paused = true)]
async fn secrets_are_masked_in_the_sink_and_live() {
    let secret = "hunter2-very-secret";
    let b64 = "aHVudGVyMi12ZXJ5LXNlY3JldA"; // base64 of the secret
    let shifted = "eGh1bnRlcjItdmVyeS1zZWNyZXQ"; // base64 of "x" + secret
    let fake = FakeScheduler::new().image(
        "leaky",
        Behaviour::new()
            .stdout("pw=hunt")
            .stdout("er2-very")
            .sleep(Duration::from_millis(1))
            .stdout("-secret and more\n")
            .stderr(format!("b64 {b64} and {shifted}\n"))
            .step(gofer_core::fake::Step::PrintEnv),
    );
    let secrets = Arc::new(InMemorySecretStore::new());
    secrets
        .put_pipeline_secret("mask", "pw", SecretString::from(secret.to_string()), false)
        .await
        .unwrap();
    let (b, sink) = builder(&fake);
    let e = b.secret_store(secrets).build().unwrap();
    let p = Pipeline::new("mask", "mask")
        .task(Task::new("leak", "leaky").variable("PW", "secret{{pw}}"));
    let h = e.start_run(&p, RunOptions::new()).unwrap();
    let live = tokio::spawn({
        let s = h.logs("leak").unwrap();
        s.map(|l| l.unwrap()).collect::<Vec<_>>()
    });
    finish(&h).await;
    let live = live.await.unwrap();
    let kept = sink.lines(&LogKey::new("mask", 1, "leak"));
    assert_eq!(live, kept);
    let all: String = kept.iter().map(|l| format!("{}\n", l.text())).collect();
    assert!(!all.contains(secret), "{all}");
    assert!(!all.contains("hunter2"), "{all}");
    assert!(!all.contains(&b64[2..]), "{all}");
    assert!(!all.contains(&shifted[4..]), "{all}");
    assert!(all.contains(&format!("pw={MASK} and more")), "{all}");
    assert!(all.contains(&format!("PW={MASK}")), "{all}");
}

#[tokio::test(start_paused = true)]
async fn overlong_lines_are_split_and_marked_never_dropped() {
    let long = "y".repeat(MAX_LINE_BYTES * 2 + 10);
    let fake = FakeScheduler::new().image("long", Behaviour::new().stdout(format!("{long}\nend")));
    let (b, sink) = builder(&fake);
    let e = b.build().unwrap();
    let p = Pipeline::new("long", "long").task(Task::new("big", "long"));
    finish(&e.start_run(&p, RunOptions::new()).unwrap()).await;
    let lines = sink.lines(&LogKey::new("long", 1, "big"));
    assert_eq!(lines.len(), 4);
    assert_eq!(
        lines.iter().map(|l| l.partial).collect::<Vec<_>>(),
        [true, true, false, false]
    );
    let joined: String = lines[..3].iter().map(|l| l.text().into_owned()).collect();
    assert_eq!(joined, long);
    assert_eq!(lines[3].text(), "end");
}

#[tokio::test(start_paused = true)]
async fn logs_of_unknown_and_skipped_tasks() {
    let fake = FakeScheduler::new()
        .image("ok", Behaviour::new())
        .image("fail", Behaviour::exit(1));
    let e = engine(&fake);
    let p = Pipeline::new("skip", "skip").tasks([
        Task::new("bad", "fail"),
        Task::new("never", "ok").depends_on("bad", Success),
    ]);
    let h = e.start_run(&p, RunOptions::new()).unwrap();
    assert!(matches!(h.logs("nope"), Err(RunError::UnknownTask { .. })));
    let skipped = h.logs("never").unwrap();
    finish(&h).await;
    assert_eq!(skipped.count().await, 0);
}

#[tokio::test(start_paused = true)]
async fn file_sink_keeps_one_file_per_task_execution() {
    let dir = std::env::temp_dir().join(format!("gofer-exec-test-{}", std::process::id()));
    let fake =
        FakeScheduler::new().image("hello", Behaviour::new().stdout("hello\n").stderr("oops\n"));
    let sink = Arc::new(FileLogSink::new(&dir));
    let e = Engine::builder(Arc::new(fake.clone()))
        .log_sink(sink.clone())
        .build()
        .unwrap();
    let p = Pipeline::new("files", "files").task(Task::new("greet", "hello"));
    for _ in 0..2 {
        let h = e.start_run(&p, RunOptions::new()).unwrap();
        finish(&h).await;
        let lines: Vec<_> = h.logs("greet").unwrap().map(|l| l.unwrap()).collect().await;
        assert_eq!(texts(&lines, OutputStream::Stdout), ["hello"]);
        assert_eq!(texts(&lines, OutputStream::Stderr), ["oops"]);
    }
    for run in [1, 2] {
        let text = std::fs::read_to_string(sink.path(&LogKey::new("files", run, "greet"))).unwrap();
        assert!(text.starts_with("gofer-log 2\n"), "{text}");
        assert!(text.contains(" stdout F 1 6\nhello\n"), "{text}");
        assert!(text.contains(" stderr F 1 5\noops\n"), "{text}");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test(start_paused = true)]
async fn slow_live_reader_of_a_file_sink_gets_every_line() {
    const N: usize = 2_000;
    let dir = std::env::temp_dir().join(format!("gofer-exec-live-{}", std::process::id()));
    let fake = FakeScheduler::new().image("chatty", chatty(N));
    let e = Engine::builder(Arc::new(fake.clone()))
        .log_sink(Arc::new(FileLogSink::new(&dir)))
        .build()
        .unwrap();
    let p = Pipeline::new("filelive", "filelive").task(Task::new("talk", "chatty"));
    let h = e.start_run(&p, RunOptions::new()).unwrap();
    let mut live = h.logs("talk").unwrap();
    let reader = tokio::spawn(async move {
        let mut got = Vec::new();
        while let Some(line) = live.next().await {
            got.push(line.unwrap());
            if got.len() % 50 == 0 {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
        got
    });
    finish(&h).await;
    let got = reader.await.unwrap();
    let expected: Vec<String> = (0..N).map(|i| format!("line {i}")).collect();
    assert_eq!(texts(&got, OutputStream::Stdout), expected);
    std::fs::remove_dir_all(dir).unwrap();
}

/// Two engines with the default sink never write the same log file: run 1 of a
/// pipeline of a new engine does not overwrite run 1 of an earlier one.
#[test]
fn default_sinks_of_two_engines_do_not_overlap() {
    let fake = FakeScheduler::new();
    let a = Engine::builder(Arc::new(fake.clone())).build().unwrap();
    let b = Engine::builder(Arc::new(fake)).build().unwrap();
    let key = gofer_engine::LogKey::new("same", 1, "task");
    let (pa, pb) = (a.log_sink().locate(&key), b.log_sink().locate(&key));
    assert!(pa.is_some() && pb.is_some());
    assert_ne!(pa, pb);
}
