//! The recorder: the one place every state change of a run goes through.
//!
//! It keeps the run's current picture, appends an [`Event`] for each change, wakes
//! subscribers (events, logs, waiters) through one watch channel and, when the engine
//! has a run store, queues each change on the run's [`Journal`]. It decides nothing:
//! outcomes and the run's status come from [`crate::durable::outcome`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;

use gofer_core::RunChange;
use gofer_core::{
    ContainerRef, Event, InjectedVariable, Run, RunHeader, RunState, RunStatus, StatusReason,
    TaskExecution, TaskState, TaskStatus,
};

use crate::durable::clock::Clock;
use crate::durable::journal::{Journal, JournalError};
use crate::durable::outcome::Outcome;
use crate::metrics::RunMetrics;

/// How far a task's log has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LogState {
    /// No log yet (the task has not started a container).
    None,
    /// Being written.
    Open,
    /// Nothing more will be written.
    Done,
}

struct Record {
    header: RunHeader,
    /// Shared with the journal's queued changes: a change copies no task.
    tasks: Vec<Arc<TaskExecution>>,
    events: Vec<Event>,
    logs: Vec<LogState>,
    /// Each started service's log, and why it is incomplete when it is.
    services: HashMap<Arc<str>, (LogState, Option<String>)>,
    finished: bool,
    aborted: bool,
    /// Where changes go to be made durable, when the engine has a run store.
    journal: Option<Journal>,
}

/// The shared record of one run and its wake-up channels.
pub(crate) struct Recorder {
    pub(crate) task_ids: Vec<Arc<str>>,
    clock: Clock,
    /// The run's metrics (see [`crate::metrics`]).
    pub(crate) metrics: RunMetrics,
    /// When each task's current attempt was free to start (for the queue wait).
    ready: Mutex<Vec<Option<tokio::time::Instant>>>,
    record: Mutex<Record>,
    version: watch::Sender<u64>,
    /// Whether anyone ever subscribed to `version`; until then changes wake nobody.
    watched: AtomicBool,
    /// Set once, when the run is finished (or aborted): waiters only wake then.
    done: watch::Sender<bool>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder").finish_non_exhaustive()
    }
}

/// What a log follower needs to know of one task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LogView {
    pub(crate) log: LogState,
    pub(crate) task: TaskState,
    pub(crate) incomplete: Option<String>,
    /// The attempt asked for is over and a later one exists.
    pub(crate) later: bool,
}

impl Recorder {
    /// A recorder for a new run; its first event (Pending) is stamped now.
    pub(crate) fn new(run: Run, clock: Clock, metrics: RunMetrics) -> Self {
        let now = clock.now();
        let events = vec![Event::Run {
            state: RunState::Pending,
            status: RunStatus::Unknown,
            at: now,
        }];
        let n = run.tasks.len();
        Self::with_events(run, events, vec![LogState::None; n], clock, metrics)
    }

    /// A recorder for a run read back from the run store, with its stored events; its
    /// changes go to `journal`.
    pub(crate) fn resumed(
        run: Run,
        events: Vec<Event>,
        journal: Journal,
        clock: Clock,
        metrics: RunMetrics,
    ) -> Self {
        let logs = run
            .tasks
            .iter()
            .map(|t| {
                if t.state == TaskState::Complete {
                    LogState::Done
                } else {
                    LogState::None
                }
            })
            .collect();
        let me = Self::with_events(run, events, logs, clock, metrics);
        me.lock().journal = Some(journal);
        me
    }

    fn with_events(
        run: Run,
        events: Vec<Event>,
        logs: Vec<LogState>,
        clock: Clock,
        metrics: RunMetrics,
    ) -> Self {
        let n = run.tasks.len();
        let task_ids = run
            .tasks
            .iter()
            .map(|t| Arc::<str>::from(t.task_id.as_str()))
            .collect();
        let header = RunHeader::from(&run);
        let tasks = run.tasks.into_iter().map(Arc::new).collect();
        Self {
            task_ids,
            clock,
            metrics,
            ready: Mutex::new(vec![None; n]),
            record: Mutex::new(Record {
                header,
                tasks,
                events,
                logs,
                services: HashMap::new(),
                finished: false,
                aborted: false,
                journal: None,
            }),
            version: watch::channel(0).0,
            watched: AtomicBool::new(false),
            done: watch::channel(false).0,
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

    /// Wakes subscribers, then waits while the run store is far behind.
    async fn changed(&self) {
        self.bump();
        let journal = self.lock().journal.clone();
        if let Some(j) = journal {
            j.room().await;
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

    /// The run as it is now.
    pub(crate) fn snapshot(&self) -> Run {
        let r = self.lock();
        Run::from_parts(
            r.header.clone(),
            r.tasks.iter().map(|t| (**t).clone()).collect(),
        )
    }

    /// One task execution as it is now.
    pub(crate) fn task(&self, idx: usize) -> TaskExecution {
        (*self.lock().tasks[idx]).clone()
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

    pub(crate) fn task_state(&self, idx: usize) -> TaskState {
        self.lock().tasks[idx].state
    }

    /// The statuses of every task, in pipeline order.
    pub(crate) fn task_statuses(&self) -> Vec<TaskStatus> {
        self.lock().tasks.iter().map(|t| t.status).collect()
    }

    /// How far the log of attempt `attempt` of task `idx` has come.
    pub(crate) fn log_view(&self, idx: usize, attempt: u32) -> LogView {
        let r = self.lock();
        let t = &r.tasks[idx];
        if attempt < t.attempt {
            let earlier = t.attempts.iter().find(|a| a.attempt == attempt);
            return LogView {
                log: if earlier.is_some_and(|a| a.container.is_some()) {
                    LogState::Done
                } else {
                    LogState::None
                },
                task: TaskState::Complete,
                incomplete: earlier.and_then(|a| a.log_incomplete.clone()),
                later: true,
            };
        }
        if attempt > t.attempt {
            return LogView {
                log: LogState::None,
                task: t.state,
                incomplete: None,
                later: false,
            };
        }
        LogView {
            log: r.logs[idx],
            task: t.state,
            incomplete: t.log_incomplete.clone(),
            later: false,
        }
    }

    pub(crate) async fn run_running(&self) {
        let now = self.clock.now();
        {
            let mut r = self.lock();
            if r.header.state != RunState::Pending {
                // A resumed run that was already running.
                return;
            }
            r.header.state = RunState::Running;
            r.header.started = Some(now);
            self.metrics.run_started();
            r.push_event(Event::Run {
                state: RunState::Running,
                status: RunStatus::Unknown,
                at: now,
            });
            for i in 0..r.tasks.len() {
                if r.tasks[i].state == TaskState::Processing {
                    Arc::make_mut(&mut r.tasks[i]).state = TaskState::Waiting;
                    r.journal_task(i);
                    let attempt = r.tasks[i].attempt;
                    r.push_event(Event::Task {
                        task_id: self.task_ids[i].clone(),
                        state: TaskState::Waiting,
                        status: TaskStatus::Unknown,
                        reason: None,
                        attempt,
                        at: now,
                    });
                }
            }
            r.journal_run();
        }
        self.changed().await;
    }

    /// Records the variables the task's container gets (already masked) and the
    /// container's name (and where its log will live), before the container is
    /// created.
    pub(crate) async fn task_prepared(
        &self,
        idx: usize,
        vars: Vec<InjectedVariable>,
        name: String,
        log: Option<String>,
    ) {
        {
            let mut r = self.lock();
            let t = Arc::make_mut(&mut r.tasks[idx]);
            t.variables = vars;
            t.container = Some(ContainerRef::named(name));
            r.journal_task(idx);
            if let Some(location) = log {
                r.journal_log(idx, location);
            }
        }
        self.changed().await;
    }

    /// Forgets the container name recorded for an attempt whose container was never
    /// made (its start failed, and the backend leaves nothing of a failed start).
    pub(crate) async fn container_not_made(&self, idx: usize) {
        {
            let mut r = self.lock();
            let t = Arc::make_mut(&mut r.tasks[idx]);
            t.container = None;
            r.journal_task(idx);
        }
        self.changed().await;
    }

    /// Says what a waiting task waits for (`None` once it no longer waits).
    pub(crate) async fn task_queued(&self, idx: usize, message: Option<String>) {
        {
            let mut r = self.lock();
            let t = Arc::make_mut(&mut r.tasks[idx]);
            t.message = message;
            r.journal_task(idx);
        }
        self.changed().await;
    }

    pub(crate) async fn task_running(&self, idx: usize, id: &str) {
        let now = self.clock.now();
        {
            let mut r = self.lock();
            let t = Arc::make_mut(&mut r.tasks[idx]);
            if let Some(c) = t.container.as_mut() {
                c.id = Some(id.to_string());
            }
            t.state = TaskState::Running;
            t.started = Some(now);
            let attempt = t.attempt;
            let ready = self
                .ready
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .get_mut(idx)
                .and_then(Option::take);
            self.metrics.task_started(ready.map(|at| at.elapsed()));
            r.journal_task(idx);
            r.push_event(Event::Task {
                task_id: self.task_ids[idx].clone(),
                state: TaskState::Running,
                status: TaskStatus::Unknown,
                reason: None,
                attempt,
                at: now,
            });
        }
        self.changed().await;
    }

    /// Records that a task's log could not be kept whole, and why.
    pub(crate) async fn log_incomplete(&self, idx: usize, why: String) {
        let now = self.clock.now();
        {
            let mut r = self.lock();
            Arc::make_mut(&mut r.tasks[idx]).log_incomplete = Some(why.clone());
            r.journal_task(idx);
            r.push_event(Event::LogIncomplete {
                task_id: self.task_ids[idx].clone(),
                reason: why,
                at: now,
            });
        }
        self.changed().await;
    }

    pub(crate) async fn task_complete(&self, idx: usize, o: Outcome) {
        let now = self.clock.now();
        {
            let mut r = self.lock();
            if r.tasks[idx].state == TaskState::Complete {
                return;
            }
            let t = Arc::make_mut(&mut r.tasks[idx]);
            t.state = TaskState::Complete;
            t.status = o.status;
            t.reason = o.reason;
            t.message = o.message;
            t.exit_code = o.exit_code;
            t.ended = Some(now);
            let attempt = t.attempt;
            // No longer queued (a task that ends before it runs never took its place).
            if let Some(r) = self
                .ready
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .get_mut(idx)
            {
                *r = None;
            }
            self.metrics
                .task_finished(o.status, t.started.and_then(|s| now.duration_since(s).ok()));
            // Nothing writes to the task's log any more.
            r.logs[idx] = LogState::Done;
            r.journal_task(idx);
            r.push_event(Event::Task {
                task_id: self.task_ids[idx].clone(),
                state: TaskState::Complete,
                status: o.status,
                reason: o.reason,
                attempt,
                at: now,
            });
        }
        self.changed().await;
    }

    /// Records that the task's current attempt failed with `o` and that the next one
    /// follows after `backoff`: the attempt moves to [`TaskExecution::attempts`], the
    /// task waits again with the next attempt number and no log yet.
    pub(crate) async fn attempt_failed(
        &self,
        idx: usize,
        o: Outcome,
        backoff: std::time::Duration,
    ) {
        let now = self.clock.now();
        {
            let mut r = self.lock();
            if r.tasks[idx].state == TaskState::Complete {
                return;
            }
            let t = Arc::make_mut(&mut r.tasks[idx]);
            t.status = o.status;
            t.reason = o.reason;
            t.message = o.message;
            t.exit_code = o.exit_code;
            let failed = t.attempt;
            t.next_attempt(now, backoff);
            self.metrics.retried();
            let next = t.attempt;
            r.logs[idx] = LogState::None;
            r.journal_task(idx);
            r.push_event(Event::Retrying {
                task_id: self.task_ids[idx].clone(),
                attempt: failed,
                status: o.status,
                reason: o.reason,
                backoff,
                at: now,
            });
            r.push_event(Event::Task {
                task_id: self.task_ids[idx].clone(),
                state: TaskState::Waiting,
                status: TaskStatus::Unknown,
                reason: None,
                attempt: next,
                at: now,
            });
        }
        self.changed().await;
    }

    /// Notes that the task's current attempt may start now (its parents ended, its
    /// backoff passed): its queue wait runs from here to its container running.
    pub(crate) fn task_ready(&self, idx: usize) {
        if let Some(r) = self
            .ready
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get_mut(idx)
        {
            *r = Some(tokio::time::Instant::now());
        }
    }

    /// The task free to start the longest without running yet, and for how long.
    pub(crate) fn oldest_ready(&self) -> Option<(usize, std::time::Duration)> {
        self.ready
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .enumerate()
            .filter_map(|(i, r)| r.map(|at| (i, at.elapsed())))
            .max_by_key(|(_, d)| *d)
    }

    /// The task's current attempt (1-based).
    pub(crate) fn attempt(&self, idx: usize) -> u32 {
        self.lock().tasks[idx].attempt
    }

    /// A service's log is open (created or truncated) and being written.
    pub(crate) fn service_log_opened(&self, service: &str) {
        self.lock()
            .services
            .insert(Arc::from(service), (LogState::Open, None));
        self.bump();
    }

    /// A service's log is done: nothing more is written to it; `incomplete` says why
    /// it is not whole, when it is not (recorded as an event).
    pub(crate) async fn service_log_done(&self, service: &str, incomplete: Option<String>) {
        let now = self.clock.now();
        {
            let mut r = self.lock();
            let service: Arc<str> = Arc::from(service);
            if let Some(why) = &incomplete {
                r.push_event(Event::ServiceLogIncomplete {
                    service_id: service.clone(),
                    reason: why.clone(),
                    at: now,
                });
            }
            r.services.insert(service, (LogState::Done, incomplete));
        }
        self.changed().await;
    }

    /// How far a service's log has come; a service that has not opened one by the
    /// run's end never will.
    pub(crate) fn service_log_view(&self, service: &str) -> LogView {
        let r = self.lock();
        let (log, incomplete) = r
            .services
            .get(service)
            .cloned()
            .unwrap_or((LogState::None, None));
        let over = log == LogState::Done || r.finished;
        LogView {
            log,
            task: if over {
                TaskState::Complete
            } else {
                TaskState::Running
            },
            incomplete,
            later: false,
        }
    }

    pub(crate) fn log_opened(&self, idx: usize) {
        self.lock().logs[idx] = LogState::Open;
        self.bump();
    }

    /// New lines were written to a task's log.
    pub(crate) fn log_written(&self) {
        self.bump();
    }

    /// Records the run's end; with a run store, waiters are woken only once the end
    /// is durable.
    pub(crate) async fn run_complete(
        &self,
        status: RunStatus,
        reason: Option<StatusReason>,
        message: Option<String>,
    ) {
        let now = self.clock.now();
        let journal = {
            let mut r = self.lock();
            if r.finished || r.header.state == RunState::Complete {
                return;
            }
            r.header.state = RunState::Complete;
            r.header.status = status;
            r.header.reason = reason;
            r.header.message = message;
            r.header.ended = Some(now);
            self.metrics.run_finished(status);
            r.journal_run();
            r.push_event(Event::Run {
                state: RunState::Complete,
                status,
                at: now,
            });
            r.journal.clone()
        };
        if let Some(j) = journal {
            if let Err(e) = j.flush().await {
                tracing::warn!(error = %e, "the run's end is not recorded");
            }
        }
        {
            let mut r = self.lock();
            if r.finished {
                return;
            }
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
            for (l, _) in r.services.values_mut() {
                *l = LogState::Done;
            }
        }
        self.bump();
        self.done.send_replace(true);
    }
}

/// The durable side: a run store's journal.
impl Recorder {
    /// Sends every change from now on (and the run's creation and events so far) to
    /// `journal`.
    pub(crate) fn attach_journal(&self, journal: Journal, created: RunChange) {
        let mut r = self.lock();
        journal.send(created);
        for e in &r.events {
            journal.send(RunChange::Event {
                pipeline: r.header.pipeline_id.clone(),
                run: r.header.run_id,
                event: e.clone(),
            });
        }
        r.journal = Some(journal);
    }

    /// Stops sending changes (after a simulated crash).
    pub(crate) fn detach_journal(&self) {
        self.lock().journal = None;
    }

    /// Waits until every change made so far is durable (at once without a store).
    ///
    /// # Errors
    /// The journal's failure.
    pub(crate) async fn flush(&self) -> Result<(), JournalError> {
        let journal = self.lock().journal.clone();
        match journal {
            Some(j) => j.flush().await,
            None => Ok(()),
        }
    }
}

impl Record {
    fn push_event(&mut self, e: Event) {
        if let Some(j) = &self.journal {
            j.send(RunChange::Event {
                pipeline: self.header.pipeline_id.clone(),
                run: self.header.run_id,
                event: e.clone(),
            });
        }
        self.events.push(e);
    }

    fn journal_task(&self, idx: usize) {
        if let Some(j) = &self.journal {
            j.send(RunChange::Task {
                pipeline: self.header.pipeline_id.clone(),
                run: self.header.run_id,
                task: self.tasks[idx].clone(),
            });
        }
    }

    fn journal_log(&self, idx: usize, location: String) {
        if let Some(j) = &self.journal {
            j.send(RunChange::Log {
                pipeline: self.header.pipeline_id.clone(),
                run: self.header.run_id,
                task: self.tasks[idx].task_id.clone(),
                location,
            });
        }
    }

    fn journal_run(&self) {
        if let Some(j) = &self.journal {
            j.send(RunChange::Run(self.header.clone()));
        }
    }
}
