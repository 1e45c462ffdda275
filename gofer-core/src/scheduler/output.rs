//! A container's output: [`LogChunk`]s of a [`LogStream`], and the [`OutputCursor`]
//! that delivers it again without repeating a byte.

use std::time::SystemTime;

use bytes::Bytes;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};

use crate::error::SchedulerError;

/// Which output stream a chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputStream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

impl OutputStream {
    /// `"stdout"` or `"stderr"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stdout => "stdout",
            Self::Stderr => "stderr",
        }
    }
}

/// A chunk of a container's output, as the engine delivered it (not necessarily a
/// whole line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogChunk {
    /// Which stream.
    pub stream: OutputStream,
    /// When the engine received it (or when the backend read it).
    pub timestamp: SystemTime,
    /// The bytes.
    pub data: Bytes,
}

impl LogChunk {
    /// A chunk from an engine message that may start with the engine's timestamp
    /// (`2006-01-02T15:04:05.999999999Z `, what Docker's and Swarm's `timestamps=true`
    /// log reads prefix): the prefix becomes the timestamp; a message without one is
    /// kept whole and stamped with the time it was read.
    pub fn timestamped(stream: OutputStream, message: Bytes) -> Self {
        let parsed = message
            .iter()
            .take(40)
            .position(|b| *b == b' ')
            .and_then(|space| {
                let ts = std::str::from_utf8(&message[..space]).ok()?;
                Some((humantime::parse_rfc3339(ts).ok()?, space))
            });
        match parsed {
            Some((timestamp, space)) => Self {
                stream,
                timestamp,
                data: message.slice(space + 1..),
            },
            None => Self {
                stream,
                timestamp: SystemTime::now(),
                data: message,
            },
        }
    }
}

/// How much of a container's output, per stream, has been delivered: when the output
/// is read again from its start (a follow that ended early or broke, a crash), only
/// what lies beyond it is delivered again. Backends and the executor use it alike.
///
/// ```
/// use std::time::SystemTime;
/// use gofer_core::{LogChunk, OutputCursor, OutputStream};
/// let chunk = |d: &'static [u8]| LogChunk {
///     stream: OutputStream::Stdout,
///     timestamp: SystemTime::now(),
///     data: bytes::Bytes::from_static(d),
/// };
/// let mut cursor = OutputCursor::new();
/// assert!(cursor.fresh(chunk(b"ab")).is_some()); // first read: all new
/// cursor.reread();
/// assert!(cursor.fresh(chunk(b"a")).is_none()); // already delivered
/// assert_eq!(&cursor.fresh(chunk(b"bcd")).unwrap().data[..], b"cd");
/// assert_eq!(cursor.delivered(OutputStream::Stdout), 4);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutputCursor {
    /// Bytes delivered per stream (stdout, stderr).
    delivered: [u64; 2],
    /// Bytes of the current read seen per stream.
    seen: [u64; 2],
}

impl OutputCursor {
    /// Nothing delivered yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes of `stream` delivered so far.
    pub fn delivered(&self, stream: OutputStream) -> u64 {
        self.delivered[Self::index(stream)]
    }

    /// Bytes of `stream` seen in the current read (delivered again or not).
    pub fn seen(&self, stream: OutputStream) -> u64 {
        self.seen[Self::index(stream)]
    }

    /// A new read of the output from its start begins.
    pub fn reread(&mut self) {
        self.seen = [0, 0];
    }

    /// The part of `chunk` (the next chunk of the current read) not delivered yet, or
    /// `None` when all of it was; counts it as delivered.
    pub fn fresh(&mut self, chunk: LogChunk) -> Option<LogChunk> {
        let i = Self::index(chunk.stream);
        let len = chunk.data.len() as u64;
        let start = self.seen[i];
        self.seen[i] = start.saturating_add(len);
        if start.saturating_add(len) <= self.delivered[i] {
            return None;
        }
        let skip = usize::try_from(self.delivered[i].saturating_sub(start)).unwrap_or(usize::MAX);
        self.delivered[i] = start.saturating_add(len);
        Some(LogChunk {
            data: chunk.data.slice(skip.min(chunk.data.len())..),
            ..chunk
        })
    }

    fn index(stream: OutputStream) -> usize {
        usize::from(stream == OutputStream::Stderr)
    }
}

/// A container's output: chunks in order per stream, ending when the container has
/// exited and everything has been delivered.
pub type LogStream = BoxStream<'static, Result<LogChunk, SchedulerError>>;

#[cfg(test)]
mod log_chunk_tests {
    use std::time::Duration;

    use super::*;
    use std::time::UNIX_EPOCH;

    #[test]
    fn timestamps_are_split_off() {
        let a = LogChunk::timestamped(
            OutputStream::Stdout,
            Bytes::from_static(b"2026-11-28T02:45:12.123456789Z hello world\n"),
        );
        assert_eq!(a.data, Bytes::from_static(b"hello world\n"));
        let since = a.timestamp.duration_since(UNIX_EPOCH).expect("after epoch");
        assert_eq!(since.subsec_nanos(), 123_456_789);
        let b = LogChunk::timestamped(
            OutputStream::Stderr,
            Bytes::from_static(b"2026-11-28T02:45:12.5Z x"),
        );
        assert_eq!(
            b.timestamp.duration_since(a.timestamp).expect("later"),
            Duration::from_nanos(376_543_211)
        );
        assert_eq!(b.stream, OutputStream::Stderr);
    }

    #[test]
    fn messages_without_timestamp_are_kept_whole() {
        for m in [&b"no timestamp here"[..], b"nospace", b""] {
            let c = LogChunk::timestamped(OutputStream::Stdout, Bytes::copy_from_slice(m));
            assert_eq!(&c.data[..], m);
        }
    }

    fn out(stream: OutputStream, data: &'static [u8]) -> LogChunk {
        LogChunk {
            stream,
            timestamp: SystemTime::now(),
            data: Bytes::from_static(data),
        }
    }

    /// The cursor both bollard backends read their logs again with: a second read
    /// delivers only what the first did not.
    #[test]
    fn a_repeated_read_delivers_only_what_is_new() {
        use OutputStream::*;
        let mut cursor = OutputCursor::new();
        assert!(cursor.fresh(out(Stdout, b"ab")).is_some());
        cursor.reread();
        let mut got = Vec::new();
        for c in [
            out(Stdout, b"a"),
            out(Stderr, b"E1"),
            out(Stdout, b"bcd"),
            out(Stdout, b"ef"),
        ] {
            if let Some(c) = cursor.fresh(c) {
                got.push((c.stream, c.data));
            }
        }
        assert_eq!(
            got,
            vec![
                (Stderr, Bytes::from_static(b"E1")),
                (Stdout, Bytes::from_static(b"cd")),
                (Stdout, Bytes::from_static(b"ef")),
            ]
        );
        assert_eq!((cursor.delivered(Stdout), cursor.delivered(Stderr)), (6, 2));
        assert_eq!((cursor.seen(Stdout), cursor.seen(Stderr)), (6, 2));
    }
}
