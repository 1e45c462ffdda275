//! Executor behaviour on the FakeScheduler: one module per concern.
#![allow(clippy::unwrap_used)]

mod caches;
mod common;
mod concurrency;
mod faults;
mod flow;
mod health;
mod hostile;
mod limits;
mod logs;
mod matrix;
mod metrics;
#[cfg(feature = "mock")]
mod mocked;
mod recovery;
mod recovery_faults;
mod redact;
mod retention;
mod retry;
mod scale;
mod services;
mod task_cancel;
mod variables;
mod workspace;
