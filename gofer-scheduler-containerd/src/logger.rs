//! The logging binary the runc shim starts for each container (containerd's
//! `binary://` stdio): it gets the container's stdout and stderr as pipes (fds 3 and 4)
//! and a readiness pipe (fd 5), and copies each stream into its own file in the
//! container's directory, as it arrives. It is a child of the shim, not of the host,
//! so output keeps being written while the host process is down; the shim closes the
//! pipes when the task is deleted, and the logger exits once it has written the last
//! byte (it outlasts the shim's SIGTERM, which comes right after, for that).
//!
//! Run it as `gofer-containerd-logger dir <container directory>` (the binary this crate
//! builds), or from any binary that calls [`run_logger`] (the `gofer` command does, as
//! `gofer __containerd-log <dir>`).

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use gofer_core::OutputStream;

use crate::logs;

/// Copies the shim's pipes into the output files in `dir` until both end.
///
/// # Errors
///
/// When a pipe or a file cannot be opened or written.
pub fn run_logger(dir: &Path) -> std::io::Result<()> {
    // The shim sends SIGTERM right after closing the pipes; what is still in them must
    // reach the files first. A handler that only sets a flag keeps the signal from
    // ending the process; the end of both pipes ends it.
    signal_hook::flag::register(
        signal_hook::consts::SIGTERM,
        Arc::new(AtomicBool::new(false)),
    )?;
    // The descriptors are inherited; reopening them through /proc needs no unsafe code.
    let stdout = File::open("/proc/self/fd/3")?;
    let stderr = File::open("/proc/self/fd/4")?;
    let open = |s: OutputStream| {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(logs::file(dir, s))
    };
    let out_file = open(OutputStream::Stdout)?;
    let err_file = open(OutputStream::Stderr)?;
    // Ready: the shim waits for a byte (or the end) on the readiness pipe.
    OpenOptions::new()
        .write(true)
        .open("/proc/self/fd/5")?
        .write_all(b"1")?;
    let err_copy = std::thread::spawn(move || copy(stderr, err_file));
    let out_result = copy(stdout, out_file);
    let err_result = err_copy
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("stderr copy panicked")));
    out_result.and(err_result)
}

fn copy(mut from: File, mut to: File) -> std::io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => to.write_all(&buf[..n])?,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// The `binary://` URI that starts `program` with `arg <dir>` (containerd turns the
/// URI's one query pair into those two arguments).
pub(crate) fn uri(program: &Path, arg: &str, dir: &Path) -> String {
    format!(
        "binary://{}?{}={}",
        encode(&program.to_string_lossy()),
        encode(arg),
        encode(&dir.to_string_lossy())
    )
}

/// Percent-encodes what Go's URL parser would read otherwise (`+` as a space, `&`, `=`,
/// `#`, `?`, `%`, spaces, controls and non-ASCII).
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'_' | b'.' | b'~' | b':') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_survive_go_url_parsing() {
        let u = uri(
            Path::new("/usr/bin/gofer"),
            "__containerd-log",
            Path::new("/var/lib/a b+c/x&y"),
        );
        assert_eq!(
            u,
            "binary:///usr/bin/gofer?__containerd-log=/var/lib/a%20b%2Bc/x%26y"
        );
    }
}
