//! Limits: pipeline parallelism, the container cap, timeouts.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use gofer_core::fake::{Behaviour, FakeScheduler};
use gofer_core::RequiredParentStatus::Success;
use gofer_core::{
    Event, Pipeline, RunOptions, RunState, RunStatus, StatusReason, Task, TaskState, TaskStatus,
};
use gofer_engine::Limits;

use crate::common::*;

fn fake() -> FakeScheduler {
    FakeScheduler::new()
        .image("ok", Behaviour::new())
        .image("slow", Behaviour::new().sleep(Duration::from_secs(10)))
        .image("forever", Behaviour::run_until_stopped())
        .image("stubborn", Behaviour::run_until_stopped().ignore_term())
}

#[tokio::test(start_paused = true)]
async fn pipeline_parallelism_queues_runs_fifo() {
    let fake = fake();
    let e = engine(&fake);
    let p = Pipeline::new("par", "par")
        .parallelism(2)
        .task(Task::new("task", "slow"));
    let order = Arc::new(Mutex::new(Vec::new()));
    let handles: Vec<_> = (0..6)
        .map(|_| e.start_run(&p, RunOptions::new()).unwrap())
        .collect();
    // Right after starting, two runs may go; the rest wait Pending.
    tokio::task::yield_now().await;
    let mut watchers = Vec::new();
    for h in &handles {
        let h = h.clone();
        let order = order.clone();
        watchers.push(tokio::spawn(async move {
            let mut events = h.events();
            while let Some(ev) = events.next().await {
                if matches!(
                    ev,
                    Event::Run {
                        state: RunState::Running,
                        ..
                    }
                ) {
                    order.lock().unwrap().push(h.run_id());
                }
            }
        }));
    }
    for h in &handles[2..] {
        assert_eq!(h.snapshot().state, RunState::Pending);
    }
    let mut max_running = 0;
    for h in &handles {
        let mut events = h.events();
        while let Some(ev) = events.next().await {
            if let Event::Task {
                state: TaskState::Running,
                ..
            } = ev
            {
                max_running = max_running.max(fake.running());
            }
        }
        assert_eq!(finish(h).await.status, RunStatus::Successful);
    }
    for w in watchers {
        w.await.unwrap();
    }
    assert!(max_running <= 2, "{max_running}");
    assert_eq!(*order.lock().unwrap(), vec![1, 2, 3, 4, 5, 6]);
}

#[tokio::test(start_paused = true)]
async fn cancelling_a_pending_run_frees_nothing_it_did_not_hold() {
    let fake = fake();
    let e = engine(&fake);
    let p = Pipeline::new("parc", "parc")
        .parallelism(1)
        .task(Task::new("task", "slow"));
    let first = e.start_run(&p, RunOptions::new()).unwrap();
    let second = e.start_run(&p, RunOptions::new()).unwrap();
    let third = e.start_run(&p, RunOptions::new()).unwrap();
    second.cancel(Duration::from_secs(1));
    let r2 = finish(&second).await;
    assert_eq!(r2.status, RunStatus::Cancelled);
    assert_eq!(task(&r2, "task").status, TaskStatus::Cancelled);
    assert!(r2.started.is_none());
    assert_eq!(third.snapshot().state, RunState::Pending);
    assert_eq!(finish(&first).await.status, RunStatus::Successful);
    assert_eq!(finish(&third).await.status, RunStatus::Successful);
    assert!(fake.request(&cname("parc", 2, "task")).is_none());
}

#[tokio::test(start_paused = true)]
async fn engine_caps_running_containers() {
    let fake = fake();
    let e = builder(&fake)
        .0
        .limits(Limits::default().max_running_containers(3))
        .build()
        .unwrap();
    let p =
        Pipeline::new("cap", "cap").tasks((0..12).map(|i| Task::new(format!("t{i:02}"), "slow")));
    let handles: Vec<_> = (0..2)
        .map(|_| e.start_run(&p, RunOptions::new()).unwrap())
        .collect();
    // Sample the fake's running containers at every task event of both runs.
    let max = Arc::new(Mutex::new(0usize));
    let mut watchers = Vec::new();
    for h in &handles {
        let h = h.clone();
        let max = max.clone();
        let fake = fake.clone();
        watchers.push(tokio::spawn(async move {
            let mut events = h.events();
            while let Some(ev) = events.next().await {
                if let Event::Task { .. } = ev {
                    let mut m = max.lock().unwrap();
                    *m = (*m).max(fake.running());
                }
            }
        }));
    }
    for h in &handles {
        assert_eq!(finish(h).await.status, RunStatus::Successful);
    }
    for w in watchers {
        w.await.unwrap();
    }
    let max = *max.lock().unwrap();
    assert!((1..=3).contains(&max), "max {max}");
    assert_eq!(fake.requests().len(), 24);
}

#[tokio::test(start_paused = true)]
async fn task_timeout_fails_the_task_and_stops_its_container() {
    let fake = fake();
    let p = Pipeline::new("ttx", "ttx").tasks([
        Task::new("forever", "forever").timeout(Duration::from_secs(5)),
        Task::new("stubborn", "stubborn").timeout(Duration::from_secs(5)),
        Task::new("after", "ok").depends_on("forever", Success),
    ]);
    let e = builder(&fake)
        .0
        .limits(Limits::default().stop_grace(Duration::from_secs(2)))
        .build()
        .unwrap();
    let run = finish(&e.start_run(&p, RunOptions::new()).unwrap()).await;
    for id in ["forever", "stubborn"] {
        let t = task(&run, id);
        assert_eq!(t.status, TaskStatus::Failed, "{t:?}");
        assert_eq!(t.reason, Some(StatusReason::Timeout));
        assert!(t.message.as_deref().unwrap().contains("5s"));
    }
    assert_eq!(task(&run, "after").status, TaskStatus::Skipped);
    assert_eq!(run.status, RunStatus::Failed);
    assert_eq!(fake.containers(), 0);
}

#[tokio::test(start_paused = true)]
async fn run_timeout_fails_the_run() {
    let fake = fake();
    let p = Pipeline::new("rtx", "rtx").tasks([
        Task::new("quick", "ok"),
        Task::new("forever", "forever"),
        Task::new("after", "ok").depends_on("forever", Success),
    ]);
    let e = engine(&fake);
    let run = finish(
        &e.start_run(&p, RunOptions::new().timeout(Duration::from_secs(30)))
            .unwrap(),
    )
    .await;
    assert_eq!(run.status, RunStatus::Failed);
    assert_eq!(run.reason, Some(StatusReason::Timeout));
    assert_eq!(task(&run, "quick").status, TaskStatus::Successful);
    let f = task(&run, "forever");
    assert_eq!(
        (f.status, f.reason),
        (TaskStatus::Failed, Some(StatusReason::Timeout))
    );
    let a = task(&run, "after");
    assert_eq!(
        (a.status, a.reason),
        (TaskStatus::Cancelled, Some(StatusReason::Timeout))
    );
    assert!(fake.request(&cname("rtx", 1, "after")).is_none());
    assert_eq!(fake.containers(), 0);

    // The engine-wide default applies when the options give none.
    let e = builder(&fake)
        .0
        .limits(Limits::default().run_timeout(Duration::from_secs(3)))
        .build()
        .unwrap();
    let p = Pipeline::new("rt2", "rt2").task(Task::new("forever", "forever"));
    let run = finish(&e.start_run(&p, RunOptions::new()).unwrap()).await;
    assert_eq!(run.reason, Some(StatusReason::Timeout));
    assert_eq!(fake.containers(), 0);
}

/// A second cancel with a shorter grace cuts a stop under way short: a container that
/// ignores SIGTERM is killed at once instead of after the first, hour-long grace.
#[tokio::test(start_paused = true)]
async fn second_cancel_with_a_shorter_grace_kills_at_once() {
    let fake = fake();
    let e = engine(&fake);
    let p = Pipeline::new("twice", "twice").task(Task::new("task", "stubborn"));
    let h = e.start_run(&p, RunOptions::new()).unwrap();
    h.wait_task("task", TaskState::Running).await.unwrap();
    let began = tokio::time::Instant::now();
    h.cancel(Duration::from_secs(3600));
    tokio::time::sleep(Duration::from_secs(1)).await;
    h.cancel(Duration::ZERO);
    let run = finish(&h).await;
    assert_eq!(run.status, RunStatus::Cancelled);
    assert!(
        began.elapsed() < Duration::from_secs(60),
        "{:?}",
        began.elapsed()
    );
    assert_eq!(fake.containers(), 0);
}
