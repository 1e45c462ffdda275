//! A container's live output read straight from conmon, as `podman run` does.
//!
//! conmon, the process that watches each Podman container, serves the container's
//! output on a `SOCK_SEQPACKET` unix socket named `attach` in the container's static
//! directory (`<graph root>/<driver>-containers/<id>/userdata`). It exists once the
//! container is initialised, before it starts. Each packet is one byte naming the pipe
//! (2 stdout, 3 stderr) followed by up to 8 KiB of output; conmon writes every byte to
//! each connected reader (a slow reader holds it back, nothing is dropped) and closes
//! the socket after the last one. The Podman service's own attach endpoint relays the
//! same packets over HTTP; reading them here saves that copy through the service.
//!
//! Only a service on this machine has its containers' sockets here; when the socket
//! cannot be reached (another machine's service, another user's, a log driver that
//! passes output through), the caller uses the service's attach endpoint instead.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use gofer_core::{LogChunk, LogStream, OutputStream, SchedulerError};
use socket2::{Domain, SockAddr, Socket, Type};
use tokio::net::UnixStream;

use crate::NAME;

/// The largest packet conmon sends is 8193 bytes; a read this large never cuts one.
const PACKET_BUF: usize = 64 * 1024;
/// Packets of one stream already waiting are handed on together, up to this size.
const CHUNK_MAX: usize = 64 * 1024;

/// The directory holding containers' static directories, learnt from the first
/// container inspected, so later attaches need no extra request.
#[derive(Debug, Default)]
pub(crate) struct StaticDirs {
    /// `<graph root>/<driver>-containers`.
    parent: Mutex<Option<PathBuf>>,
}

impl StaticDirs {
    /// The static directory of container `id` if the parent is known.
    pub(crate) fn guess(&self, id: &str) -> Option<PathBuf> {
        let parent = self.parent.lock().unwrap_or_else(|p| p.into_inner());
        parent.as_ref().map(|p| p.join(id).join("userdata"))
    }

    /// Learns the parent from container `id`'s static directory as inspect gives it.
    pub(crate) fn learn(&self, id: &str, static_dir: &Path) {
        let parent = Some(static_dir)
            .filter(|d| d.is_absolute() && d.ends_with("userdata"))
            .and_then(Path::parent)
            .filter(|p| p.ends_with(id))
            .and_then(Path::parent);
        if let Some(parent) = parent {
            *self.parent.lock().unwrap_or_else(|p| p.into_inner()) = Some(parent.to_path_buf());
        }
    }
}

/// Connects to the attach socket in `static_dir`.
///
/// The socket's path is often longer than a unix socket address may be (108 bytes),
/// so it is reached through the directory's descriptor, as Podman does.
pub(crate) fn connect(static_dir: &Path) -> io::Result<Socket> {
    let dir = std::fs::File::open(static_dir)?;
    let address = SockAddr::unix(format!("/proc/self/fd/{}/attach", dir.as_raw_fd()))?;
    let socket = Socket::new(Domain::UNIX, Type::SEQPACKET, None)?;
    socket.connect(&address)?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

/// The output of container `id` from a connected attach socket: stdout and stderr
/// apart, ending after conmon's last packet.
pub(crate) fn stream(socket: Socket, id: &str) -> io::Result<LogStream> {
    // Tokio has no packet sockets; its stream type serves, since a read of a
    // `SOCK_SEQPACKET` socket takes one whole packet when the buffer holds it.
    let socket = std::os::unix::net::UnixStream::from(OwnedFd::from(socket));
    let reader = Reader {
        socket: UnixStream::from_std(socket)?,
        buf: vec![0; PACKET_BUF],
        carry: None,
        ended: false,
    };
    let id = id.to_string();
    Ok(futures::stream::unfold(Some(reader), move |reader| {
        let id = id.clone();
        async move {
            let mut reader = reader?;
            match reader.next().await {
                Ok(Some(chunk)) => Some((Ok(chunk), Some(reader))),
                Ok(None) => None,
                Err(e) => {
                    let e = SchedulerError::engine(
                        NAME,
                        "attach",
                        format!("the output of container {id:?} read from conmon broke: {e}"),
                    );
                    Some((Err(e), None))
                }
            }
        }
    })
    .boxed())
}

struct Reader {
    socket: UnixStream,
    buf: Vec<u8>,
    /// A packet of the other stream, read while gathering the previous chunk.
    carry: Option<(OutputStream, BytesMut)>,
    ended: bool,
}

impl Reader {
    /// The next chunk: the packets of one stream that are already there, joined.
    async fn next(&mut self) -> io::Result<Option<LogChunk>> {
        let mut out = self.carry.take();
        loop {
            if self.ended || out.as_ref().is_some_and(|(_, b)| b.len() >= CHUNK_MAX) {
                return Ok(out.map(chunk));
            }
            let n = if out.is_some() {
                // Only what is already there: a chunk is not held back for more.
                match self.socket.try_read(&mut self.buf) {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(out.map(chunk)),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                }
            } else {
                self.read().await?
            };
            if n == 0 {
                self.ended = true;
                continue;
            }
            let Some((stream, data)) = packet(&self.buf[..n])? else {
                continue;
            };
            match &mut out {
                Some((current, bytes)) if *current == stream => bytes.extend_from_slice(data),
                Some(_) => {
                    self.carry = Some((stream, BytesMut::from(data)));
                    return Ok(out.map(chunk));
                }
                None => {
                    let mut bytes = BytesMut::with_capacity(CHUNK_MAX);
                    bytes.extend_from_slice(data);
                    out = Some((stream, bytes));
                }
            }
        }
    }

    /// One packet, waiting for it; 0 at the end.
    async fn read(&mut self) -> io::Result<usize> {
        loop {
            self.socket.readable().await?;
            match self.socket.try_read(&mut self.buf) {
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                    ) =>
                {
                    continue
                }
                result => return result,
            }
        }
    }
}

/// The stream and output of one packet; `None` for an empty one.
fn packet(p: &[u8]) -> io::Result<Option<(OutputStream, &[u8])>> {
    if p.len() >= PACKET_BUF {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "a packet of {} bytes or more, larger than conmon sends",
                p.len()
            ),
        ));
    }
    let stream = match p.first() {
        None => return Ok(None),
        Some(2) => OutputStream::Stdout,
        Some(3) => OutputStream::Stderr,
        Some(other) => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("a packet of unknown pipe {other}"),
            ))
        }
    };
    Ok(Some((stream, &p[1..])))
}

fn chunk((stream, data): (OutputStream, BytesMut)) -> LogChunk {
    LogChunk {
        stream,
        timestamp: SystemTime::now(),
        data: Bytes::from(data),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn packets_name_their_pipe() {
        let (s, d) = packet(b"\x02out").unwrap().unwrap();
        assert_eq!((s, d), (OutputStream::Stdout, &b"out"[..]));
        let (s, d) = packet(b"\x03err").unwrap().unwrap();
        assert_eq!((s, d), (OutputStream::Stderr, &b"err"[..]));
        assert!(packet(b"").unwrap().is_none());
        let e = packet(b"\x01in").unwrap_err();
        assert!(e.to_string().contains("unknown pipe 1"), "{e}");
        let e = packet(&vec![2; PACKET_BUF]).unwrap_err();
        assert!(e.to_string().contains("larger than conmon sends"), "{e}");
    }

    #[test]
    fn the_parent_is_learnt_from_a_static_dir() {
        let dirs = StaticDirs::default();
        assert_eq!(dirs.guess("abc"), None);
        dirs.learn(
            "abc",
            Path::new("/var/lib/c/overlay-containers/other/userdata"),
        );
        assert_eq!(dirs.guess("abc"), None, "a directory of another id");
        dirs.learn("abc", Path::new("relative/abc/userdata"));
        assert_eq!(dirs.guess("abc"), None, "a relative directory");
        dirs.learn(
            "abc",
            Path::new("/var/lib/c/overlay-containers/abc/userdata"),
        );
        assert_eq!(
            dirs.guess("def"),
            Some(PathBuf::from("/var/lib/c/overlay-containers/def/userdata"))
        );
    }

    /// Packets of one stream already waiting come as one chunk; a change of stream
    /// starts a new one; the end comes after the last.
    #[tokio::test]
    async fn waiting_packets_of_one_stream_are_joined() {
        let (a, b) = Socket::pair(Domain::UNIX, Type::SEQPACKET, None).unwrap();
        b.set_nonblocking(true).unwrap();
        for p in [&b"\x02one "[..], b"\x02two", b"\x03err", b"\x02three"] {
            a.send(p).unwrap();
        }
        drop(a);
        let chunks: Vec<_> = stream(b, "c")
            .unwrap()
            .map(|c| {
                let c = c.unwrap();
                (c.stream, String::from_utf8(c.data.to_vec()).unwrap())
            })
            .collect()
            .await;
        assert_eq!(
            chunks,
            [
                (OutputStream::Stdout, "one two".to_string()),
                (OutputStream::Stderr, "err".to_string()),
                (OutputStream::Stdout, "three".to_string()),
            ]
        );
    }
}
