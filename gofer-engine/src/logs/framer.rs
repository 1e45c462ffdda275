//! [`LineFramer`]: a stream's masked bytes into [`LogLine`]s.

use std::time::SystemTime;

use bytes::Bytes;
use gofer_core::OutputStream;

use super::sink::{LogLine, MAX_LINE_BYTES};

/// Splits one stream's masked bytes into [`LogLine`]s, as the engine frames a task's
/// log: a line ends at `\n` (a `\r` before it is dropped), a line longer than
/// [`MAX_LINE_BYTES`] is cut into `partial` pieces, and the last line of a stream
/// without a line end is emitted by [`LineFramer::finish`].
///
/// The lines of one pushed chunk share one buffer, so framing allocates once per
/// chunk, not once per line.
///
/// ```
/// use std::time::SystemTime;
/// use gofer_core::OutputStream;
/// use gofer_engine::LineFramer;
/// let mut framer = LineFramer::new(OutputStream::Stdout);
/// let mut lines = Vec::new();
/// framer.push(b"one\r\ntw", SystemTime::now(), &mut lines);
/// framer.push(b"o\nthree", SystemTime::now(), &mut lines);
/// framer.finish(SystemTime::now(), &mut lines);
/// let texts: Vec<_> = lines.iter().map(|l| l.text().into_owned()).collect();
/// assert_eq!(texts, ["one", "two", "three"]);
/// ```
#[derive(Debug)]
pub struct LineFramer {
    stream: OutputStream,
    buf: Vec<u8>,
}

impl LineFramer {
    /// A framer for the lines of `stream`.
    pub fn new(stream: OutputStream) -> Self {
        Self {
            stream,
            buf: Vec::new(),
        }
    }

    /// Adds bytes; appends every completed line (and every full piece of an overlong
    /// line) to `out`.
    pub fn push(&mut self, data: &[u8], timestamp: SystemTime, out: &mut Vec<LogLine>) {
        let mut rest = data;
        if !self.buf.is_empty() {
            // First complete the line begun in an earlier chunk.
            let Some(nl) = memchr::memchr(b'\n', rest) else {
                self.buf.extend_from_slice(rest);
                self.split_long(timestamp, out);
                return;
            };
            self.buf.extend_from_slice(&rest[..nl]);
            rest = &rest[nl + 1..];
            self.split_long(timestamp, out);
            let line = Bytes::from(std::mem::take(&mut self.buf));
            out.push(self.line(trim_cr(line), timestamp, false));
        }
        // Whole lines of this chunk: slices of one shared buffer.
        let Some(last_nl) = memchr::memrchr(b'\n', rest) else {
            self.buf.extend_from_slice(rest);
            self.split_long(timestamp, out);
            return;
        };
        let whole = Bytes::copy_from_slice(&rest[..=last_nl]);
        // One allocation for the lines of the chunk, however short they are.
        out.reserve(memchr::memchr_iter(b'\n', &whole).count());
        let mut start = 0;
        for nl in memchr::memchr_iter(b'\n', &whole) {
            let mut line = whole.slice(start..nl);
            start = nl + 1;
            while line.len() > MAX_LINE_BYTES {
                let piece = line.split_to(MAX_LINE_BYTES);
                out.push(self.line(piece, timestamp, true));
            }
            out.push(self.line(trim_cr(line), timestamp, false));
        }
        self.buf.extend_from_slice(&rest[last_nl + 1..]);
        self.split_long(timestamp, out);
    }

    /// Ends the stream: a last line without a line end is emitted as a full line.
    pub fn finish(&mut self, timestamp: SystemTime, out: &mut Vec<LogLine>) {
        if !self.buf.is_empty() {
            let line = std::mem::take(&mut self.buf);
            out.push(self.line(Bytes::from(line), timestamp, false));
        }
    }

    fn split_long(&mut self, timestamp: SystemTime, out: &mut Vec<LogLine>) {
        while self.buf.len() > MAX_LINE_BYTES {
            let rest = self.buf.split_off(MAX_LINE_BYTES);
            let piece = std::mem::replace(&mut self.buf, rest);
            out.push(self.line(Bytes::from(piece), timestamp, true));
        }
    }

    fn line(&self, data: Bytes, timestamp: SystemTime, partial: bool) -> LogLine {
        LogLine {
            stream: self.stream,
            timestamp,
            data,
            partial,
        }
    }
}

/// A line without the `\r` of a `\r\n` line end.
fn trim_cr(mut line: Bytes) -> Bytes {
    if line.last() == Some(&b'\r') {
        line.truncate(line.len() - 1);
    }
    line
}
