//! The stored form of a [`FileLogSink`](crate::logs::file_sink::FileLogSink) log: format 2
//! (written and read) and format 1 (read only).
//!
//! Format 2: the line `gofer-log 2`, then records. A record is one header line and
//! the bytes of its lines:
//!
//! ```text
//! <unix seconds>.<nanoseconds> <stdout|stderr> <F|P> <lines> <bytes>\n
//! <bytes bytes: the lines, each ended by \n>
//! ```
//!
//! The lines of a record share stream, timestamp and mark (`F` full lines, `P` pieces
//! of a longer line that continues in the next line of the same stream). A record
//! of one line holds its bytes as they are (even a `\n`); in a record of several, no
//! line holds a `\n`. A cursor is the record's file offset shifted left by
//! [`INNER_BITS`] plus the offset of the line inside the record's bytes (the writer
//! starts a new record before a line would begin past [`INNER_MAX`]).
//!
//! Format 1 (files that do not start with `gofer-log`): one line per output line,
//! `<unix seconds>.<nanoseconds> <stdout|stderr> <F|P> <bytes of the line>`; its
//! cursors are the line's file offset shifted the same way.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::time::{Duration, SystemTime};

use bytes::Bytes;

use crate::logs::sink::LogLine;
use gofer_core::OutputStream;

/// The first line of a format 2 file.
pub(super) const HEADER: &[u8] = b"gofer-log 2\n";
const MAGIC: &[u8] = b"gofer-log ";
/// Bits of a cursor that hold a line's offset inside its record.
const INNER_BITS: u32 = 20;
/// The last offset inside a record at which a line may start.
const INNER_MAX: usize = (1 << INNER_BITS) - 1;
/// The largest file offset a cursor can hold (16 TiB).
pub(super) const MAX_OFFSET: u64 = u64::MAX >> INNER_BITS;
/// A record header is at most this long (two 20-digit numbers and the rest).
const MAX_HEADER: u64 = 96;
/// How much of a file is read at a time.
const READ_BUFFER: usize = 64 * 1024;

/// Why a log file cannot be read.
#[derive(Debug)]
pub(super) enum ReadError {
    Io(io::Error),
    /// Not a log of a format this version reads, or damaged.
    Unreadable(String),
}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

/// The cursor of the line at `inner` bytes into the record at file offset `record`.
fn cursor(record: u64, inner: usize) -> u64 {
    (record << INNER_BITS) | inner as u64
}

/// The file offset of the record (format 2) or line (format 1) a cursor points into.
pub(super) fn cursor_offset(cursor: u64) -> u64 {
    cursor >> INNER_BITS
}

/// The stream, timestamp and mark a record's lines share.
fn same_record(a: &LogLine, b: &LogLine) -> bool {
    a.stream == b.stream && a.timestamp == b.timestamp && a.partial == b.partial
}

fn header(line: &LogLine, lines: usize, bytes: usize, out: &mut Vec<u8>) {
    let t = line
        .timestamp
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    // Writing to a Vec cannot fail.
    let _ = writeln!(
        out,
        "{}.{:09} {} {} {lines} {bytes}",
        t.as_secs(),
        t.subsec_nanos(),
        line.stream.as_str(),
        if line.partial { 'P' } else { 'F' }
    );
}

fn record(lines: &[LogLine], bytes: usize, out: &mut Vec<u8>) {
    header(&lines[0], lines.len(), bytes, out);
    for l in lines {
        out.extend_from_slice(&l.data);
        out.push(b'\n');
    }
}

/// Appends `lines` to `out` as format 2 records: one per run of lines sharing stream,
/// timestamp and mark.
pub(super) fn encode(lines: &[LogLine], out: &mut Vec<u8>) {
    let mut i = 0;
    while i < lines.len() {
        let mut bytes = lines[i].data.len() + 1;
        let mut j = i + 1;
        while j < lines.len() && bytes <= INNER_MAX && same_record(&lines[i], &lines[j]) {
            bytes += lines[j].data.len() + 1;
            j += 1;
        }
        let start = out.len();
        record(&lines[i..j], bytes, out);
        let data = &out[out.len() - bytes..];
        // The framer never leaves a line end inside a line, but a writer may be given
        // one: then each line gets a record of its own.
        if j - i > 1 && data.iter().filter(|b| **b == b'\n').count() != j - i {
            out.truncate(start);
            for line in &lines[i..j] {
                record(std::slice::from_ref(line), line.data.len() + 1, out);
            }
        }
        i = j;
    }
}

/// What a log file holds, judged from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Format {
    /// Nothing yet (or only part of the first line).
    Empty,
    /// Format 1.
    V1,
    /// Format 2.
    V2,
}

/// The format of `file`.
pub(super) fn format(file: &mut File) -> Result<Format, ReadError> {
    file.seek(SeekFrom::Start(0))?;
    let mut head = Vec::with_capacity(32);
    file.take(32).read_to_end(&mut head)?;
    if head.is_empty() {
        return Ok(Format::Empty);
    }
    if !head.starts_with(MAGIC) {
        if MAGIC.starts_with(&head) {
            return Ok(Format::Empty);
        }
        if head[0].is_ascii_digit() {
            return Ok(Format::V1);
        }
        return Err(ReadError::Unreadable(
            "it is not a gofer log (it does not start with `gofer-log`)".into(),
        ));
    }
    let rest = &head[MAGIC.len()..];
    let Some(nl) = memchr::memchr(b'\n', rest) else {
        if rest.iter().all(u8::is_ascii_digit) {
            return Ok(Format::Empty);
        }
        return Err(ReadError::Unreadable("its first line is damaged".into()));
    };
    match &rest[..nl] {
        b"2" => Ok(Format::V2),
        other => Err(ReadError::Unreadable(format!(
            "it is in format {:?}; this version reads formats 1 and 2",
            String::from_utf8_lossy(other)
        ))),
    }
}

/// A record header: stream, timestamp, mark, line count, byte count.
struct Header {
    stream: OutputStream,
    timestamp: SystemTime,
    partial: bool,
    lines: usize,
    bytes: usize,
}

fn parse_timestamp(ts: &[u8]) -> Option<SystemTime> {
    let ts = std::str::from_utf8(ts).ok()?;
    let (secs, nanos) = ts.split_once('.')?;
    let nanos: u32 = nanos.parse().ok()?;
    if nanos >= 1_000_000_000 {
        return None;
    }
    SystemTime::UNIX_EPOCH.checked_add(Duration::new(secs.parse().ok()?, nanos))
}

fn parse_stream(s: &[u8]) -> Option<OutputStream> {
    match s {
        b"stdout" => Some(OutputStream::Stdout),
        b"stderr" => Some(OutputStream::Stderr),
        _ => None,
    }
}

fn parse_mark(s: &[u8]) -> Option<bool> {
    match s {
        b"P" => Some(true),
        b"F" => Some(false),
        _ => None,
    }
}

fn parse_number(s: &[u8]) -> Option<usize> {
    std::str::from_utf8(s).ok()?.parse().ok()
}

fn parse_header(raw: &[u8]) -> Option<Header> {
    let mut parts = raw.split(|b| *b == b' ');
    let header = Header {
        timestamp: parse_timestamp(parts.next()?)?,
        stream: parse_stream(parts.next()?)?,
        partial: parse_mark(parts.next()?)?,
        lines: parse_number(parts.next()?)?,
        bytes: parse_number(parts.next()?)?,
    };
    let sound = parts.next().is_none() && header.lines > 0 && header.bytes >= header.lines;
    sound.then_some(header)
}

fn damaged(offset: u64, what: &str) -> ReadError {
    ReadError::Unreadable(format!("the record at byte {offset} is damaged: {what}"))
}

/// Reads at most `max` lines of a format 2 file from `at` (0 is the start); returns
/// them and the cursor of the next line. A record not yet whole (being written, or
/// torn by a crash) is not read.
pub(super) fn read_v2(
    file: &mut File,
    at: u64,
    max: usize,
) -> Result<(Vec<LogLine>, u64), ReadError> {
    let (mut offset, mut inner) = if at == 0 {
        (HEADER.len() as u64, 0)
    } else {
        (
            cursor_offset(at),
            usize::try_from(at & INNER_MAX as u64).unwrap_or(usize::MAX),
        )
    };
    file.seek(SeekFrom::Start(offset))?;
    let mut reader = BufReader::with_capacity(READ_BUFFER, file);
    let mut lines = Vec::new();
    let mut raw = Vec::with_capacity(MAX_HEADER as usize);
    while lines.len() < max {
        raw.clear();
        let n = (&mut reader).take(MAX_HEADER).read_until(b'\n', &mut raw)?;
        if raw.last() != Some(&b'\n') {
            if n as u64 == MAX_HEADER {
                return Err(damaged(offset, "its header is too long"));
            }
            // The header is not whole yet.
            break;
        }
        let h = parse_header(&raw[..n - 1]).ok_or_else(|| damaged(offset, "bad header"))?;
        if inner >= h.bytes {
            return Err(ReadError::Unreadable(format!(
                "cursor {at} was not returned for this log"
            )));
        }
        reader.seek_relative(i64::try_from(inner).unwrap_or(i64::MAX))?;
        // What is there, not what the header claims: a damaged header cannot make
        // the reader allocate more than the file holds.
        let want = h.bytes - inner;
        let mut data = Vec::with_capacity(want.min(2 << 20));
        (&mut reader).take(want as u64).read_to_end(&mut data)?;
        if data.len() < want {
            // The record is not whole yet.
            break;
        }
        if data.last() != Some(&b'\n') {
            return Err(damaged(offset, "its last line has no line end"));
        }
        let data = Bytes::from(data);
        let line = |slice: Bytes| LogLine {
            stream: h.stream,
            timestamp: h.timestamp,
            data: slice,
            partial: h.partial,
        };
        let end = offset + n as u64 + h.bytes as u64;
        if h.lines == 1 {
            lines.push(line(data.slice(..data.len() - 1)));
        } else {
            let mut start = 0;
            for nl in memchr::memchr_iter(b'\n', &data) {
                lines.push(line(data.slice(start..nl)));
                start = nl + 1;
                if lines.len() == max && start < data.len() {
                    return Ok((lines, cursor(offset, inner + start)));
                }
            }
        }
        if end > MAX_OFFSET {
            return Err(ReadError::Unreadable(
                "the log is larger than 16 TiB".into(),
            ));
        }
        offset = end;
        inner = 0;
    }
    Ok((lines, cursor(offset, inner)))
}

/// One format 1 line.
fn parse_v1_line(raw: &[u8]) -> Option<LogLine> {
    let mut parts = raw.splitn(4, |b| *b == b' ');
    let timestamp = parse_timestamp(parts.next()?)?;
    let stream = parse_stream(parts.next()?)?;
    let partial = parse_mark(parts.next()?)?;
    let data = Bytes::copy_from_slice(parts.next().unwrap_or_default());
    Some(LogLine {
        stream,
        timestamp,
        data,
        partial,
    })
}

/// [`read_v2`] for a format 1 file.
pub(super) fn read_v1(
    file: &mut File,
    at: u64,
    max: usize,
) -> Result<(Vec<LogLine>, u64), ReadError> {
    let mut offset = cursor_offset(at);
    file.seek(SeekFrom::Start(offset))?;
    let mut reader = BufReader::with_capacity(READ_BUFFER, file);
    let mut lines = Vec::new();
    let mut raw = Vec::new();
    while lines.len() < max {
        raw.clear();
        let n = reader.read_until(b'\n', &mut raw)?;
        // Only whole lines count; a line being written is read next time.
        if n == 0 || raw.last() != Some(&b'\n') {
            break;
        }
        if offset + n as u64 > MAX_OFFSET {
            return Err(ReadError::Unreadable(
                "the log is larger than 16 TiB".into(),
            ));
        }
        offset += n as u64;
        if let Some(line) = parse_v1_line(&raw[..n - 1]) {
            lines.push(line);
        }
    }
    Ok((lines, cursor(offset, 0)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn line(stream: OutputStream, secs: u64, text: &[u8], partial: bool) -> LogLine {
        LogLine {
            stream,
            timestamp: SystemTime::UNIX_EPOCH + Duration::new(secs, 7),
            data: Bytes::copy_from_slice(text),
            partial,
        }
    }

    #[test]
    fn lines_sharing_stream_time_and_mark_share_a_record() {
        use OutputStream::*;
        let mut out = Vec::new();
        encode(
            &[
                line(Stdout, 1, b"a", false),
                line(Stdout, 1, b"", false),
                line(Stdout, 1, b"bc", false),
                line(Stderr, 1, b"e", false),
                line(Stderr, 1, b"xx", true),
                line(Stderr, 2, b"y", false),
            ],
            &mut out,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "1.000000007 stdout F 3 6\na\n\nbc\n\
             1.000000007 stderr F 1 2\ne\n\
             1.000000007 stderr P 1 3\nxx\n\
             2.000000007 stderr F 1 2\ny\n"
        );
    }

    #[test]
    fn a_line_holding_a_line_end_gets_a_record_of_its_own() {
        let lines = [
            line(OutputStream::Stdout, 1, b"one", false),
            line(OutputStream::Stdout, 1, b"two\nlines", false),
        ];
        let mut out = Vec::new();
        encode(&lines, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "1.000000007 stdout F 1 4\none\n1.000000007 stdout F 1 10\ntwo\nlines\n"
        );
    }
}
