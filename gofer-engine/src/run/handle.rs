//! [`RunHandle`]: follow, cancel and await one run.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::{self, BoxStream, StreamExt};

use gofer_core::{Event, Run, TaskExecution, TaskState};

use crate::durable::recorder::{LogState, LogView, Recorder};
use crate::logs::sink::{LogError, LogKey, LogLine, LogReader, LogSink};
use crate::run::errors::RunError;
use crate::run::stop::{Stop, StopCause, StopSignal, TaskStops};

/// How many lines or events a stream fetches at once.
const BATCH: usize = 256;

/// A handle on one run. Cheap to clone.
///
/// Dropping it does not stop the run (see [`Engine`](crate::Engine)).
#[derive(Clone)]
pub struct RunHandle {
    pipeline_id: String,
    run_id: u64,
    recorder: Arc<Recorder>,
    stop: Arc<StopSignal>,
    task_stops: Arc<TaskStops>,
    sink: Arc<dyn LogSink>,
    /// The ids of the pipeline's services.
    services: Arc<[String]>,
}

impl std::fmt::Debug for RunHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunHandle")
            .field("pipeline_id", &self.pipeline_id)
            .field("run_id", &self.run_id)
            .finish_non_exhaustive()
    }
}

/// Whose log a follower reads.
enum Which {
    /// An attempt of a task; with `single` false, the later attempts' logs follow.
    Task {
        idx: usize,
        task: String,
        attempt: u32,
        single: bool,
    },
    /// A service's.
    Service(String),
}

/// Reads a log's next lines, on a blocking thread when the sink may block.
async fn next_lines(
    sink: &Arc<dyn LogSink>,
    reader: Box<dyn LogReader>,
) -> (Box<dyn LogReader>, Result<Vec<LogLine>, LogError>) {
    if !sink.may_block() {
        let mut reader = reader;
        let r = reader.next_lines(&**sink, BATCH);
        return (reader, r);
    }
    let sink = sink.clone();
    let mut reader = reader;
    match tokio::task::spawn_blocking(move || {
        let r = reader.next_lines(&*sink, BATCH);
        (reader, r)
    })
    .await
    {
        Ok(done) => done,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// Opens a reader, on a blocking thread when the sink may block.
async fn open_reader(
    sink: &Arc<dyn LogSink>,
    key: &LogKey,
) -> Result<Box<dyn LogReader>, LogError> {
    if !sink.may_block() {
        return sink.reader(key);
    }
    let sink = sink.clone();
    let key = key.clone();
    tokio::task::spawn_blocking(move || sink.reader(&key))
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}

impl RunHandle {
    /// The task of this run free to start the longest without running yet (waiting
    /// for a slot, a group, its pull), and for how long.
    pub(crate) fn oldest_queued(&self) -> Option<(String, std::time::Duration)> {
        self.recorder
            .oldest_ready()
            .map(|(i, d)| (self.recorder.task_ids[i].to_string(), d))
    }

    pub(crate) fn new(
        pipeline_id: String,
        run_id: u64,
        recorder: Arc<Recorder>,
        stop: Arc<StopSignal>,
        task_stops: Arc<TaskStops>,
        sink: Arc<dyn LogSink>,
        services: Arc<[String]>,
    ) -> Self {
        Self {
            pipeline_id,
            run_id,
            recorder,
            stop,
            task_stops,
            sink,
            services,
        }
    }

    /// The pipeline id.
    pub fn pipeline_id(&self) -> &str {
        &self.pipeline_id
    }

    /// The run number.
    pub fn run_id(&self) -> u64 {
        self.run_id
    }

    /// The run as it is now.
    pub fn snapshot(&self) -> Run {
        self.recorder.snapshot()
    }

    fn index(&self, task_id: &str) -> Result<usize, RunError> {
        self.recorder
            .task_ids
            .iter()
            .position(|t| &**t == task_id)
            .ok_or_else(|| RunError::UnknownTask {
                pipeline: self.pipeline_id.clone(),
                run: self.run_id,
                task: task_id.to_string(),
            })
    }

    /// Every state change of the run and its tasks, from the run's start, ending after
    /// the run's `Complete` event.
    ///
    /// A subscriber that joins late first gets every earlier event, so each subscriber
    /// sees the same, complete sequence. Events are kept by the run (not queued per
    /// subscriber), so a slow subscriber never slows the run nor loses events.
    pub fn events(&self) -> BoxStream<'static, Event> {
        let recorder = self.recorder.clone();
        let rx = recorder.subscribe();
        stream::unfold(
            (recorder, rx, 0usize, VecDeque::new(), false),
            |(recorder, mut rx, mut cursor, mut buf, mut done)| async move {
                loop {
                    if let Some(e) = buf.pop_front() {
                        return Some((e, (recorder, rx, cursor, buf, done)));
                    }
                    if done {
                        return None;
                    }
                    rx.borrow_and_update();
                    let (events, finished) = recorder.events_from(cursor, BATCH);
                    cursor += events.len();
                    buf.extend(events);
                    done = finished;
                    if buf.is_empty() && !done && rx.changed().await.is_err() {
                        done = true;
                    }
                }
            },
        )
        .boxed()
    }

    /// The live, masked log of one task, from its first line, ending when the task's
    /// output is complete (at once, empty, for a task that never started a container).
    /// A task attempted more than once (see [`RetryPolicy`](gofer_core::RetryPolicy)) gives
    /// every attempt's log, one after the other; [`RunHandle::attempt_logs`] gives
    /// one attempt's.
    ///
    /// Lines are read from the log sink by position (the sink's reader keeps its place,
    /// on a blocking thread for a sink that may block), so a slow reader never slows
    /// the task nor loses lines. When the task's log is incomplete (see
    /// [`TaskExecution::log_incomplete`]), the stream ends with
    /// [`LogError::Incomplete`] after the lines it has, instead of a normal end; an
    /// earlier attempt's incomplete log gives that error as an item and the stream
    /// goes on with the next attempt.
    ///
    /// # Errors
    /// [`RunError::UnknownTask`] when the run has no such task.
    pub fn logs(
        &self,
        task_id: &str,
    ) -> Result<BoxStream<'static, Result<LogLine, LogError>>, RunError> {
        self.follow(task_id, 1, false)
    }

    /// The live, masked log of one attempt of a task (1 for the first), as
    /// [`RunHandle::logs`] gives it. Earlier attempts' logs are kept: a finished
    /// attempt's log is read whole; an attempt that has not begun is waited for (the
    /// stream ends empty when the task completes without it).
    ///
    /// # Errors
    /// [`RunError::UnknownTask`] when the run has no such task.
    pub fn attempt_logs(
        &self,
        task_id: &str,
        attempt: u32,
    ) -> Result<BoxStream<'static, Result<LogLine, LogError>>, RunError> {
        self.follow(task_id, attempt.max(1), true)
    }

    /// The live, masked log of one of the run's services (see [`gofer_core::Service`]), from
    /// its first line, as [`RunHandle::logs`] gives a task's: lines are readable while
    /// the service runs, and the stream ends once the service's output ended (it is
    /// stopped after the run's last task), or, for a service that never started a
    /// container, once the run is finished. A log that could not be kept whole ends
    /// with [`LogError::Incomplete`] (and the run has an
    /// [`Event::ServiceLogIncomplete`](gofer_core::Event::ServiceLogIncomplete)). Its key
    /// in the sink is [`LogKey::service`].
    ///
    /// After a crash, a service whose container still runs is adopted by
    /// [`Engine::recover`](crate::Engine::recover) and its log rewritten whole from the
    /// engine's output.
    ///
    /// # Errors
    /// [`RunError::UnknownService`] when the pipeline has no such service.
    pub fn service_logs(
        &self,
        service_id: &str,
    ) -> Result<BoxStream<'static, Result<LogLine, LogError>>, RunError> {
        if !self.services.iter().any(|s| s == service_id) {
            return Err(RunError::UnknownService {
                pipeline: self.pipeline_id.clone(),
                run: self.run_id,
                service: service_id.to_string(),
            });
        }
        let key = LogKey::service(self.pipeline_id.clone(), self.run_id, service_id);
        Ok(self.follow_key(key, Which::Service(service_id.to_string())))
    }

    fn follow(
        &self,
        task_id: &str,
        attempt: u32,
        single: bool,
    ) -> Result<BoxStream<'static, Result<LogLine, LogError>>, RunError> {
        let idx = self.index(task_id)?;
        let key = LogKey::attempt(self.pipeline_id.clone(), self.run_id, task_id, attempt);
        Ok(self.follow_key(
            key,
            Which::Task {
                idx,
                task: task_id.to_string(),
                attempt,
                single,
            },
        ))
    }

    fn follow_key(
        &self,
        key: LogKey,
        which: Which,
    ) -> BoxStream<'static, Result<LogLine, LogError>> {
        struct St {
            recorder: Arc<Recorder>,
            sink: Arc<dyn LogSink>,
            rx: tokio::sync::watch::Receiver<u64>,
            key: LogKey,
            which: Which,
            reader: Option<Box<dyn LogReader>>,
            buf: VecDeque<LogLine>,
            done: bool,
        }
        impl St {
            fn view(&self) -> LogView {
                match &self.which {
                    Which::Task { idx, attempt, .. } => self.recorder.log_view(*idx, *attempt),
                    Which::Service(id) => self.recorder.service_log_view(id),
                }
            }
        }
        let st = St {
            rx: self.recorder.subscribe(),
            recorder: self.recorder.clone(),
            sink: self.sink.clone(),
            key,
            which,
            reader: None,
            buf: VecDeque::new(),
            done: false,
        };
        /// The end of one attempt's log: the next attempt's follows (`None`), or the
        /// stream ends, with the incomplete-log error if there is one.
        fn end(st: &mut St, view: &LogView) -> Option<Result<LogLine, LogError>> {
            let incomplete = view.incomplete.clone().map(|reason| {
                Err(LogError::Incomplete {
                    pipeline: st.key.pipeline.clone(),
                    run: st.key.run,
                    task: st.key.task.clone(),
                    reason,
                })
            });
            match &mut st.which {
                Which::Task {
                    task,
                    attempt,
                    single: false,
                    ..
                } if view.later => {
                    *attempt = attempt.saturating_add(1);
                    st.key = LogKey::attempt(st.key.pipeline.clone(), st.key.run, task, *attempt);
                    st.reader = None;
                }
                _ => st.done = true,
            }
            incomplete
        }
        stream::unfold(st, |mut st| async move {
            loop {
                if let Some(l) = st.buf.pop_front() {
                    return Some((Ok(l), st));
                }
                if st.done {
                    return None;
                }
                st.rx.borrow_and_update();
                let view = st.view();
                if view.log == LogState::None {
                    if view.task == TaskState::Complete {
                        match end(&mut st, &view) {
                            Some(last) => return Some((last, st)),
                            None if st.done => return None,
                            None => continue,
                        }
                    }
                } else {
                    let reader = match st.reader.take() {
                        Some(r) => Ok(r),
                        None => open_reader(&st.sink, &st.key).await,
                    };
                    match reader {
                        Ok(reader) => {
                            let (reader, lines) = next_lines(&st.sink, reader).await;
                            st.reader = Some(reader);
                            match lines {
                                Ok(lines) if lines.is_empty() && view.log == LogState::Done => {
                                    match end(&mut st, &view) {
                                        Some(last) => return Some((last, st)),
                                        None if st.done => return None,
                                        None => continue,
                                    }
                                }
                                Ok(lines) => {
                                    st.buf.extend(lines);
                                    if !st.buf.is_empty() {
                                        continue;
                                    }
                                }
                                Err(e) => {
                                    st.done = true;
                                    return Some((Err(e), st));
                                }
                            }
                        }
                        Err(LogError::NotFound { .. }) if view.log == LogState::Done => {
                            match end(&mut st, &view) {
                                Some(last) => return Some((last, st)),
                                None if st.done => return None,
                                None => continue,
                            }
                        }
                        Err(e) => {
                            st.done = true;
                            return Some((Err(e), st));
                        }
                    }
                }
                if st.rx.changed().await.is_err() {
                    st.done = true;
                }
            }
        })
        .boxed()
    }

    /// Waits until the task's log is complete and returns every line of it.
    ///
    /// # Errors
    /// [`LogError::Incomplete`] when the log is not whole (the lines it has are lost to
    /// this call: use [`RunHandle::logs`] to keep them), a sink's error, or
    /// [`LogError::NotFound`] for a task this run does not have.
    pub async fn read_log(&self, task_id: &str) -> Result<Vec<LogLine>, LogError> {
        let mut logs = self.logs(task_id).map_err(|_| LogError::NotFound {
            pipeline: self.pipeline_id.clone(),
            run: self.run_id,
            task: task_id.to_string(),
        })?;
        let mut lines = Vec::new();
        while let Some(line) = logs.next().await {
            lines.push(line?);
        }
        Ok(lines)
    }

    /// Waits until a task has reached `state` (or a later one) and returns it as it is
    /// then. A task that completes first is returned complete.
    ///
    /// # Errors
    /// [`RunError::UnknownTask`] for a task this run does not have;
    /// [`RunError::Aborted`] when the executor stopped first.
    pub async fn wait_task(
        &self,
        task_id: &str,
        state: TaskState,
    ) -> Result<TaskExecution, RunError> {
        let idx = self.index(task_id)?;
        let mut rx = self.recorder.subscribe();
        loop {
            rx.borrow_and_update();
            let task = self.recorder.task(idx);
            if task.state >= state {
                return Ok(task);
            }
            let (finished, aborted) = self.recorder.finished();
            if aborted || finished || rx.changed().await.is_err() {
                let task = self.recorder.task(idx);
                if task.state >= state {
                    return Ok(task);
                }
                return Err(RunError::Aborted {
                    pipeline: self.pipeline_id.clone(),
                    run: self.run_id,
                });
            }
        }
    }

    /// Cancels the run: running containers get SIGTERM, then are killed after `grace`
    /// and removed; tasks not yet started end Cancelled; the run ends Cancelled.
    /// Cancelling again with a shorter grace (a second Ctrl-C) shortens the stops
    /// under way: `cancel(Duration::ZERO)` kills at once. Otherwise it does nothing
    /// when the run already completed or is already stopping. On a backend without
    /// [`Capabilities::per_stop_grace`](gofer_core::Capabilities::per_stop_grace) (Swarm)
    /// the kill comes after the grace fixed at create, the engine's
    /// [`Limits::stop_grace`](crate::Limits::stop_grace), whatever `grace` says.
    pub fn cancel(&self, grace: Duration) {
        self.stop.request(Stop {
            cause: StopCause::Cancelled,
            grace,
        });
    }

    /// Cancels one task: its container, when running, gets SIGTERM, then is killed
    /// after `grace` and removed; a task that has not started never starts; a task in
    /// a retry's backoff makes no further attempt. The task ends `Cancelled` (reason
    /// `Cancelled`); the rest of the run goes on, and the task's dependents apply their
    /// conditions to that status (a `Cancelled` parent meets none, so they end
    /// `Skipped`). The run's status is decided from its tasks as usual: a task's own
    /// cancel does not make the run `Cancelled` nor `Failed`. Cancelling the task again
    /// with a shorter grace shortens the stop under way; cancelling a complete task
    /// does nothing.
    ///
    /// # Errors
    /// [`RunError::UnknownTask`] when the run has no task `task_id`.
    ///
    /// # Examples
    /// ```
    /// # use std::time::Duration;
    /// # async fn f(run: gofer_engine::RunHandle) -> Result<(), gofer_engine::RunError> {
    /// run.cancel_task("slow_test", Duration::from_secs(5))?;
    /// # Ok(()) }
    /// ```
    pub fn cancel_task(&self, task_id: &str, grace: Duration) -> Result<(), RunError> {
        let idx = self.index(task_id)?;
        self.task_stops.request(idx, grace);
        Ok(())
    }

    /// Waits until the run is complete (its containers removed) and returns it with
    /// every task execution.
    ///
    /// # Errors
    /// [`RunError::Aborted`] when the executor stopped before the run completed.
    pub async fn wait(&self) -> Result<Run, RunError> {
        let mut rx = self.recorder.subscribe_done();
        loop {
            rx.borrow_and_update();
            let (finished, aborted) = self.recorder.finished();
            if aborted {
                return Err(RunError::Aborted {
                    pipeline: self.pipeline_id.clone(),
                    run: self.run_id,
                });
            }
            if finished {
                return Ok(self.recorder.snapshot());
            }
            if rx.changed().await.is_err() {
                return Err(RunError::Aborted {
                    pipeline: self.pipeline_id.clone(),
                    run: self.run_id,
                });
            }
        }
    }
}
