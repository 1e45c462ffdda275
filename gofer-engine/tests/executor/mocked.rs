//! Scripted faults with the `mock` feature's mocks: a log stream that breaks, a sink
//! that fails on the k-th write, a backend call that panics, a removal that fails
//! while the engine is away.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures::StreamExt;
use gofer_core::fake::{Behaviour, FakeScheduler};
use gofer_core::mock::MockScheduler;
use gofer_core::{
    Capabilities, ContainerId, Event, ExitStatus, InMemoryRunStore, LogChunk, LogStream,
    OutputStream, Pipeline, RunOptions, RunStatus, RunStore, SchedulerError, StatusReason, Task,
    TaskStatus,
};
use gofer_engine::mock::{MockLogSink, MockLogWriter};
use gofer_engine::{Engine, InMemoryLogSink, LogError, LogKey};

use crate::common::*;

fn chunk(text: &str) -> Result<LogChunk, SchedulerError> {
    Ok(LogChunk {
        stream: OutputStream::Stdout,
        timestamp: SystemTime::now(),
        data: Bytes::copy_from_slice(text.as_bytes()),
    })
}

fn broken() -> Result<LogChunk, SchedulerError> {
    Err(SchedulerError::engine("mock", "logs", "connection reset"))
}

/// The whole output: `line 0` … `line 4`, cut into chunks at odd places.
fn whole() -> Vec<Result<LogChunk, SchedulerError>> {
    vec![
        chunk("line 0\nli"),
        chunk("ne 1\nline 2\n"),
        chunk("line 3\n"),
        chunk("line 4\n"),
    ]
}

/// A scheduler whose container exits 0 at once; `logs` answers with `reads` in turn
/// (the last one again when they run out); `remove` with `removes` in turn, then Ok.
fn scheduler(
    reads: Vec<Vec<Result<LogChunk, SchedulerError>>>,
    removes: Vec<Result<(), SchedulerError>>,
) -> (MockScheduler, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let mut s = MockScheduler::new();
    s.expect_name().return_const("mock");
    s.expect_capabilities()
        .return_const(Capabilities::default());
    s.expect_start()
        .times(1)
        .returning(|_| Ok(ContainerId("c1".into())));
    s.expect_wait()
        .returning(|_| Ok(ExitStatus::Exited { code: 0 }));
    s.expect_list().returning(|_| Ok(Vec::new()));
    let log_calls = Arc::new(AtomicUsize::new(0));
    let n = log_calls.clone();
    s.expect_logs().returning(move |_| {
        let i = n.fetch_add(1, Ordering::SeqCst);
        let read = reads[i.min(reads.len() - 1)]
            .iter()
            .map(|c| match c {
                Ok(c) => Ok(c.clone()),
                Err(_) => broken(),
            })
            .collect::<Vec<_>>();
        let stream: LogStream = futures::stream::iter(read).boxed();
        Ok(stream)
    });
    let remove_calls = Arc::new(AtomicUsize::new(0));
    let n = remove_calls.clone();
    let removes = std::sync::Mutex::new(removes.into_iter());
    s.expect_remove().returning(move |_, _| {
        n.fetch_add(1, Ordering::SeqCst);
        removes.lock().unwrap().next().unwrap_or(Ok(()))
    });
    (s, log_calls, remove_calls)
}

fn texts(sink: &InMemoryLogSink, task: &str) -> Vec<String> {
    sink.lines(&LogKey::new("mocked", 1, task))
        .iter()
        .map(|l| l.text().into_owned())
        .collect()
}

fn expected() -> Vec<String> {
    (0..5).map(|i| format!("line {i}")).collect()
}

/// A stream that breaks after two chunks is read again, skipping what was delivered:
/// the log is whole, each line once, and the task is Successful.
#[tokio::test(start_paused = true)]
async fn broken_log_stream_is_read_again_and_made_whole() {
    let mut first = whole();
    first.truncate(2);
    first.push(broken());
    let (s, log_calls, _) = scheduler(vec![first, whole()], vec![]);
    let sink = InMemoryLogSink::new();
    let e = Engine::builder(Arc::new(s))
        .log_sink(Arc::new(sink.clone()))
        .build()
        .unwrap();
    let p = Pipeline::new("mocked", "mocked").task(Task::new("tsk", "img"));
    let run = finish(&e.start_run(&p, RunOptions::new()).unwrap()).await;
    let t = task(&run, "tsk");
    assert_eq!(t.status, TaskStatus::Successful, "{t:?}");
    assert_eq!(t.log_incomplete, None);
    assert_eq!(texts(&sink, "tsk"), expected());
    assert_eq!(log_calls.load(Ordering::SeqCst), 2);
}

/// A stream that always breaks: after the bounded re-reads the log is recorded
/// incomplete — in the execution, an event, the run store and the live log — and the
/// task fails (the default).
#[tokio::test(start_paused = true)]
async fn log_that_cannot_be_made_whole_is_reported_everywhere() {
    let mut cut = whole();
    cut.truncate(1);
    cut.push(broken());
    let (s, log_calls, _) = scheduler(vec![cut], vec![]);
    let sink = InMemoryLogSink::new();
    let store = InMemoryRunStore::new();
    let (e, _) = Engine::builder(Arc::new(s))
        .log_sink(Arc::new(sink.clone()))
        .run_store(Arc::new(store.clone()))
        .build_and_recover()
        .await
        .unwrap();
    let p = Pipeline::new("mocked", "mocked").task(Task::new("tsk", "img"));
    let h = e.start_run(&p, RunOptions::new()).unwrap();
    let run = finish(&h).await;
    let t = task(&run, "tsk");
    assert_eq!(t.status, TaskStatus::Failed);
    assert_eq!(t.reason, Some(StatusReason::IncompleteLog));
    assert_eq!(t.exit_code, Some(0));
    let why = t.log_incomplete.clone().unwrap();
    assert!(why.contains("connection reset"), "{why}");
    assert_eq!(run.status, RunStatus::Failed);
    // What could be read is kept, once.
    assert_eq!(texts(&sink, "tsk"), ["line 0", "li"]);
    assert_eq!(
        log_calls.load(Ordering::SeqCst),
        4,
        "one read and three re-reads"
    );
    let events: Vec<Event> = h.events().collect().await;
    assert!(events
        .iter()
        .any(|e| matches!(e, Event::LogIncomplete { reason, .. } if *reason == why)));
    let stored = store.get_task("mocked", 1, "tsk").await.unwrap().execution;
    assert_eq!(stored.log_incomplete.as_deref(), Some(why.as_str()));
    assert!(store
        .events("mocked", 1)
        .await
        .unwrap()
        .iter()
        .any(|e| matches!(e, Event::LogIncomplete { .. })));
    let mut live = h.logs("tsk").unwrap();
    let mut got = Vec::new();
    let mut ended_with = None;
    while let Some(l) = live.next().await {
        match l {
            Ok(l) => got.push(l.text().into_owned()),
            Err(e) => ended_with = Some(e),
        }
    }
    assert_eq!(got, ["line 0", "li"]);
    assert!(matches!(ended_with, Some(LogError::Incomplete { .. })));
}

/// A sink that fails on the write of the third line (however the lines were batched
/// into writes): the task's log is incomplete, the task fails with reason
/// IncompleteLog, and the container is still removed.
#[tokio::test(start_paused = true)]
async fn sink_failing_on_the_kth_write_is_not_silent() {
    let chatty = (0..10).fold(Behaviour::new(), |b, i| {
        b.stdout(format!("line {i}\n"))
            .sleep(Duration::from_millis(10))
    });
    let fake = FakeScheduler::new().image("chatty", chatty);
    let mut sink = MockLogSink::new();
    sink.expect_may_block().return_const(true);
    sink.expect_locate().return_const(None);
    sink.expect_open().times(1).returning(|_| {
        let mut w = MockLogWriter::new();
        w.expect_write().returning(move |lines| {
            if lines.iter().any(|l| l.text() == "line 2") {
                Err(LogError::Io {
                    sink: "mock",
                    operation: "write",
                    source: "disk full".into(),
                })
            } else {
                Ok(())
            }
        });
        Ok(Box::new(w))
    });
    let e = Engine::builder(Arc::new(fake.clone()))
        .log_sink(Arc::new(sink))
        .build()
        .unwrap();
    let p = Pipeline::new("mocked", "mocked").task(Task::new("tsk", "chatty"));
    let run = finish(&e.start_run(&p, RunOptions::new()).unwrap()).await;
    let t = task(&run, "tsk");
    assert_eq!(t.reason, Some(StatusReason::IncompleteLog), "{t:?}");
    assert!(t.log_incomplete.as_deref().unwrap().contains("disk full"));
    assert_eq!(fake.containers(), 0);
}

/// A backend that panics in `wait` and in `stop` does not unwind past the cleanup:
/// the task ends Unknown with a reason, and its container is removed.
#[tokio::test(start_paused = true)]
async fn panicking_backend_call_still_removes_the_container() {
    let mut s = MockScheduler::new();
    s.expect_name().return_const("mock");
    s.expect_capabilities()
        .return_const(Capabilities::default());
    s.expect_start().returning(|_| Ok(ContainerId("c1".into())));
    s.expect_logs()
        .returning(|_| Ok(futures::stream::iter(whole()).boxed()));
    s.expect_wait().returning(|_| panic!("backend bug in wait"));
    s.expect_stop()
        .returning(|_, _| panic!("backend bug in stop"));
    s.expect_remove().times(1).returning(|_, _| Ok(()));
    let e = Engine::builder(Arc::new(s))
        .log_sink(Arc::new(InMemoryLogSink::new()))
        .build()
        .unwrap();
    let p = Pipeline::new("mocked", "mocked").task(Task::new("tsk", "img"));
    let run = finish(&e.start_run(&p, RunOptions::new()).unwrap()).await;
    let t = task(&run, "tsk");
    assert_eq!(t.status, TaskStatus::Unknown);
    assert_eq!(t.reason, Some(StatusReason::SchedulerError));
    assert!(t.message.as_deref().unwrap().contains("panicked"), "{t:?}");
    assert_eq!(run.status, RunStatus::Failed);
}

/// A removal that fails while the engine is away is retried until it answers again.
#[tokio::test(start_paused = true)]
async fn failed_removal_is_retried_when_the_engine_answers() {
    let down = || {
        Err(SchedulerError::Connection {
            scheduler: "mock",
            endpoint: "unix:///mock".into(),
            source: "engine restarting".into(),
        })
    };
    let (s, _, remove_calls) = scheduler(vec![whole()], vec![down(), down(), down()]);
    let e = Engine::builder(Arc::new(s))
        .log_sink(Arc::new(InMemoryLogSink::new()))
        .build()
        .unwrap();
    let p = Pipeline::new("mocked", "mocked").task(Task::new("tsk", "img"));
    let run = finish(&e.start_run(&p, RunOptions::new()).unwrap()).await;
    assert_eq!(run.status, RunStatus::Successful);
    assert_eq!(e.pending_removals(), 1, "the removal is being retried");
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(e.pending_removals(), 0);
    assert_eq!(
        remove_calls.load(Ordering::SeqCst),
        4,
        "three failures, then done"
    );
}
