//! [`FileLogSink`]: one file per task execution.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::logs::file_format::{self, Format, ReadError};
use crate::logs::sink::{LogError, LogKey, LogLine, LogReader, LogSink, LogWriter};

/// Keeps each task execution's log in its own file,
/// `<dir>/<pipeline>/<run>/<task>.log`: the line `gofer-log 2` (the format's
/// version), then records, each a header line and the output lines it covers:
///
/// ```text
/// gofer-log 2
/// <unix seconds>.<nanoseconds> <stdout|stderr> <F|P> <lines> <bytes>
/// <the lines: bytes bytes, each line ended by a line end>
/// ```
///
/// The lines of one record share stream, timestamp and mark: `F` full lines, `P`
/// pieces of a longer line that continues in the next line of the same stream. The
/// lines of one read of the container's output share stream and timestamp, so a
/// record usually holds all of them. Each write is one `write` call of whole records,
/// so a log can be read (and followed) while the task runs; a reader does not take a
/// record until all its bytes are there, so a crash tears at most the last record. A
/// cursor names a record and a line inside it: any line is a place to read from.
///
/// Files of the earlier format (one header per line, no version line) are still
/// read; a file of a later format, or not a log, is refused with
/// [`LogError::Unreadable`].
///
/// Measured by the `log_throughput` bench (against format 1 in the same runs): 1.00
/// to 1.01 bytes on disk per byte of output for 100-byte lines (format 1: 1.30), 1.00
/// for 2-byte lines (16.0), 1.00 for one long line (1.00); read back at 860 to 2300
/// MiB/s for 100-byte lines (450 to 610), at 90 to 105 MiB/s, about 50 million
/// lines/s, for 2-byte lines (14 to 18 MiB/s), at 640 to 970 MiB/s for one 10 MiB
/// line.
#[derive(Debug, Clone)]
pub struct FileLogSink {
    dir: PathBuf,
}

impl FileLogSink {
    const NAME: &'static str = "file";

    /// A sink writing under `dir` (created when needed).
    ///
    /// Logs are keyed by pipeline, run number and task: two engines that write under
    /// the same directory and number runs independently (no shared run store)
    /// overwrite each other's logs. Give each such engine its own directory, or use
    /// [`FileLogSink::unique_under`].
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// A sink writing in a new directory under `parent`, named after the engine
    /// instance, the time, the process and a counter
    /// (`<parent>/<instance>/<unix ms>-<pid>-<n>`), so that no earlier engine's logs
    /// are overwritten. The engine's default sink is
    /// `FileLogSink::unique_under(<temp dir>/gofer-logs, <instance id>)`.
    pub fn unique_under(parent: impl AsRef<Path>, instance: &str) -> Self {
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let ms = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Self::new(
            parent
                .as_ref()
                .join(instance)
                .join(format!("{ms}-{}-{n}", std::process::id())),
        )
    }

    /// The directory the sink writes under.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file holding one task execution's log.
    pub fn path(&self, key: &LogKey) -> PathBuf {
        self.dir
            .join(&key.pipeline)
            .join(key.run.to_string())
            .join(format!("{}.log", key.task))
    }

    /// The byte offset in the log file of the record a cursor returned by
    /// [`LogSink::read`] points into: a file shorter than that was written anew (a
    /// task re-attached after a crash) since the cursor was returned.
    pub fn cursor_offset(cursor: u64) -> u64 {
        file_format::cursor_offset(cursor)
    }

    fn open_log(&self, key: &LogKey) -> Result<OpenLog, LogError> {
        let path = self.path(key);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(LogError::not_found(key))
            }
            Err(e) => return Err(Self::io("open", e)),
        };
        Ok(OpenLog {
            file,
            path,
            format: Format::Empty,
        })
    }

    fn io(operation: &'static str, e: std::io::Error) -> LogError {
        LogError::Io {
            sink: Self::NAME,
            operation,
            source: Box::new(e),
        }
    }
}

struct FileWriter {
    file: File,
    /// The bytes written so far.
    len: u64,
    buf: Vec<u8>,
}

impl LogWriter for FileWriter {
    fn write(&mut self, lines: &[LogLine]) -> Result<(), LogError> {
        self.buf.clear();
        file_format::encode(lines, &mut self.buf);
        let len = self.len + self.buf.len() as u64;
        if len > file_format::MAX_OFFSET {
            return Err(FileLogSink::io(
                "write",
                std::io::Error::other("the log file would pass 16 TiB"),
            ));
        }
        self.file
            .write_all(&self.buf)
            .map_err(|e| FileLogSink::io("write", e))?;
        self.len = len;
        Ok(())
    }
}

impl LogSink for FileLogSink {
    fn locate(&self, key: &LogKey) -> Option<String> {
        Some(self.path(key).display().to_string())
    }

    fn open(&self, key: &LogKey) -> Result<Box<dyn LogWriter>, LogError> {
        let path = self.path(key);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(|e| Self::io("create directory", e))?;
        }
        let mut file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&path)
            .map_err(|e| Self::io("open", e))?;
        file.write_all(file_format::HEADER)
            .map_err(|e| Self::io("write", e))?;
        Ok(Box::new(FileWriter {
            file,
            len: file_format::HEADER.len() as u64,
            buf: Vec::new(),
        }))
    }

    fn reader(&self, key: &LogKey) -> Result<Box<dyn LogReader>, LogError> {
        Ok(Box::new(FileReader {
            log: self.open_log(key)?,
            cursor: 0,
        }))
    }

    fn read(&self, key: &LogKey, cursor: u64, max: usize) -> Result<(Vec<LogLine>, u64), LogError> {
        self.open_log(key)?.read(cursor, max)
    }

    /// Removes `<dir>/<pipeline>/<run>/` (and the pipeline's directory once empty).
    fn remove_run(&self, pipeline: &str, run: u64) -> Result<u64, LogError> {
        // Pipeline ids are validated names; anything else names no directory of ours.
        if pipeline.is_empty() || pipeline.contains(['/', '\\']) || pipeline.starts_with('.') {
            return Ok(0);
        }
        let pipeline_dir = self.dir.join(pipeline);
        let run_dir = pipeline_dir.join(run.to_string());
        let entries = match fs::read_dir(&run_dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(Self::io("read directory", e)),
        };
        let mut freed = 0u64;
        for entry in entries.flatten() {
            if let Ok(m) = entry.metadata() {
                freed += m.len();
            }
        }
        match fs::remove_dir_all(&run_dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Self::io("remove", e)),
        }
        // Only succeeds when no other run's logs are left in it.
        let _ = fs::remove_dir(&pipeline_dir);
        Ok(freed)
    }
}

/// One log file open for reading.
struct OpenLog {
    file: File,
    path: PathBuf,
    /// `Empty` until the first line is whole.
    format: Format,
}

impl OpenLog {
    fn read(&mut self, cursor: u64, max: usize) -> Result<(Vec<LogLine>, u64), LogError> {
        if max == 0 {
            return Ok((Vec::new(), cursor));
        }
        let read = (|| {
            if self.format == Format::Empty {
                self.format = file_format::format(&mut self.file)?;
            }
            match self.format {
                Format::Empty => Ok((Vec::new(), cursor)),
                Format::V1 => file_format::read_v1(&mut self.file, cursor, max),
                Format::V2 => file_format::read_v2(&mut self.file, cursor, max),
            }
        })();
        read.map_err(|e| match e {
            ReadError::Io(e) => FileLogSink::io("read", e),
            ReadError::Unreadable(reason) => LogError::Unreadable {
                sink: FileLogSink::NAME,
                location: self.path.display().to_string(),
                reason,
            },
        })
    }
}

/// Follows one log file, kept open between reads.
struct FileReader {
    log: OpenLog,
    cursor: u64,
}

impl LogReader for FileReader {
    fn next_lines(&mut self, _sink: &dyn LogSink, max: usize) -> Result<Vec<LogLine>, LogError> {
        let (lines, next) = self.log.read(self.cursor, max)?;
        self.cursor = next;
        Ok(lines)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;

    use super::*;
    use gofer_core::OutputStream;

    struct Dir(PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
    fn dir(name: &str) -> (Dir, FileLogSink) {
        let d = std::env::temp_dir().join(format!("gofer-file-sink-{name}-{}", std::process::id()));
        (Dir(d.clone()), FileLogSink::new(d))
    }

    fn line(stream: OutputStream, secs: u64, text: &str) -> LogLine {
        LogLine {
            stream,
            timestamp: SystemTime::UNIX_EPOCH + Duration::new(secs, 0),
            data: Bytes::copy_from_slice(text.as_bytes()),
            partial: false,
        }
    }

    /// Every line of a log, read `max` at a time through `read`.
    fn read_all(sink: &FileLogSink, key: &LogKey, max: usize) -> Vec<LogLine> {
        let (mut all, mut cursor) = (Vec::new(), 0);
        loop {
            let (lines, next) = sink.read(key, cursor, max).unwrap();
            assert!(lines.len() <= max);
            if lines.is_empty() {
                assert_eq!(next, cursor);
                return all;
            }
            all.extend(lines);
            cursor = next;
        }
    }

    fn some_lines() -> Vec<LogLine> {
        use OutputStream::*;
        let mut lines: Vec<_> = (0..50)
            .map(|i| line(Stdout, 1, &"x".repeat(i % 7)))
            .collect();
        lines.push(line(Stderr, 1, "err"));
        lines.push(line(Stdout, 2, "later"));
        lines.push(LogLine {
            partial: true,
            ..line(Stdout, 2, "piece")
        });
        lines.push(line(Stdout, 2, "two\nlines"));
        lines
    }

    #[test]
    fn every_line_comes_back_whatever_the_read_size() {
        let (_d, sink) = dir("sizes");
        let key = LogKey::new("p", 1, "t");
        let lines = some_lines();
        let mut w = sink.open(&key).unwrap();
        w.write(&lines[..20]).unwrap();
        w.write(&lines[20..]).unwrap();
        for max in [1, 2, 3, 7, 49, 50, 51, 1000] {
            assert_eq!(read_all(&sink, &key, max), lines, "max {max}");
        }
        let mut reader = sink.reader(&key).unwrap();
        let mut followed = Vec::new();
        loop {
            let got = reader.next_lines(&sink, 3).unwrap();
            if got.is_empty() {
                break;
            }
            followed.extend(got);
        }
        assert_eq!(followed, lines);
    }

    #[test]
    fn records_stay_small_enough_for_a_cursor_to_point_inside() {
        let (_d, sink) = dir("big");
        let key = LogKey::new("p", 1, "t");
        // 3 MiB of lines sharing stream and timestamp, in one write.
        let lines: Vec<_> = (0..3 * 1024)
            .map(|i| line(OutputStream::Stdout, 1, &format!("{i:01023}")))
            .collect();
        sink.open(&key).unwrap().write(&lines).unwrap();
        let text = fs::read(sink.path(&key)).unwrap();
        let records = text.windows(9).filter(|w| w == b"stdout F ").count();
        assert!(records >= 3, "{records} records");
        assert_eq!(read_all(&sink, &key, 1000), lines);
    }

    #[test]
    fn a_torn_last_record_is_not_read_and_a_growing_one_is_read_once_whole() {
        let (_d, sink) = dir("torn");
        let key = LogKey::new("p", 1, "t");
        let lines = some_lines();
        sink.open(&key).unwrap().write(&lines).unwrap();
        let whole = fs::read(sink.path(&key)).unwrap();
        // Each length the file can have while it is written (or when a crash cut it):
        // the lines read are a prefix of the lines written, and a reader that follows
        // the file from there gets the rest, each line once.
        for len in 0..=whole.len() {
            fs::write(sink.path(&key), &whole[..len]).unwrap();
            let mut reader = sink.reader(&key).unwrap();
            let mut got = Vec::new();
            loop {
                let l = reader.next_lines(&sink, 5).unwrap();
                if l.is_empty() {
                    break;
                }
                got.extend(l);
            }
            assert_eq!(got[..], lines[..got.len()], "cut at {len}");
            let (_, cursor) = sink.read(&key, 0, usize::MAX).unwrap();
            fs::write(sink.path(&key), &whole).unwrap();
            loop {
                let l = reader.next_lines(&sink, 5).unwrap();
                if l.is_empty() {
                    break;
                }
                got.extend(l);
            }
            assert_eq!(got, lines, "cut at {len}");
            let (rest, _) = sink.read(&key, cursor, usize::MAX).unwrap();
            assert_eq!(rest[..], lines[lines.len() - rest.len()..], "cut at {len}");
        }
    }

    #[test]
    fn files_of_the_earlier_format_are_read() {
        let (_d, sink) = dir("v1");
        let key = LogKey::new("p", 1, "t");
        fs::create_dir_all(sink.path(&key).parent().unwrap()).unwrap();
        fs::write(
            sink.path(&key),
            "1.000000000 stdout F one\n1.000000000 stderr P two \n2.000000000 stdout F three",
        )
        .unwrap();
        let (first, cursor) = sink.read(&key, 0, 1).unwrap();
        assert_eq!(first, [line(OutputStream::Stdout, 1, "one")]);
        assert_eq!(FileLogSink::cursor_offset(cursor), 25);
        let (rest, _) = sink.read(&key, cursor, 10).unwrap();
        // The last line is not whole yet.
        assert_eq!(
            rest,
            [LogLine {
                partial: true,
                ..line(OutputStream::Stderr, 1, "two ")
            }]
        );
    }

    #[test]
    fn a_file_of_a_later_format_or_not_a_log_is_refused_by_name() {
        let (_d, sink) = dir("refused");
        let key = LogKey::new("p", 1, "t");
        fs::create_dir_all(sink.path(&key).parent().unwrap()).unwrap();
        for (text, why) in [
            ("gofer-log 3\nwhatever", "format \"3\""),
            ("PK\u{3}\u{4} a zip", "not a gofer log"),
            ("gofer-log 2\n1.0 stdout F 0 4\nabc\n", "damaged"),
            ("gofer-log 2\n1.0 stdout F 1 4\nabcd", "damaged"),
            ("gofer-log 2\n1.000000000 stdout X 1 4\nabc\n", "damaged"),
        ] {
            fs::write(sink.path(&key), text).unwrap();
            for e in [
                sink.read(&key, 0, 10).unwrap_err(),
                sink.reader(&key)
                    .unwrap()
                    .next_lines(&sink, 10)
                    .unwrap_err(),
            ] {
                let LogError::Unreadable {
                    location, reason, ..
                } = &e
                else {
                    panic!("{e:?}");
                };
                assert!(reason.contains(why), "{text:?}: {e}");
                assert!(location.ends_with("t.log"), "{e}");
            }
        }
    }
}
