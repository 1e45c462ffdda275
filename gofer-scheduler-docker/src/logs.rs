//! Following a container's output, demultiplexed into stdout and stderr.

use std::time::SystemTime;

use bollard::container::LogOutput;
use bollard::query_parameters::LogsOptions;
use bollard::Docker;
use bytes::Bytes;
use futures::StreamExt;
use gofer_core::{LogChunk, LogStream, OutputStream, SchedulerError};

use crate::error;

/// Splits the engine's `timestamps=true` prefix (`2006-01-02T15:04:05.999999999Z `)
/// off a message; a message without one is stamped with the time it was read.
pub(crate) fn split_timestamp(message: Bytes) -> (SystemTime, Bytes) {
    let Some(space) = message.iter().take(40).position(|b| *b == b' ') else {
        return (SystemTime::now(), message);
    };
    let parsed = std::str::from_utf8(&message[..space])
        .ok()
        .and_then(|s| humantime::parse_rfc3339(s).ok());
    match parsed {
        Some(ts) => (ts, message.slice(space + 1..)),
        None => (SystemTime::now(), message),
    }
}

/// One engine frame as a chunk; stdin echoes and console frames are not output.
fn chunk(output: LogOutput) -> Option<LogChunk> {
    let (stream, message) = match output {
        LogOutput::StdOut { message } | LogOutput::Console { message } => {
            (OutputStream::Stdout, message)
        }
        LogOutput::StdErr { message } => (OutputStream::Stderr, message),
        LogOutput::StdIn { .. } => return None,
    };
    let (timestamp, data) = split_timestamp(message);
    Some(LogChunk {
        stream,
        timestamp,
        data,
    })
}

/// The output of container `id` from its start, followed until it exits.
pub(crate) fn follow(docker: &Docker, endpoint: &str, id: &str) -> LogStream {
    let options = LogsOptions {
        follow: true,
        stdout: true,
        stderr: true,
        timestamps: true,
        ..Default::default()
    };
    let endpoint = endpoint.to_string();
    let id = id.to_string();
    docker
        .logs(&id, Some(options))
        .filter_map(move |item| {
            let out = match item {
                Ok(output) => chunk(output).map(Ok),
                Err(e) => Some(Err::<LogChunk, SchedulerError>(error::container(
                    &endpoint, "logs", &id, e,
                ))),
            };
            futures::future::ready(out)
        })
        .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn timestamps_are_split_off() {
        let (ts, data) = split_timestamp(Bytes::from_static(
            b"2026-11-28T02:45:12.123456789Z hello world\n",
        ));
        assert_eq!(data, Bytes::from_static(b"hello world\n"));
        let since = ts.duration_since(UNIX_EPOCH).expect("after epoch");
        assert_eq!(since.subsec_nanos(), 123_456_789);
        let (ts2, _) = split_timestamp(Bytes::from_static(b"2026-11-28T02:45:12.5Z x"));
        assert_eq!(
            ts2.duration_since(ts).expect("later"),
            Duration::from_nanos(376_543_211)
        );
    }

    #[test]
    fn messages_without_timestamp_are_kept_whole() {
        let (_, data) = split_timestamp(Bytes::from_static(b"no timestamp here"));
        assert_eq!(data, Bytes::from_static(b"no timestamp here"));
        let (_, data) = split_timestamp(Bytes::from_static(b"nospace"));
        assert_eq!(data, Bytes::from_static(b"nospace"));
    }

    #[test]
    fn frames_keep_their_stream() {
        let c = chunk(LogOutput::StdErr {
            message: Bytes::from_static(b"2026-11-28T02:45:12Z oops\n"),
        })
        .expect("a chunk");
        assert_eq!(c.stream, OutputStream::Stderr);
        assert_eq!(c.data, Bytes::from_static(b"oops\n"));
        assert!(chunk(LogOutput::StdIn {
            message: Bytes::new()
        })
        .is_none());
    }
}
