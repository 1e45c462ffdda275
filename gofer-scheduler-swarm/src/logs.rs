//! Following a task's output through the manager, stdout and stderr apart, made whole.
//!
//! The manager serves a task's log from the node that ran it (`/tasks/{id}/logs`). On
//! Docker 20.10 a follow of a task's log never ends — not when the task ends, not for a
//! task that has already ended — and holds back a last line without a newline. So while
//! following, the follower also looks at the task (with the wait's growing pauses);
//! once the task has ended it drops the follow and makes one plain read of the whole
//! log (which does end), delivering only what lies beyond the bytes already delivered,
//! per stream. A log opened after the end is one plain read. A log that cannot be made
//! whole (reads fail again and again, the task vanishes, the swarm holds less than was
//! already delivered) ends with an error naming the service and node, never silently.

use std::time::Duration;

use bollard::container::LogOutput;
use bollard::models::Task;
use bollard::query_parameters::LogsOptions;
use bollard::Docker;
use futures::stream::BoxStream;
use futures::StreamExt;
use gofer_core::{LogChunk, LogStream, OutputCursor, OutputStream, SchedulerError};
use tokio::time::Instant;

use crate::error::{self, SwarmError};
use crate::tasks::{self, Phase};
use crate::wait::Backoff;
use crate::SwarmConfig;

/// How many reads in a row may fail before the log is declared incomplete.
const MAX_FAILED_READS: u32 = 5;

/// One frame as a chunk; stdin echoes are not output.
fn chunk(output: LogOutput) -> Option<LogChunk> {
    let (stream, message) = match output {
        LogOutput::StdOut { message } | LogOutput::Console { message } => {
            (OutputStream::Stdout, message)
        }
        LogOutput::StdErr { message } => (OutputStream::Stderr, message),
        LogOutput::StdIn { .. } => return None,
    };
    Some(LogChunk::timestamped(stream, message))
}

fn options(follow: bool) -> LogsOptions {
    LogsOptions {
        follow,
        stdout: true,
        stderr: true,
        timestamps: true,
        ..Default::default()
    }
}

type Frames = BoxStream<'static, Result<LogOutput, bollard::errors::Error>>;

enum Read {
    /// Following the running task, looking at it between frames.
    Follow(Frames),
    /// The one plain read after the task ended.
    Final(Frames),
    Done,
}

struct Follower {
    docker: Docker,
    endpoint: String,
    service: String,
    task: String,
    node: Option<String>,
    read: Read,
    /// Pauses between looks at the task while following.
    backoff: Backoff,
    /// When to look at the task next.
    look_at: Instant,
    /// What was delivered so far, per stream, and what the current read has seen.
    cursor: OutputCursor,
    /// Reads in a row that failed.
    failed: u32,
}

impl Follower {
    fn incomplete(&mut self, reason: String) -> Option<Result<LogChunk, SchedulerError>> {
        self.read = Read::Done;
        Some(Err(SwarmError::LogIncomplete {
            service: self.service.clone(),
            node: self.node.clone(),
            reason,
        }
        .into_scheduler("logs")))
    }

    fn open(&mut self, follow: bool) {
        self.cursor.reread();
        let frames = self
            .docker
            .task_logs(&self.task, Some(options(follow)))
            .boxed();
        self.read = if follow {
            Read::Follow(frames)
        } else {
            Read::Final(frames)
        };
    }

    /// Whether the task has ended; an error ends the log.
    async fn ended(&mut self, why: &str) -> Result<bool, Option<Result<LogChunk, SchedulerError>>> {
        match self.docker.inspect_task(&self.task).await {
            Ok(task) => Ok(matches!(
                tasks::phase(&task),
                Phase::Ended(_) | Phase::FailedToRun(_)
            )),
            Err(e) if error::status(&e) == Some(404) => Err(self.incomplete(format!(
                "the task {} went away while its log was read ({why})",
                self.task
            ))),
            Err(e) => {
                self.read = Read::Done;
                Err(Some(Err(error::api(
                    &self.endpoint,
                    "logs",
                    &self.service,
                    self.node.clone(),
                    e,
                ))))
            }
        }
    }

    /// After a read failed: read again (following while the task runs).
    async fn retry(&mut self, why: String) -> Option<Result<LogChunk, SchedulerError>> {
        self.failed += 1;
        if self.failed > MAX_FAILED_READS {
            return self.incomplete(format!("{MAX_FAILED_READS} reads in a row failed ({why})"));
        }
        tokio::time::sleep(Duration::from_millis(100) * self.failed).await;
        match self.ended(&why).await {
            Ok(ended) => {
                self.open(!ended);
                None
            }
            Err(end) => end,
        }
    }

    /// One frame of the current read, as fresh output.
    fn take(&mut self, output: LogOutput) -> Option<LogChunk> {
        self.failed = 0;
        chunk(output).and_then(|c| self.cursor.fresh(c))
    }

    async fn next(&mut self) -> Option<Result<LogChunk, SchedulerError>> {
        loop {
            match &mut self.read {
                Read::Done => return None,
                Read::Follow(frames) => {
                    let look_at = self.look_at;
                    let item = tokio::select! {
                        item = frames.next() => Some(item),
                        () = tokio::time::sleep_until(look_at) => None,
                    };
                    match item {
                        Some(Some(Ok(output))) => {
                            if let Some(c) = self.take(output) {
                                return Some(Ok(c));
                            }
                        }
                        Some(Some(Err(e))) => {
                            if let Some(end) = self.retry(error::message(&e)).await {
                                return Some(end);
                            }
                        }
                        // A follow that ends (it should not): look at the task now.
                        Some(None) => {
                            if let Some(end) = self.retry("the follow ended".to_string()).await {
                                return Some(end);
                            }
                        }
                        None => match self.ended("looking at the task").await {
                            Ok(true) => self.open(false),
                            Ok(false) => self.look_at = Instant::now() + self.backoff.step(),
                            Err(end) => return end,
                        },
                    }
                }
                Read::Final(frames) => match frames.next().await {
                    Some(Ok(output)) => {
                        if let Some(c) = self.take(output) {
                            return Some(Ok(c));
                        }
                    }
                    Some(Err(e)) => {
                        if let Some(end) = self.retry(error::message(&e)).await {
                            return Some(end);
                        }
                    }
                    None => {
                        let c = self.cursor;
                        if let Some(stream) = [OutputStream::Stdout, OutputStream::Stderr]
                            .into_iter()
                            .find(|&s| c.seen(s) < c.delivered(s))
                        {
                            let reason = format!(
                                "the swarm now holds {} bytes of {}, {} were delivered",
                                c.seen(stream),
                                stream.as_str(),
                                c.delivered(stream)
                            );
                            return self.incomplete(reason);
                        }
                        self.read = Read::Done;
                        return None;
                    }
                },
            }
        }
    }
}

/// The output of the task `task` of service `service`, from its start, followed until
/// it ends (see the module docs for how it is made whole).
pub(crate) fn follow(
    docker: &Docker,
    endpoint: &str,
    config: &SwarmConfig,
    service: &str,
    task: &Task,
    node: Option<String>,
) -> LogStream {
    let mut backoff = Backoff::new(config);
    let ended = matches!(tasks::phase(task), Phase::Ended(_) | Phase::FailedToRun(_));
    let mut follower = Follower {
        docker: docker.clone(),
        endpoint: endpoint.to_string(),
        service: service.to_string(),
        task: task.id.clone().unwrap_or_default(),
        node,
        read: Read::Done,
        look_at: Instant::now() + backoff.step(),
        backoff,
        cursor: OutputCursor::new(),
        failed: 0,
    };
    follower.open(!ended);
    futures::stream::unfold(follower, |mut f| async move {
        f.next().await.map(|item| (item, f))
    })
    .boxed()
}
