#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

// The layers, top to bottom; a file imports only from layers below it:
// engine, recovery (the top: Engine, EngineBuilder, Engine::recover)
// → run/ (a run executed: runner → lifecycle → services, container, pump, resolve → ctx → handle, stop, slots)
// → durable/ (its record: recorder → journal, outcome, clock; the recovery plan; the reaper)
// → logs/ (its output: sinks, file format, framing, masking)
// → gofer-core (the model and the contracts).
mod durable;
mod engine;
mod health;
mod logs;
pub mod metrics;
#[cfg(feature = "mock")]
pub mod mock;
mod recovery;
pub mod retention;
mod run;
#[cfg(feature = "testing")]
pub mod testing;

pub use durable::plan::{RecoveredTask, RecoveryAction, RecoveryError};
pub use durable::reaper::{
    reap, reap_listed, reap_volumes, ReapError, ReapReport, REAP_CONCURRENCY,
};
pub use engine::{BuildError, Engine, EngineBuilder, DEFAULT_INSTANCE_ID};
pub use health::{Check, Health, QueuedTask};
pub use logs::file_sink::FileLogSink;
pub use logs::framer::LineFramer;
pub use logs::mask::{mask_str, MaskPatterns, Masker, MIN_MASK_LEN};
pub use logs::redact::{
    cap_client_targets, MaskingMakeWriter, MaskingWriter, Registration, SecretRegistry,
    CLIENT_BODY_TARGETS, DEFAULT_GRACE,
};
pub use logs::sink::{
    InMemoryLogSink, LogError, LogKey, LogLine, LogReader, LogSink, LogWriter, MAX_LINE_BYTES,
};
pub use recovery::{RecoveryReport, RegisterError};
pub use retention::{
    prune_history, PrunedRun, Pruner, RetentionError, RetentionPolicy, RetentionReport,
};
pub use run::caches::{CacheEntry, CachePolicy, PruneReport};
pub use run::errors::{EngineError, RunError};
pub use run::handle::RunHandle;
pub use run::limits::Limits;
