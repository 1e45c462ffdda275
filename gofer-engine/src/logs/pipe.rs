//! The log pipe: carries a task's framed lines to its [`LogWriter`] off the async
//! worker threads.
//!
//! A sink that may block gets a writer on a blocking thread of its own, fed by a
//! bounded channel: a slow sink slows the task's log pump (back-pressure) instead of
//! growing memory or stalling a worker thread. A sink that only touches memory
//! ([`LogSink::may_block`] is false) is written inline.
//!
//! A pipe dropped without [`LogPipe::close`] is abandoned (its pump was aborted: a
//! crash, a runtime shut down): its writer writes nothing more, not even the batches
//! already queued, since recovery rewrites that log whole from the engine's output and
//! a late write would land in the middle of the rewrite. [`Writers`] counts the writer
//! threads still running, so a simulated crash returns only once none writes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, watch};

use crate::logs::sink::{LogError, LogKey, LogLine, LogSink, LogWriter};

/// Batches in flight between the pump and a blocking writer (each up to
/// `READY_CHUNKS` chunks of output, see the pump).
const DEPTH: usize = 4;

/// The log writer threads of an engine still running. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Writers(Arc<watch::Sender<usize>>);

impl Default for Writers {
    fn default() -> Self {
        Self(Arc::new(watch::channel(0).0))
    }
}

impl Writers {
    /// Counts one thread until the guard drops (also when the thread panics).
    fn enter(&self) -> WriterGuard {
        self.0.send_modify(|n| *n += 1);
        WriterGuard(self.0.clone())
    }

    /// Resolves once no writer thread runs.
    pub(crate) async fn idle(&self) {
        let mut rx = self.0.subscribe();
        let _ = rx.wait_for(|n| *n == 0).await;
    }
}

struct WriterGuard(Arc<watch::Sender<usize>>);

impl Drop for WriterGuard {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

enum Kind {
    Inline(Box<dyn LogWriter>),
    Thread {
        tx: mpsc::Sender<Vec<LogLine>>,
        /// The writer's result; taken once read (a oneshot is read only once).
        done: Option<oneshot::Receiver<Result<(), LogError>>>,
        /// Set when the pipe is dropped unclosed: the writer stops at once.
        abandoned: Arc<AtomicBool>,
    },
    /// Closed: nothing was abandoned.
    Closed,
}

/// One task's open log.
pub(crate) struct LogPipe {
    kind: Kind,
    notify: Arc<dyn Fn() + Send + Sync>,
}

impl Drop for LogPipe {
    fn drop(&mut self) {
        if let Kind::Thread { abandoned, .. } = &self.kind {
            abandoned.store(true, Ordering::SeqCst);
        }
    }
}

fn writer_gone() -> LogError {
    LogError::Io {
        sink: "engine",
        operation: "write",
        source: "the log writer thread stopped".into(),
    }
}

impl LogPipe {
    /// Opens (creates or truncates) the log of `key`; `notify` runs after every write,
    /// once the lines are readable.
    ///
    /// # Errors
    /// The sink's failure to open the log.
    pub(crate) async fn open(
        sink: Arc<dyn LogSink>,
        key: LogKey,
        notify: Arc<dyn Fn() + Send + Sync>,
        writers: &Writers,
    ) -> Result<Self, LogError> {
        if !sink.may_block() {
            let writer = sink.open(&key)?;
            return Ok(Self {
                kind: Kind::Inline(writer),
                notify,
            });
        }
        let (opened_tx, opened_rx) = oneshot::channel();
        let (tx, mut rx) = mpsc::channel::<Vec<LogLine>>(DEPTH);
        let (done_tx, done) = oneshot::channel();
        let on_write = notify.clone();
        let abandoned = Arc::new(AtomicBool::new(false));
        let stop = abandoned.clone();
        let guard = writers.enter();
        // An OS thread of its own, not Tokio's blocking pool: it lives as long as the
        // task's output, and a pool thread in flight would keep a paused test clock
        // from advancing.
        let spawned = std::thread::Builder::new()
            .name("gofer-log-writer".into())
            .spawn(move || {
                let _guard = guard;
                let mut writer = match sink.open(&key) {
                    Ok(w) => {
                        let _ = opened_tx.send(Ok(()));
                        w
                    }
                    Err(e) => {
                        let _ = opened_tx.send(Err(e));
                        return;
                    }
                };
                let mut result = Ok(());
                while let Some(lines) = rx.blocking_recv() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    if let Err(e) = writer.write(&lines) {
                        result = Err(e);
                        break;
                    }
                    on_write();
                }
                let _ = done_tx.send(result);
            });
        if let Err(e) = spawned {
            return Err(LogError::Io {
                sink: "engine",
                operation: "start the log writer thread",
                source: Box::new(e),
            });
        }
        opened_rx.await.map_err(|_| writer_gone())??;
        Ok(Self {
            kind: Kind::Thread {
                tx,
                done: Some(done),
                abandoned,
            },
            notify,
        })
    }

    /// Appends lines; waits while the writer is [`DEPTH`] batches behind.
    ///
    /// # Errors
    /// The sink's failure (the log is not whole from here on).
    pub(crate) async fn write(&mut self, lines: Vec<LogLine>) -> Result<(), LogError> {
        if lines.is_empty() {
            return Ok(());
        }
        match &mut self.kind {
            Kind::Inline(w) => {
                w.write(&lines)?;
                (self.notify)();
                Ok(())
            }
            Kind::Closed => Err(writer_gone()),
            Kind::Thread { tx, done, .. } => {
                if tx.send(lines).await.is_ok() {
                    return Ok(());
                }
                // The writer stopped on an error: report it (the first time; later
                // writes only say the writer is gone).
                match done.take() {
                    Some(done) => match done.await {
                        Ok(Err(e)) => Err(e),
                        _ => Err(writer_gone()),
                    },
                    None => Err(writer_gone()),
                }
            }
        }
    }

    /// Waits until every line is written.
    ///
    /// # Errors
    /// The sink's failure.
    pub(crate) async fn close(mut self) -> Result<(), LogError> {
        match std::mem::replace(&mut self.kind, Kind::Closed) {
            Kind::Inline(_) | Kind::Closed => Ok(()),
            Kind::Thread { tx, done, .. } => {
                drop(tx);
                match done {
                    Some(done) => done.await.unwrap_or_else(|_| Err(writer_gone())),
                    None => Err(writer_gone()),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gofer_core::OutputStream;
    use std::time::SystemTime;

    #[derive(Debug)]
    struct Failing;
    struct FailingWriter;
    impl LogWriter for FailingWriter {
        fn write(&mut self, _: &[LogLine]) -> Result<(), LogError> {
            Err(LogError::Io {
                sink: "failing",
                operation: "write",
                source: "disk full".into(),
            })
        }
    }
    impl LogSink for Failing {
        fn open(&self, _: &LogKey) -> Result<Box<dyn LogWriter>, LogError> {
            Ok(Box::new(FailingWriter))
        }
        fn read(&self, key: &LogKey, _: u64, _: usize) -> Result<(Vec<LogLine>, u64), LogError> {
            Err(LogError::not_found(key))
        }
    }

    fn line() -> Vec<LogLine> {
        vec![LogLine {
            stream: OutputStream::Stdout,
            timestamp: SystemTime::UNIX_EPOCH,
            data: bytes::Bytes::from_static(b"x"),
            partial: false,
        }]
    }

    /// Writes after the writer thread failed report an error each time (the sink's
    /// the first time it is seen), and closing does not panic.
    #[tokio::test]
    async fn writes_after_a_failure_keep_failing_without_panicking() {
        let mut pipe = LogPipe::open(
            Arc::new(Failing),
            LogKey::new("p", 1, "t"),
            Arc::new(|| ()),
            &Writers::default(),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        let mut errors = Vec::new();
        for _ in 0..1000 {
            if let Err(e) = pipe.write(line()).await {
                errors.push(e.to_string());
                if errors.len() == 3 {
                    break;
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        assert!(errors.iter().any(|e| e.contains("disk full")), "{errors:?}");
        assert!(errors.len() >= 2, "{errors:?}");
        assert!(pipe.close().await.is_err());
    }

    /// A sink whose first write waits until the test opens the gate; it counts what
    /// it wrote.
    #[derive(Debug, Clone, Default)]
    struct Gated {
        gate: Arc<std::sync::Mutex<Option<std::sync::mpsc::Receiver<()>>>>,
        /// Told when the first write reached the gate.
        at_gate: Arc<std::sync::Mutex<Option<std::sync::mpsc::Sender<()>>>>,
        written: Arc<std::sync::atomic::AtomicUsize>,
    }
    struct GatedWriter(Gated);
    impl LogWriter for GatedWriter {
        fn write(&mut self, lines: &[LogLine]) -> Result<(), LogError> {
            if let Some(gate) = self.0.gate.lock().unwrap_or_else(|e| e.into_inner()).take() {
                if let Some(at) = self
                    .0
                    .at_gate
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .take()
                {
                    let _ = at.send(());
                }
                let _ = gate.recv();
            }
            self.0.written.fetch_add(lines.len(), Ordering::SeqCst);
            Ok(())
        }
    }
    impl LogSink for Gated {
        fn open(&self, _: &LogKey) -> Result<Box<dyn LogWriter>, LogError> {
            Ok(Box::new(GatedWriter(self.clone())))
        }
        fn read(&self, key: &LogKey, _: u64, _: usize) -> Result<(Vec<LogLine>, u64), LogError> {
            Err(LogError::not_found(key))
        }
    }

    /// A pipe dropped unclosed (its pump aborted, as in a crash) writes none of the
    /// batches still queued: recovery rewrites that log, and a late write would land
    /// in the middle of the rewrite. Once the writer is gone, the engine's writers are
    /// idle.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_abandoned_pipe_writes_nothing_more() {
        let (open, gate) = std::sync::mpsc::channel();
        let sink = Gated::default();
        *sink.gate.lock().unwrap_or_else(|e| e.into_inner()) = Some(gate);
        let (at_tx, at_gate) = std::sync::mpsc::channel();
        *sink.at_gate.lock().unwrap_or_else(|e| e.into_inner()) = Some(at_tx);
        let writers = Writers::default();
        let mut pipe = LogPipe::open(
            Arc::new(sink.clone()),
            LogKey::new("p", 1, "t"),
            Arc::new(|| ()),
            &writers,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        // The first batch holds the writer at the gate; three more wait in the queue.
        pipe.write(line()).await.unwrap_or_else(|e| panic!("{e}"));
        tokio::task::spawn_blocking(move || at_gate.recv())
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|e| panic!("{e}"));
        for _ in 0..3 {
            pipe.write(line()).await.unwrap_or_else(|e| panic!("{e}"));
        }
        drop(pipe);
        let _ = open.send(());
        writers.idle().await;
        assert_eq!(
            sink.written.load(Ordering::SeqCst),
            1,
            "only the batch being written"
        );
    }

    /// A closed pipe writes every batch, and its writer ends.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_closed_pipe_writes_everything() {
        let sink = Gated::default();
        let writers = Writers::default();
        let mut pipe = LogPipe::open(
            Arc::new(sink.clone()),
            LogKey::new("p", 1, "t"),
            Arc::new(|| ()),
            &writers,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        for _ in 0..4 {
            pipe.write(line()).await.unwrap_or_else(|e| panic!("{e}"));
        }
        pipe.close().await.unwrap_or_else(|e| panic!("{e}"));
        writers.idle().await;
        assert_eq!(sink.written.load(Ordering::SeqCst), 4);
    }
}
