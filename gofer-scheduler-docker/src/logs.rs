//! A container's output, demultiplexed into stdout and stderr: live from an attach
//! made before the container starts (as `docker run` does), or read again from the
//! engine's logs endpoint.
//!
//! The attach is the fast path: the engine copies the container's output straight
//! into the attached connection, and ends it once the container's output is closed
//! (at exit, after the last byte). The logs endpoint reads the log driver's file back
//! (about three times slower for a task printing a lot) and serves what the attach
//! cannot: a re-read after a broken stream, and containers this scheduler did not
//! start.

use std::time::SystemTime;

use bollard::container::LogOutput;
use bollard::query_parameters::{AttachContainerOptions, LogsOptions};
use bollard::Docker;
use futures::stream::BoxStream;
use futures::StreamExt;
use gofer_core::{LogChunk, LogStream, OutputCursor, OutputStream, SchedulerError};

use crate::error;

/// One engine frame as a chunk; stdin echoes and console frames are not output.
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

/// Attaches to container `id` (created, not started yet): its stdout and stderr from
/// the first byte, ending after the last one.
pub(crate) async fn attach(
    docker: &Docker,
    endpoint: &str,
    id: &str,
) -> Result<LogStream, SchedulerError> {
    let options = AttachContainerOptions {
        stream: true,
        stdout: true,
        stderr: true,
        ..Default::default()
    };
    let attached = docker
        .attach_container(id, Some(options))
        .await
        .map_err(|e| error::container(endpoint, "attach", id, e))?;
    let endpoint = endpoint.to_string();
    let id = id.to_string();
    // The write half (stdin) is dropped: tasks get no input.
    Ok(attached
        .output
        .filter_map(move |item| {
            let item = match item {
                Ok(output) => attached_chunk(output).map(Ok),
                Err(e) => Some(Err(error::container(&endpoint, "attach", &id, e))),
            };
            std::future::ready(item)
        })
        .boxed())
}

/// An attached frame: no timestamp prefix (the engine adds none), so it is stamped
/// on arrival.
fn attached_chunk(output: LogOutput) -> Option<LogChunk> {
    let (stream, data) = match output {
        LogOutput::StdOut { message } | LogOutput::Console { message } => {
            (OutputStream::Stdout, message)
        }
        LogOutput::StdErr { message } => (OutputStream::Stderr, message),
        LogOutput::StdIn { .. } => return None,
    };
    Some(LogChunk {
        stream,
        timestamp: SystemTime::now(),
        data,
    })
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

enum Phase {
    Follow(BoxStream<'static, Result<LogOutput, bollard::errors::Error>>),
    CatchUp(BoxStream<'static, Result<LogOutput, bollard::errors::Error>>),
    Done,
}

struct Follower {
    docker: Docker,
    endpoint: String,
    id: String,
    phase: Phase,
    /// What was delivered so far, per stream: the catch-up read delivers only the rest.
    cursor: OutputCursor,
}

impl Follower {
    async fn next(&mut self) -> Option<Result<LogChunk, SchedulerError>> {
        loop {
            let item = match &mut self.phase {
                Phase::Follow(s) => match s.next().await {
                    Some(item) => item,
                    None => {
                        // A follow stream can end before it has delivered output that a
                        // quickly exiting container wrote; read the whole log once more and
                        // deliver whatever is beyond what was already delivered.
                        self.cursor.reread();
                        self.phase = Phase::CatchUp(
                            self.docker.logs(&self.id, Some(options(false))).boxed(),
                        );
                        continue;
                    }
                },
                Phase::CatchUp(s) => match s.next().await {
                    Some(Ok(output)) => match chunk(output).and_then(|c| self.cursor.fresh(c)) {
                        Some(c) => return Some(Ok(c)),
                        None => continue,
                    },
                    // The container went away after its follow stream ended: what was
                    // delivered is all there is.
                    Some(Err(_)) | None => {
                        self.phase = Phase::Done;
                        return None;
                    }
                },
                Phase::Done => return None,
            };
            match item {
                Ok(output) => {
                    if let Some(c) = chunk(output).and_then(|c| self.cursor.fresh(c)) {
                        return Some(Ok(c));
                    }
                }
                Err(e) => {
                    self.phase = Phase::Done;
                    return Some(Err(error::container(&self.endpoint, "logs", &self.id, e)));
                }
            }
        }
    }
}

/// The output of container `id` from its start, followed until it exits.
///
/// After the follow stream ends, one plain read of the whole log delivers anything the
/// follow missed (the engine can end a follow early for a container that exits right
/// away); bytes already delivered are skipped per stream, so nothing is repeated.
pub(crate) fn follow(docker: &Docker, endpoint: &str, id: &str) -> LogStream {
    let follower = Follower {
        docker: docker.clone(),
        endpoint: endpoint.to_string(),
        id: id.to_string(),
        phase: Phase::Follow(docker.logs(id, Some(options(true))).boxed()),
        cursor: OutputCursor::new(),
    };
    futures::stream::unfold(follower, |mut f| async move {
        f.next().await.map(|item| (item, f))
    })
    .boxed()
}
