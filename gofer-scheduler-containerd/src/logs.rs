//! A container's output, from the two files the logging binary writes (see
//! [`crate::logger`]: they hold every byte however slowly anyone reads, and outlive the
//! host process). Reading follows them with
//! inotify until the container's exit is known, which is after the shim has written
//! its last byte (see [`crate::exits`]), then delivers the rest and ends.

use std::path::{Path, PathBuf};

use bytes::BytesMut;
use futures::StreamExt;
use gofer_core::{ExitStatus, LogChunk, LogStream, OutputStream, SchedulerError};
use inotify::{Inotify, WatchMask};
use tokio::io::AsyncReadExt;
use tokio::sync::{mpsc, watch};

use crate::NAME;

/// The file the shim writes a stream into.
pub(crate) fn file(dir: &Path, stream: OutputStream) -> PathBuf {
    dir.join(match stream {
        OutputStream::Stdout => "stdout.log",
        OutputStream::Stderr => "stderr.log",
    })
}

const CHUNK: usize = 64 * 1024;

/// Streams the output in `dir` until `exit` holds an exit and everything is read.
pub(crate) fn follow(dir: PathBuf, exit: watch::Receiver<Option<ExitStatus>>) -> LogStream {
    let (tx, rx) = mpsc::channel(32);
    tokio::spawn(async move {
        if let Err(e) = pump(&dir, exit, &tx).await {
            let _ = tx.send(Err(SchedulerError::engine(NAME, "logs", e))).await;
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx).boxed()
}

type Tx = mpsc::Sender<Result<LogChunk, SchedulerError>>;

async fn pump(
    dir: &Path,
    mut exit: watch::Receiver<Option<ExitStatus>>,
    tx: &Tx,
) -> std::io::Result<()> {
    // Watch before the first read, so a write between the read and the wait is seen.
    let inotify = Inotify::init()?;
    inotify
        .watches()
        .add(dir, WatchMask::MODIFY | WatchMask::CLOSE_WRITE)?;
    let mut events = inotify.into_event_stream(vec![0u8; 4096])?;
    let mut out = tokio::fs::File::open(file(dir, OutputStream::Stdout)).await?;
    let mut err = tokio::fs::File::open(file(dir, OutputStream::Stderr)).await?;
    loop {
        let done = exit.borrow_and_update().is_some();
        let a = drain(&mut out, OutputStream::Stdout, tx).await?;
        let b = drain(&mut err, OutputStream::Stderr, tx).await?;
        let (Some(a), Some(b)) = (a, b) else {
            return Ok(()); // the reader went away
        };
        if done {
            return Ok(());
        }
        if a || b {
            continue;
        }
        tokio::select! {
            ev = events.next() => {
                if ev.is_none() {
                    return Ok(());
                }
            }
            changed = exit.changed() => {
                if changed.is_err() {
                    // The watcher is gone without an exit (the container was removed):
                    // deliver what is there and end.
                    drain(&mut out, OutputStream::Stdout, tx).await?;
                    drain(&mut err, OutputStream::Stderr, tx).await?;
                    return Ok(());
                }
            }
        }
    }
}

/// Sends what can be read now; `Some(read anything)`, `None` when the reader is gone.
async fn drain(
    f: &mut tokio::fs::File,
    stream: OutputStream,
    tx: &Tx,
) -> std::io::Result<Option<bool>> {
    let mut any = false;
    loop {
        let mut buf = BytesMut::with_capacity(CHUNK);
        let n = f.read_buf(&mut buf).await?;
        if n == 0 {
            return Ok(Some(any));
        }
        any = true;
        let chunk = LogChunk {
            stream,
            timestamp: std::time::SystemTime::now(),
            data: buf.freeze(),
        };
        if tx.send(Ok(chunk)).await.is_err() {
            return Ok(None);
        }
    }
}
