//! The log pipe: carries a task's framed lines to its [`LogWriter`] off the async
//! worker threads.
//!
//! A sink that may block gets a writer on a blocking thread of its own, fed by a
//! bounded channel: a slow sink slows the task's log pump (back-pressure) instead of
//! growing memory or stalling a worker thread. A sink that only touches memory
//! ([`LogSink::may_block`] is false) is written inline.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::logs::sink::{LogError, LogKey, LogLine, LogSink, LogWriter};

/// Batches in flight between the pump and a blocking writer (each up to
/// `READY_CHUNKS` chunks of output, see the pump).
const DEPTH: usize = 4;

enum Kind {
    Inline(Box<dyn LogWriter>),
    Thread {
        tx: mpsc::Sender<Vec<LogLine>>,
        /// The writer's result; taken once read (a oneshot is read only once).
        done: Option<oneshot::Receiver<Result<(), LogError>>>,
    },
}

/// One task's open log.
pub(crate) struct LogPipe {
    kind: Kind,
    notify: Arc<dyn Fn() + Send + Sync>,
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
        // An OS thread of its own, not Tokio's blocking pool: it lives as long as the
        // task's output, and a pool thread in flight would keep a paused test clock
        // from advancing.
        let spawned = std::thread::Builder::new()
            .name("gofer-log-writer".into())
            .spawn(move || {
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
            Kind::Thread { tx, done } => {
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
    pub(crate) async fn close(self) -> Result<(), LogError> {
        match self.kind {
            Kind::Inline(_) => Ok(()),
            Kind::Thread { tx, done } => {
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
        let mut pipe = LogPipe::open(Arc::new(Failing), LogKey::new("p", 1, "t"), Arc::new(|| ()))
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
}
