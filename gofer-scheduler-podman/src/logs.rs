//! Following a container's output, stdout and stderr kept apart.

use std::time::SystemTime;

use bytes::Bytes;
use futures::StreamExt;
use gofer_core::{LogChunk, LogStream, OutputStream, SchedulerError};
use podman_api::conn::TtyChunk;
use podman_api::opts::ContainerLogsOpts;
use tokio::sync::mpsc;

use crate::client::{Api, ApiError};
use crate::NAME;

/// Streams the container's output from its start, following it until it exits.
///
/// libpod's logs endpoint sends the same multiplexed frames as Docker's (an 8-byte
/// header naming the stream, then the payload); podman-api decodes them. A task reads
/// the response and hands chunks over a bounded channel, so the stream is `'static`
/// and a slow reader pauses the reading instead of losing output. Dropping the stream
/// ends the task.
pub(crate) fn follow(api: &Api, id: &str, buffer: usize) -> LogStream {
    let (tx, rx) = mpsc::channel::<Result<LogChunk, SchedulerError>>(buffer.max(1));
    let api = api.clone();
    let id = id.to_string();
    tokio::spawn(async move {
        let containers = api.podman.containers();
        let container = containers.get(id.as_str());
        let opts = ContainerLogsOpts::builder()
            .follow(true)
            .stdout(true)
            .stderr(true)
            .build();
        let mut frames = container.logs(&opts);
        while let Some(frame) = frames.next().await {
            let item = match frame {
                Ok(TtyChunk::StdOut(data)) => Ok(chunk(OutputStream::Stdout, data)),
                Ok(TtyChunk::StdErr(data)) => Ok(chunk(OutputStream::Stderr, data)),
                Ok(TtyChunk::StdIn(_)) => continue,
                Err(e) => Err(ApiError::from(e).for_container("logs", &api.endpoint, &id)),
            };
            let failed = item.is_err();
            if tx.send(item).await.is_err() || failed {
                break;
            }
        }
        tracing::trace!(scheduler = NAME, container = %id, "log stream ended");
    });
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|i| (i, rx)) }).boxed()
}

fn chunk(stream: OutputStream, data: Vec<u8>) -> LogChunk {
    LogChunk {
        stream,
        timestamp: SystemTime::now(),
        data: Bytes::from(data),
    }
}
