//! A container's output, stdout and stderr kept apart, with nothing lost.
//!
//! Live output comes from an attach made before the container starts (read from
//! conmon's socket, see `conmon.rs`, or through the service, [`attach`]), as `podman
//! run` does: conmon copies the container's output into the attached
//! connection as it is written and closes it after the last byte, so nothing is lost
//! between attach and start or at exit, and no log file is read back on the way.
//! What follows serves the reads an attach cannot: a read again after a broken
//! stream, and containers this scheduler did not start (adopted by crash recovery).
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

use crate::client::{segment, Api, ApiError};
use crate::NAME;

/// Attaches to container `id` (created, not started yet): its stdout and stderr from
/// the first byte, ending after the last one.
pub(crate) async fn attach(api: &Api, id: &str) -> Result<LogStream, SchedulerError> {
    let path = format!(
        "/containers/{}/attach?stream=true&stdout=true&stderr=true",
        segment(id)
    );
    let conn = api
        .upgrade(&path)
        .await
        .map_err(|e| e.for_container("attach", &api.endpoint, id))?;
    let endpoint = api.endpoint.clone();
    let id = id.to_string();
    let frames = Frames {
        conn,
        buf: bytes::BytesMut::with_capacity(READ_SIZE),
    };
    Ok(futures::stream::unfold(Some(frames), move |frames| {
        let endpoint = endpoint.clone();
        let id = id.clone();
        async move {
            let mut frames = frames?;
            match frames.next().await {
                Ok(Some(chunk)) => Some((Ok(chunk), Some(frames))),
                Ok(None) => None,
                Err(e) => {
                    let e = SchedulerError::engine(
                        NAME,
                        "attach",
                        format!("the attached output of container {id:?} at {endpoint} broke: {e}"),
                    );
                    Some((Err(e), None))
                }
            }
        }
    })
    .boxed())
}

/// How much is read from an attached connection at a time.
const READ_SIZE: usize = 64 * 1024;

/// The multiplexed frames of an attached connection: an 8-byte header (stream 0, 1
/// or 2; three zero bytes; the big-endian payload length), then the payload.
struct Frames<R> {
    conn: R,
    buf: bytes::BytesMut,
}

impl<R: tokio::io::AsyncRead + Unpin> Frames<R> {
    /// The next output chunk; `None` at the end of the connection.
    async fn next(&mut self) -> std::io::Result<Option<LogChunk>> {
        use tokio::io::AsyncReadExt;
        loop {
            if let Some(frame) = frame(&mut self.buf)? {
                match frame {
                    (Some(stream), data) => {
                        return Ok(Some(LogChunk {
                            stream,
                            timestamp: SystemTime::now(),
                            data,
                        }))
                    }
                    // Stdin echoes are not output.
                    (None, _) => continue,
                }
            }
            self.buf.reserve(READ_SIZE);
            if self.conn.read_buf(&mut self.buf).await? == 0 {
                if self.buf.is_empty() {
                    return Ok(None);
                }
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!(
                        "the connection ended inside a frame ({} bytes left)",
                        self.buf.len()
                    ),
                ));
            }
        }
    }
}

/// Splits one whole frame off the front of `buf`: its stream (`None` for stdin) and
/// payload; `None` until a whole frame is there.
fn frame(buf: &mut bytes::BytesMut) -> std::io::Result<Option<(Option<OutputStream>, Bytes)>> {
    if buf.len() < 8 {
        return Ok(None);
    }
    let stream = match buf[0] {
        0 => None,
        1 => Some(OutputStream::Stdout),
        2 => Some(OutputStream::Stderr),
        other => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("unknown stream {other} in an attached frame"),
            ))
        }
    };
    let len = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]) as usize;
    if buf.len() < 8 + len {
        buf.reserve(8 + len - buf.len());
        return Ok(None);
    }
    let _header = buf.split_to(8);
    Ok(Some((stream, buf.split_to(len).freeze())))
}

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

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(stream: u8, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![stream, 0, 0, 0];
        v.extend_from_slice(&u32::try_from(payload.len()).expect("small").to_be_bytes());
        v.extend_from_slice(payload);
        v
    }

    #[tokio::test]
    async fn frames_are_split_per_stream_whatever_the_reads() {
        let mut wire = framed(1, b"out-1\n");
        wire.extend(framed(0, b"typed"));
        wire.extend(framed(2, b"err-1\n"));
        wire.extend(framed(1, b""));
        wire.extend(framed(1, &[b'x'; 70_000]));
        // A reader that hands out 3 bytes at a time.
        let reader = tokio_test_reader(&wire, 3);
        let mut frames = Frames {
            conn: reader,
            buf: bytes::BytesMut::new(),
        };
        let mut got = Vec::new();
        while let Some(c) = frames.next().await.expect("no error") {
            got.push((c.stream, c.data.len(), c.data.first().copied()));
        }
        assert_eq!(
            got,
            vec![
                (OutputStream::Stdout, 6, Some(b'o')),
                (OutputStream::Stderr, 6, Some(b'e')),
                (OutputStream::Stdout, 0, None),
                (OutputStream::Stdout, 70_000, Some(b'x')),
            ]
        );
    }

    #[tokio::test]
    async fn a_connection_cut_inside_a_frame_is_an_error() {
        let wire = framed(1, b"out-1\n");
        let mut frames = Frames {
            conn: tokio_test_reader(&wire[..wire.len() - 2], 64),
            buf: bytes::BytesMut::new(),
        };
        assert!(frames.next().await.is_err());
        let mut bad = framed(7, b"?");
        bad.truncate(9);
        let mut frames = Frames {
            conn: tokio_test_reader(&bad, 64),
            buf: bytes::BytesMut::new(),
        };
        assert!(frames.next().await.is_err());
    }

    /// An in-memory reader giving at most `step` bytes per read.
    fn tokio_test_reader(data: &[u8], step: usize) -> impl tokio::io::AsyncRead + Unpin {
        let chunks: Vec<std::io::Result<Bytes>> = data
            .chunks(step)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        StreamReader(futures::stream::iter(chunks), Bytes::new())
    }

    struct StreamReader<S>(S, Bytes);

    impl<S: futures::Stream<Item = std::io::Result<Bytes>> + Unpin> tokio::io::AsyncRead
        for StreamReader<S>
    {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
            out: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            use std::task::Poll;
            if self.1.is_empty() {
                match futures::ready!(self.0.poll_next_unpin(cx)) {
                    Some(Ok(b)) => self.1 = b,
                    Some(Err(e)) => return Poll::Ready(Err(e)),
                    None => return Poll::Ready(Ok(())),
                }
            }
            let n = self.1.len().min(out.remaining());
            out.put_slice(&self.1.split_to(n));
            Poll::Ready(Ok(()))
        }
    }
}
