//! The one place every state change of a run goes through.
//!
//! The recorder keeps the run's current picture, appends an [`Event`] for each change
//! and wakes subscribers (events, logs, waiters) through one watch channel. A durable
//! run store plugs in here: every change, including the task's container name before
//! it is started, passes through these methods.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use tokio::sync::watch;

use super::model::{
    ContainerRef, Event, InjectedVariable, Run, RunState, RunStatus, StatusReason, TaskState,
    TaskStatus,
};

/// How far a task's log has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LogState {
    /// No log yet (the task has not started a container).
    None,
    /// Being written.
    Open,
    /// Complete.
    Done,
}

/// Why a run is being stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StopCause {
    /// `RunHandle::cancel`.
    Cancelled,
    /// The run timeout elapsed.
    Timeout,
}

/// A request to stop a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stop {
    pub(crate) cause: StopCause,
    pub(crate) grace: Duration,
}

struct Record {
    run: Run,
    events: Vec<Event>,
    logs: Vec<LogState>,
    finished: bool,
    aborted: bool,
}

/// The shared state of one run: its record, its stop signal and its wake-up channel.
pub(crate) struct Recorder {
    pub(crate) task_ids: Vec<Arc<str>>,
    record: Mutex<Record>,
    version: watch::Sender<u64>,
    /// Whether anyone ever subscribed to `version`; until then changes wake nobody.
    watched: AtomicBool,
    /// Set once, when the run is finished (or aborted): waiters only wake then.
    done: watch::Sender<bool>,
    pub(crate) stop: watch::Sender<Option<Stop>>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder").finish_non_exhaustive()
    }
}

/// A task's terminal result.
#[derive(Debug, Clone)]
pub(crate) struct Outcome {
    pub(crate) status: TaskStatus,
    pub(crate) reason: Option<StatusReason>,
    pub(crate) message: Option<String>,
    pub(crate) exit_code: Option<i64>,
}

impl Outcome {
    pub(crate) fn new(
        status: TaskStatus,
        reason: Option<StatusReason>,
        message: impl Into<Option<String>>,
    ) -> Self {
        Self {
            status,
            reason,
            message: message.into(),
            exit_code: None,
        }
    }
}

impl Recorder {
    pub(crate) fn new(run: Run) -> Self {
        let task_ids = run
            .tasks
            .iter()
            .map(|t| Arc::<str>::from(t.task_id.as_str()))
            .collect();
        let n = run.tasks.len();
        let now = SystemTime::now();
        let mut events = Vec::with_capacity(1 + 4 * n);
        events.push(Event::Run {
            state: RunState::Pending,
            status: RunStatus::Unknown,
            at: now,
        });
        Self {
            task_ids,
            record: Mutex::new(Record {
                run,
                events,
                logs: vec![LogState::None; n],
                finished: false,
                aborted: false,
            }),
            version: watch::channel(0).0,
            watched: AtomicBool::new(false),
            done: watch::channel(false).0,
            stop: watch::channel(None).0,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Record> {
        self.record
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn bump(&self) {
        // Set under the record's lock by `subscribe`: a change made before a
        // subscription is seen by the subscriber's first read, one made after it sees
        // `watched` (so it is never missed).
        if self.watched.load(Ordering::SeqCst) {
            self.version.send_modify(|v| *v = v.wrapping_add(1));
        }
    }

    /// A receiver that wakes once, when the run is finished.
    pub(crate) fn subscribe_done(&self) -> watch::Receiver<bool> {
        self.done.subscribe()
    }

    /// A receiver that wakes on every change.
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        let _record = self.lock();
        self.watched.store(true, Ordering::SeqCst);
        self.version.subscribe()
    }

    pub(crate) fn snapshot(&self) -> Run {
        self.lock().run.clone()
    }

    /// Events from index `from`, and whether the run is finished.
    pub(crate) fn events_from(&self, from: usize, max: usize) -> (Vec<Event>, bool) {
        let r = self.lock();
        let end = from.saturating_add(max).min(r.events.len());
        let events = r
            .events
            .get(from..end)
            .map(<[Event]>::to_vec)
            .unwrap_or_default();
        (events, r.finished && end >= r.events.len())
    }

    /// (finished, aborted).
    pub(crate) fn finished(&self) -> (bool, bool) {
        let r = self.lock();
        (r.finished, r.aborted)
    }

    pub(crate) fn log_state(&self, idx: usize) -> (LogState, TaskState) {
        let r = self.lock();
        (r.logs[idx], r.run.tasks[idx].state)
    }

    pub(crate) fn run_running(&self) {
        let now = SystemTime::now();
        {
            let mut r = self.lock();
            r.run.state = RunState::Running;
            r.run.started = Some(now);
            r.events.push(Event::Run {
                state: RunState::Running,
                status: RunStatus::Unknown,
                at: now,
            });
            for (i, id) in self.task_ids.iter().enumerate() {
                if r.run.tasks[i].state == TaskState::Processing {
                    r.run.tasks[i].state = TaskState::Waiting;
                    r.events.push(Event::Task {
                        task_id: id.clone(),
                        state: TaskState::Waiting,
                        status: TaskStatus::Unknown,
                        reason: None,
                        at: now,
                    });
                }
            }
        }
        self.bump();
    }

    /// Records the variables the task's container gets (already masked) and the
    /// container's name, before the container is created.
    pub(crate) fn task_prepared(&self, idx: usize, vars: Vec<InjectedVariable>, name: String) {
        {
            let mut r = self.lock();
            let t = &mut r.run.tasks[idx];
            t.variables = vars;
            t.container = Some(ContainerRef { name, id: None });
        }
        self.bump();
    }

    pub(crate) fn task_running(&self, idx: usize, id: &str) {
        let now = SystemTime::now();
        {
            let mut r = self.lock();
            let t = &mut r.run.tasks[idx];
            if let Some(c) = t.container.as_mut() {
                c.id = Some(id.to_string());
            }
            t.state = TaskState::Running;
            t.started = Some(now);
            r.events.push(Event::Task {
                task_id: self.task_ids[idx].clone(),
                state: TaskState::Running,
                status: TaskStatus::Unknown,
                reason: None,
                at: now,
            });
        }
        self.bump();
    }

    pub(crate) fn task_complete(&self, idx: usize, o: Outcome) {
        let now = SystemTime::now();
        {
            let mut r = self.lock();
            let t = &mut r.run.tasks[idx];
            if t.state == TaskState::Complete {
                return;
            }
            t.state = TaskState::Complete;
            t.status = o.status;
            t.reason = o.reason;
            t.message = o.message;
            t.exit_code = o.exit_code;
            t.ended = Some(now);
            r.events.push(Event::Task {
                task_id: self.task_ids[idx].clone(),
                state: TaskState::Complete,
                status: o.status,
                reason: o.reason,
                at: now,
            });
            // Nothing writes to the task's log any more.
            r.logs[idx] = LogState::Done;
        }
        self.bump();
    }

    pub(crate) fn log_state_changed(&self, idx: usize, state: LogState) {
        self.lock().logs[idx] = state;
        self.bump();
    }

    /// New lines were written to a task's log.
    pub(crate) fn log_written(&self) {
        self.bump();
    }

    pub(crate) fn run_complete(
        &self,
        status: RunStatus,
        reason: Option<StatusReason>,
        message: Option<String>,
    ) {
        let now = SystemTime::now();
        {
            let mut r = self.lock();
            if r.finished {
                return;
            }
            r.run.state = RunState::Complete;
            r.run.status = status;
            r.run.reason = reason;
            r.run.message = message;
            r.run.ended = Some(now);
            r.events.push(Event::Run {
                state: RunState::Complete,
                status,
                at: now,
            });
            r.finished = true;
        }
        self.bump();
        self.done.send_replace(true);
    }

    /// The executor stopped without finishing the run (a panic, or the runtime shut
    /// down): wake every waiter.
    pub(crate) fn abort(&self) {
        {
            let mut r = self.lock();
            if r.finished {
                return;
            }
            r.finished = true;
            r.aborted = true;
            for l in &mut r.logs {
                *l = LogState::Done;
            }
        }
        self.bump();
        self.done.send_replace(true);
    }

    /// The run's status, decided from the recorded task statuses: Cancelled if it was
    /// cancelled, else Failed if it timed out or any task Failed or is Unknown, else
    /// Successful.
    pub(crate) fn decide_status(&self) -> RunStatus {
        let stop = *self.stop.borrow();
        match stop.map(|s| s.cause) {
            Some(StopCause::Cancelled) => RunStatus::Cancelled,
            Some(StopCause::Timeout) => RunStatus::Failed,
            None => {
                let r = self.lock();
                if r.run
                    .tasks
                    .iter()
                    .any(|t| matches!(t.status, TaskStatus::Failed | TaskStatus::Unknown))
                {
                    RunStatus::Failed
                } else {
                    RunStatus::Successful
                }
            }
        }
    }
}
