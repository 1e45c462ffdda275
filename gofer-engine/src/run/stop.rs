//! The stop signals: a cancel or the run timeout asks every task of the run to stop;
//! a task's own cancel ([`RunHandle::cancel_task`](crate::RunHandle::cancel_task))
//! asks that one task.

use std::time::Duration;

use tokio::sync::watch;

pub(crate) use crate::durable::outcome::{Stop, StopCause};

/// Set once, by the first cancel or timeout; read by every task of the run.
#[derive(Debug)]
pub(crate) struct StopSignal {
    tx: watch::Sender<Option<Stop>>,
}

impl StopSignal {
    pub(crate) fn new() -> Self {
        Self {
            tx: watch::channel(None).0,
        }
    }

    /// Asks the run to stop; returns false (and changes nothing) when it already was
    /// with a grace as short. A later request with a shorter grace shortens the grace
    /// of stops under way (a second Ctrl-C); the cause stays the first one.
    pub(crate) fn request(&self, stop: Stop) -> bool {
        self.tx.send_if_modified(|s| match s {
            None => {
                *s = Some(stop);
                true
            }
            Some(current) if stop.grace < current.grace => {
                current.grace = stop.grace;
                true
            }
            Some(_) => false,
        })
    }

    /// The stop asked for, if any.
    pub(crate) fn current(&self) -> Option<Stop> {
        *self.tx.borrow()
    }

    /// The run's stop only.
    pub(crate) fn subscribe(&self) -> StopWatch {
        StopWatch {
            run: self.tx.subscribe(),
            task: None,
        }
    }

    /// The run's stop and a task's own (`task`): whichever comes first.
    pub(crate) fn subscribe_with(&self, task: &StopSignal) -> StopWatch {
        StopWatch {
            run: self.tx.subscribe(),
            task: Some(task.tx.subscribe()),
        }
    }
}

/// One task's view of the stop signals: the run's, and the task's own when it has one.
#[derive(Debug)]
pub(crate) struct StopWatch {
    run: watch::Receiver<Option<Stop>>,
    task: Option<watch::Receiver<Option<Stop>>>,
}

/// Waits until `rx` holds a stop satisfying `f`; never returns when the sender is gone.
async fn wait_one(rx: &mut watch::Receiver<Option<Stop>>, f: impl Fn(&Stop) -> bool) -> Stop {
    match rx
        .wait_for(|s| s.as_ref().is_some_and(&f))
        .await
        .ok()
        .and_then(|s| *s)
    {
        Some(stop) => stop,
        // The signals' owner (the run) outlives every task of the run.
        None => std::future::pending().await,
    }
}

impl StopWatch {
    /// The stop asked for, if any (the run's first: it decides the run's status).
    pub(crate) fn current(&self) -> Option<Stop> {
        let run = *self.run.borrow();
        run.or_else(|| self.task.as_ref().and_then(|t| *t.borrow()))
    }

    /// Waits until a stop's grace is shorter than `than`.
    pub(crate) async fn shortened(&mut self, than: Duration) -> Stop {
        self.wait(move |s| s.grace < than).await
    }

    /// Waits until the run, or this task, is asked to stop.
    pub(crate) async fn stopped(&mut self) -> Stop {
        self.wait(|_| true).await
    }

    async fn wait(&mut self, f: impl Fn(&Stop) -> bool + Copy) -> Stop {
        match &mut self.task {
            None => wait_one(&mut self.run, f).await,
            Some(task) => tokio::select! {
                s = wait_one(&mut self.run, f) => s,
                s = wait_one(task, f) => s,
            },
        }
    }
}

/// The tasks' own stop signals ([`RunHandle::cancel_task`](crate::RunHandle::cancel_task)),
/// one per task of the run, and a wake-up for the task graph, which ends at once a
/// cancelled task that has not started.
#[derive(Debug)]
pub(crate) struct TaskStops {
    signals: Vec<StopSignal>,
    notify: tokio::sync::Notify,
}

impl TaskStops {
    pub(crate) fn new(tasks: usize) -> Self {
        Self {
            signals: (0..tasks).map(|_| StopSignal::new()).collect(),
            notify: tokio::sync::Notify::new(),
        }
    }

    /// Asks task `idx` to stop; a later request with a shorter grace shortens it.
    pub(crate) fn request(&self, idx: usize, grace: Duration) {
        self.request_for(idx, StopCause::TaskCancelled, grace);
    }

    /// Asks task `idx` to stop for `cause` (a task-level one).
    pub(crate) fn request_for(&self, idx: usize, cause: StopCause, grace: Duration) {
        if let Some(signal) = self.signals.get(idx) {
            if signal.request(Stop { cause, grace }) {
                self.notify.notify_one();
            }
        }
    }

    /// Task `idx`'s own stop, if asked for.
    pub(crate) fn current(&self, idx: usize) -> Option<Stop> {
        self.signals.get(idx).and_then(StopSignal::current)
    }

    /// Task `idx`'s signal.
    pub(crate) fn signal(&self, idx: usize) -> Option<&StopSignal> {
        self.signals.get(idx)
    }

    /// Waits until some task was asked to stop since the last wake-up.
    pub(crate) async fn requested(&self) {
        self.notify.notified().await;
    }
}
