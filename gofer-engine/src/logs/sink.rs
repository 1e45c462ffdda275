//! Task logs: line framing, the [`LogSink`] trait and its in-memory and file
//! implementations.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use bytes::Bytes;

use gofer_core::{BoxError, OutputStream};

/// Longest line kept whole, in bytes; a longer line is split into pieces of this size,
/// each but the last marked [`LogLine::partial`]. Nothing is dropped.
pub const MAX_LINE_BYTES: usize = 16 * 1024;

/// One line of a task's output, already masked.
#[derive(Clone, PartialEq, Eq)]
pub struct LogLine {
    /// Which stream it came from.
    pub stream: OutputStream,
    /// When the line was complete (the time the chunk ending it was read).
    pub timestamp: SystemTime,
    /// The bytes of the line, without the line end.
    pub data: Bytes,
    /// The line continues in the next line of the same stream (it was longer than
    /// [`MAX_LINE_BYTES`]). A last line without a line end is not partial.
    pub partial: bool,
}

impl LogLine {
    /// The line as text (invalid UTF-8 replaced).
    pub fn text(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.data)
    }
}

impl fmt::Debug for LogLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogLine")
            .field("stream", &self.stream)
            .field("text", &self.text())
            .field("partial", &self.partial)
            .finish_non_exhaustive()
    }
}

/// Which task execution a log belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LogKey {
    /// The pipeline id.
    pub pipeline: String,
    /// The run number.
    pub run: u64,
    /// The task id.
    pub task: String,
}

impl LogKey {
    /// A key.
    pub fn new(pipeline: impl Into<String>, run: u64, task: impl Into<String>) -> Self {
        Self {
            pipeline: pipeline.into(),
            run,
            task: task.into(),
        }
    }

    /// The key of one attempt of a task (see [`RetryPolicy`](gofer_core::RetryPolicy)): the
    /// first attempt's is [`LogKey::new`]'s, attempt *n* > 1 has `task` `"<task>.<n>"`
    /// (ids hold no `.`, so it is no other task's key).
    ///
    /// ```
    /// use gofer_engine::LogKey;
    /// assert_eq!(LogKey::attempt("p", 1, "test", 1), LogKey::new("p", 1, "test"));
    /// assert_eq!(LogKey::attempt("p", 1, "test", 3).task, "test.3");
    /// ```
    pub fn attempt(pipeline: impl Into<String>, run: u64, task: &str, attempt: u32) -> Self {
        Self::attempt_key(pipeline, run, task, attempt)
    }

    /// The key of a run's service's log (see [`gofer_core::Service`]): `task` is
    /// `"service.<id>"` (ids hold no `.`, so it is no task's key).
    ///
    /// ```
    /// assert_eq!(gofer_engine::LogKey::service("p", 1, "db").task, "service.db");
    /// ```
    pub fn service(pipeline: impl Into<String>, run: u64, service: &str) -> Self {
        Self::new(pipeline, run, format!("service.{service}"))
    }

    fn attempt_key(pipeline: impl Into<String>, run: u64, task: &str, attempt: u32) -> Self {
        if attempt <= 1 {
            Self::new(pipeline, run, task)
        } else {
            Self::new(pipeline, run, format!("{task}.{attempt}"))
        }
    }
}

/// A failure of a [`LogSink`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    /// No log exists for this task execution.
    #[error("no log for task {task:?} of run {run} of pipeline {pipeline:?}")]
    NotFound {
        /// The pipeline.
        pipeline: String,
        /// The run.
        run: u64,
        /// The task.
        task: String,
    },
    /// The log is not whole: the engine could not read part of the container's output,
    /// or the sink could not keep it. What the log holds is still readable.
    #[error(
        "the log of task {task:?} of run {run} of pipeline {pipeline:?} is incomplete: {reason}"
    )]
    Incomplete {
        /// The pipeline.
        pipeline: String,
        /// The run.
        run: u64,
        /// The task.
        task: String,
        /// Why.
        reason: String,
    },
    /// The stored log cannot be read: it is not in a form this version reads (written
    /// by a newer version, or not a log), or it is damaged.
    #[error("log sink {sink}: cannot read the log at {location}: {reason}")]
    Unreadable {
        /// The sink.
        sink: &'static str,
        /// Where the log is (a file path).
        location: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The sink's storage failed.
    #[error("log sink {sink}: {operation} failed: {source}")]
    Io {
        /// The sink.
        sink: &'static str,
        /// What was attempted.
        operation: &'static str,
        /// The cause.
        #[source]
        source: BoxError,
    },
}

impl LogError {
    pub(crate) fn not_found(key: &LogKey) -> Self {
        Self::NotFound {
            pipeline: key.pipeline.clone(),
            run: key.run,
            task: key.task.clone(),
        }
    }
}

/// Where task logs are kept: one log per task execution, appended line by line.
///
/// Contract: lines handed to [`LogWriter::write`] are visible to [`LogSink::read`] when
/// `write` returns (so a log is readable while the task runs), in order, complete.
/// Calls are synchronous and may block (file or network I/O): unless
/// [`LogSink::may_block`] says otherwise, the engine calls them on blocking threads
/// (each task's writer on its own, fed by a bounded channel, so a slow sink slows the
/// task's log pump instead of growing memory), never on the async worker threads.
#[cfg_attr(feature = "mock", mockall::automock)]
pub trait LogSink: fmt::Debug + Send + Sync + 'static {
    /// Creates (or truncates) the log of one task execution.
    ///
    /// # Errors
    /// [`LogError::Io`] when the storage fails.
    fn open(&self, key: &LogKey) -> Result<Box<dyn LogWriter>, LogError>;

    /// Reads at most `max` lines from `cursor` (0 is the start); returns them and the
    /// cursor of the next line. An opaque cursor: only pass back what was returned.
    ///
    /// # Errors
    /// [`LogError::NotFound`] for a log never opened, [`LogError::Io`] on failure.
    fn read(&self, key: &LogKey, cursor: u64, max: usize) -> Result<(Vec<LogLine>, u64), LogError>;

    /// Where the log of one task execution lives, for the run store's records (a
    /// file path, a URL); `None` (the default) when there is nothing to point at.
    fn locate(&self, key: &LogKey) -> Option<String> {
        let _ = key;
        None
    }

    /// A reader that follows one log from its start, keeping its place (an open file)
    /// between calls. The default reads through [`LogSink::read`].
    ///
    /// # Errors
    /// As [`LogSink::read`].
    fn reader(&self, key: &LogKey) -> Result<Box<dyn LogReader>, LogError> {
        let _ = self.read(key, 0, 0)?;
        Ok(Box::new(CursorReader {
            key: key.clone(),
            cursor: 0,
        }))
    }

    /// Removes every log of one run (its tasks', attempts' and services'), for
    /// retention; returns the bytes freed. Removing a run that has no logs is not an
    /// error. The default keeps everything and frees nothing: a sink that can delete
    /// should.
    ///
    /// # Errors
    /// [`LogError::Io`] when the storage fails (what was removed stays removed).
    fn remove_run(&self, pipeline: &str, run: u64) -> Result<u64, LogError> {
        let _ = (pipeline, run);
        Ok(0)
    }

    /// Whether calls may block the calling thread (the default, `true`). A sink that
    /// only touches memory returns `false`, and the engine then calls it inline.
    fn may_block(&self) -> bool {
        true
    }
}

/// Follows one log from its start; see [`LogSink::reader`].
pub trait LogReader: Send {
    /// Reads at most `max` of the next lines (fewer, or none, when no more are
    /// written yet).
    ///
    /// # Errors
    /// [`LogError::Io`] on failure.
    fn next_lines(&mut self, sink: &dyn LogSink, max: usize) -> Result<Vec<LogLine>, LogError>;
}

struct CursorReader {
    key: LogKey,
    cursor: u64,
}

impl LogReader for CursorReader {
    fn next_lines(&mut self, sink: &dyn LogSink, max: usize) -> Result<Vec<LogLine>, LogError> {
        let (lines, next) = sink.read(&self.key, self.cursor, max)?;
        self.cursor = next;
        Ok(lines)
    }
}

/// Appends to one task execution's log.
#[cfg_attr(feature = "mock", mockall::automock)]
pub trait LogWriter: Send {
    /// Appends lines; they are readable when this returns.
    ///
    /// # Errors
    /// [`LogError::Io`] when the storage fails.
    fn write(&mut self, lines: &[LogLine]) -> Result<(), LogError>;
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

type SharedLines = Arc<Mutex<Vec<LogLine>>>;

/// Keeps every log in memory; suitable for tests and short-lived hosts.
#[derive(Debug, Default, Clone)]
pub struct InMemoryLogSink {
    logs: Arc<Mutex<HashMap<LogKey, SharedLines>>>,
}

impl InMemoryLogSink {
    /// An empty sink.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every line of one log (empty when there is none).
    pub fn lines(&self, key: &LogKey) -> Vec<LogLine> {
        lock(&self.logs)
            .get(key)
            .map(|l| lock(l).clone())
            .unwrap_or_default()
    }
}

struct MemoryWriter(Arc<Mutex<Vec<LogLine>>>);

impl LogWriter for MemoryWriter {
    fn write(&mut self, lines: &[LogLine]) -> Result<(), LogError> {
        lock(&self.0).extend_from_slice(lines);
        Ok(())
    }
}

impl LogSink for InMemoryLogSink {
    fn open(&self, key: &LogKey) -> Result<Box<dyn LogWriter>, LogError> {
        let log = Arc::new(Mutex::new(Vec::new()));
        lock(&self.logs).insert(key.clone(), log.clone());
        Ok(Box::new(MemoryWriter(log)))
    }

    fn read(&self, key: &LogKey, cursor: u64, max: usize) -> Result<(Vec<LogLine>, u64), LogError> {
        let log = lock(&self.logs)
            .get(key)
            .cloned()
            .ok_or_else(|| LogError::not_found(key))?;
        let lines = lock(&log);
        let start = usize::try_from(cursor)
            .unwrap_or(usize::MAX)
            .min(lines.len());
        let end = start.saturating_add(max).min(lines.len());
        Ok((lines[start..end].to_vec(), end as u64))
    }

    fn may_block(&self) -> bool {
        false
    }

    fn remove_run(&self, pipeline: &str, run: u64) -> Result<u64, LogError> {
        let mut logs = lock(&self.logs);
        let keys: Vec<LogKey> = logs
            .keys()
            .filter(|k| k.pipeline == pipeline && k.run == run)
            .cloned()
            .collect();
        let mut freed = 0u64;
        for k in keys {
            if let Some(lines) = logs.remove(&k) {
                freed += lock(&lines)
                    .iter()
                    .map(|l| l.data.len() as u64 + 1)
                    .sum::<u64>();
            }
        }
        Ok(freed)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::logs::file_sink::FileLogSink;
    use crate::logs::framer::LineFramer;
    use std::fs;
    use std::time::Duration;

    fn frame(chunks: &[&[u8]]) -> Vec<(String, bool)> {
        let mut f = LineFramer::new(OutputStream::Stdout);
        let mut out = Vec::new();
        for c in chunks {
            f.push(c, SystemTime::now(), &mut out);
        }
        f.finish(SystemTime::now(), &mut out);
        out.iter()
            .map(|l| (l.text().into_owned(), l.partial))
            .collect()
    }

    #[test]
    fn frames_lines_across_chunks_and_keeps_the_last() {
        assert_eq!(
            frame(&[b"a", b"b\nc\r\n", b"", b"\nlast"]),
            vec![
                ("ab".into(), false),
                ("c".into(), false),
                (String::new(), false),
                ("last".into(), false)
            ]
        );
    }

    #[test]
    fn splits_overlong_lines_without_losing_bytes() {
        let long = vec![b'x'; MAX_LINE_BYTES * 2 + 5];
        let mut input = long.clone();
        input.extend_from_slice(b"\nnext\n");
        let lines = frame(&[&input]);
        assert_eq!(lines.len(), 4);
        assert!(lines[0].1 && lines[1].1 && !lines[2].1);
        let joined: String = lines[..3].iter().map(|l| l.0.as_str()).collect();
        assert_eq!(joined.len(), long.len());
        assert_eq!(lines[3], ("next".into(), false));
    }

    fn line(stream: OutputStream, text: &str) -> LogLine {
        LogLine {
            stream,
            timestamp: SystemTime::UNIX_EPOCH + Duration::new(1_700_000_000, 5),
            data: Bytes::copy_from_slice(text.as_bytes()),
            partial: false,
        }
    }

    fn sink_roundtrip(sink: &dyn LogSink) {
        let key = LogKey::new("pipe", 3, "task");
        assert!(matches!(
            sink.read(&key, 0, 10),
            Err(LogError::NotFound { .. })
        ));
        let mut w = sink.open(&key).unwrap();
        w.write(&[
            line(OutputStream::Stdout, "one"),
            line(OutputStream::Stderr, "two words"),
        ])
        .unwrap();
        // Readable while the task runs.
        let (first, cur) = sink.read(&key, 0, 1).unwrap();
        assert_eq!(first, vec![line(OutputStream::Stdout, "one")]);
        w.write(&[line(OutputStream::Stdout, "")]).unwrap();
        let (rest, cur2) = sink.read(&key, cur, 10).unwrap();
        assert_eq!(
            rest,
            vec![
                line(OutputStream::Stderr, "two words"),
                line(OutputStream::Stdout, "")
            ]
        );
        let (none, cur3) = sink.read(&key, cur2, 10).unwrap();
        assert!(none.is_empty());
        assert_eq!(cur2, cur3);
    }

    #[test]
    fn memory_sink_roundtrip() {
        sink_roundtrip(&InMemoryLogSink::new());
    }

    #[test]
    fn file_sink_roundtrip_and_format() {
        let dir = std::env::temp_dir().join(format!("gofer-logs-test-{}", std::process::id()));
        let sink = FileLogSink::new(&dir);
        sink_roundtrip(&sink);
        let text = fs::read_to_string(sink.path(&LogKey::new("pipe", 3, "task"))).unwrap();
        assert_eq!(
            text,
            "gofer-log 2\n\
             1700000000.000000005 stdout F 1 4\none\n\
             1700000000.000000005 stderr F 1 10\ntwo words\n\
             1700000000.000000005 stdout F 1 1\n\n"
        );
        fs::remove_dir_all(dir).unwrap();
    }
}
