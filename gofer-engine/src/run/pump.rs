//! The log pump: a container's output, through the masker and the line framer, into
//! its log (a task's or a service's) — whole, or said to be incomplete.
//!
//! Completeness: the pump follows [`Scheduler::logs`](gofer_core::Scheduler::logs) (the
//! first call may be served from an attach the backend made before the start) while
//! the container runs and after it exits, for as long as bytes flow (no wall-clock
//! cut). When the stream fails, or stays silent for [`IDLE_AFTER_EXIT`] after the
//! container exited, the pump reads the output again from the start, skipping per
//! stream the bytes it already has, up to [`MAX_REREADS`] times. What still cannot be
//! had, and any failure of the log sink, is returned as the reason the log is
//! incomplete; it is never dropped silently.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::StreamExt;
use tokio::sync::oneshot;
use tracing::{debug, warn};

use gofer_core::{ContainerId, LogChunk, OutputCursor, OutputStream};

use crate::durable::clock::Clock;
use crate::logs::framer::LineFramer;
use crate::logs::mask::{MaskPatterns, Masker};
use crate::logs::pipe::{LogPipe, Writers};
use crate::logs::sink::LogSink;
use crate::logs::sink::{LogKey, LogLine};
use crate::metrics::RunMetrics;
use crate::run::container::{guarded, Containers};
use crate::run::secrets::RunSecrets;

/// How long the output may stay silent after the container exited before the pump
/// stops following and reads it again.
pub(crate) const IDLE_AFTER_EXIT: Duration = Duration::from_secs(30);
/// How many times the output is read again after a failed or stalled read.
pub(crate) const MAX_REREADS: u32 = 3;
/// At most this many chunks that are already there are taken in one write.
const READY_CHUNKS: usize = 4;
/// First wait before a re-read; doubled for each next one.
const REREAD_BACKOFF: Duration = Duration::from_millis(200);

/// Masks, frames and writes one container's output (both streams) to its log.
struct LogFeed {
    maskers: [Masker; 2],
    framers: [LineFramer; 2],
    /// Raw bytes of each stream taken from the engine so far.
    cursor: OutputCursor,
    masked: Vec<u8>,
    lines: Vec<LogLine>,
    last: SystemTime,
    pipe: LogPipe,
    metrics: RunMetrics,
    /// Masks already counted in the metrics.
    masks_counted: u64,
}

fn index(stream: OutputStream) -> usize {
    usize::from(stream == OutputStream::Stderr)
}

impl LogFeed {
    /// A feed masking `patterns`, writing to `pipe`; `now` stamps what ends without
    /// a timestamp of its own.
    fn new(patterns: MaskPatterns, pipe: LogPipe, now: SystemTime, metrics: RunMetrics) -> Self {
        Self {
            maskers: [Masker::new(patterns.clone()), Masker::new(patterns)],
            framers: [
                LineFramer::new(OutputStream::Stdout),
                LineFramer::new(OutputStream::Stderr),
            ],
            cursor: OutputCursor::new(),
            masked: Vec::new(),
            lines: Vec::new(),
            last: now,
            pipe,
            metrics,
            masks_counted: 0,
        }
    }

    /// Masks with `patterns` from here on (see [`Masker::set_patterns`]).
    fn set_patterns(&mut self, patterns: &MaskPatterns) {
        for m in &mut self.maskers {
            m.set_patterns(patterns.clone());
        }
    }

    /// Takes a chunk, without what an earlier read already delivered; its lines are
    /// written by the next [`LogFeed::flush`].
    fn push(&mut self, chunk: LogChunk) {
        let Some(chunk) = self.cursor.fresh(chunk) else {
            return;
        };
        let s = index(chunk.stream);
        let data = chunk.data;
        self.masked.clear();
        self.maskers[s].push(&data, &mut self.masked);
        self.framers[s].push(&self.masked, chunk.timestamp, &mut self.lines);
        self.last = chunk.timestamp;
    }

    /// Writes the lines taken so far.
    async fn flush(&mut self) -> Result<(), String> {
        if self.lines.is_empty() {
            return Ok(());
        }
        let lines = std::mem::take(&mut self.lines);
        let bytes: u64 = lines.iter().map(|l| l.data.len() as u64 + 1).sum();
        let masks: u64 = self.maskers.iter().map(Masker::masks).sum();
        self.metrics
            .masked(masks.saturating_sub(self.masks_counted));
        self.masks_counted = masks;
        self.pipe
            .write(lines)
            .await
            .map_err(|e| format!("the log sink failed: {e}"))?;
        self.metrics.log_bytes(bytes);
        Ok(())
    }

    /// Ends both streams and closes the log.
    async fn finish(mut self) -> Result<(), String> {
        for s in 0..2 {
            self.masked.clear();
            self.maskers[s].finish(&mut self.masked);
            self.framers[s].push(&self.masked, self.last, &mut self.lines);
            self.framers[s].finish(self.last, &mut self.lines);
        }
        self.flush().await?;
        self.pipe
            .close()
            .await
            .map_err(|e| format!("the log sink failed: {e}"))
    }
}

/// How one read of the output ended.
enum ReadEnd {
    /// The engine ended the stream: everything was delivered.
    Whole,
    /// The read failed or stalled; a re-read may get the rest.
    Broken(String),
    /// The sink failed: nothing more can be kept.
    Sink(String),
}

/// What a pump reads from and writes to: the containers' output, the log sink, the
/// clock its line timestamps fall back to, and the run's secret values to mask.
pub(crate) struct Output<'a> {
    pub(crate) containers: &'a Containers,
    pub(crate) sink: &'a Arc<dyn LogSink>,
    pub(crate) clock: Clock,
    pub(crate) secrets: &'a RunSecrets,
    /// The engine's log writer threads.
    pub(crate) writers: &'a Writers,
    /// The run's metrics (log bytes, masks).
    pub(crate) metrics: &'a RunMetrics,
}

/// Streams the container's output into the log of `key` until the output ends;
/// returns why the log is incomplete, when it is. `notify` runs after every write,
/// `opened` once the log is open; `exited` resolves (or is dropped) once the container
/// exited.
pub(crate) async fn pump(
    out: Output<'_>,
    key: LogKey,
    notify: Arc<dyn Fn() + Send + Sync>,
    opened: impl FnOnce(),
    id: &ContainerId,
    mut exited: oneshot::Receiver<()>,
) -> Option<String> {
    let pipe = match LogPipe::open(out.sink.clone(), key, notify, out.writers).await {
        Ok(p) => p,
        Err(e) => {
            warn!(error = %e, "cannot open the log; the container's output is not kept");
            // Take and drop the output stream: an attached container is not kept
            // waiting for a reader that never comes.
            let scheduler = out.containers.scheduler();
            drop(guarded(scheduler, "logs", scheduler.logs(id)).await);
            return Some(format!("cannot open the log sink: {e}"));
        }
    };
    opened();
    let mut known = out.secrets.len();
    let mut p = LogFeed::new(
        out.secrets.patterns(),
        pipe,
        out.clock.now(),
        out.metrics.clone(),
    );
    let scheduler = out.containers.scheduler();
    let mut rereads = 0u32;
    let mut has_exited = false;
    let incomplete = loop {
        let end = match guarded(scheduler, "logs", scheduler.logs(id)).await {
            Err(e) => ReadEnd::Broken(format!("cannot read the container's logs: {e}")),
            Ok(stream) => {
                p.cursor.reread();
                // The chunks already there when one is taken go to the sink in one
                // write.
                let mut stream = stream.ready_chunks(READY_CHUNKS);
                loop {
                    let next = if has_exited {
                        match tokio::time::timeout(IDLE_AFTER_EXIT, stream.next()).await {
                            Ok(n) => n,
                            Err(_) => {
                                break ReadEnd::Broken(format!(
                                    "the container's output stayed silent for {} after it exited, without ending",
                                    humantime::format_duration(IDLE_AFTER_EXIT)
                                ))
                            }
                        }
                    } else {
                        tokio::select! {
                            n = stream.next() => n,
                            _ = &mut exited => {
                                // Exited (or the lifecycle is gone, which ends it too);
                                // the receiver is not polled again.
                                has_exited = true;
                                continue;
                            }
                        }
                    };
                    let Some(items) = next else {
                        break ReadEnd::Whole;
                    };
                    // Secrets the run learned meanwhile (a service outlives tasks
                    // that start after it) are masked from here on.
                    if out.secrets.len() != known {
                        known = out.secrets.len();
                        p.set_patterns(&out.secrets.patterns());
                    }
                    let mut failed = None;
                    for item in items {
                        match item {
                            Ok(chunk) => p.push(chunk),
                            Err(e) => {
                                // What follows is read again.
                                failed = Some(e);
                                break;
                            }
                        }
                    }
                    if let Err(why) = p.flush().await {
                        break ReadEnd::Sink(why);
                    }
                    if let Some(e) = failed {
                        break ReadEnd::Broken(format!("the container's log stream failed: {e}"));
                    }
                }
            }
        };
        match end {
            ReadEnd::Whole => break None,
            ReadEnd::Sink(why) => break Some(why),
            ReadEnd::Broken(why) if rereads >= MAX_REREADS => {
                break Some(format!("{why} (after {rereads} re-reads)"))
            }
            ReadEnd::Broken(why) => {
                debug!(%why, rereads, "reading the container's output again");
                tokio::time::sleep(REREAD_BACKOFF.saturating_mul(1 << rereads.min(16))).await;
                rereads += 1;
            }
        }
    };
    let closed = p.finish().await.err();
    let incomplete = incomplete.or(closed);
    if let Some(why) = &incomplete {
        warn!(%why, "the log is incomplete");
    }
    incomplete
}
