//! Following a container's output, stdout and stderr kept apart, with nothing lost.
//!
//! libpod's logs endpoint sends the same multiplexed frames as Docker's (an 8-byte
//! header naming the stream, then the payload); podman-api decodes them. Podman's
//! k8s-file log reader loses lines when *following* a log that grows faster than it is
//! read (Podman issue 21914; seen here on 4.3.1 as gaps of thousands of lines in a
//! 10 MiB log, for running and exited containers alike), and a follow ends on the
//! container's `died` event, which it can miss. A plain (not followed) read is complete
//! up to the end of the file at that moment. So the output is never taken from a
//! follow:
//!
//! - a container that has exited is read once, plainly;
//! - for a running one, the followed stream serves only as the signal that output
//!   arrived; each signal (coalesced while a read runs) triggers a plain read that skips,
//!   per stream, the bytes already delivered (checking with a running hash that they are
//!   the same bytes) and delivers the rest. One wait request tells when the container
//!   has exited; a last plain read then delivers the tail.
//!
//! A task reads and hands chunks over a bounded channel, so the stream is `'static` and
//! a slow reader pauses the reading (back-pressure) instead of losing output. Dropping
//! the stream ends the task.

use std::collections::hash_map::DefaultHasher;
use std::hash::Hasher;
use std::time::SystemTime;

use bytes::Bytes;
use futures::{FutureExt, StreamExt};
use gofer_core::{LogChunk, LogStream, OutputStream, SchedulerError};
use podman_api::conn::TtyChunk;
use podman_api::opts::ContainerLogsOpts;
use tokio::sync::mpsc;

use crate::client::{Api, ApiError};
use crate::NAME;

type Tx = mpsc::Sender<Result<LogChunk, SchedulerError>>;

/// `Err(None)`: the reader went away; `Err(Some(e))`: tell the reader.
type Outcome = Result<(), Option<SchedulerError>>;

/// The log stream of container `id`; `running` says whether to follow it.
pub(crate) fn stream(
    api: &Api,
    id: &str,
    running: bool,
    wait_path: String,
    buffer: usize,
) -> LogStream {
    let (tx, rx) = mpsc::channel(buffer.max(1));
    let api = api.clone();
    let id = id.to_string();
    tokio::spawn(async move {
        let mut tally = Tally::default();
        let mut result = Ok(());
        if running {
            result = live(&api, &id, &wait_path, &tx, &mut tally).await;
        }
        if result.is_ok() {
            result = catch_up(&api, &id, &tx, &mut tally).await;
        }
        if let Err(Some(e)) = result {
            let _ = tx.send(Err(e)).await;
        }
        tracing::trace!(scheduler = NAME, container = %id, "log stream ended");
    });
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|i| (i, rx)) }).boxed()
}

/// Bytes delivered per stream (stdout, stderr), and their running hash.
#[derive(Default)]
struct Tally {
    delivered: [u64; 2],
    hash: [DefaultHasher; 2],
}

fn index(s: OutputStream) -> usize {
    match s {
        OutputStream::Stdout => 0,
        OutputStream::Stderr => 1,
    }
}

fn split(frame: TtyChunk) -> Option<(OutputStream, Vec<u8>)> {
    match frame {
        TtyChunk::StdOut(d) => Some((OutputStream::Stdout, d)),
        TtyChunk::StdErr(d) => Some((OutputStream::Stderr, d)),
        TtyChunk::StdIn(_) => None,
    }
}

/// While the container runs: a plain catch-up read each time the follow signals new
/// output. Returns once the container has exited (or is gone).
async fn live(api: &Api, id: &str, wait_path: &str, tx: &Tx, tally: &mut Tally) -> Outcome {
    let containers = api.podman.containers();
    let container = containers.get(id);
    let opts = ContainerLogsOpts::builder()
        .follow(true)
        .stdout(true)
        .stderr(true)
        .build();
    let mut signals = container.logs(&opts);
    let exited = api.post(wait_path);
    tokio::pin!(exited);
    let mut follow_open = true;
    loop {
        tokio::select! {
            biased;
            _ = &mut exited => return Ok(()),
            signal = signals.next(), if follow_open => {
                if !matches!(signal, Some(Ok(_))) {
                    // The follow ended (or failed): the wait alone says when to finish.
                    follow_open = false;
                    continue;
                }
                // Coalesce what else has arrived, then read once.
                while let Some(Some(more)) = signals.next().now_or_never() {
                    if more.is_err() {
                        follow_open = false;
                        break;
                    }
                }
                catch_up(api, id, tx, tally).await?;
            }
        }
    }
}

/// Reads the whole log once (not followed), skipping per stream the bytes `tally` says
/// were delivered already (after checking they are the same bytes), delivering the rest
/// and adding it to `tally`.
async fn catch_up(api: &Api, id: &str, tx: &Tx, tally: &mut Tally) -> Outcome {
    let containers = api.podman.containers();
    let container = containers.get(id);
    let opts = ContainerLogsOpts::builder()
        .follow(false)
        .stdout(true)
        .stderr(true)
        .build();
    let mut frames = container.logs(&opts);
    let known = tally.delivered;
    let mut replayed = [0u64; 2];
    let mut check: [DefaultHasher; 2] = Default::default();
    while let Some(frame) = frames.next().await {
        let frame = match frame {
            Ok(f) => f,
            Err(e) => {
                let e = ApiError::from(e);
                if e.status() == Some(404) && known != [0, 0] {
                    // Removed meanwhile: what was delivered is all there is.
                    tracing::debug!(container = %id, "removed before the log was read to its end");
                    return Ok(());
                }
                return Err(Some(e.for_container("logs", &api.endpoint, id)));
            }
        };
        let Some((stream, mut data)) = split(frame) else {
            continue;
        };
        let i = index(stream);
        let owed = known[i] - replayed[i];
        if owed > 0 {
            let n = usize::try_from(owed).unwrap_or(usize::MAX).min(data.len());
            check[i].write(&data[..n]);
            replayed[i] += n as u64;
            if replayed[i] == known[i] && check[i].finish() != tally.hash[i].finish() {
                return Err(Some(lost(id, stream)));
            }
            data.drain(..n);
            if data.is_empty() {
                continue;
            }
        }
        tally.delivered[i] += data.len() as u64;
        tally.hash[i].write(&data);
        send(tx, stream, data).await?;
    }
    for s in [OutputStream::Stdout, OutputStream::Stderr] {
        if replayed[index(s)] < known[index(s)] {
            return Err(Some(lost(id, s)));
        }
    }
    Ok(())
}

fn lost(id: &str, stream: OutputStream) -> SchedulerError {
    SchedulerError::engine(
        NAME,
        "logs",
        format!(
            "the {} of container {id:?} changed between two reads of its log file",
            stream.as_str()
        ),
    )
}

async fn send(tx: &Tx, stream: OutputStream, data: Vec<u8>) -> Outcome {
    let chunk = LogChunk {
        stream,
        timestamp: SystemTime::now(),
        data: Bytes::from(data),
    };
    tx.send(Ok(chunk)).await.map_err(|_| None)
}
