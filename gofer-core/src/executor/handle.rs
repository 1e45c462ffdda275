//! [`RunHandle`]: follow, cancel and await one run.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::{self, BoxStream, StreamExt};

use super::engine::RunError;
use super::logs::{LogError, LogKey, LogLine, LogSink};
use super::model::{Event, Run, TaskState};
use super::recorder::{LogState, Recorder, Stop, StopCause};

/// How many lines or events a stream fetches at once.
const BATCH: usize = 256;

/// A handle on one run. Cheap to clone.
///
/// Dropping it does not stop the run (see [`Engine`](super::Engine)).
#[derive(Clone)]
pub struct RunHandle {
    pipeline_id: String,
    run_id: u64,
    recorder: Arc<Recorder>,
    sink: Arc<dyn LogSink>,
}

impl std::fmt::Debug for RunHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunHandle")
            .field("pipeline_id", &self.pipeline_id)
            .field("run_id", &self.run_id)
            .finish_non_exhaustive()
    }
}

impl RunHandle {
    pub(crate) fn new(
        pipeline_id: String,
        run_id: u64,
        recorder: Arc<Recorder>,
        sink: Arc<dyn LogSink>,
    ) -> Self {
        Self {
            pipeline_id,
            run_id,
            recorder,
            sink,
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
    ///
    /// Lines are read from the log sink by position, so a slow reader never slows the
    /// task nor loses lines.
    ///
    /// # Errors
    /// [`RunError::UnknownTask`] when the run has no such task.
    pub fn logs(
        &self,
        task_id: &str,
    ) -> Result<BoxStream<'static, Result<LogLine, LogError>>, RunError> {
        let idx = self
            .recorder
            .task_ids
            .iter()
            .position(|t| &**t == task_id)
            .ok_or_else(|| RunError::UnknownTask {
                pipeline: self.pipeline_id.clone(),
                run: self.run_id,
                task: task_id.to_string(),
            })?;
        let key = LogKey::new(self.pipeline_id.clone(), self.run_id, task_id);
        let recorder = self.recorder.clone();
        let sink = self.sink.clone();
        let rx = recorder.subscribe();
        struct St {
            recorder: Arc<Recorder>,
            sink: Arc<dyn LogSink>,
            rx: tokio::sync::watch::Receiver<u64>,
            key: LogKey,
            idx: usize,
            cursor: u64,
            buf: VecDeque<LogLine>,
            done: bool,
        }
        let st = St {
            recorder,
            sink,
            rx,
            key,
            idx,
            cursor: 0,
            buf: VecDeque::new(),
            done: false,
        };
        Ok(stream::unfold(st, |mut st| async move {
            loop {
                if let Some(l) = st.buf.pop_front() {
                    return Some((Ok(l), st));
                }
                if st.done {
                    return None;
                }
                st.rx.borrow_and_update();
                let (log, task) = st.recorder.log_state(st.idx);
                if log == LogState::None {
                    if task == TaskState::Complete {
                        return None;
                    }
                } else {
                    match st.sink.read(&st.key, st.cursor, BATCH) {
                        Ok((lines, next)) => {
                            st.cursor = next;
                            if lines.is_empty() && log == LogState::Done {
                                return None;
                            }
                            st.buf.extend(lines);
                            if !st.buf.is_empty() {
                                continue;
                            }
                        }
                        Err(LogError::NotFound { .. }) if log == LogState::Done => return None,
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
        .boxed())
    }

    /// Cancels the run: running containers get SIGTERM, then are killed after `grace`
    /// and removed; tasks not yet started end Cancelled; the run ends Cancelled.
    /// Does nothing when the run already completed or is already stopping.
    pub fn cancel(&self, grace: Duration) {
        self.recorder.stop.send_if_modified(|s| {
            if s.is_none() {
                *s = Some(Stop {
                    cause: StopCause::Cancelled,
                    grace,
                });
                true
            } else {
                false
            }
        });
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
