//! A task's output on its way to a reader: the [`LogSink`](sink::LogSink) trait and
//! its in-memory sink, the file sink and its on-disk format, line framing, the pipe
//! that writes a sink off the runtime's threads, and the masker that replaces secret
//! values before any of them sees a byte.
//!
//! `redact` keeps the same secret values out of the process's own logs.
//!
//! Imports only gofer-core: this wing is the bottom of the engine.
pub(crate) mod file_format;
pub(crate) mod file_sink;
pub(crate) mod framer;
pub(crate) mod mask;
pub(crate) mod pipe;
pub(crate) mod redact;
pub(crate) mod sink;
