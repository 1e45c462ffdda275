//! The logging process the runc shim starts for each container (containerd's
//! `binary://` stdio). It gets the container's stdout and stderr as pipes (fds 3 and 4)
//! and a readiness pipe (fd 5), and copies each stream into its own file in the
//! container's directory as it arrives. It is a child of the shim, not of the host, so
//! output keeps being written while the host process is down; the shim closes the pipes
//! when the task is deleted, and the copy ends once the last byte is written (it
//! ignores the shim's SIGTERM, which comes right after, for that).
//!
//! It is the host's `/bin/sh` with two `cat`s: nothing to install or find beside the
//! host program. (The shim's `file://` stdio would need no process at all, but it writes
//! both streams into one file.)

use std::path::Path;

use gofer_core::OutputStream;

use crate::logs;

/// Single-quotes a word for `sh`.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The `sh -c` script of the logging process for the container directory `dir`.
pub(crate) fn script(dir: &Path) -> String {
    let out = quote(&logs::file(dir, OutputStream::Stdout).to_string_lossy());
    let err = quote(&logs::file(dir, OutputStream::Stderr).to_string_lossy());
    // Ready once the copies run: the shim waits for a byte on fd 5.
    format!("trap '' TERM; cat <&3 >>{out} & cat <&4 >>{err} & printf 1 >&5; exec 5>&-; wait")
}

/// The `binary://` URI that starts the logging process (containerd turns the URI's one
/// query pair into the two arguments `-c <script>`).
pub(crate) fn uri(dir: &Path) -> String {
    format!("binary:///bin/sh?-c={}", encode(&script(dir)))
}

/// Percent-encodes all but unreserved characters (Go's URL parser reads `+` as a space).
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 2);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_script_quotes_its_paths_and_the_uri_encodes_it() {
        let dir = Path::new("/var/lib/it's a+b");
        let s = script(dir);
        assert!(s.contains(r"'/var/lib/it'\''s a+b/stdout.log'"), "{s}");
        let u = uri(dir);
        assert!(
            u.starts_with("binary:///bin/sh?-c=trap%20%27%27%20TERM"),
            "{u}"
        );
        assert!(!u[16..].contains(['+', ' ', '&', '\'']), "{u}");
    }

    /// The script copies each pipe into its file and signals readiness, as the shim
    /// drives it (fds 3, 4 and 5).
    #[test]
    fn the_script_copies_both_streams_apart() {
        use std::io::{Read, Write};
        use std::process::{Command, Stdio};
        let dir = tempfile::tempdir().unwrap();
        // Bash plays the shim: three pipes on fds 3, 4 and 5.
        let driver = format!(
            "exec 3< <(printf 'out-1\\nout-2\\n') 4< <(printf 'err-1\\n'); sh -c {} 5>&1",
            quote(&script(dir.path()))
        );
        let mut child = Command::new("bash")
            .args(["-c", &driver])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut ready = String::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut ready)
            .unwrap();
        assert!(child.wait().unwrap().success());
        assert_eq!(ready, "1");
        let read = |s| std::fs::read_to_string(logs::file(dir.path(), s)).unwrap();
        assert_eq!(read(OutputStream::Stdout), "out-1\nout-2\n");
        assert_eq!(read(OutputStream::Stderr), "err-1\n");
        let _ = std::io::stdout().flush();
    }
}
